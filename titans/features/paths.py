"""Where feature data lives: the offline tables root and the repository's yaml.

Why here and not in ``titans.settings``: only the feature store reads these, and the Feast
definitions (``feature_repo/``) need the same answer at ``apply`` time that the builder used
at write time, so both call these functions.
"""

from __future__ import annotations

import os
from pathlib import Path

from titans.settings import load_settings

# Object-store (or any pyarrow-writable) root for the offline tables in production,
# e.g. ``s3://titans-features/offline``. Unset: ``$TITANS_HOME/features/offline``.
OFFLINE_URI_ENV = "TITANS_FEATURE_OFFLINE_URI"
# Which yaml of the repository configures the store: a file name inside the repository
# (``feature_store.production.yaml``) or a path. Unset: ``feature_store.yaml``.
STORE_YAML_ENV = "TITANS_FEATURE_STORE_YAML"
DEFAULT_STORE_YAML = "feature_store.yaml"


def ensure_home_env() -> Path:
    """Export an absolute ``TITANS_HOME`` so ``${TITANS_HOME}`` in Feast yaml resolves.

    Feast substitutes environment variables in ``feature_store.yaml`` and leaves unknown ones
    verbatim; setting the embedded default here keeps runtime data out of the repository.
    """
    home = load_settings().home
    os.environ["TITANS_HOME"] = str(home)
    return home


def feature_home() -> Path:
    """``$TITANS_HOME/features``: registry, online store and (by default) offline tables."""
    return load_settings().feature_data_dir


def offline_uri() -> str:
    """Root URI of the offline tables (local directory or object-store URI), no trailing slash."""
    uri = os.environ.get(OFFLINE_URI_ENV)
    if uri:
        return uri.rstrip("/")
    return str(feature_home() / "offline")


def table_uri(name: str) -> str:
    """The parquet file of one offline table."""
    return f"{offline_uri()}/{name}.parquet"


def repo_path(repo: str | Path | None = None) -> Path:
    """The feature repository: argument, else ``TITANS_FEATURE_REPO``, else ``feature_repo/``."""
    return Path(repo).expanduser().resolve() if repo else load_settings().feature_repo


def store_yaml(repo: Path) -> Path:
    """The ``feature_store*.yaml`` selected by ``TITANS_FEATURE_STORE_YAML`` (default embedded)."""
    name = os.environ.get(STORE_YAML_ENV) or DEFAULT_STORE_YAML
    path = Path(name).expanduser()
    return path if path.is_absolute() else repo / path
