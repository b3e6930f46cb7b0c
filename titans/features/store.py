"""``FeatureClient``: training sets and online features from the Feast store, one API for both.

Why a wrapper around ``feast.FeatureStore``: training and serving must ask for features the
same way and get the same columns, dtypes and defaults back. Feast answers an unknown entity
with nulls; models need numbers, so both paths fill the documented defaults
(``titans.features.spec``: counts and amounts 0, ``merchant_days_since_last_seen`` and
``merchant_last_seen_epoch_day`` -1 for "never seen", dominant category ``"none"``).
The training path also checks Feast's point-in-time join returned exactly one row per
entity row, in the caller's order.

Entity frames carry, per service (``spec.service_inputs``): ``merchant``, ``account_id``,
``category`` (amount and anomaly services), ``amount`` (category and anomaly), ``date``, and
for training an ``event_timestamp`` (defaults to ``date``). Extra columns pass through.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from titans.errors import UserError
from titans.features import paths, spec
from titans.features.transaction import to_day

log = logging.getLogger(__name__)

_ROW = "__titans_row"


def _fill_defaults(frame: pd.DataFrame, columns: list[spec.Column]) -> pd.DataFrame:
    """Replace Feast's nulls (unknown entities) by the catalogue defaults and fix dtypes."""
    out = {}
    for col in columns:
        values = frame[col.name] if col.name in frame.columns else pd.Series(np.nan, index=frame.index)
        if col.dtype == "string":
            out[col.name] = values.astype(object).where(values.notna(), col.default).astype(str)
        else:
            numeric = pd.to_numeric(values, errors="coerce").fillna(col.default)
            out[col.name] = numeric.astype(col.dtype)
    return pd.DataFrame(out, index=frame.index)


