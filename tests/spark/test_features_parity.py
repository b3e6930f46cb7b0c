"""``--engine spark`` computes the same offline feature tables as pandas, and builds the same store.

The generated export is ingested once with the pandas engine; both engines then compute every offline
table from that clean table, and the tables are compared cell by cell: the same rows (sorted by the
key columns and the timestamp), keys, counts and timestamps exactly equal, floats within 1e-9
(relative and absolute). Not bitwise: the rolling means and standard deviations are running sums over
the rows in the order pandas visits them, and Spark hands the pandas rules one key's rows at a time
instead of the whole table, so the last bits of a float may differ.

The end-to-end test runs ``titans features build --engine spark`` and the pandas build into two homes
and compares the written files (schema and values) and the online store's values for sampled
entities after Feast's apply and materialize.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from titans.cli import main
from titans.data.ingest import ingest, read_clean
from titans.features import history, spec
from titans.features.store import FeatureClient
from titans.train import data_hash

TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, generated_export: Path) -> Path:
    """The generated export ingested with the pandas engine: the clean table both engines read."""
    out = tmp_path_factory.mktemp("features-parity") / "data"
    ingest([generated_export], out, hold_home=False)
    return out


@pytest.fixture(scope="module")
def clean(data_dir: Path) -> pd.DataFrame:
    return read_clean(data_dir)


@pytest.fixture(scope="module")
def pandas_tables(clean: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], pd.Timestamp]:
    return history.offline_tables(clean)


@pytest.fixture(scope="module")
def spark_run(spark: Any, data_dir: Path) -> dict[str, Any]:
    from titans.features import spark_tables

    frame = spark_tables.read_clean(spark, data_dir)
    tables, globals_, rows = spark_tables.offline_tables(frame)
    return {"frame": frame, "tables": {name: t.toPandas() for name, t in tables.items()}, "globals": globals_,
            "rows": rows}


def _sort_keys(name: str) -> list[str]:
    if name == spec.ACCOUNT_DAILY_TABLE:
        return [spec.ACCOUNT_KEY, "date"]
    return [*spec.VIEWS[name].entity_keys, spec.EVENT_TIMESTAMP]


def _as_utc_nanos(column: pd.Series) -> np.ndarray:
    """Timestamps as UTC nanoseconds, tz-aware or naive (naive ones are UTC: the sessions run in UTC)."""
    values = pd.to_datetime(column)
    if values.dt.tz is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values.to_numpy("datetime64[ns]").astype("int64")


def assert_same_table(name: str, want: pd.DataFrame, got: pd.DataFrame) -> None:
    """Cell-by-cell equality (module docstring): exact for keys, ints and timestamps, 1e-9 for floats."""
    assert list(got.columns) == list(want.columns), name
    assert len(got) == len(want), f"{name}: {len(got)} rows, pandas has {len(want)}"
    keys = _sort_keys(name)
    want = want.sort_values(keys, kind="mergesort").reset_index(drop=True)
    got = got.sort_values(keys, kind="mergesort").reset_index(drop=True)
    for col in want.columns:
        w, g = want[col], got[col]
        where = f"{name}.{col}"
        if pd.api.types.is_datetime64_any_dtype(w):
            assert pd.api.types.is_datetime64_any_dtype(g), f"{where}: {g.dtype}"
            np.testing.assert_array_equal(_as_utc_nanos(g), _as_utc_nanos(w), err_msg=where)
        elif pd.api.types.is_float_dtype(w):
            assert pd.api.types.is_float_dtype(g), f"{where}: {g.dtype}"
            np.testing.assert_allclose(g.to_numpy(), w.to_numpy(), rtol=TOLERANCE, atol=TOLERANCE, err_msg=where)
        elif pd.api.types.is_integer_dtype(w):
            assert pd.api.types.is_integer_dtype(g), f"{where}: {g.dtype}"
            np.testing.assert_array_equal(g.to_numpy("int64"), w.to_numpy("int64"), err_msg=where)
        else:
            assert g.astype(str).tolist() == w.astype(str).tolist(), where


def test_globals_are_the_whole_tables(clean: pd.DataFrame, pandas_tables: tuple, spark_run: dict) -> None:
    tx = history.prepare(clean)
    g = spark_run["globals"]
    assert spark_run["rows"] == len(clean)
    assert g.as_of == pandas_tables[1] == history.as_of_day(tx)
    assert g.end == tx["day"].max()
    pd.testing.assert_series_equal(g.totals, history.day_counts(tx), check_names=False, check_freq=False)


def test_every_table_matches_pandas_cell_by_cell(pandas_tables: tuple, spark_run: dict) -> None:
    tables, _ = pandas_tables
    assert set(spark_run["tables"]) == set(tables)
    for name, want in tables.items():
        assert len(want) > 0, name  # an empty table would compare equal and prove nothing
        assert_same_table(name, want, spark_run["tables"][name])




def _of_rows(table: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda clean: table(history.prepare(clean))


# group keys -> (the Spark source, the pandas table it stands for (of the clean table), columns equal exactly,
# float columns)
DAILY_SUMS = {
    "merchant": ("_merchant_days", _of_rows(history.merchant_daily), ["n", "new_categories"], ["s1", "s2", "shift"]),
    "merchant,category": ("_merchant_category_days", _of_rows(history.merchant_category_days), ["n"],
                          ["mean", "m2", "max"]),
    "category": ("_category_days", _of_rows(history.category_daily), ["n"], ["s1", "s2", "shift"]),
    "account_id": ("_account_days", _of_rows(history.account_day_sums), ["n"], ["inflow", "outflow"]),
    "account_id,merchant": ("_account_merchant_days",
                            lambda clean: history.account_merchant_days(history.prepare(clean),
                                                                        history.fraud_ids(clean)),
                            ["n"], ["abs_amount", "w"]),
}


@pytest.mark.parametrize("key", sorted(DAILY_SUMS))
def test_day_sum_groups_are_summed_in_spark(clean: pd.DataFrame, spark_run: dict, key: str) -> None:
    """The skew mitigation: merchant_history's, the frequency tables' and the daily series' groups get one
    row per (key, day).

    A popular merchant, a large category or a large business's account is then a few thousand day rows in
    one worker, not all its transactions; the rows equal pandas' own per-day sums (counts exactly, sums to 1e-9).
    """
    from titans.features import spark_tables  # imports pyspark: only once the spark fixture has not skipped

    source, table, exact, floats = DAILY_SUMS[key]
    keys = key.split(",")
    got = getattr(spark_tables, source)(spark_tables._transactions(spark_run["frame"]), 3).toPandas()
    got = spark_tables._daily_frame(got).sort_values([*keys, "day"]).reset_index(drop=True)
    want = table(clean).sort_values([*keys, "day"]).reset_index(drop=True)
    assert len(got) == len(want) > 0
    for name in keys:
        assert got[name].tolist() == want[name].tolist()
    np.testing.assert_array_equal(got["day"].to_numpy("datetime64[ns]"), want["day"].to_numpy("datetime64[ns]"))
    for column in exact:
        np.testing.assert_array_equal(got[column].to_numpy("int64"), want[column].to_numpy("int64"), err_msg=column)
    for column in floats:
        np.testing.assert_allclose(got[column].to_numpy(), want[column].to_numpy(), rtol=TOLERANCE, atol=TOLERANCE,
                                   err_msg=column)


def test_bucketed_groups_hold_many_keys_and_never_split_one(spark_run: dict) -> None:
    """merchant_history's and account_merchant's groups: hash buckets of whole keys (their per-day rows)."""
    from titans.features import spark_tables  # imports pyspark: only once the spark fixture has not skipped

    tx = spark_tables._transactions(spark_run["frame"])
    sources = {"merchant": spark_tables._merchant_category_days,
               "account_id,merchant": spark_tables._account_merchant_days}
    for key, source in sources.items():
        keys = key.split(",")
        frame = source(tx, 3).select(*keys, spark_tables._BUCKET).toPandas()
        per_key = frame.groupby(keys)[spark_tables._BUCKET].nunique()
        assert (per_key == 1).all(), keys  # a key's rows all in one group: its windows see all of them
        assert set(frame[spark_tables._BUCKET]) <= {0, 1, 2} and frame[spark_tables._BUCKET].nunique() > 1


def test_fraud_labels_are_left_out_of_account_merchant(clean: pd.DataFrame, pandas_tables: tuple) -> None:
    """The export has fraud labels, so the per-account filter in the Spark path is exercised."""
    assert len(history.fraud_ids(clean)) > 0


def test_data_hash_is_the_training_hash(clean: pd.DataFrame, spark_run: dict) -> None:
    from titans.features import spark_tables

    assert spark_tables.data_hash(spark_run["frame"]) == data_hash(clean)


@contextlib.contextmanager
def _home(home: Path) -> Iterator[None]:
    """TITANS_HOME -> ``home`` and no store overrides, inside the block only."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TITANS_HOME", str(home))
        for name in ("TITANS_FEATURE_OFFLINE_URI", "TITANS_FEATURE_STORE_YAML", "TITANS_FEATURE_REPO",
                     "TITANS_ENGINE", "TITANS_SPARK_MASTER"):
            mp.delenv(name, raising=False)
        yield


