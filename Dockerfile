# The project image: ghcr.io/titans-finance/titans:0.1.0 — the base_image of every pipeline component.
# It cannot be built on the development machines (no Docker engine); `make image` builds it where Docker runs.
# kfp inside the image is the SDK's own pin (uv.lock), so the component launcher's
# `pip install kfp==<sdk version> --no-deps` is a no-op.

FROM python:3.11.11-slim-bookworm AS build
COPY --from=ghcr.io/astral-sh/uv:0.5.31 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-install-project
COPY titans ./titans
COPY components ./components
COPY pipelines ./pipelines
COPY serving ./serving
COPY feature_repo ./feature_repo
RUN uv sync --frozen

FROM python:3.11.11-slim-bookworm
RUN groupadd --gid 10001 titans \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/titans --shell /usr/sbin/nologin titans \
    && mkdir -p /var/titans && chown 10001:10001 /var/titans
COPY --from=build --chown=10001:10001 /app /app
WORKDIR /app
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TITANS_HOME=/var/titans \
    TITANS_FEATURE_REPO=/app/feature_repo \
    MPLCONFIGDIR=/tmp/matplotlib
USER 10001
# The pipeline's working state (Feast sqlite stores, model directories) lives on a mounted volume.
VOLUME ["/var/titans"]
CMD ["titans", "--help"]