class FeatureClient:
    """Training sets (point-in-time, offline) and online features for a feature service.

    ``repo_path`` defaults to ``TITANS_FEATURE_REPO`` or ``feature_repo/``; the yaml is the
    embedded ``feature_store.yaml`` unless ``TITANS_FEATURE_STORE_YAML`` names another.
    """

    def __init__(self, repo_path: str | Path | None = None, yaml_file: str | Path | None = None):
        from feast import FeatureStore

        paths.ensure_home_env()
        self.repo_path = paths.repo_path(repo_path)
        if not self.repo_path.is_dir():
            raise UserError(f"feature repository not found: {self.repo_path}")
        self.yaml_path = Path(yaml_file) if yaml_file else paths.store_yaml(self.repo_path)
        if not self.yaml_path.is_file():
            raise UserError(f"feature store config not found: {self.yaml_path}")
        if self.yaml_path.name == paths.DEFAULT_STORE_YAML:
            paths.feature_home().mkdir(parents=True, exist_ok=True)
        self.store = FeatureStore(repo_path=str(self.repo_path), fs_yaml_file=self.yaml_path)
        self._services: dict[str, Any] = {}

    # -- registry ---------------------------------------------------------------------------

    def service(self, name: str) -> Any:
        """The applied ``feast.FeatureService`` (cached: the online path calls this per request)."""
        spec.service_views(name)
        if name not in self._services:
            try:
                self._services[name] = self.store.get_feature_service(name)
            except Exception as exc:  # feast raises its own NotFound types per registry
                raise UserError(
                    f"feature service {name!r} is not in the registry: run `titans features build` first"
                ) from exc
        return self._services[name]

    def apply(self) -> dict[str, list[str]]:
        """Register the repository's objects (idempotent; removes objects no longer defined).

        Why not ``feast apply``: the CLI runs in its own process (~5 s), changes the working
        directory and exits the process on errors; this runs Feast's own diff in-process.
        """
        from feast.repo_operations import extract_objects_for_apply_delete

        contents = load_repo_contents(self.repo_path)
        registry = self.store.registry
        to_apply, to_delete, _, _ = extract_objects_for_apply_delete(self.store.project, registry, contents)
        with contextlib.redirect_stdout(sys.stderr):
            self.store.apply(to_apply, objects_to_delete=to_delete, partial=False)
        self._services.clear()
        return {
            "applied": sorted(getattr(o, "name", str(o)) for o in to_apply),
            "deleted": sorted(getattr(o, "name", str(o)) for o in to_delete),
        }

    # -- entity frames ----------------------------------------------------------------------

    def _inputs(self, service: str, entity_df: pd.DataFrame, training: bool) -> pd.DataFrame:
        """The columns Feast needs, typed as the registry declares them, one row per input row."""
        if not isinstance(entity_df, pd.DataFrame):
            raise UserError("entity_df must be a pandas DataFrame")
        needed = spec.service_inputs(service)
        frame = entity_df
        if training and spec.EVENT_TIMESTAMP not in frame.columns:
            if spec.REQUEST_DATE not in frame.columns:
                raise UserError(f"a training entity frame needs {spec.EVENT_TIMESTAMP!r} or {spec.REQUEST_DATE!r}")
            frame = frame.assign(**{spec.EVENT_TIMESTAMP: frame[spec.REQUEST_DATE]})
        if spec.REQUEST_DATE in needed and spec.REQUEST_DATE not in frame.columns and training:
            frame = frame.assign(**{spec.REQUEST_DATE: frame[spec.EVENT_TIMESTAMP]})
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise UserError(f"{service} needs entity column(s) {missing}; got {list(entity_df.columns)}")
        out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
        for name in needed:
            values = frame[name].reset_index(drop=True)
            if name == spec.REQUEST_AMOUNT:
                out[name] = pd.to_numeric(values, errors="coerce").astype("float64")
            elif name == spec.REQUEST_DATE:
                out[name] = to_day(values).dt.tz_localize("UTC")
            else:
                if values.isna().any():
                    raise UserError(f"entity column {name!r} has missing values")
                out[name] = values.astype(str)
        if training:
            out[spec.EVENT_TIMESTAMP] = to_day(frame[spec.EVENT_TIMESTAMP].reset_index(drop=True)).dt.tz_localize(
                "UTC"
            )
        return out

    def _finish(self, service: str, entity_df: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
        filled = _fill_defaults(features, spec.service_columns(service))
        filled.index = entity_df.index
        keep = [c for c in entity_df.columns if c not in filled.columns]
        return pd.concat([entity_df[keep], filled], axis=1)

    # -- the two paths ----------------------------------------------------------------------

    def training_set(self, service: str, entity_df: pd.DataFrame) -> pd.DataFrame:
        """Point-in-time features for each entity row: exactly one row out per row in.

        A row stamped t gets stored features built from days strictly before t's day and
        request features from its own ``amount``/``date``. The result keeps the caller's
        index, row order and columns, followed by the service's feature columns.
        """
        query = self._inputs(service, entity_df, training=True)
        if len(query) == 0:
            return self._finish(service, entity_df, pd.DataFrame(index=query.index))
        query[_ROW] = np.arange(len(query), dtype="int64")
        job = self.store.get_historical_features(entity_df=query, features=self.service(service))
        result = job.to_df()
        rows = result[_ROW].to_numpy()
        if len(result) != len(query) or not np.array_equal(np.sort(rows), np.arange(len(query))):
            raise RuntimeError(
                f"point-in-time join returned {len(result)} rows for {len(query)} entity rows ({service})"
            )
        result = result.sort_values(_ROW).reset_index(drop=True)
        return self._finish(service, entity_df, result)

    def online_features(self, service: str, entity_df: pd.DataFrame) -> pd.DataFrame:
        """Latest materialized features for a batch of entities (the serving path).

        Unknown merchants, accounts or categories get the catalogue defaults, not an error.
        Values equal ``training_set`` for the same rows stamped at the materialization's
        ``as_of`` day (a test holds this).
        """
        query = self._inputs(service, entity_df, training=False)
        if len(query) == 0:
            return self._finish(service, entity_df, pd.DataFrame(index=query.index))
        rows = {name: query[name].tolist() for name in query.columns}
        response = self.store.get_online_features(features=self.service(service), entity_rows=rows)
        return self._finish(service, entity_df, response.to_df())

    # -- the forecaster's series ------------------------------------------------------------

    def account_daily_cashflow(self, account_ids: list[str] | None = None) -> pd.DataFrame:
        """Per-account zero-filled daily inflow/outflow/net written by the last build."""
        uri = paths.table_uri(spec.ACCOUNT_DAILY_TABLE)
        try:
            frame = pd.read_parquet(uri)
        except FileNotFoundError as exc:
            raise UserError(f"no cash-flow series at {uri}: run `titans features build` first") from exc
        if account_ids is not None:
            frame = frame[frame[spec.ACCOUNT_KEY].isin(account_ids)].reset_index(drop=True)
        return frame


def load_repo_contents(repo: Path) -> Any:
    """Import the repository's definition files and collect their Feast objects.

    Feast's own ``parse_repo`` imports files by module path relative to the working
    directory; loading each file by path works from anywhere (tests, pipeline steps).
    """
    from feast import Entity, FeatureService, FeatureView, OnDemandFeatureView, Project
    from feast.data_source import DataSource, RequestSource
    from feast.feature_view import DUMMY_ENTITY
    from feast.repo_contents import RepoContents

    contents = RepoContents(
        projects=[],
        data_sources=[],
        feature_views=[],
        on_demand_feature_views=[],
        stream_feature_views=[],
        label_views=[],
        entities=[],
        feature_services=[],
        permissions=[],
    )
    files = sorted(p for p in repo.glob("*.py") if p.name != "__init__.py")
    if not files:
        raise UserError(f"no feature definitions (*.py) in {repo}")

    def add(bucket: list, obj: Any) -> None:
        if not any(obj is seen for seen in bucket):
            bucket.append(obj)

    for path in files:
        module_name = f"titans_feature_repo_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        module_spec.loader.exec_module(module)
        for obj in vars(module).values():
            if isinstance(obj, OnDemandFeatureView):
                add(contents.on_demand_feature_views, obj)
            elif isinstance(obj, FeatureView):
                add(contents.feature_views, obj)
                if obj.batch_source is not None:
                    add(contents.data_sources, obj.batch_source)
            elif isinstance(obj, Entity):
                add(contents.entities, obj)
            elif isinstance(obj, FeatureService):
                add(contents.feature_services, obj)
            elif isinstance(obj, Project):
                add(contents.projects, obj)
            elif isinstance(obj, DataSource) and not isinstance(obj, RequestSource):
                add(contents.data_sources, obj)
            elif isinstance(obj, RequestSource):
                add(contents.data_sources, obj)
    contents.entities.append(DUMMY_ENTITY)
    return contents
