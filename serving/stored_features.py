"""The stored (materialized) feature columns of one feature service, read from the Feast online store.

Why a module of its own: the enricher (``serving/enrich.py``) and the cache in front of the store
(``serving/feature_cache.py``) both build on this lookup; here, neither has to import the other's module to
reach it. Unknown entities get the catalogue defaults exactly as ``FeatureClient`` fills them (a test holds
the two equal on the real store).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from titans.features import spec
from titans.features.keys import merchant_keys

__all__ = ["EnrichmentError", "StoredFeatures", "entity_keys", "stored_views"]


class EnrichmentError(RuntimeError):
    """The feature store could not answer: a server-side failure (500), never the client's."""


def stored_views(service: str) -> list[Any]:
    """The stored (materialized) views of ``service``, in the catalogue's order."""
    return [view for view in spec.service_views(service) if not view.on_demand]


def entity_keys(service: str) -> list[str]:
    """Request inputs that key the stored views of ``service`` (merchant, category, account_id)."""
    keys: list[str] = []
    for view in stored_views(service):
        for key in view.entity_keys:
            if key not in keys:
                keys.append(key)
    return keys


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
