"""``titans data generate``, ``data ingest`` and ``data sample``: the data plane's command line."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from titans.cli.output import print_json
from titans.data.layout import load_layout
from titans.engines import ENGINES, engine_name
from titans.errors import UserError
from titans.settings import load_settings


def _generate(args: argparse.Namespace) -> int:
    # Here, not at the top: numpy and pandas would load for every `titans` command.
    from titans.data.generate import SMALL_ACCOUNTS, GenerateConfig, write_csv

    out = Path(args.out) if args.out else load_settings().raw_dir / "transactions.csv"
    cfg = GenerateConfig(rows=args.rows, accounts=args.accounts, seed=args.seed, fraud_rate=args.fraud_rate,
                         days=args.days, label_noise=args.label_noise,
                         small_accounts=SMALL_ACCOUNTS if args.small_accounts is None else args.small_accounts)

    summary = write_csv(cfg, out)
    if args.json:
        print_json(summary)
    else:
        print(f"wrote {summary['rows']} rows ({summary['fraud_rows']} labelled fraud) to {out}")
        print(summary["ceiling_note"])
    return 0


def _ingest(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else load_settings().data_dir
    layout = load_layout(args.layout) if args.layout else None
    inputs = [Path(p) for p in args.input]
    # The imports are here: pandas and pyarrow load only when ingest runs, Spark's engine only when asked for.
    if engine_name(args.engine) == "spark":
        from titans.data.spark_ingest import ingest_spark

        summary = ingest_spark(inputs, out, layout=layout, future_tolerance_days=args.future_days,
                               master=args.spark_master)
    else:
        from titans.data.ingest import ingest

        summary = ingest(inputs, out, layout=layout, future_tolerance_days=args.future_days)
    if args.json:
        print_json(summary)
    else:
        print(f"rows_in={summary['rows_in']} clean={summary['rows_clean']} "
              f"quarantined={summary['rows_quarantined']} duplicate={summary['rows_duplicate']}")
        print(f"clean table: {summary['clean_dir']}\nreport: {summary['report_md']}")
        if summary["quarantine_path"]:
            print(f"quarantine: {summary['quarantine_path']}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    if engine_name(args.engine) != "spark":
        raise UserError("data sample picks the training rows in Spark: give --engine spark (with pandas, "
                        "`titans train` reads the whole clean table itself)")
    # Here: the task registry loads every model, and Spark starts only for this command.
    from titans import tasks
    from titans.models.training_sample import write_sample
    from titans.train import TrainConfig, spark_sample

    names = list(tasks.names()) if "all" in args.task else [tasks.get(name).name for name in args.task]
    data = Path(args.data) if args.data else load_settings().data_dir
    if not data.is_dir():
        raise UserError(f"data directory not found: {data} (run `titans data ingest` first)")
    started = time.perf_counter()
    # The caps are the trainings' defaults: what the pipeline's training steps take (each checks it).
    sample, picks = spark_sample(names, data, TrainConfig(), args.spark_master)
    record = write_sample(args.out, sample, picks)
    summary = {"out": str(args.out), "seconds": round(time.perf_counter() - started, 2)} | {
        k: record[k] for k in ("data_hash", "rows", "sampled_rows", "picked")}
    if args.json:
        print_json(summary)
    else:
        print(f"{summary['sampled_rows']} of {summary['rows']} clean rows sampled into {args.out} "
              f"({', '.join(f'{task} {n}' for task, n in summary['picked'].items())})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data generate``, ``data ingest`` and ``data sample``."""
    data = subparsers.add_parser("data", help="generate and ingest transaction exports")
    sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    gen = sub.add_parser("generate", help="write a synthetic export with labelled anomalies",
                         description="Write a synthetic transaction export shaped after a real one, "
                                     "with an is_fraud label. Same seed, same bytes.")
    gen.add_argument("--rows", type=int, default=20_000, help="rows to write (default 20000)")
    gen.add_argument("--accounts", type=int, default=3, help="business accounts (default 3)")
    gen.add_argument("--small-accounts", type=int, default=None,
                     help="small-business accounts with supplier preferences, purchases only, on top of "
                          "--rows "
                          "(default 200, titans.data.generate.SMALL_ACCOUNTS; they feed the merchant recommender)")
    gen.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    gen.add_argument("--fraud-rate", type=float, default=0.02, help="share of labelled anomalies (default 0.02)")
    gen.add_argument("--days", type=int, default=None, help="days covered (default: from rows and accounts)")
    gen.add_argument("--label-noise", type=float, default=0.03,
                     help="share of everyday expenses given a wrong category (default 0.03)")
    gen.add_argument("--out", help="output CSV (default $TITANS_HOME/raw/transactions.csv)")
    gen.add_argument("--json", action="store_true", help="print a JSON summary")
    gen.set_defaults(handler=_generate)

    ing = sub.add_parser("ingest", help="validate exports into a clean table, a quarantine and a report",
                         description="Validate CSV/parquet exports: clean rows into a month-partitioned "
                                     "parquet table, rejected rows verbatim into a quarantine with a "
                                     "reason, a data-quality report in JSON and Markdown. Idempotent.")
    ing.add_argument("--input", nargs="+", required=True, metavar="PATH", help="export files (CSV or parquet)")
    ing.add_argument("--out", help="output folder (default $TITANS_HOME/data)")
    ing.add_argument("--layout", metavar="FILE",
                     help="YAML layout of the exports: which header holds which field, date format, decimal "
                          "separator, delimiter (see docs/layouts/); default: headers matched by name")
    ing.add_argument("--future-days", type=float, default=None, metavar="DAYS",
                     help="quarantine rows dated more than DAYS after now (default $TITANS_INGEST_FUTURE_DAYS or 7)")
    ing.add_argument("--engine", choices=ENGINES, default=None,
                     help="pandas in this process (default, $TITANS_ENGINE), or spark for exports one process "
                          "cannot hold (the `spark` extra and a JRE)")
    ing.add_argument("--spark-master", default=None, metavar="URL",
                     help="Spark master with --engine spark (default $TITANS_SPARK_MASTER or local[*])")
    ing.add_argument("--json", action="store_true", help="print a JSON summary")
    ing.set_defaults(handler=_ingest)

    smp = sub.add_parser("sample", help="the rows the tasks train on, picked in Spark, for trainings elsewhere",
                         description="Pick in Spark the clean rows each task's training set takes under its cap, "
                                     "with the whole table's hash and readiness facts, into a folder a training "
                                     "reads instead of the table (the pipeline's sample step; "
                                     "titans.models.training_sample). Needs --engine spark.")
    smp.add_argument("--data", help="ingest output folder holding clean/ (default $TITANS_HOME/data)")
    smp.add_argument("--out", type=Path, required=True, help="the sample's folder (new, or an earlier sample's)")
    smp.add_argument("--task", nargs="+", default=["all"], metavar="NAME",
                     help="the tasks to sample for (default all declared tasks)")
    smp.add_argument("--engine", choices=ENGINES, default=None, help="spark (the only engine that samples)")
    smp.add_argument("--spark-master", default=None, metavar="URL",
                     help="Spark master (default $TITANS_SPARK_MASTER or local[*])")
    smp.add_argument("--json", action="store_true", help="print a JSON summary")
    smp.set_defaults(handler=_sample)
