"""One business's export through the whole local pipeline: it exits 0 and serves what its data supports.

Why: every other pipeline test trains on generated books of several accounts with fraud labels and
small-business purchases; the product's usual user has one account, a few months and no labels. On
such an export the recommender has nothing to learn from (one account), so it must be skipped with
its reason while category, amount, the unlabelled anomaly detector and a forecast (the model, or the
baseline that beats it) are deployed, and MLflow's aliases must agree with what was deployed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient
from shared_data import REAL_EXPORT

from pipelines.local_run import run_local
from pipelines.local_scoring import run_scoring_local
from serving.kserve_import import import_kserve_quietly
from titans import model_dir
from titans.data.generate import generate

DEPLOYED = ("category", "amount", "anomaly", "cashflow")


@pytest.fixture
def own_home(tmp_path: Path) -> Iterator[Path]:
    """A fresh home for one run (``run_local`` reads TITANS_HOME from the environment)."""
    saved = {k: os.environ.get(k) for k in ("TITANS_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["TITANS_HOME"] = str(tmp_path / "home")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield tmp_path / "home"
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _check_single_business_run(summary: dict[str, Any], home: Path) -> None:
    models, deployed = summary["models"], summary["deployments"]
    assert models["recommend"]["skipped"].startswith("needs expenses of at least 2 accounts")
    assert deployed["recommend"]["action"] == "kept-previous"
    for task in DEPLOYED:
        assert deployed[task]["action"] == "manifest-written", (task, models[task])
        assert models[task]["alias"] == "champion", (task, models[task]["gate"])
        assert model_dir.load(home / "models" / task).metadata["name"] == f"titans-{task}"
    anomaly = model_dir.load(home / "models" / "anomaly")
    assert anomaly.metadata["metrics"]["labelled"] == 0 and not anomaly.metadata["model"]["supervised"]
    # What is served and what MLflow calls champion are the same set of models.
    uri = summary["mlflow_tracking_uri"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    champions = {m.name.removeprefix("titans-") for m in client.search_registered_models() if "champion" in m.aliases}
    assert champions == {t for t, d in deployed.items() if d["action"] == "manifest-written"}
    skipped = client.search_runs(client.get_experiment_by_name("titans-training").experiment_id,
                                 "tags.status = 'skipped'")
    assert [r.data.tags["task"] for r in skipped] == ["recommend"]
    report = Path(summary["reports"]["gate"]).read_text()
    assert "skipped: needs expenses of at least 2 accounts" in report


def test_the_real_export_deploys_what_its_data_supports_and_is_scored(real_export: Path, own_home: Path,
                                                                        tmp_path: Path) -> None:
    summary = run_local(data=[str(real_export)], n_estimators=40, cv_folds=2)
    assert summary["data"]["rows_in"] == 127 == summary["data"]["rows_clean"]
    _check_single_business_run(summary, own_home)
    # Four months of one account: a baseline beats the learned forecaster and is served, saying so.
    cashflow = model_dir.load(own_home / "models" / "cashflow").metadata
    assert cashflow["model"]["kind"].startswith("baseline: ")
    assert "learned_forecaster" in cashflow["baselines"]
    _check_scoring(real_export, own_home, tmp_path)


def _check_scoring(export: Path, home: Path, tmp_path: Path) -> None:
    """The export scored by what the run deployed: `titans score` on the folders, the scoring pipeline on MLflow."""
    import_kserve_quietly()
    from serving.score_export import score_export

    scored = score_export([export], tmp_path / "scored", models_dir=home / "models")
    assert scored["rows_in"] == 127 == scored["rows_scored"] + scored["rows_quarantined"]
    assert scored["tasks_scored"] == list(DEPLOYED) and list(scored["tasks_absent"]) == ["recommend"]
    rows = pd.read_parquet(tmp_path / "scored" / "transactions.parquet")
    expenses = rows[rows["type"] == "Expense"]
    assert len(rows) == 127 and expenses["risk_level"].notna().all() and expenses["amount_expected"].gt(0).all()
    # Each row with its history as of its own date, as in training: few of the books' own expenses are flagged
    # (with the store's latest values, whose windows hold the rows themselves, a quarter of them were).
    assert scored["features"] == "point-in-time"
    assert expenses["risk_level"].isin(["high", "critical"]).mean() <= 0.10, expenses["risk_level"].value_counts()
    forecast = pd.read_parquet(tmp_path / "scored" / "forecast.parquet")
    assert len(forecast) == 30 and forecast["account_id"].unique().tolist() == rows["account_id"].unique().tolist()
    assert "**recommend**: no model folder" in (tmp_path / "scored" / "summary.md").read_text()
    # The Kubeflow scoring pipeline through kfp.local, with MLflow's champions: the same answers.
    run = run_scoring_local([str(export)], use_registry=True)
    assert run["score"]["tasks_scored"] == list(DEPLOYED) and run["score"]["rows_scored"] == 127
    from_registry = pd.read_parquet(Path(run["scored"]) / "transactions.parquet")
    pd.testing.assert_frame_equal(from_registry.sort_values("transaction_id").reset_index(drop=True),
                                  rows.sort_values("transaction_id").reset_index(drop=True))
    assert "Suspicious transactions" in Path(run["summary"]).read_text()


@pytest.mark.skipif(REAL_EXPORT.exists(), reason="the real one-business export is here: "
                    "test_the_real_export_deploys_what_its_data_supports_and_is_scored makes the same checks and more "
                    "on it (one whole pipeline run, not two)")
def test_a_generated_one_account_export_without_labels(own_home: Path, tmp_path: Path) -> None:
    """The same checks on a generated one-account export in the reference layout, where ../shared is absent."""
    export = generate(rows=1500, accounts=1, seed=11, small_accounts=0)
    # The reference layout: no account column and no fraud labels, as a business exports it.
    export = export.drop(columns=[c for c in ("Account ID", "is_fraud") if c in export.columns])
    own_home.mkdir(parents=True)
    path = own_home / "export.csv"
    export.to_csv(path, index=False)
    summary = run_local(data=[str(path)], n_estimators=40, cv_folds=2)
    _check_single_business_run(summary, own_home)
