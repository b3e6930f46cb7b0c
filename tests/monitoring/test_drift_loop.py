"""The whole health loop on real parts: served traffic -> drift counters -> Prometheus rules -> Alertmanager
-> retraining trigger -> a Kubeflow run (recorded by the KFP double); served confidence -> the estimated
accuracy -> its alert -> the trigger, with no label at all; and delayed labels -> Pushgateway -> the decay
alert -> the trigger.

Set-up (module scope, in the order a cluster would have them): a small home with trained category and
anomaly models (each with its drift reference), the real model server on it writing its score log,
Debian's Prometheus with the chart's own rendered drift rules (test-sized window and durations, see
``drift_stack.DRIFT_VALUES``), Debian's Pushgateway and Alertmanager, and ``titans retrain-trigger`` in
front of the recording KFP double. The tests run in file order: unshifted traffic first, then shifted,
then the unreadable category traffic, then delayed labels.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from drift_stack import (
    DRIFT_VALUES,
    ESTIMATE_VALUES,
    TIMINGS,
    expense_rows,
    firing,
    garbled,
    infer_request,
    query,
    send,
    shifted,
    start_model_server,
    start_prometheus,
    start_pushgateway,
    train_home,
)
from kfp_api_double import kfp_api_double
from monitoring_servers import TriggerServer, start_alertmanager, start_trigger, wait_until

RETRAIN_ALERTS = {"TitansFeatureDrift", "TitansPredictionShift", "TitansLivePerformanceDecay",
                  "TitansEstimatedAccuracyDrop"}
ANOMALY_INPUTS = ["description", "merchant", "category", "payment_method", "date", "account_id", "amount"]
CATEGORY_INPUTS = ["description", "merchant", "amount", "date", "payment_method", "account_id"]
COOLDOWN_SECONDS = 25.0
PARAMS = {"source_uri": "s3://exports/latest/", "titans_home": "/var/titans"}
# Long enough for the drift window to fill and the alert's `for` to pass, with scrape and evaluation slack.
QUIET_SECONDS = float(DRIFT_VALUES["window"].rstrip("s")) + 8.0


@dataclass
class Loop:
    home: Path
    data: Path
    server_url: str
    prometheus: str
    pushgateway: str
    trigger: TriggerServer
    recorded: list[dict[str, Any]]
    run_states: dict[str, str]
    root: Path
    rows: pd.DataFrame
    timings: dict[str, float] = field(default_factory=lambda: TIMINGS)

    def runs(self) -> list[dict[str, Any]]:
        return [r for r in self.recorded if (r["method"], r["path"]) == ("POST", "/apis/v2beta1/runs")]


class Pump:
    """Sends batches of rows to a model at a steady rate from a thread until stopped."""

    def __init__(self, loop: Loop, model: str, inputs: list[str], transform: Any = None, rows_per_batch: int = 25,
                 batches_per_second: float = 8.0, seed: int = 0) -> None:
        self.loop, self.model, self.inputs, self.transform = loop, model, inputs, transform
        self.rows_per_batch, self.period = rows_per_batch, 1.0 / batches_per_second
        self.rng = np.random.default_rng(seed)
        self.stop = threading.Event()
        self.sent = 0
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            batch = self.loop.rows.iloc[self.rng.integers(0, len(self.loop.rows), self.rows_per_batch)]
            if self.transform is not None:
                batch = self.transform(batch)
            try:
                send(self.loop.server_url, self.model, infer_request(batch, self.inputs))
                self.sent += len(batch)
            except OSError as exc:
                self.errors.append(str(exc))
            self.stop.wait(self.period)

    def __enter__(self) -> Pump:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.errors, self.errors[:3]


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    root = tmp_path_factory.mktemp("drift-loop")
    home = root / "home"
    started = time.perf_counter()
    data = train_home(home)
    trained = time.perf_counter() - started
    states: dict[str, str] = {}
    server = start_model_server(home, root, root / "scores")
    try:
        with (kfp_api_double(run_states=states) as (kfp_host, recorded),
              start_trigger(root, "--kfp-host", kfp_host, cooldown_seconds=COOLDOWN_SECONDS, params=PARAMS) as trig,
              start_alertmanager(trig.webhook_url, root, group_by=("alertname", "model_name", "feature"),
                                 repeat_interval="2s") as alertmanager,
              start_pushgateway(root) as pushgateway,
              start_prometheus(root, server.http_url, pushgateway, alertmanager) as prometheus):
            TIMINGS.update({"set-up: train two models (s)": trained,
                            "set-up: servers ready (s)": time.perf_counter() - started - trained})
            yield Loop(home, data, server.http_url, prometheus, pushgateway, trig, recorded, states, root,
                       expense_rows(data))
    finally:
        server.stop()


def retrain_alerts_firing(loop: Loop) -> list[dict[str, str]]:
    return [a for a in firing(loop.prometheus) if a["alertname"] in RETRAIN_ALERTS]


def test_unshifted_traffic_submits_no_run(loop: Loop) -> None:
    """Traffic drawn from the training distribution fills the window: PSI is computed, stays low, nothing fires."""
    with Pump(loop, "titans-anomaly", ANOMALY_INPUTS) as pump:
        time.sleep(QUIET_SECONDS)
        psi = {labels["feature"]: value for labels, value in
               query(loop.prometheus, 'titans:feature_psi{model_name="titans-anomaly"}')}
        rows = query(loop.prometheus, 'max(titans:drift_rows:window_total{model_name="titans-anomaly"})')
    assert rows and rows[0][1] >= DRIFT_VALUES["minRows"], f"window too thin to judge: {rows}"
    assert {"amount", "payment_method", "merchant", "_prediction"} <= set(psi), sorted(psi)
    assert max(psi.values()) < DRIFT_VALUES["psiThreshold"], psi
    assert retrain_alerts_firing(loop) == []
    assert loop.runs() == [] and pump.sent > 0
    assert loop.trigger.decisions().get("submitted", 0) == 0


def test_shifted_traffic_fires_drift_and_submits_exactly_one_run(loop: Loop) -> None:
    """Amounts x5 paid by bank transfer: TitansFeatureDrift fires, one run is submitted, later alerts are held."""
    onset = time.time()
    with Pump(loop, "titans-anomaly", ANOMALY_INPUTS, transform=shifted, seed=1):
        wait_until(loop.runs, 90, "a pipeline run submitted after the traffic shifted", interval=0.1)
        submitted_after = loop.runs()[0]["time"] - onset
        # Keep the shift on: more features and the prediction alert fire and Alertmanager repeats them.
        wait_until(lambda: len({a.get("feature") for a in retrain_alerts_firing(loop)}) >= 2, 30,
                   "a second drift alert firing")
        time.sleep(4)
    loop.timings["drift onset -> run submitted (s)"] = submitted_after
    runs = loop.runs()
    assert len(runs) == 1, runs
    body = runs[0]["body"]
    parameters = body["runtime_config"]["parameters"]
    assert {k: parameters[k] for k in PARAMS} == PARAMS
    assert "TitansFeatureDrift" in parameters["retrain_reason"] or "TitansPredictionShift" in parameters[
        "retrain_reason"]
    assert "titans-anomaly" in parameters["retrain_reason"]
    assert body["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "titans-training"
    decisions = loop.trigger.decisions()
    assert decisions["submitted"] == 1 and decisions.get("cooldown", 0) + decisions.get("in_flight", 0) >= 1, decisions
    firing_features = {a["feature"] for a in retrain_alerts_firing(loop) if a["alertname"] == "TitansFeatureDrift"}
    assert {"amount", "payment_method"} & firing_features, firing_features

    report = subprocess.run(
        [sys.executable, "-m", "titans.cli", "monitor", "report", "--model", "titans-anomaly",
         "--prometheus-url", loop.prometheus, "--window", DRIFT_VALUES["window"]],
        capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    drifted = {line.split()[1] for line in report.stdout.splitlines() if line.endswith("DRIFT")}
    assert {"amount", "payment_method"} <= drifted, report.stdout


def test_an_estimated_accuracy_drop_without_any_label_submits_one_run(loop: Loop) -> None:
    """Descriptions the model cannot read and merchants it never saw: no label exists, yet the served confidence
    falls, TitansEstimatedAccuracyDrop fires and the trigger submits exactly one run for it."""
    assert query(loop.prometheus, 'titans_live_metric{model_name="titans-category"}') == []  # no labels at all
    before = len(loop.runs())
    for run_id in (f"run-{i + 1}" for i in range(before)):
        loop.run_states[run_id] = "SUCCEEDED"
    if before:  # the previous run's cooldown must be over, or the trigger would rightly hold this one
        time.sleep(max(0.0, loop.runs()[-1]["time"] + COOLDOWN_SECONDS + 1 - time.time()))
    onset = time.time()
    with Pump(loop, "titans-category", CATEGORY_INPUTS, transform=garbled, seed=3):
        wait_until(lambda: len(loop.runs()) > before, 90, "a run submitted after the estimated drop", interval=0.1)
        estimate = query(loop.prometheus, 'titans:estimated_accuracy{model_name="titans-category"}')
        holdout = query(loop.prometheus, 'titans_holdout_accuracy{model_name="titans-category"}')
        time.sleep(3)
    loop.timings["estimated drop onset -> run submitted (s)"] = loop.runs()[before]["time"] - onset
    assert estimate and holdout and holdout[0][1] - estimate[0][1] > ESTIMATE_VALUES["margin"], (estimate, holdout)
    reason = loop.runs()[before]["body"]["runtime_config"]["parameters"]["retrain_reason"]
    assert "TitansEstimatedAccuracyDrop" in reason and "titans-category" in reason, reason
    assert len(loop.runs()) == before + 1, loop.runs()[before:]


def _labels_export(loop: Loop, scored: pd.DataFrame, path: Path) -> Path:
    """The generator's own raw rows for the scored days, half of the scored rows' categories corrected."""
    raw = pd.read_csv(loop.home / "raw" / "transactions.csv", dtype=str, keep_default_na=False)
    days = set(pd.to_datetime(scored["date"]).dt.strftime("%Y-%m-%d"))
    later = raw[raw["Date"].str[:10].isin(days)].copy()
    categories = sorted(raw["Category"].unique())
    flip = later.index[::2]
    later.loc[flip, "Category"] = [categories[(categories.index(c) + 1) % len(categories)]
                                   for c in later.loc[flip, "Category"]]
    later.to_csv(path, index=False, quoting=csv.QUOTE_MINIMAL)
    return path


def test_delayed_labels_showing_decay_submit_one_run(loop: Loop) -> None:
    """Corrected categories for rows the champion scored: live accuracy falls, the decay alert submits one run."""
    before = len(loop.runs())
    for run_id in (f"run-{i + 1}" for i in range(before)):
        loop.run_states[run_id] = "SUCCEEDED"
    # Scored rows drawn across the history (as steady traffic is), so the category model does not drift too.
    scored = loop.rows.sample(300, random_state=5).sort_values("date")
    for start in range(0, len(scored), 100):
        send(loop.server_url, "titans-category", infer_request(scored.iloc[start:start + 100], CATEGORY_INPUTS))
    sent = time.time()
    time.sleep(1.5)  # the score log flushes every second
    export = _labels_export(loop, scored, loop.root / "later-export.csv")
    # The previous run's cooldown must be over (or the trigger would rightly hold this one too), and the
    # category rows must have left the drift window, so that only the decay can ask for this run.
    last_run = loop.runs()[-1]["time"] if before else 0.0
    window = float(DRIFT_VALUES["window"].rstrip("s"))
    time.sleep(max(0.0, last_run + COOLDOWN_SECONDS + 1 - time.time(), sent + window + 4 - time.time()))
    pushed = time.time()
    labels = subprocess.run(
        [sys.executable, "-m", "titans.cli", "monitor", "labels", str(export), "--scores", str(loop.root / "scores"),
         "--pushgateway", loop.pushgateway],
        capture_output=True, text=True, timeout=120, env=_env(loop))
    assert labels.returncode == 0, labels.stderr[-2000:]
    wait_until(lambda: len(loop.runs()) > before, 60, "a run submitted after the decay", interval=0.1)
    loop.timings["labels pushed -> run submitted (s)"] = loop.runs()[-1]["time"] - pushed
    live = query(loop.prometheus, 'titans_live_metric{model_name="titans-category", metric="accuracy"}')
    holdout = query(loop.prometheus, 'titans_live_metric_holdout{model_name="titans-category", metric="accuracy"}')
    assert live and holdout and holdout[0][1] - live[0][1] > 0.05, (live, holdout)
    reason = loop.runs()[-1]["body"]["runtime_config"]["parameters"]["retrain_reason"]
    assert "TitansLivePerformanceDecay" in reason, reason
    time.sleep(3)
    assert len(loop.runs()) == before + 1


def _env(loop: Loop) -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("TITANS_SCORE_LOG_DIR", "TITANS_PUSHGATEWAY_URL")} | {
        "TITANS_HOME": str(loop.home)}

