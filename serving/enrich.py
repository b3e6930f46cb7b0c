"""Feature enrichment: the request's merchant, category and account history from the Feast online store.

Why three modes (``EnrichmentMode``):

- ``feast``: the predictor looks the features up itself, in process (one hop; the default).
- ``request``: the features arrive as extra V2 inputs, put there by the transformer in
  ``serving/transformer.py`` (KServe's ``predictor_host`` pattern: the predictor needs no
  feature-store credentials, and the two scale apart).
- ``none``: no lookup; the model sees every entity as never seen before (the defaults
  ``titans.features.spec`` declares), which is what a server without a store can honestly do.

Why only the *stored* columns, read through ``FeatureStore.get_online_features`` with
feature references rather than through ``FeatureClient.online_features``: the feature
services also hold on-demand views (calendar, amount transforms, recency), which Feast
computes per request with pandas. The models compute those themselves from the request,
with the same function the store uses, so asking Feast for them doubled the work; measured
on one row of ``anomaly_service`` the whole service took ~2-5 ms, the stored references
alone ~0.5 ms. The lookup itself is ``serving/stored_features.py``; unknown entities get the
catalogue defaults exactly as ``FeatureClient`` fills them.

The names this module re-exports (``EnrichmentError``, ``StoredFeatures``, ``entity_keys``,
``merchant_keys``, ``normalize_merchant_key``) live in ``serving.stored_features`` and
``titans.features.keys``; they stay importable from here for the modules that already do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from serving.config import EnrichmentMode
from serving.feature_cache import CachedStoredFeatures
from serving.stored_features import EnrichmentError, StoredFeatures, entity_keys, stored_views
from serving.tensors import TensorSpec
from titans.features.keys import merchant_keys, normalize_merchant_key

__all__ = [
    "EnrichmentMode", "EnrichmentError", "Enricher", "FeastEnricher", "StoredFeatures", "entity_keys",
    "feature_specs", "merchant_keys", "normalize_merchant_key",
]

DTYPE_TO_V2 = {"int64": "INT64", "float64": "FP64", "string": "BYTES"}


class Enricher(Protocol):
    """Adds stored feature columns to validated request columns (same rows, same order)."""

    def enrich(self, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def feature_specs(service: str) -> tuple[TensorSpec, ...]:
    """The stored features as V2 input tensors (what the transformer sends in ``request`` mode)."""
    return tuple(
        TensorSpec(name=col.name, datatype=DTYPE_TO_V2[col.dtype], shape=(-1,))
        for view in stored_views(service) for col in view.columns
    )


class StoreUnavailable(RuntimeError):
    """The feature store a model enriches from cannot be read (its registry or its feature service)."""


class FeastEnricher:
    """In-process enrichment of one model's requests (``--enrichment feast``)."""

    def __init__(self, service: str, repo_path: Path | None = None, client: Any = None):
        if client is None:
            from titans.features.store import FeatureClient  # here: Feast takes seconds to load, and only this needs it

            client = FeatureClient(repo_path)
        try:
            # The registry read now, not at the first request: a store nothing filled (a missing registry object,
            # a service never applied) is a model that never becomes ready, named by its config file.
            client.service(service)
        except Exception as exc:
            where = getattr(client, "yaml_path", None) or "the feature store"
            raise StoreUnavailable(f"{where}: {type(exc).__name__}: {exc}") from None
        self.client = client
        self.features = CachedStoredFeatures(StoredFeatures(service, client.store))
        self.service = service

    def lookup(self, entity: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
        return self.features.lookup(entity)

    def enrich(self, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Synchronous on purpose: a sqlite lookup is CPU-bound and sub-millisecond, so handing
        # it to a thread pool would add a thread hop without freeing the single core.
        return {**columns, **self.features.lookup(columns)}


def feature_tensor_columns(features: Mapping[str, np.ndarray], specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """Feature columns as arrays typed for their tensors (object-of-str for BYTES)."""
    columns: dict[str, np.ndarray] = {}
    for spec in specs:
        values = np.asarray(features[spec.name])
        if spec.datatype == "BYTES":
            columns[spec.name] = values.astype(str).astype(object)
        else:
            columns[spec.name] = values.astype(spec.numpy_dtype, copy=False)
    return columns