def _build(home: Path, data: Path, *engine: str) -> tuple[dict, FeatureClient]:
    with _home(home):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["features", "build", "--data", str(data), "--json", *engine]) == 0
        return json.loads(out.getvalue()), FeatureClient()


@pytest.fixture(scope="module")
def built(spark: Any, tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Any]:
    """The same clean table built into two homes, once per engine (the Spark build reuses the session)."""
    root = tmp_path_factory.mktemp("features-build")
    pandas_summary, pandas_client = _build(root / "pandas", data_dir)
    spark_summary, spark_client = _build(root / "spark", data_dir, "--engine", "spark", "--spark-master", "local[2]")
    return {"pandas": (pandas_summary, pandas_client), "spark": (spark_summary, spark_client)}


def test_spark_build_writes_the_same_files(built: dict) -> None:
    pandas_summary, _ = built["pandas"]
    spark_summary, _ = built["spark"]
    assert (pandas_summary["engine"], spark_summary["engine"]) == ("pandas", "spark")
    for key in ("feature_views", "as_of", "data_hash", "input_rows"):
        want, got = pandas_summary[key], spark_summary[key]
        if key == "feature_views":
            want = {n: {k: v for k, v in view.items() if k != "source"} for n, view in want.items()}
            got = {n: {k: v for k, v in view.items() if k != "source"} for n, view in got.items()}
        assert got == want, key
    paths = {name: view["source"] for name, view in spark_summary["feature_views"].items() if view["kind"] == "stored"}
    paths[spec.ACCOUNT_DAILY_TABLE] = spark_summary["account_daily_cashflow"]["path"]
    for name, path in paths.items():
        twin = path.replace(spark_summary["offline_uri"], pandas_summary["offline_uri"])
        assert Path(path).is_file(), path  # one file, as Feast's FileSource and the readers expect
        want, got = pq.read_schema(twin), pq.read_schema(path)
        assert got.remove_metadata().equals(want.remove_metadata()), f"{name}: {got} != {want}"
        assert_same_table(name, pd.read_parquet(twin), pd.read_parquet(path))
    assert not any(Path(spark_summary["offline_uri"]).glob("_spark_staging*")), "staging left behind"


def test_spark_build_serves_the_same_online_values(built: dict, clean: pd.DataFrame) -> None:
    _, pandas_client = built["pandas"]
    _, spark_client = built["spark"]
    rows = clean[["transaction_id", "merchant", "account_id", "category", "amount", "date"]].assign(
        event_timestamp=clean["date"]).sample(25, random_state=7).reset_index(drop=True)
    for service in spec.SERVICES:
        want = pandas_client.online_features(service, rows)
        got = spark_client.online_features(service, rows)
        assert len(want) == len(rows), service
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=TOLERANCE, atol=TOLERANCE, obj=service)
