#!/bin/sh
# Build stage only (never in a final image): the locked venv at /app/.venv.
#
# Why a script: both Dockerfiles install the same way (uv from PyPI, the lock, no editable install) and
# differ only in which extras and packages they take; the base may be python:3.11-slim (pip, ensurepip) or
# bare Debian from debootstrap (python3 only), so the bootstrap of uv adapts to what the base has.
# Arguments are passed to `uv sync` (e.g. --extra train, --no-install-project, --no-install-package mypy).
# Afterwards what only builds or tests need is removed from site-packages: the packages' own test suites
# (~120 MB), C headers and Cython sources; nothing imports them at run time.
set -eu
UV_VERSION="${UV_VERSION:-0.13.9}"
if [ -s /tmp/build-ca/ca-certificates.crt ]; then
    # This machine's CA bundle (copied by make), for TLS to the package index; the final image never has it.
    export SSL_CERT_FILE=/tmp/build-ca/ca-certificates.crt PIP_CERT=/tmp/build-ca/ca-certificates.crt UV_NATIVE_TLS=1
fi
export UV_PYTHON_DOWNLOADS=never UV_LINK_MODE=copy
if [ ! -x /opt/uv/bin/uv ]; then
    if ! python3 -c "import ensurepip" 2>/dev/null; then
        # Debian's python3 ships without ensurepip; python3-venv brings it (build stage only).
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        rm -rf /var/lib/apt/lists/*
    fi
    python3 -m venv /opt/uv
    /opt/uv/bin/pip install --quiet --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"
fi
cd /app
# --no-editable: the project goes into site-packages, so the final image needs no source tree.
/opt/uv/bin/uv sync --frozen --no-editable --compile-bytecode --no-cache \
    --python "$(command -v python3)" "$@"
site="$(echo /app/.venv/lib/python3*/site-packages)"
find "$site" -depth -type d \( -name tests -o -name testing_data \) -path "$site/*/*" -exec rm -rf {} +
find "$site" -depth -type d -name include -path "$site/*/*" -exec rm -rf {} +
find "$site" -type f \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.h' -o -name '*.hpp' \) -delete
