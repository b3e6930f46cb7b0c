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
alone ~0.5 ms. Unknown entities get the catalogue defaults exactly as ``FeatureClient``
fills them (a test holds the two equal on the real store).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from serving.config import EnrichmentMode
from serving.tensors import TensorSpec

__all__ = [
    "EnrichmentMode", "EnrichmentError", "Enricher", "FeastEnricher", "StoredFeatures", "feature_specs",
    "merchant_keys", "normalize_merchant_key",
]

DTYPE_TO_V2 = {"int64": "INT64", "float64": "FP64", "string": "BYTES"}
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


class EnrichmentError(RuntimeError):
    """The feature store could not answer: a server-side failure (500), never the client's."""


class Enricher(Protocol):
    """Adds stored feature columns to validated request columns (same rows, same order)."""

    def enrich(self, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def stored_views(service: str) -> list[Any]:
    """The stored (materialized) views of ``service``, in the catalogue's order."""
    from titans.features import spec

    return [view for view in spec.service_views(service) if not view.on_demand]


def feature_specs(service: str) -> tuple[TensorSpec, ...]:
    """The stored features as V2 input tensors (what the transformer sends in ``request`` mode)."""
    return tuple(
        TensorSpec(name=col.name, datatype=DTYPE_TO_V2[col.dtype], shape=(-1,))
        for view in stored_views(service) for col in view.columns
    )


def entity_keys(service: str) -> list[str]:
    """Request inputs that key the stored views of ``service`` (merchant, category, account_id)."""
    keys: list[str] = []
    for view in stored_views(service):
        for key in view.entity_keys:
            if key not in keys:
                keys.append(key)
    return keys


def normalize_merchant_key(value: str) -> str:
    """The clean table's merchant key for one value (``titans.models.common.normalize_merchant``).

    Why a scalar copy of the rule: the pandas version costs ~0.3 ms per call, more than the
    whole online lookup of one row; a test holds the two equal on awkward spellings.
    """
    key = _NON_ALNUM.sub("_", value.lower()).strip("_")
    return key or "unknown"


# Merchant spelling (text only) -> key; cleared when full.
_MERCHANT_KEYS: dict[str, str] = {}
_MERCHANT_KEYS_SIZE = 100_000


def merchant_keys(values: Sequence[Any]) -> list[str]:
    """``normalize_merchant_key`` of each value (``str`` of non-text), memoised per spelling.

    Why memoised: merchants repeat heavily, and the regex costs ~1 us a value; the lookup,
    the design and the drift counters of every batch all need these keys. A batch of known
    spellings is one C-level pass over a dict.
    """
    items = values.tolist() if isinstance(values, np.ndarray) else values
    memo = _MERCHANT_KEYS
    try:
        return list(map(memo.__getitem__, items))
    except (KeyError, TypeError):
        pass
    if len(memo) > _MERCHANT_KEYS_SIZE:
        memo.clear()
    out = []
    for value in items:
        text = type(value) is str
        key = memo.get(value) if text else None
        if key is None:
            key = normalize_merchant_key(value if isinstance(value, str) else str(value))
            if text:
                memo[value] = key
        out.append(key)
    return out


class StoredFeatures:
    """Online values of one service's stored columns, defaults filled, one row per entity row."""

    def __init__(self, service: str, store: Any):
        self.service = service
        self.store = store
        views = stored_views(service)
        self.columns = [col for view in views for col in view.columns]
        self.refs = [f"{view.name}:{col.name}" for view in views for col in view.columns]
        self.keys = entity_keys(service)

    @property
    def names(self) -> list[str]:
        return [col.name for col in self.columns]

    def lookup(self, entity: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
        """Feature columns for the rows of ``entity`` (key -> values; merchant as sent by the client)."""
        missing = [key for key in self.keys if key not in entity]
        if missing:
            raise EnrichmentError(f"{self.service}: the request carries no {missing[0]!r} to look features up by")
        rows = {
            key: merchant_keys(entity[key]) if key == "merchant" else [str(v) for v in entity[key]]
            for key in self.keys
        }
        n = len(next(iter(rows.values()))) if rows else 0
        try:
            found = self.store.get_online_features(features=self.refs, entity_rows=rows).to_dict()
        except Exception as exc:  # sqlite, redis or Feast errors alike: the store failed us
            raise EnrichmentError(f"{self.service}: {type(exc).__name__}: {exc}") from exc
        out: dict[str, np.ndarray] = {}
        for col in self.columns:
            values = found.get(col.name)
            if values is None or len(values) != n:
                raise EnrichmentError(f"{self.service}: online store returned no {col.name!r} for {n} rows")
            out[col.name] = _with_default(values, col.dtype, col.default)
        return out


def _with_default(values: Sequence[Any], dtype: str, default: Any) -> np.ndarray:
    """Feast's nulls (never-seen entities) replaced by the catalogue default, typed as declared."""
    if dtype == "string":
        return np.array([default if v is None or v != v else str(v) for v in values], dtype=object)
    numeric = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return np.where(np.isnan(numeric), float(default), numeric).astype(dtype)


class FeastEnricher:
    """In-process enrichment of one model's requests (``--enrichment feast``)."""

    def __init__(self, service: str, repo_path: Path | None = None, client: Any = None):
        if client is None:
            from titans.features.store import FeatureClient

            client = FeatureClient(repo_path)
        from serving.feature_cache import CachedStoredFeatures

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
