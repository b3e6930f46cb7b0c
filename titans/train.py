"""Training orchestration: clean table -> Feast training set -> fit -> evaluate -> model dir -> MLflow.

Why one function per task behind one ``train``: the pipeline runs the four in parallel
(one component each), the CLI runs them in sequence; both call ``train_task`` with the same
arguments. Every task evaluates on a time-ordered holdout (fit on the earliest 80% by date,
score the latest 20%; the forecaster uses a rolling-origin backtest), then refits the same
recipe on all rows for the model it saves, so the served model has seen the latest weeks.
The metrics in the metadata are the holdout's.

``titans train`` stages and publishes like the pipeline: each model is written to a staging
folder, registered and gated, and only a version the gate passes is swapped into
``<models>/<task>`` (``titans.publish``); a rejected one is kept in ``<models>/_candidates``
for inspection and the served folder stays as it was. Training refuses a feature store that
was built from another clean table (its build record's ``data_hash``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from titans.errors import UserError
from titans.models.parallel import run_all
from titans.monitoring.reference import REFERENCE_FILE

log = logging.getLogger(__name__)

TASKS = ("category", "amount", "anomaly", "cashflow", "recommend")
SERVICES = {t: f"{t}_service" for t in TASKS}


@dataclass
class TrainConfig:
    """Knobs; defaults are the real sizes, tests pass smaller ones."""

    test_fraction: float = 0.2
    cv_folds: int = 5
    n_estimators: int = 300
    category_candidates: tuple[str, ...] = ("logreg_c10", "xgboost")
    backtest_origins: int = 4
    horizon_days: int = 30
    max_train_rows: int = 200_000
    # Lower caps per task, each read off bench/results/learning-curve.md (the holdout metric flat beyond it).
    task_max_rows: dict[str, int] = field(default_factory=lambda: {"category": 50_000})
    seed: int = 0
    register: bool = True
    build_features: bool = False
    tracking_uri: str | None = None
    gate_config: str | None = None
    out_dir: Path | None = None
    data_dir: Path | None = None  # ingest output; its data-quality report may state a label ceiling
    feature_repo: str | None = None
    extra_lineage: dict[str, Any] = field(default_factory=dict)


def data_hash(clean: pd.DataFrame) -> str:
    """Content hash of the clean table (same recipe as the feature build's lineage hash)."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(clean, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def check_feature_build(client: Any, clean_hash: str) -> None:
    """Refuse to train on features computed from another clean table (or from a failed build)."""
    from titans.features.build import read_build_record

    record = read_build_record(client.offline_uri)
    if record is None:
        raise UserError(f"the feature store at {client.offline_uri} has no complete build; run "
                        "`titans features build` (or `titans train --build-features`) first")
    if record.get("data_hash") != clean_hash:
        raise UserError(f"the feature store was built from another clean table (data_hash "
                        f"{record.get('data_hash')}, this one is {clean_hash}); run `titans features build` "
                        "on this data (or `titans train --build-features`)")


def _entity_frame(rows: pd.DataFrame) -> pd.DataFrame:
    frame = rows.copy()
    frame["event_timestamp"] = frame["date"]
    return frame


def _training_set(client: Any, service: str, rows: pd.DataFrame) -> pd.DataFrame:
    result = client.training_set(service, _entity_frame(rows))
    if len(result) != len(rows):
        raise RuntimeError(f"{service}: training set has {len(result)} rows for {len(rows)} entity rows")
    return result


def label_ceiling(data_dir: Path | None) -> dict[str, Any] | None:
    """The category accuracy ceiling the data-quality report states (generated data), if any."""
    import json

    report = Path(data_dir) / "reports" / "data_quality.json" if data_dir else None
    if report is None or not report.is_file():
        return None
    return json.loads(report.read_text()).get("category_accuracy_ceiling")


def _request_example(frame: pd.DataFrame, inputs: tuple[str, ...]) -> pd.DataFrame:
    ex = frame[list(inputs)].head(3).copy()
    if "date" in ex:
        ex["date"] = pd.to_datetime(ex["date"]).dt.strftime("%Y-%m-%d")
    return ex.reset_index(drop=True)


# -- the four tasks: each returns (final model, result dict, example, plots, training frame) ---------


def _fitted(model: Any, frame: pd.DataFrame, *target: Any) -> Any:
    """``model.fit(frame, *target)``: a picklable call for ``run_all``, which returns the fitted model."""
    return model.fit(frame, *target)


def _category(ts: pd.DataFrame, cfg: TrainConfig, plot_dir: Path) -> tuple[Any, dict, pd.DataFrame, dict]:
    from titans.models import evaluation, plots
    from titans.models.category import CategoryModel
    from titans.models.common import time_split

    def make() -> CategoryModel:
        return CategoryModel(cv_folds=cfg.cv_folds, seed=cfg.seed, candidates=cfg.category_candidates)

    train, test = time_split(ts, cfg.test_fraction)
    selector = make()
    selector.select(train, train["category"])  # the competition, on the training window only

    def winner() -> CategoryModel:
        return replace(make(), candidates=(selector.chosen,), cv_scores=dict(selector.cv_scores),
                       cv_rows=selector.cv_rows)

    # The holdout model and the final refit on all rows (no second competition), side by side.
    model, final = run_all([partial(_fitted, winner(), train, train["category"]),
                            partial(_fitted, winner(), ts, ts["category"])])
    pred = model.predict(test)["category"]
    result = evaluation.category_metrics(test["category"].to_numpy(), pred, train["category"].to_numpy())
    result["model"] = model.describe()
    ceiling = label_ceiling(cfg.data_dir)
    if ceiling:
        result["ceiling"] = ceiling
        result["metrics"]["accuracy_ceiling"] = ceiling["accuracy"]
    labels = sorted(set(test["category"].astype(str)) | set(np.asarray(pred, dtype=str)))
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(test["category"].astype(str), np.asarray(pred, dtype=str), labels=labels)
    result["confusion_matrix"] = {"labels": labels, "matrix": matrix.tolist()}
    figs = {"confusion matrix": plots.confusion(test["category"], pred, plot_dir / "category_confusion.png")}
    return final, result, _request_example(test, model.inputs), figs


def _amount(ts: pd.DataFrame, cfg: TrainConfig, plot_dir: Path) -> tuple[Any, dict, pd.DataFrame, dict]:
    from titans.models import evaluation, plots
    from titans.models.amount import AmountModel
    from titans.models.common import time_split

    def make() -> AmountModel:
        return AmountModel(cv_folds=cfg.cv_folds, n_estimators=cfg.n_estimators, seed=cfg.seed)

    train, test = time_split(ts, cfg.test_fraction)
    model, final = run_all([partial(_fitted, make(), train, train["spend"]), partial(_fitted, make(), ts, ts["spend"])])
    pred = model.predict(test)
    result = evaluation.amount_metrics(test["spend"].to_numpy(), pred, test["category"].to_numpy(), train)
    result["model"] = model.describe()
    figs = {"residuals": plots.residuals(test["spend"], pred["amount"], plot_dir / "amount_residuals.png",
                                          "Amount: holdout predictions")}
    return final, result, _request_example(test, model.inputs), figs


def _anomaly(ts: pd.DataFrame, cfg: TrainConfig, plot_dir: Path) -> tuple[Any, dict, pd.DataFrame, dict]:
    from titans.models import evaluation, plots
    from titans.models.anomaly import AnomalyModel
    from titans.models.common import time_split

    train, test = time_split(ts, cfg.test_fraction)
    labels = ts["is_fraud"] if "is_fraud" in ts else None
    model, final = run_all([
        partial(_fitted, AnomalyModel(n_estimators=cfg.n_estimators, seed=cfg.seed), train,
                train["is_fraud"] if labels is not None else None),
        partial(_fitted, AnomalyModel(n_estimators=cfg.n_estimators, seed=cfg.seed), ts, labels),
    ])
    out = model.predict(test)
    parts = model.component_scores(test)
    mean90 = np.log1p(test["merchant_amount_mean_90d"].astype(float).clip(lower=0))
    zscore = np.abs(np.log1p(test["spend"]) - mean90).where(mean90 > 0, np.log1p(test["spend"])).to_numpy()
    y = pd.to_numeric(test["is_fraud"], errors="coerce") if labels is not None else None
    known = y is not None and y.notna().all() and y.nunique() == 2
    scores = {"anomaly_score": out["anomaly_score"], "isolation_forest": parts["isolation_forest"]}
    result = evaluation.anomaly_metrics(y.astype(int).to_numpy() if known else None, scores, zscore)
    if known:  # the served decision's quality, what delayed labels are later compared with
        from titans.monitoring.live_performance import flagged_metrics

        result["metrics"] |= flagged_metrics(y.astype(int).to_numpy(), out["risk_level"])
    result["model"] = model.describe()
    figs = {}
    if known:
        curves = {"model": out["anomaly_score"], "isolation forest": parts["isolation_forest"],
                  "amount vs merchant": zscore}
        figs["precision-recall"] = plots.precision_recall(y.astype(int).to_numpy(), curves,
                                                          plot_dir / "anomaly_pr.png")
    return final, result, _request_example(test, model.inputs), figs


MIN_TRAIN_DAYS, MIN_HORIZON_DAYS, FLOOR_TRAIN_DAYS = 60, 7, 30  # the forecaster fits on >= 30 days


def backtest_plan(span_days: int, origins: int, horizon: int) -> tuple[int, int, str]:
    """(horizon, minimum training days, note) giving the backtest at least two origins.

    Why: interval coverage for origin i is scored with quantiles of the errors of origins
    before it, so one origin gives intervals (from its own errors) but no coverage, and a short
    export then reports intervals nobody checked. On a short history the horizon shrinks
    (down to a week), then the minimum training window (down to four weeks); the note says so.
    """
    def cuts(h: int, min_train: int) -> int:
        return min(origins, max(0, (span_days - min_train) // h))

    if origins < 2 or cuts(horizon, MIN_TRAIN_DAYS) >= 2:
        return horizon, MIN_TRAIN_DAYS, ""
    h = max(MIN_HORIZON_DAYS, min(horizon, (span_days - MIN_TRAIN_DAYS) // 2))
    if cuts(h, MIN_TRAIN_DAYS) >= 2:
        return h, MIN_TRAIN_DAYS, f"short history ({span_days} days): backtest horizon {h} days, not {horizon}"
    min_train = max(FLOOR_TRAIN_DAYS, span_days - 2 * MIN_HORIZON_DAYS)
    h = max(MIN_HORIZON_DAYS, min(horizon, (span_days - min_train) // 2))
    if cuts(h, min_train) >= 2:
        return h, min_train, (f"short history ({span_days} days): backtest horizon {h} days after at least "
                              f"{min_train} training days")
    return horizon, MIN_TRAIN_DAYS, f"short history ({span_days} days): one backtest origin, coverage not measured"


def _cashflow(ts: pd.DataFrame, cfg: TrainConfig, plot_dir: Path) -> tuple[Any, dict, pd.DataFrame, dict]:
    from titans.models import evaluation, plots
    from titans.models.cashflow import CashflowModel, backtest

    dates = pd.to_datetime(ts["date"])
    horizon, min_train, note = backtest_plan(int((dates.max() - dates.min()).days), cfg.backtest_origins,
                                             cfg.horizon_days)
    bt = backtest(ts, origins=cfg.backtest_origins, horizon=horizon, n_estimators=cfg.n_estimators,
                  seed=cfg.seed, min_train_days=min_train)
    result = evaluation.cashflow_metrics(bt)
    result["metrics"]["backtest_horizon_days"] = horizon
    if note:
        result["backtest_note"] = note
    final = CashflowModel(n_estimators=cfg.n_estimators, seed=cfg.seed).fit(ts)
    final.set_errors((bt["net"] - bt["net_amount"]).to_numpy(), "rolling-origin backtest errors")
    result["model"] = final.describe()
    figs = {
        "forecast vs actuals": plots.forecast(bt, plot_dir / "cashflow_forecast.png"),
        "residuals": plots.residuals(np.abs(bt["net"]) + 1, np.abs(bt["net_amount"]) + 1,
                                     plot_dir / "cashflow_residuals.png", "Cash flow: |net| backtest"),
    }
    example = pd.DataFrame({"account_id": [final.accounts[0]], "horizon_days": np.array([7], dtype="int32")})
    return final, result, example, figs


def _task_frame(task: str, clean: pd.DataFrame, client: Any, max_rows: int = 0,
                test_fraction: float = 0.2) -> pd.DataFrame:
    """The task's Feast training set; transaction tasks keep the latest ``max_rows`` expenses.

    Why a cap: text models and boosted trees cost more than linearly in rows, and at a
    million transactions the most recent few hundred thousand carry the current vocabulary
    and prices; the holdout is the latest 20% either way.
    """
    from titans.models.common import expenses

    if task == "cashflow":
        series = client.account_daily_cashflow()
        if series.empty:
            raise UserError("no daily cash-flow series: the clean table has no rows with moved money")
        series = series.assign(date=pd.to_datetime(series["date"]))
        # The books: accounts with income. Purchase-only accounts (the generator's small businesses,
        # titans.data.small_accounts) have spending but no cash flow to forecast, and would swamp the series.
        books = series.loc[series["inflow"] > 0, "account_id"].unique()
        series = series[series["account_id"].isin(books)].reset_index(drop=True)
        return _training_set(client, SERVICES[task], series)
    if task == "recommend":  # account x merchant pairs at three reference days (titans.models.recommend)
        from titans.models.recommend import interaction_entities

        return _training_set(client, SERVICES[task], interaction_entities(clean, test_fraction))
    rows = expenses(clean)
    if len(rows) < 20:
        raise UserError(f"{task}: need at least 20 expense rows, found {len(rows)}")
    if max_rows and len(rows) > max_rows:
        log.info("%s: training on the latest %d of %d expenses", task, max_rows, len(rows))
        rows = rows.sort_values("date", kind="stable").tail(max_rows)
    return _training_set(client, SERVICES[task], rows)


def train_task(task: str, clean: pd.DataFrame, client: Any, cfg: TrainConfig,
               stage_dir: Path | None = None) -> dict[str, Any]:
    """Train, evaluate, save and (optionally) register one task; returns its CLI summary.

    The model folder is written to ``stage_dir/<task>`` when given (``train`` publishes it
    after the gate), else to ``<out_dir>/<task>`` (the pipeline's Model artifact).
    """
    from titans import model_dir, registry
    from titans.models import report
    from titans.settings import load_settings

    settings = load_settings()
    started = time.perf_counter()
    out_dir = Path(cfg.out_dir) if cfg.out_dir else settings.models_dir
    plot_dir = out_dir / "_reports" / task
    clean_hash = data_hash(clean)
    check_feature_build(client, clean_hash)
    cap = min(filter(None, (cfg.max_train_rows, cfg.task_max_rows.get(task, 0))), default=0)
    ts = _task_frame(task, clean, client, cap, cfg.test_fraction)
    from titans.models.recommend_eval import train_recommend

    fit = {"category": _category, "amount": _amount, "anomaly": _anomaly, "cashflow": _cashflow,
           "recommend": train_recommend}[task]
    model, result, example, figs = fit(ts, cfg, plot_dir)
    lineage = {
        "data_hash": clean_hash,
        "feature_service": SERVICES[task],
        "training_rows": int(len(ts)),
        "first_day": str(pd.to_datetime(ts["date"]).min().date()),
        "last_day": str(pd.to_datetime(ts["date"]).max().date()),
    } | cfg.extra_lineage
    features = list(getattr(model, "feature_names", None) or result["model"].get("features", []) or [])
    # The folder describes the model it holds (the refit on all rows), not the holdout model.
    described = model.describe() if hasattr(model, "describe") else result["model"]
    path = model_dir.save(
        model, (stage_dir or out_dir) / task, task, version="unregistered", features=features,
        metrics=result["metrics"], baselines=result["baselines"], lineage=lineage, extra=described,
        files={REFERENCE_FILE: _drift_reference(task, model, ts)},
    )
    drift_path = path / REFERENCE_FILE
    report_path = report.write(
        plot_dir / "report.md", f"titans-{task}: holdout evaluation",
        {"data hash": lineage["data_hash"], "feature service": lineage["feature_service"],
         "rows": lineage["training_rows"], "span": f"{lineage['first_day']} .. {lineage['last_day']}"},
        [report.section(task, result, {k: v.name for k, v in figs.items()})],
    )
    summary: dict[str, Any] = {
        "task": task,
        "metrics": result["metrics"],
        "baselines": result["baselines"],
        "beats_baseline": report.beats_baseline(task, result),
        "confusion_matrix": result.get("confusion_matrix"),
        "model_dir": str(path),
        "report": str(report_path),
        "plots": {k: str(v) for k, v in figs.items()},
    }
    if cfg.register:
        registry.configure(cfg.tracking_uri)
        reg = registry.log_and_register(
            task, model_dir.registered_name(task), path, result,
            params={"task": task, "test_fraction": cfg.test_fraction, "cv_folds": cfg.cv_folds,
                    "n_estimators": cfg.n_estimators, "seed": cfg.seed} | _model_params(result["model"]),
            lineage=lineage, input_example=example, artifacts=[*figs.values(), report_path, drift_path],
            gate=registry.GateConfig.load(cfg.gate_config), training_data=ts.head(10000),
        )
        summary |= reg
    else:
        summary |= {"registered_name": model_dir.registered_name(task), "version": None, "alias": None}
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return summary


def _drift_reference(task: str, model: Any, ts: pd.DataFrame) -> str:
    """The model's drift reference (``titans.monitoring.reference``) as the JSON saved in its folder.

    Why from ``ts``: the served model is the refit on all of ``ts``, so its training distribution
    is what live traffic is compared with.
    """
    from titans.monitoring import reference

    predictions = reference.reference_predictions(task, model, ts)
    return reference.dumps(reference.build_reference(task, ts, predictions))


def _model_params(described: dict[str, Any]) -> dict[str, Any]:
    keep = ("chosen_candidate", "blend_weight", "interval", "supervised", "unsupervised_weight", "interval_source",
            "similarity_weight", "popularity_weight")
    return {k: described[k] for k in keep if k in described}


def train(tasks: list[str] | tuple[str, ...], data_dir: str | Path, cfg: TrainConfig | None = None) -> dict[str, Any]:
    """``titans train``: read the clean table, get training sets from Feast, train each task."""
    from titans.data.ingest import read_clean
    from titans.features.store import FeatureClient

    cfg = cfg or TrainConfig()
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise UserError(f"unknown task(s) {unknown}; expected {list(TASKS)} or 'all'")
    from titans import home_lock
    from titans.publish import publish_trained
    from titans.settings import load_settings

    data_dir = Path(data_dir).expanduser()
    with home_lock.hold(home_lock.command_line()):
        if not data_dir.is_dir():
            raise UserError(f"data directory not found: {data_dir} (run `titans data ingest` first)")
        clean = read_clean(data_dir)
        if cfg.build_features:
            from titans.features.build import build_from_clean

            build_from_clean(clean, repo=cfg.feature_repo)
        client = FeatureClient(cfg.feature_repo)
        started = time.perf_counter()
        models = Path(cfg.out_dir) if cfg.out_dir else load_settings().models_dir
        staging = models / f".staging-train-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        results = {}
        try:
            for task in tasks:
                summary = train_task(task, clean, client, replace(cfg, out_dir=models, data_dir=data_dir),
                                     stage_dir=staging)
                results[task] = summary | publish_trained(summary, models)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return {"data_dir": str(data_dir), "data_hash": data_hash(clean), "tasks": results,
            "seconds": round(time.perf_counter() - started, 2)}
