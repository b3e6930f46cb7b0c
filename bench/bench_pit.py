"""Benchmark of the point-in-time join that builds training sets: Feast on duckdb (the default store)
against Feast's Spark offline store on ``local[2]`` (the ``spark`` store profile), N entity rows each.

Why: issue 30 asks for training-set rows per second on each engine "with zero mismatching cells". Until
now the join was measured only on the 452 entity rows of ``tests/spark``, too few to tell a per-row rate
from a session's start. Per size, one generated export is ingested and its features built once (the CLI a
user runs, default store); both stores then read the very same offline tables, so a difference between
their training sets can only come from the join. The entity frame is what an expense task's training asks
for: N clean expense rows, each at its own date (``titans.models.recipe.training_set``). Each engine joins in
a process of its own (``process_tree.measure``: wall time and the peak memory of the tree, the JVM and its
Python workers included), and reports the join alone beside what the process spent opening the store and
starting the session. The two training sets are then compared cell by cell (floats to 1e-9) after sorting
by transaction id and timestamp; any mismatching cell is recorded and then fails the run.

Results: the ``pit`` section of ``bench/results/spark.json`` and ``spark.md`` (``bench_spark.write_results``),
one entry per (entity rows, service, engine), kept across runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from bench_spark import load_results, write_results
from process_tree import measure
from servers import machine_load

from titans.engines import SPARK_MASTER_ENV
from titans.features import paths, spec

# name -> (environment of the join process beside TITANS_HOME, cores it may use)
ENGINES: dict[str, tuple[dict[str, str], int]] = {
    "duckdb": ({}, 1),
    "spark-local[2]": ({paths.STORE_PROFILE_ENV: paths.SPARK_PROFILE, SPARK_MASTER_ENV: "local[2]"}, 2),
}
REFERENCE = "duckdb"
# The generator's expense share is ~94% of the business accounts' rows; 10% more rows than entity rows
# leaves enough expenses to sample N without replacement at every size (checked, not assumed).
EXPORT_FACTOR = 1.1
FLOAT_TOLERANCE = 1e-9
SORT_KEYS = [spec.TRANSACTION_KEY, spec.EVENT_TIMESTAMP]


def main() -> None:
    """Per size: generate, ingest and build once; join on every engine in its own process; compare; write."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000],
                        help="entity rows per training set (one generated export per size)")
    parser.add_argument("--services", nargs="+", default=["anomaly_service"], choices=sorted(spec.SERVICES),
                        help="feature services to join (anomaly: 4 of the 5 stored views and every on-demand one)")
    parser.add_argument("--accounts", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7, help="seed of the entity-row sample")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    parser.add_argument("--work", type=Path, default=None, help="folder for the temporary homes (default: $TMPDIR)")
    args = parser.parse_args()
    if REFERENCE not in args.engines:
        parser.error(f"--engines must include {REFERENCE}: the other engines are compared with it")
    results = load_results()
    pit = results.setdefault("pit", {})
    failures: list[str] = []
    for rows in args.rows:
        with tempfile.TemporaryDirectory(prefix="bench-pit-", dir=args.work) as tmp:
            home, prepared = prepare(Path(tmp), rows, args.accounts)
            entities = Path(tmp) / "entities.parquet"
            expenses_available = sample_entities(home / "data", rows, args.seed, entities)
            for service in args.services:
                sets: dict[str, Path] = {}
                for engine in args.engines:
                    sets[engine] = Path(tmp) / f"{service}-{engine}.parquet"
                    measured = join_in_process(engine, home, entities, service, sets[engine])
                    pit[f"{rows}-{service}-{engine}"] = entry(rows, service, engine, measured,
                                                              {**prepared, "expense_rows": expenses_available})
                reference = pd.read_parquet(sets[REFERENCE])
                for engine in args.engines:
                    counts = mismatching_cells(reference, pd.read_parquet(sets[engine]))
                    record = pit[f"{rows}-{service}-{engine}"]
                    record["cells"] = reference.size
                    record["mismatching_cells"] = sum(counts.values())
                    record["mismatching_by_column"] = {c: n for c, n in counts.items() if n}
                    print(json.dumps(record), flush=True)
                    if record["mismatching_cells"]:
                        failures.append(f"{rows} rows, {service}, {engine}: {record['mismatching_cells']} cells "
                                        f"differ from {REFERENCE}'s ({record['mismatching_by_column']})")
                write_results(results)
    if failures:
        raise SystemExit("point-in-time join: training sets differ between engines:\n  " + "\n  ".join(failures))


