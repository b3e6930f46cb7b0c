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

Feast is imported inside the methods that use it: its import takes ~5 s, and this module is
imported by code (training, the server's enrichment set-up) that loads it before knowing whether
a store will be opened.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from titans import engines
from titans.errors import UserError
from titans.features import paths, spec
from titans.features.as_of import ViewTable
from titans.features.transaction import epoch_days

_ROW = "__titans_row"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _as_utc_days(values: np.ndarray, as_list: bool) -> Any:
    """Dates as UTC midnights: what Feast's UnixTimestamp request field and the point-in-time
    join take, from ISO text, dates or datetimes. Lists for the online path (one or a few
    rows, no pandas overhead), a Series for training frames."""
    days = epoch_days(values)
    if as_list:
        return [_EPOCH + timedelta(days=int(d)) for d in days]
    return pd.Series(pd.to_datetime(days, unit="D", utc=True))


def _as_amounts(values: np.ndarray) -> np.ndarray:
    try:
        return np.asarray(values, dtype="float64")
    except (TypeError, ValueError) as exc:
        raise UserError(f"entity column 'amount' must be numeric: {exc}") from exc


def _filled(values: Any, column: spec.Column) -> np.ndarray:
    """One feature column with Feast's nulls (unknown entities) replaced by the default."""
    if column.dtype == "string":
        return np.array([column.default if v is None or v != v else str(v) for v in values], dtype=object)
    numeric = np.asarray(
        pd.to_numeric(pd.Series(values), errors="coerce")
        if not isinstance(values, list)
        else np.array(values, dtype="float64"),
        dtype="float64",
    )
    return np.where(np.isnan(numeric), column.default, numeric).astype(column.dtype)


def _assemble(service: str, entity_df: pd.DataFrame, features: Any) -> pd.DataFrame:
    """Caller's columns, then the service's feature columns with defaults, caller's index.

    ``features`` maps column name to values (a DataFrame or Feast's dict of lists), one value
    per entity row in order. Built with one DataFrame constructor: on the serving path this
    dominated the latency when done column by column.
    """
    columns = spec.service_columns(service)
    names = {c.name for c in columns}
    data: dict[str, Any] = {c: entity_df[c].to_numpy() for c in entity_df.columns if c not in names}
    n = len(entity_df)
    for col in columns:
        values = features[col.name] if col.name in features else [None] * n
        data[col.name] = _filled(values, col)
    return pd.DataFrame(data, index=entity_df.index)


class FeatureClient:
    """Training sets (point-in-time, offline) and online features for a feature service.

    ``repo_path`` defaults to ``TITANS_FEATURE_REPO`` or ``feature_repo/``; the yaml is the
    embedded ``feature_store.yaml`` unless ``TITANS_FEATURE_STORE_YAML`` names another. Only the embedded
    store (``paths.is_embedded``) is moved under ``$TITANS_HOME/features``; any other yaml, a mounted
    cluster config included, is read as written and nothing is created for it.
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
        if paths.is_embedded(self.yaml_path):
            paths.feature_home().mkdir(parents=True, exist_ok=True)
            config = paths.embedded_store_config(self.repo_path, self.yaml_path)
            self.store = FeatureStore(repo_path=str(self.repo_path), config=config)
        else:
            config = paths.yaml_store_config(self.repo_path, self.yaml_path)
            self.store = FeatureStore(repo_path=str(self.repo_path), config=config)
        if paths.uses_spark(config):
            engines.use_this_python()  # before Feast starts a session from the yaml's spark_conf
        # Resolved now, like the yaml: later calls do not depend on the environment.
        self.offline_uri = paths.offline_uri()
        self._services: dict[str, Any] = {}
        self._as_of: dict[str, ViewTable | None] = {}  # stored view -> its table in memory (None: Feast joins it)
        # stored view -> (its entity keys and timestamps, the join they gave): the last ask of each view
        self._last_join: dict[str, tuple[list[Any], np.ndarray, pd.DataFrame]] = {}

    # -- registry ---------------------------------------------------------------------------

    def service(self, name: str) -> Any:
        """The applied ``feast.FeatureService`` (cached: the online path calls this per request)."""
        from feast.errors import FeatureServiceNotFoundException

        spec.service_views(name)
        if name not in self._services:
            try:
                self._services[name] = self.store.get_feature_service(name)
            except FeatureServiceNotFoundException as exc:
                raise UserError(
                    f"feature service {name!r} is not in the registry: run `titans features build` first"
                ) from exc
        return self._services[name]

    def open_registry(self) -> None:
        """Read the registry now: a store that cannot be opened (its module missing, its object store unreachable,
        access refused) is one line naming its config, before any work is done for it."""
        try:
            self.store.registry  # noqa: B018 - Feast opens (or creates) the registry on first access
        except Exception as exc:
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise UserError(f"{self.yaml_path}: cannot open the feature registry: {reason}") from None

    def apply(self) -> dict[str, list[str]]:
        """Register the repository's objects (idempotent; removes objects no longer defined).

        Why not ``feast apply``: the CLI runs in its own process (~5 s), changes the working
        directory and exits the process on errors; this runs Feast's own diff in-process.
        """
        from feast import Project
        from feast.repo_operations import extract_objects_for_apply_delete

        # The definitions pick each view's source class (FileSource, SparkSource) from this store's offline store.
        with paths.definitions_offline_store(self.store.config.offline_store.type):
            contents = load_repo_contents(self.repo_path)
        if not contents.projects:  # as `feast apply` does: the yaml names the project
            contents.projects.append(Project(name=self.store.project, description=""))
        registry = self.store.registry
        to_apply, to_delete, _, _ = extract_objects_for_apply_delete(self.store.project, registry, contents)
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            # Feast flags on-demand views as experimental for offline scale; measured in
            # bench/bench_features.py, so the warning adds nothing here.
            warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature")
            self.store.apply(to_apply, objects_to_delete=to_delete, partial=False)
        self._services.clear()
        return {
            "applied": sorted(getattr(o, "name", str(o)) for o in to_apply),
            "deleted": sorted(getattr(o, "name", str(o)) for o in to_delete),
        }

    def materialize(self, start: datetime, end: datetime, views: list[str]) -> None:
        """Feast's materialization of ``views`` between ``start`` and ``end`` into the online store.

        Why not ``store.materialize`` alone: Feast 0.67's ``spark.engine`` hands its whole ``batch_engine`` block
        (``type``, ``spark_conf``) to SparkConf, so its ``spark_conf`` never reaches the session (Spark logs
        "Ignoring non-Spark config property: spark_conf"): an engine that starts the session would run without
        the UTC time zone and the master the profile names. The session is started here from the offline
        store's ``spark_conf`` instead, which the engine then reuses (an already active session is kept).
        """
        if getattr(self.store.config.offline_store, "type", "") == "spark":
            # Imported here: Feast's Spark store imports pyspark, an optional extra a non-Spark store never loads.
            from feast.infra.offline_stores.contrib.spark_offline_store.spark import (
                get_spark_session_or_start_new_with_repoconfig,
            )

            get_spark_session_or_start_new_with_repoconfig(self.store.config.offline_store)
        self.store.materialize(start_date=start, end_date=end, feature_views=views)

    # -- entity frames ----------------------------------------------------------------------

    def _inputs(self, service: str, entity_df: pd.DataFrame, training: bool) -> dict[str, Any]:
        """The columns Feast needs, typed as the registry declares them, one value per row."""
        if not isinstance(entity_df, pd.DataFrame):
            raise UserError("entity_df must be a pandas DataFrame")
        needed = spec.service_inputs(service)
        columns = entity_df.columns
        if training and spec.EVENT_TIMESTAMP not in columns and spec.REQUEST_DATE not in columns:
            raise UserError(f"a training entity frame needs {spec.EVENT_TIMESTAMP!r} or {spec.REQUEST_DATE!r}")
        missing = [
            c
            for c in needed
            if c not in columns and not (training and c == spec.REQUEST_DATE and spec.EVENT_TIMESTAMP in columns)
        ]
        if missing:
            raise UserError(f"{service} needs entity column(s) {missing}; got {list(columns)}")
        out: dict[str, Any] = {}
        for name in needed:
            source = name if name in columns else spec.EVENT_TIMESTAMP
            values = entity_df[source].to_numpy()
            if name == spec.REQUEST_AMOUNT:
                amounts = _as_amounts(values)
                out[name] = amounts if training else amounts.tolist()
            elif name == spec.REQUEST_DATE:
                out[name] = _as_utc_days(values, as_list=not training)
            else:
                if pd.isna(values).any():
                    raise UserError(f"entity column {name!r} has missing values")
                out[name] = [str(v) for v in values]
        if training:
            source = spec.EVENT_TIMESTAMP if spec.EVENT_TIMESTAMP in columns else spec.REQUEST_DATE
            out[spec.EVENT_TIMESTAMP] = _as_utc_days(entity_df[source].to_numpy(), as_list=False)
        return out

    # -- the two paths ----------------------------------------------------------------------

    def training_set(self, service: str, entity_df: pd.DataFrame) -> pd.DataFrame:
        """Point-in-time features for each entity row: exactly one row out per row in.

        A row stamped t gets stored features built from days strictly before t's day and
        request features from its own ``amount``/``date`` (``date`` defaults to
        ``event_timestamp``). The result keeps the caller's index, row order and columns,
        followed by the service's feature columns.
        """
        inputs = self._inputs(service, entity_df, training=True)
        if len(entity_df) == 0:
            return _assemble(service, entity_df, {})
        query = pd.DataFrame(inputs)
        query[_ROW] = np.arange(len(query), dtype="int64")
        job = self.store.get_historical_features(entity_df=query, features=self.service(service))
        result = job.to_df()
        rows = result[_ROW].to_numpy()
        if len(result) != len(query) or not np.array_equal(np.sort(rows), np.arange(len(query))):
            raise RuntimeError(
                f"point-in-time join returned {len(result)} rows for {len(query)} entity rows ({service})"
            )
        result = result.sort_values(_ROW).reset_index(drop=True)
        return _assemble(service, entity_df, result)

    def stored_history(self, service: str, entity_df: pd.DataFrame) -> pd.DataFrame:
        """``training_set``'s stored (materialized) columns only: the point-in-time join without on-demand views.

        Why: a batch scorer computes the request features itself, as the server does; asking Feast for the
        on-demand views too made it compute them in pandas for every row of every chunk. Same join, same
        values for the stored columns (defaults filled), caller's row order.
        """
        inputs = self._inputs(service, entity_df, training=True)
        views = [view for view in spec.service_views(service) if not view.on_demand]
        columns = [col for view in views for col in view.columns]
        if len(entity_df) == 0:
            return pd.DataFrame({col.name: _filled([], col) for col in columns})
        keys = {key for view in views for key in view.entity_keys}
        query = pd.DataFrame({name: values for name, values in inputs.items()
                              if name in keys or name == spec.EVENT_TIMESTAMP})
        query[_ROW] = np.arange(len(query), dtype="int64")
        refs = [f"{view.name}:{col.name}" for view in views for col in view.columns]
        result = self.store.get_historical_features(entity_df=query, features=refs).to_df()
        if len(result) != len(query):
            raise RuntimeError(f"point-in-time join returned {len(result)} rows for {len(query)} rows ({service})")
        result = result.sort_values(_ROW).reset_index(drop=True)
        return pd.DataFrame({col.name: _filled(result[col.name].to_numpy() if col.name in result else
                                               [None] * len(result), col) for col in columns})

    def stored_history_in_memory(self, service: str, entity_df: pd.DataFrame) -> pd.DataFrame:
        """``stored_history`` answered from the views' offline tables, read once and kept (``titans.features.as_of``).

        Why beside the Feast path: a batch scorer asks for every chunk of an export, and Feast's per-call
        cost (a query plan, the parquet read again) dominated its point-in-time mode. Same values, dtypes and
        row order (a test holds the two equal); a view whose source the in-memory join cannot read as Feast
        does makes the whole call Feast's. The tables are those of the first call: a scorer's run, not a server.
        """
        inputs = self._inputs(service, entity_df, training=True)
        views = [view for view in spec.service_views(service) if not view.on_demand]
        tables = [self._as_of_table(view) for view in views]
        if len(entity_df) == 0 or any(table is None for table in tables):
            return self.stored_history(service, entity_df)
        stamps = pd.DatetimeIndex(inputs[spec.EVENT_TIMESTAMP]).asi8
        out: dict[str, np.ndarray] = {}
        for view, table in zip(views, tables, strict=True):
            assert table is not None
            joined = self._joined(view, table, [inputs[key] for key in view.entity_keys], stamps)
            for col in view.columns:
                out[col.name] = _filled(joined[col.name].to_numpy(), col)
        return pd.DataFrame(out)

    def _joined(self, view: spec.View, table: ViewTable, keys: list[Any], stamps: np.ndarray) -> pd.DataFrame:
        """``table.join``, or the last answer for this view when it was asked the same rows.

        Why: a scorer asks the services of its row models for the same chunk one after the other, and they
        share views (the merchant views are in three services); the second and third ask of a view were
        the same join again. Equal keys and timestamps give an equal answer, so comparing them suffices.
        """
        last = self._last_join.get(view.name)
        if (last is not None and len(last[1]) == len(stamps) and np.array_equal(last[1], stamps)
                and all(np.array_equal(a, b) for a, b in zip(last[0], keys, strict=True))):
            return last[2]
        joined = table.join(dict(zip(view.entity_keys, keys, strict=True)), stamps)
        self._last_join[view.name] = (keys, stamps, joined)
        return joined

    def _as_of_table(self, view: spec.View) -> ViewTable | None:
        if view.name not in self._as_of:
            self._as_of[view.name] = ViewTable.read(self.store.get_feature_view(view.name), view.entity_keys,
                                                    view.column_names)
        return self._as_of[view.name]

    def online_features(self, service: str, entity_df: pd.DataFrame) -> pd.DataFrame:
        """Latest materialized features for a batch of entities (the serving path).

        Unknown merchants, accounts or categories get the catalogue defaults, not an error.
        Values equal ``training_set`` for the same rows stamped at the materialization's
        ``as_of`` day (a test holds this).
        """
        inputs = self._inputs(service, entity_df, training=False)
        if len(entity_df) == 0:
            return _assemble(service, entity_df, {})
        response = self.store.get_online_features(features=self.service(service), entity_rows=inputs)
        return _assemble(service, entity_df, response.to_dict())

    # -- the forecaster's series ------------------------------------------------------------

    def account_daily_cashflow(self, account_ids: list[str] | None = None) -> pd.DataFrame:
        """Per-account zero-filled daily inflow/outflow/net written by the last build."""
        uri = f"{self.offline_uri}/{spec.ACCOUNT_DAILY_TABLE}.parquet"
        fs, path = pafs.FileSystem.from_uri(uri if "://" in uri else str(Path(uri).resolve()))
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            raise UserError(f"no cash-flow series at {uri}: run `titans features build` first")
        frame = pq.read_table(path, filesystem=fs).to_pandas()
        if account_ids is not None:
            frame = frame[frame[spec.ACCOUNT_KEY].isin(account_ids)].reset_index(drop=True)
        return frame


def load_repo_contents(repo: Path) -> Any:
    """Import the repository's definition files and collect their Feast objects.

    Feast's own ``parse_repo`` imports files by module path relative to the working
    directory; loading each file by path works from anywhere (tests, pipeline steps).
    """
    from feast import Entity, FeatureService, FeatureView, OnDemandFeatureView, Project
    from feast.data_source import DataSource
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
        module_name = f"{paths.TITANS_MODULE_PREFIX}{path.stem}"
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
            elif isinstance(obj, DataSource):  # file and request sources alike
                add(contents.data_sources, obj)
    contents.entities.append(DUMMY_ENTITY)
    return contents
