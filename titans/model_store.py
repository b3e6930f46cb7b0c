"""The object-store folder each deployed model version lives in: where KServe's storage initializer fetches it.

Why: an InferenceService's ``storageUri`` must name something the storage initializer can download with the
object store's credentials. MLflow's ``mlflow-artifacts:/`` URIs (its artifacts are proxied, ``--serve-artifacts``)
and a path inside a pipeline step's volume are neither, so the deploy step copies each model folder to
``<store>/<task>/<version>/`` and the InferenceService names that. The endpoint is boto3's own setting
(``AWS_ENDPOINT_URL`` or ``AWS_ENDPOINT_URL_S3``; unset means AWS), the credentials the usual AWS ones.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from titans.errors import UserError


def version_uri(store: str, task: str, version: str) -> str:
    """``<store>/<task>/<version>``: the contract's layout (``s3://titans-models/category/3``)."""
    return f"{store.rstrip('/')}/{task}/{version}"


def _bucket_and_prefix(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise UserError(f"model store {uri!r}: expected s3://bucket[/prefix]")
    return parsed.netloc, parsed.path.strip("/")


def upload_model_dir(source: Path, store: str, task: str, version: str) -> str:
    """Copy the model folder ``source`` to ``<store>/<task>/<version>/`` and return that URI.

    Every file keeps its path relative to ``source``, so the storage initializer's download is the folder
    ``titans serve`` loads. A failed upload is one ``UserError`` naming the object and the store's answer.
    """
    import boto3  # here: only a deploy with a model store talks to S3, and boto3 takes ~0.3 s to import
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    if not (source / "metadata.json").is_file():
        raise UserError(f"{source}: not a model folder (no metadata.json)")
    uri = version_uri(store, task, version)
    bucket, prefix = _bucket_and_prefix(uri)
    client = boto3.client("s3")
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        key = f"{prefix}/{path.relative_to(source).as_posix()}"
        try:
            client.upload_file(str(path), bucket, key)
        except (Boto3Error, BotoCoreError, ClientError) as exc:
            raise UserError(f"cannot upload {path.name} to s3://{bucket}/{key}: {exc}") from None
    return uri