def prepare(work: Path, rows: int, accounts: int) -> tuple[Path, dict]:
    """Generate an export for ``rows`` entity rows, ingest it and build the default store, in a home of its own.

    Why the default build only: the Spark profile reads the same offline tables (same ``TITANS_HOME``), with
    a registry and online store of its own names; its join process registers its sources (``apply``) and
    needs no materialization, which is not what this benchmark measures.
    """
    titans = [sys.executable, "-m", "titans.cli"]
    home = work / "home"
    env = home_env(home, {})
    export = work / "export.csv"
    started = time.perf_counter()
    subprocess.run(titans + ["data", "generate", "--rows", str(math.ceil(rows * EXPORT_FACTOR)), "--accounts",
                             str(accounts), "--out", str(export)], check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    generate_s = time.perf_counter() - started
    ingested = measure(titans + ["data", "ingest", "--input", str(export), "--out", str(home / "data"), "--json"],
                       env)
    built = measure(titans + ["features", "build", "--data", str(home / "data"), "--json"], env)
    return home, {"export_rows": json.loads(ingested["stdout"])["rows_clean"], "generate_s": round(generate_s, 1),
                  "ingest_s": ingested["wall_s"], "features_build_s": built["wall_s"]}


def sample_entities(data_dir: Path, rows: int, seed: int, out: Path) -> int:
    """Write ``rows`` clean expense rows, sampled without replacement, as the entity frame; the expenses there were.

    Why expenses: the transaction tasks train on them (``titans.models.recipe.expense_training_set``).
    """
    from titans.data.ingest import read_clean
    from titans.models.common import expenses

    available = expenses(read_clean(data_dir))
    if len(available) < rows:
        raise SystemExit(f"only {len(available)} expense rows for {rows} entity rows: raise EXPORT_FACTOR")
    available.sample(rows, random_state=seed).reset_index(drop=True).to_parquet(out, index=False)
    return int(len(available))


def join_in_process(engine: str, home: Path, entities: Path, service: str, out: Path) -> dict:
    """Run ``join`` (below) for ``engine`` in a measured process of its own; its timings and the tree's memory."""
    measured = measure([sys.executable, __file__, "join", "--entities", str(entities), "--service", service,
                        "--out", str(out)], home_env(home, ENGINES[engine][0]))
    return {**json.loads(measured.pop("stdout").strip().splitlines()[-1]), **measured}


def home_env(home: Path, settings: dict[str, str]) -> dict[str, str]:
    """This environment in ``home`` with only ``settings`` choosing the store and master: a profile, yaml or
    master exported in the shell would otherwise make both engines one, or build a store the other cannot read."""
    chosen = (paths.STORE_PROFILE_ENV, paths.STORE_YAML_ENV, SPARK_MASTER_ENV)
    env = {name: value for name, value in os.environ.items() if name not in chosen}
    return {**env, "TITANS_HOME": str(home), **settings}


def join(argv: list[str]) -> None:
    """The measured process: open the store its environment selects, register its sources, start its Spark
    session if it has one, then time the training-set join alone and write the training set to ``--out``."""
    parser = argparse.ArgumentParser(prog="bench_pit.py join")
    parser.add_argument("--entities", type=Path, required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from titans.features.store import FeatureClient
    from titans.models.recipe import training_set

    timings: dict[str, float] = {}
    started = time.perf_counter()
    client = FeatureClient()
    client.apply()  # no change for the default store (its build applied); SparkSource sources for the profile
    timings["open_and_apply_s"] = time.perf_counter() - started
    started = time.perf_counter()
    if client.store.config.offline_store.type == "spark":
        # Feast's own session start from the profile's spark_conf (as FeatureClient.materialize does), so
        # the join below is timed without the session's 11-15 s.
        from feast.infra.offline_stores.contrib.spark_offline_store.spark import (
            get_spark_session_or_start_new_with_repoconfig,
        )

        get_spark_session_or_start_new_with_repoconfig(client.store.config.offline_store)
    timings["session_s"] = time.perf_counter() - started
    rows = pd.read_parquet(args.entities)
    started = time.perf_counter()
    result = training_set(client, args.service, rows)
    timings["join_s"] = time.perf_counter() - started
    result.to_parquet(args.out, index=False)
    print(json.dumps({"offline_store": client.store.config.offline_store.type,
                      **{k: round(v, 2) for k, v in timings.items()}}), flush=True)


def mismatching_cells(reference: pd.DataFrame, other: pd.DataFrame) -> dict[str, int]:
    """Mismatching cells per column after sorting both by transaction id and timestamp.

    Floats agree within ``FLOAT_TOLERANCE``, everything else exactly; two missing values agree. Different
    columns, dtypes or row counts are no count but a failure: there are no cells to pair.
    """
    if list(reference.columns) != list(other.columns) or len(reference) != len(other):
        raise SystemExit(f"training sets differ in shape: {reference.shape} {list(reference.columns)} "
                         f"against {other.shape} {list(other.columns)}")
    dtypes = {c: (str(reference[c].dtype), str(other[c].dtype)) for c in reference.columns
              if reference[c].dtype != other[c].dtype}
    if dtypes:
        raise SystemExit(f"training sets differ in column dtypes: {dtypes}")
    left = reference.sort_values(SORT_KEYS, kind="stable").reset_index(drop=True)
    right = other.sort_values(SORT_KEYS, kind="stable").reset_index(drop=True)
    counts = {}
    for column in left.columns:
        a, b = left[column], right[column]
        both_missing = (a.isna() & b.isna()).to_numpy(bool)
        if pd.api.types.is_float_dtype(a):
            same = np.abs(a.to_numpy("float64") - b.to_numpy("float64")) <= FLOAT_TOLERANCE
        else:
            same = a.eq(b).fillna(False).to_numpy(bool)
        counts[column] = int((~(same | both_missing)).sum())
    return counts


def entry(rows: int, service: str, engine: str, measured: dict, prepared: dict) -> dict:
    """One result: the join's own rate beside the whole process's (store opening and Spark's start included)."""
    return {"entity_rows": rows, "service": service, "engine": engine, "cores": ENGINES[engine][1], **prepared,
            **measured, "entity_rows_per_s": round(rows / measured["join_s"]),
            "entity_rows_per_s_process": round(rows / measured["wall_s"]), "load": machine_load()}


if __name__ == "__main__":
    if sys.argv[1:2] == ["join"]:
        join(sys.argv[2:])
    else:
        main()
