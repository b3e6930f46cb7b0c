#!/usr/bin/env bash
# A Debian bookworm base image (python3 3.11, CA certificates) from Debian's packages with debootstrap,
# for machines that reach a Debian mirror but no container registry: `make base-image`.
#
# Usage: images/base-image.sh TAG [MIRROR]   (needs root, debootstrap and a running Docker engine)
set -euo pipefail
tag="${1:?usage: base-image.sh TAG [MIRROR]}"
mirror="${2:-}"
if [ -z "$mirror" ]; then
    # The mirror this machine's apt already uses (deb822 or one-line sources), else Debian's default.
    # (Debian's own archive only: not -security, not third-party repositories such as nodesource.)
    mirror="$( { grep -rhoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
        || true; } | awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)"
    mirror="${mirror:-http://deb.debian.org/debian}"
fi
if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "base image $tag already present"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "base-image needs debootstrap (apt-get install debootstrap)" >&2; exit 2; }
rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap bookworm from $mirror ..."
debootstrap --variant=minbase --include=python3,ca-certificates bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
    || { tail -n 20 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"
# What no container needs: package caches, documentation, translations.
rm -rf "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/log/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
tar -C "$rootfs" -c . | docker import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$tag" >/dev/null
echo "base image $tag: $(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')"
