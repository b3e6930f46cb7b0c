"""Benchmark of the feature store: build at 1M transactions, materialization, online latency.

What it measures, on the embedded stack (sqlite registry + online store, duckdb offline):

- ``build``: ``build_from_clean`` on N generated-and-ingested transactions (default 1M), step
  by step (offline point-in-time tables, parquet write, apply, materialize).
- ``materialize_1m_entities``: Feast materialization of one view whose source holds 1M rows
  with 1M distinct entities, so every source row becomes an online row (the worst case for
  the online write path; realistic builds write one row per merchant/account/category).
- ``online``: p50/p99 latency of one transaction's features per service over ``--calls``
  calls (different known entities each call), through ``FeatureClient.online_features`` and
  through Feast's ``get_online_features`` directly.
- ``on_demand_cost``: what the request-time views add per online request (stored features only
  vs the full service), the same views in Feast's pandas mode for comparison, and their cost
  in the training path (rows/s through Feast's historical retrieval).

Results go to ``bench/results/features.json`` and ``features.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from feast import FeatureService, Field, OnDemandFeatureView
from feast.types import Float64, Int64

from titans.data.generate import GenerateConfig, write_csv
from titans.data.ingest import ingest, read_clean
from titans.features import paths, spec
from titans.features.build import _write_parquet, build_from_clean
from titans.features.store import FeatureClient
from titans.features.transaction import calendar_features, transaction_features

RESULTS = Path(__file__).resolve().parent / "results"


def _percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000.0
    return {
        "calls": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
    }


def _latency(call: Callable[[int], object], calls: int, warmup: int = 50) -> dict[str, float]:
    for i in range(warmup):
        call(i)
    samples = []
    for i in range(calls):
        started = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - started)
    return _percentiles(samples)


def _clean_table(rows: int, accounts: int, data_dir: Path | None, work: Path) -> tuple[pd.DataFrame, dict]:
    """The clean table: read from ``data_dir``, else generated and ingested with the project's code."""
    timings: dict[str, float] = {}
    if data_dir is None:
        csv = work / "raw" / "transactions.csv"
        started = time.perf_counter()
        write_csv(GenerateConfig(rows=rows, accounts=accounts, seed=7), csv)
        timings["generate_s"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        ingest([csv], work / "data")
        timings["ingest_s"] = round(time.perf_counter() - started, 2)
        data_dir = work / "data"
    started = time.perf_counter()
    clean = read_clean(data_dir)
    timings["read_clean_s"] = round(time.perf_counter() - started, 2)
    return clean, timings


def _entity_rows(clean: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    sample = clean.sample(min(n, len(clean)), random_state=seed).reset_index(drop=True)
    return sample[["transaction_id", "merchant", "account_id", "category", "amount", "date"]]


def bench_online(client, clean: pd.DataFrame, calls: int) -> dict:
    """One transaction per call, a different known transaction each call."""
    rows = _entity_rows(clean, 2000)
    as_of_date = (clean["date"].max() + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    rows["date"] = as_of_date  # a transaction arriving the day after the data, as in serving
    singles = [rows.iloc[[i]].reset_index(drop=True) for i in range(len(rows))]
    out: dict[str, dict] = {}
    for service in spec.SERVICES:
        out[f"client.{service}"] = _latency(
            lambda i, s=service: client.online_features(s, singles[i % len(singles)]), calls
        )
    feature_service = client.service("anomaly_service")
    utc_day = pd.Timestamp(as_of_date, tz="UTC").to_pydatetime()
    raw_rows = [
        {
            "merchant": [r.merchant],
            "account_id": [r.account_id],
            "category": [r.category],
            "amount": [float(r.amount)],
            "date": [utc_day],
        }
        for r in rows.itertuples()
    ]
    out["feast.anomaly_service"] = _latency(
        lambda i: client.store.get_online_features(features=feature_service, entity_rows=raw_rows[i % len(raw_rows)]),
        calls,
    )
    return out


def bench_on_demand(client, clean: pd.DataFrame, calls: int) -> dict:
    """What the on-demand views cost, online and in training, in python and pandas mode."""
    stored = [
        f"{v.name}:{c}" for v in spec.STORED_VIEWS if v.name in spec.SERVICES["anomaly_service"] for c in v.column_names
    ]
    request = [f"{v.name}:{c}" for v in spec.ON_DEMAND_VIEWS for c in v.column_names]
    calendar = [f"transaction_calendar:{c}" for c in spec.TRANSACTION_CALENDAR.column_names]

    # The calendar view again, in Feast's pandas mode, registered under another name.
    date_source = client.store.get_on_demand_feature_view("transaction_calendar").source_request_sources
    types = {"int64": Int64, "float64": Float64}
    pandas_view = OnDemandFeatureView(
        name="bench_calendar_pandas",
        sources=list(date_source.values()),
        schema=[Field(name=c.name, dtype=types[c.dtype]) for c in spec.TRANSACTION_CALENDAR.columns],
        udf=calendar_features,
        udf_string="calendar_features",
        mode="pandas",
    )
    # The anomaly service without its on-demand views: the difference is what they cost. Both
    # are FeatureService objects, so Feast's per-service caches apply equally to both.
    stored_service = FeatureService(
        name="bench_anomaly_stored_only",
        features=[
            client.store.get_feature_view(v.name)
            for v in spec.STORED_VIEWS
            if v.name in spec.SERVICES["anomaly_service"]
        ],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client.store.apply([pandas_view, stored_service])
    full_service = client.store.get_feature_service("anomaly_service")
    stored_service = client.store.get_feature_service("bench_anomaly_stored_only")
    pandas_calendar = [f"bench_calendar_pandas:{c}" for c in spec.TRANSACTION_CALENDAR.column_names]

    rows = _entity_rows(clean, 1000)
    day = (clean["date"].max() + pd.Timedelta(days=1)).tz_localize("UTC").to_pydatetime()
    keys = [
        {"merchant": [r.merchant], "account_id": [r.account_id], "category": [r.category]} for r in rows.itertuples()
    ]
    request_rows = [{"amount": [float(r.amount)], "date": [day]} for r in rows.itertuples()]
    get = client.store.get_online_features
    online = {
        "stored_only": _latency(lambda i: get(features=stored_service, entity_rows=keys[i % 1000]), calls),
        "stored_plus_on_demand": _latency(
            lambda i: get(features=full_service, entity_rows={**keys[i % 1000], **request_rows[i % 1000]}), calls
        ),
        "calendar_python_mode": _latency(
            lambda i: get(features=calendar, entity_rows={"date": request_rows[i % 1000]["date"]}), calls
        ),
        "calendar_pandas_mode": _latency(
            lambda i: get(features=pandas_calendar, entity_rows={"date": request_rows[i % 1000]["date"]}), calls
        ),
    }
    online["on_demand_added_p50_ms"] = round(
        online["stored_plus_on_demand"]["p50_ms"] - online["stored_only"]["p50_ms"], 3
    )

    # Training path: the same entity frame with and without the on-demand views.
    frame = _entity_rows(clean, 100_000, seed=1)
    frame["event_timestamp"] = frame["date"]
    query = client._inputs("anomaly_service", frame, training=True)
    query = pd.DataFrame(query)
    timings = {}
    for name, features in (("stored_only", stored), ("stored_plus_on_demand", stored + request)):
        started = time.perf_counter()
        result = client.store.get_historical_features(entity_df=query, features=features).to_df()
        assert len(result) == len(query)
        timings[name] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    transaction_features(frame)
    direct = time.perf_counter() - started
    return {
        "online": online,
        "training": {
            "rows": len(query),
            "historical_stored_only_s": timings["stored_only"],
            "historical_with_on_demand_s": timings["stored_plus_on_demand"],
            "on_demand_added_s": round(timings["stored_plus_on_demand"] - timings["stored_only"], 2),
            "transaction_features_direct_s": round(direct, 3),
        },
    }


def bench_materialize_1m_entities(client, n: int) -> dict:
    """Overwrite one view's source with n distinct merchants and materialize just that view."""
    rng = np.random.default_rng(0)
    stamp = pd.Timestamp("2024-01-01", tz="UTC")
    table = pd.DataFrame(
        {
            spec.MERCHANT_KEY: [f"bench_merchant_{i:07d}" for i in range(n)],
            spec.EVENT_TIMESTAMP: stamp + pd.to_timedelta(rng.integers(0, 30, n), unit="D"),
            "merchant_txn_count_all": rng.integers(1, 500, n),
            "merchant_distinct_categories_all": rng.integers(1, 5, n),
            "merchant_amount_mean_all": rng.gamma(2.0, 50.0, n),
        }
    )
    uri = paths.table_uri(spec.MERCHANT_FREQUENCY.name)
    _write_parquet(table, uri)
    started = time.perf_counter()
    with open(os.devnull, "w") as sink:
        stdout, sys.stdout = sys.stdout, sink
        try:
            client.store.materialize(
                start_date=(stamp - timedelta(days=1)).to_pydatetime(),
                end_date=(stamp + timedelta(days=31)).to_pydatetime(),
                feature_views=[spec.MERCHANT_FREQUENCY.name],
            )
        finally:
            sys.stdout = stdout
    seconds = time.perf_counter() - started
    probe = client.store.get_online_features(
        features=["merchant_frequency:merchant_txn_count_all"],
        entity_rows=[{"merchant": f"bench_merchant_{n - 1:07d}"}],
    ).to_dict()
    assert probe["merchant_txn_count_all"][0] == int(table["merchant_txn_count_all"].iloc[-1])
    return {"source_rows": n, "online_rows_written": n, "seconds": round(seconds, 2), "rows_per_s": round(n / seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="transactions to generate (default 1M)")
    parser.add_argument("--accounts", type=int, default=5)
    parser.add_argument("--data", type=Path, help="reuse an ingest output folder (holding clean/) instead")
    parser.add_argument("--calls", type=int, default=2000, help="online calls per measurement (>= 1000)")
    parser.add_argument("--materialize-rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=RESULTS / "features.json")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature")

    with tempfile.TemporaryDirectory(prefix="titans-bench-features-") as tmp:
        work = Path(tmp)
        os.environ["TITANS_HOME"] = str(work)
        for var in ("TITANS_FEATURE_OFFLINE_URI", "TITANS_FEATURE_STORE_YAML"):
            os.environ.pop(var, None)
        clean, data_timings = _clean_table(args.rows, args.accounts, args.data, work)
        print(f"clean table: {len(clean)} rows", file=sys.stderr)
        started = time.perf_counter()
        summary = build_from_clean(clean, progress=lambda m: print(m, file=sys.stderr))
        build_s = time.perf_counter() - started
        client = FeatureClient()
        offline_rows = sum(v["rows"] for v in summary["feature_views"].values() if v["kind"] == "stored")
        online_rows = sum(v["entities"] for v in summary["feature_views"].values() if v["kind"] == "stored")
        build = {
            "transactions": len(clean),
            "data": data_timings,
            "steps_s": summary["timings_s"],
            "total_s": round(build_s, 2),
            "transactions_per_s": round(len(clean) / build_s),
            "feature_views": {
                k: {"rows": v["rows"], "entities": v["entities"]}
                for k, v in summary["feature_views"].items()
                if v["kind"] == "stored"
            },
            "materialize": {
                "source_rows": offline_rows,
                "online_rows": online_rows,
                "seconds": summary["timings_s"]["materialize"],
                "source_rows_per_s": round(offline_rows / summary["timings_s"]["materialize"]),
            },
        }
        print("online latency ...", file=sys.stderr)
        online = bench_online(client, clean, args.calls)
        print("on-demand view cost ...", file=sys.stderr)
        on_demand = bench_on_demand(client, clean, args.calls)
        print(f"materializing {args.materialize_rows} distinct entities ...", file=sys.stderr)
        materialize = bench_materialize_1m_entities(client, args.materialize_rows)

    result = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "build": build,
        "materialize_1m_entities": materialize,
        "online": online,
        "on_demand_cost": on_demand,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Feature store benchmark ({len(clean)} transactions, {os.cpu_count()} CPUs)",
        "",
        "| measurement | value |",
        "|---|---:|",
        f"| build total (s) | {build['total_s']} |",
        *[f"| build step {k} (s) | {v} |" for k, v in build["steps_s"].items()],
        f"| materialize in build: source rows/s | {build['materialize']['source_rows_per_s']} |",
        f"| materialize {materialize['source_rows']} distinct entities: rows/s | {materialize['rows_per_s']} |",
        *[f"| online {k}: p50 / p99 ms | {v['p50_ms']} / {v['p99_ms']} |" for k, v in online.items()],
        *[
            f"| on-demand online {k}: p50 / p99 ms | {v['p50_ms']} / {v['p99_ms']} |"
            for k, v in on_demand["online"].items()
            if isinstance(v, dict)
        ],
        f"| on-demand views added per request, p50 (ms) | {on_demand['online']['on_demand_added_p50_ms']} |",
        f"| on-demand views added to a {on_demand['training']['rows']}-row training set (s) | "
        f"{on_demand['training']['on_demand_added_s']} |",
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
