"""Model storage URIs to a local model directory.

Why: the same runtime serves a laptop's ``$TITANS_HOME/models/<task>``, a cluster's
``s3://titans-models/<task>/<version>`` (already downloaded to ``/mnt/models`` by KServe's
storage initializer, or fetched here through kserve-storage when that package is installed)
and MLflow registry aliases such as ``models:/titans-category@champion``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlparse

from serving.config import METADATA_FILE
from titans.settings import load_settings

logger = logging.getLogger(__name__)



class ModelUriError(Exception):
    """The URI cannot be turned into a local model directory; the message says why."""


def resolve_model_uri(uri: str) -> Path:
    """Return a local directory holding ``metadata.json`` for ``uri``."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        local = Path(parsed.path if parsed.scheme == "file" else uri).expanduser()
        if not local.exists():
            raise ModelUriError(f"{uri}: no such directory")
        return find_model_dir(local)
    if parsed.scheme in ("models", "runs", "mlflow-artifacts"):
        return find_model_dir(_download_mlflow(uri))
    return find_model_dir(_download_kserve_storage(uri))


def find_model_dir(root: Path) -> Path:
    """The directory with ``metadata.json``: ``root`` itself, or one or two levels below.

    Why one: an unpacked archive wraps the model directory in a folder of its own; why two: a
    registered MLflow pyfunc keeps it under ``artifacts/<task>/`` beside its MLmodel file
    (``titans.registry.log_and_register``), which is what ``models:/titans-<task>@champion`` downloads.
    """
    if (root / METADATA_FILE).is_file():
        return root
    if root.is_dir():
        for pattern in (f"*/{METADATA_FILE}", f"*/*/{METADATA_FILE}"):
            nested = sorted(p.parent for p in root.glob(pattern))
            if len(nested) == 1:
                return nested[0]
            if len(nested) > 1:
                raise ModelUriError(f"{root}: several model directories inside ({[str(p) for p in nested]})")
    raise ModelUriError(f"{root}: no {METADATA_FILE} (not a titans model directory)")


def _download_mlflow(uri: str) -> Path:
    try:  # here: MLflow takes seconds to import, and only a models:/ URI needs it
        import mlflow.artifacts
    except ImportError as exc:  # pragma: no cover - mlflow is a product dependency
        raise ModelUriError(f"{uri}: mlflow is not installed") from exc
    import mlflow

    mlflow.set_tracking_uri(load_settings().mlflow_tracking_uri)
    mlflow.set_registry_uri(load_settings().mlflow_tracking_uri)
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except Exception as exc:  # mlflow raises MlflowException and OSError subclasses alike
        raise ModelUriError(f"{uri}: MLflow could not provide it: {exc}") from exc


def _download_kserve_storage(uri: str) -> Path:
    try:  # here: kserve-storage is optional (KServe's storage initializer usually downloads instead)
        from kserve_storage import Storage
    except ImportError as exc:
        raise ModelUriError(
            f"{uri}: remote storage needs the kserve-storage package (pip install kserve-storage), "
            "or let KServe's storage initializer download it to /mnt/models"
        ) from exc
    try:
        return Path(Storage.download(uri))
    except Exception as exc:  # kserve-storage raises whatever its backend raises
        raise ModelUriError(f"{uri}: download failed: {exc}") from exc
