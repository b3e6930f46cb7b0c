#!/usr/bin/env bash
# Start or stop a local Docker engine the way these machines allow it: Debian's dockerd as root, host
# networking only (no bridge, no iptables), overlay2, its state under one folder.
#
# Usage: images/engine.sh start|stop|status DIR
#   start prints the DOCKER_HOST to export; an engine already answering on DIR's socket is reused.
set -euo pipefail
action="${1:?usage: engine.sh start|stop|status DIR}"
dir="${2:?usage: engine.sh start|stop|status DIR}"
sock="$dir/docker.sock"
export DOCKER_HOST="unix://$sock"

answering() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

case "$action" in
start)
    if answering; then echo "$DOCKER_HOST"; exit 0; fi
    command -v dockerd >/dev/null || { echo "no dockerd (apt-get install docker.io)" >&2; exit 2; }
    [ "$(id -u)" -eq 0 ] || { echo "dockerd needs root here" >&2; exit 2; }
    mkdir -p "$dir"
    dockerd --iptables=false --ip-masq=false --bridge=none --storage-driver=overlay2 \
        --host "$DOCKER_HOST" --data-root "$dir/root" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
        >"$dir/dockerd.log" 2>&1 &
    for _ in $(seq 1 60); do
        if answering; then echo "$DOCKER_HOST"; exit 0; fi
        sleep 0.5
    done
    echo "dockerd did not answer within 30 s; its log:" >&2
    tail -n 20 "$dir/dockerd.log" >&2
    exit 1
    ;;
stop)
    if [ -f "$dir/dockerd.pid" ]; then
        pid="$(cat "$dir/dockerd.pid")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
    ;;
status)
    answering && echo "engine at $DOCKER_HOST" || { echo "no engine at $DOCKER_HOST"; exit 1; }
    ;;
*)
    echo "usage: engine.sh start|stop|status DIR" >&2
    exit 2
    ;;
esac
