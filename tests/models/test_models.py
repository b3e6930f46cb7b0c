"""Model tests on real parts: generated data -> ingest -> Feast store -> train -> MLflow (sqlite).

One module-scoped training run (small sizes) is shared by the tests; they assert that
each model beats its baseline, that model directories serve V2-shaped outputs with and
without enriched history, that forecasting features equal the feature store's, and that
registry aliases move only through the gate.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from trained_home import FRAUD_RATE, SEED
from trained_home import small_config as _small_config

from titans.errors import UserError

REAL_EXPORT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "titans_transactions.csv"


def test_each_model_beats_its_baseline_on_generated_data(trained) -> None:
    _, summary = trained
    t = summary["tasks"]
    cat = t["category"]
    assert cat["metrics"]["accuracy"] > cat["baselines"]["majority_class"]["accuracy"] + 0.3
    assert cat["metrics"]["macro_f1"] > cat["baselines"]["majority_class"]["macro_f1"]
    amt = t["amount"]
    assert amt["metrics"]["mae"] < amt["baselines"]["category_median"]["mae"]
    assert 0.5 <= amt["metrics"]["interval_coverage"] <= 1.0
    ano = t["anomaly"]
    assert ano["metrics"]["pr_auc"] > ano["baselines"]["amount_vs_merchant"]["pr_auc"]
    assert ano["metrics"]["pr_auc"] > 5 * ano["baselines"]["chance"]["pr_auc"]
    cf = t["cashflow"]
    assert cf["metrics"]["mase"] < cf["baselines"]["seasonal_naive"]["mase"]
    assert 0.5 <= cf["metrics"]["coverage_80"] <= cf["metrics"]["coverage_95"]


def test_category_accuracy_stays_under_the_stated_label_noise_ceiling(trained) -> None:
    """The generator mislabels ~3% of expenses on purpose: a perfect score would mean a leak."""
    tmp, summary = trained
    cat = summary["tasks"]["category"]
    ceiling = json.loads((tmp / "raw.csv.generator.json").read_text())["category_accuracy_ceiling"]
    assert cat["metrics"]["accuracy_ceiling"] == ceiling < 1.0
    assert cat["metrics"]["accuracy"] < 1.0 and cat["metrics"]["accuracy"] <= ceiling + 0.02
    report = Path(cat["report"]).read_text()
    assert "Ceiling: " in report and "deliberately wrong category" in report


def test_summary_names_versions_aliases_and_dirs(trained) -> None:
    _, summary = trained
    for task, s in summary["tasks"].items():
        assert s["registered_name"] == f"titans-{task}"
        assert s["version"] == "1"
        assert s["alias"] in {"champion", "challenger"}
        meta = json.loads((Path(s["model_dir"]) / "metadata.json").read_text())
        assert meta["name"] == f"titans-{task}" and meta["version"] == "1"
        assert meta["lineage"]["feature_service"] == f"{task}_service"
        assert meta["lineage"]["data_hash"] == summary["data_hash"]
        assert meta["lineage"]["mlflow_run_id"] == s["run_id"]
        assert Path(s["report"]).read_text().startswith(f"# titans-{task}")
        for png in s["plots"].values():
            assert Path(png).read_bytes()[:4] == b"\x89PNG"


def _v2_rows() -> pd.DataFrame:
    return pd.DataFrame({
        "description": [b"Fuel for Vehicle", "Software License", "Online Purchase"],
        "merchant": ["Shell", "never-seen merchant", "unknown"],
        "amount": [-80.0, -30.0, -1.5],
        "date": ["2023-04-01", "2023-04-02", "2023-04-02"],
        "payment_method": ["credit_card", "paypal", "credit_card"],
        "account_id": ["acct_001", "acct_001", "acct_001"],
        "category": ["fuel", "software", "other"],
    })


def test_model_dirs_predict_v2_outputs_from_request_inputs_alone(trained) -> None:
    from titans import model_dir

    _, summary = trained
    rows = _v2_rows()
    for task in ("category", "amount", "anomaly"):
        loaded = model_dir.load(summary["tasks"][task]["model_dir"])
        out = loaded.predict(rows[loaded.input_names])
        assert list(out) == loaded.output_names
        for spec in loaded.metadata["outputs"]:
            assert out[spec["name"]].shape[0] == 3
            assert out[spec["name"]].ndim == len(spec["shape"])
    cat = model_dir.load(summary["tasks"]["category"]["model_dir"]).predict(rows)
    assert cat["category"][0] == "fuel"
    assert np.allclose(cat["top_k_probabilities"].sum(axis=1) <= 1.0 + 1e-9, True)
    assert (np.diff(cat["top_k_probabilities"], axis=1) <= 1e-12).all()
    amt = model_dir.load(summary["tasks"]["amount"]["model_dir"]).predict(rows)
    assert (amt["amount_lower"] <= amt["amount"]).all() and (amt["amount"] <= amt["amount_upper"]).all()
    ano = model_dir.load(summary["tasks"]["anomaly"]["model_dir"]).predict(rows)
    assert ((ano["anomaly_score"] >= 0) & (ano["anomaly_score"] <= 1)).all()
    assert set(ano["risk_level"]) <= {"low", "medium", "high", "critical"}
    assert all(isinstance(json.loads(f), list) for f in ano["top_factors"])


def test_enriched_history_columns_change_predictions(trained) -> None:
    """The server adds Feast online columns; the models must use them, not ignore them.

    The anomaly score always reads merchant history. The amount model reads it through its
    booster, whose share (blend weight) the forward validation may set to 0 on hard data;
    then only the booster's own output is checked.
    """
    from titans import model_dir

    _, summary = trained
    rows = _v2_rows()
    history = {"merchant_amount_mean_90d": 5000.0, "merchant_txn_count_90d": 40,
               "merchant_amount_mean_all": 5000.0, "merchant_txn_count_all": 80}
    anomaly = model_dir.load(summary["tasks"]["anomaly"]["model_dir"])
    scores = [anomaly.predict(r)["anomaly_score"] for r in (rows, rows.assign(**history))]
    assert not np.allclose(*scores)
    amount = model_dir.load(summary["tasks"]["amount"]["model_dir"]).model
    if amount.blend_weight > 0:
        assert not np.allclose(amount.predict(rows)["amount"], amount.predict(rows.assign(**history))["amount"])
    from titans.models.amount import _booster_features
    from titans.models.common import request_frame

    def boosted(frame: pd.DataFrame) -> np.ndarray:
        req = request_frame(frame, amount.inputs)
        priors = amount.prior.predict(req)
        return amount.booster.predict(_booster_features(req, priors)[amount.feature_names], base_margin=priors[1])

    assert not np.allclose(boosted(rows), boosted(rows.assign(**history)))


def test_missing_input_is_a_user_error(trained) -> None:
    from titans import model_dir

    _, summary = trained
    loaded = model_dir.load(summary["tasks"]["category"]["model_dir"])
    with pytest.raises(UserError, match="description"):
        loaded.predict(_v2_rows().drop(columns=["description"]))


def test_cashflow_forecasts_from_stored_history(trained) -> None:
    from titans import model_dir

    _, summary = trained
    loaded = model_dir.load(summary["tasks"]["cashflow"]["model_dir"])
    account = loaded.metadata["model"]["accounts"][0]
    out = loaded.predict(pd.DataFrame({"account_id": [account], "horizon_days": np.array([30], dtype="int32")}))
    assert len(out["date"]) == 30
    first = pd.Timestamp(out["date"][0])
    assert first == pd.Timestamp(loaded.metadata["model"]["last_observed_day"][account]) + pd.Timedelta(days=1)
    assert (out["lower_95"] <= out["lower_80"]).all() and (out["lower_80"] <= out["net_amount"]).all()
    assert (out["net_amount"] <= out["upper_80"]).all() and (out["upper_80"] <= out["upper_95"]).all()
    with pytest.raises(UserError, match="unknown account"):
        loaded.predict(pd.DataFrame({"account_id": ["nope"], "horizon_days": [5]}))


def test_forecast_lags_equal_the_feature_store_columns(trained) -> None:
    """Recursive forecasting recomputes the store's columns; both must give the same numbers."""
    from titans import tasks
    from titans.features.store import FeatureClient
    from titans.models.cashflow import STORE_LAGS, lag_features

    tmp, _ = trained
    mp = pytest.MonkeyPatch()
    mp.setenv("TITANS_HOME", str(tmp / "home"))
    try:
        ts = tasks.get("cashflow").training_frame(pd.DataFrame(), FeatureClient(), 0, 0.2)
    finally:
        mp.undo()
    ours = lag_features(ts[["account_id", "date", "inflow", "outflow", "net"]])
    merged = ts.merge(ours, on=["account_id", "date"], suffixes=("_feast", ""))
    for col in STORE_LAGS:
        assert np.allclose(merged[f"{col}_feast"], merged[col]), col


def test_gate_moves_champion_only_when_rules_pass(trained, tmp_path: Path) -> None:
    import mlflow
    from mlflow import MlflowClient

    from titans import registry

    tmp, summary = trained
    mp = pytest.MonkeyPatch()
    mp.setenv("TITANS_HOME", str(tmp / "home"))
    try:
        registry.configure(f"sqlite:///{tmp / 'mlflow.db'}")
        client = MlflowClient()
        cat = summary["tasks"]["category"]
        assert cat["alias"] == "champion"
        strict = tmp_path / "gate.json"
        strict.write_text(json.dumps({"minimum": {"category": {"accuracy": 1.01}}}))
        path = Path(cat["model_dir"])
        example = _v2_rows()[["description", "merchant", "amount", "date", "payment_method", "account_id"]]
        example["description"] = example["description"].map(lambda v: v.decode() if isinstance(v, bytes) else v)
        result = json.loads((path / "metadata.json").read_text())
        rejected = registry.log_and_register(
            "category", "titans-category", path, {"metrics": result["metrics"], "baselines": result["baselines"]},
            {}, result["lineage"], example, [], registry.GateConfig.load(strict))
        assert rejected["gate"]["decision"] == "rejected"
        assert any("accuracy" in r for r in rejected["gate"]["reasons"])
        assert str(client.get_model_version_by_alias("titans-category", "champion").version) == cat["version"]
        assert str(client.get_model_version_by_alias("titans-category", "challenger").version) == rejected["version"]
        tag = client.get_model_version("titans-category", rejected["version"]).tags["gate_decision"]
        assert tag == "rejected"
        promoted = registry.log_and_register(
            "category", "titans-category", path, {"metrics": result["metrics"], "baselines": result["baselines"]},
            {}, result["lineage"], example, [], registry.GateConfig())
        assert promoted["gate"]["decision"] == "promoted" and promoted["crown"]
        # champion moves when the version is deployed (the deploy step, or titans train's publish), not at the gate.
        assert str(client.get_model_version_by_alias("titans-category", "champion").version) == cat["version"]
        registry.crown("titans-category", promoted["version"])
        assert str(client.get_model_version_by_alias("titans-category", "champion").version) == promoted["version"]
        served = mlflow.pyfunc.load_model("models:/titans-category@champion").predict(example)
        assert list(served["category"])[0] == "fuel"
        # Cluster mode: the gate passes the version, but champion waits for the canary's full promotion.
        deferred_cfg = tmp_path / "deferred.json"
        deferred_cfg.write_text(json.dumps({"champion_after_canary": True}))
        deferred = registry.log_and_register(
            "category", "titans-category", path, {"metrics": result["metrics"], "baselines": result["baselines"]},
            {}, result["lineage"], example, [], registry.GateConfig.load(deferred_cfg))
        assert deferred["gate"]["promote"] and deferred["deploy"] and not deferred["crown"]
        assert deferred["alias"] == "challenger"
        assert str(client.get_model_version_by_alias("titans-category", "champion").version) == promoted["version"]
        assert "champion_deferred" in client.get_model_version("titans-category", deferred["version"]).tags
    finally:
        mp.undo()


def test_gate_rules_are_pure_and_explain_themselves() -> None:
    from titans.registry import GateConfig, evaluate_gate

    base = {"seasonal_naive": {"mase": 1.2, "mae": 120.0}}
    ok = evaluate_gate("cashflow", {"mase": 0.8, "mae": 80.0}, base, None, GateConfig())
    assert ok.promote and ok.reasons
    worse_than_champion = evaluate_gate("cashflow", {"mase": 0.9, "mae": 90.0}, base, {"mase": 0.8}, GateConfig(),
                                        "3")
    assert not worse_than_champion.promote and "champion v3" in worse_than_champion.reasons[0]
    within_tolerance = evaluate_gate("cashflow", {"mase": 0.81, "mae": 81.0}, base, {"mase": 0.8},
                                     GateConfig(tolerance=0.02))
    assert within_tolerance.promote
    loses_to_baseline = evaluate_gate("cashflow", {"mase": 0.95, "mae": 95.0},
                                      {"seasonal_naive": {"mase": 0.9, "mae": 90.0}}, None, GateConfig())
    assert not loses_to_baseline.promote


@pytest.mark.skipif(not REAL_EXPORT.exists(), reason=f"real export not present at {REAL_EXPORT}")
def test_real_export_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the real export, 80/20 by date: category accuracy >= 0.85, amount MAE < category median."""
    from titans.data.ingest import ingest
    from titans.train import train

    monkeypatch.setenv("TITANS_HOME", str(tmp_path / "home"))
    ingest([REAL_EXPORT], tmp_path / "data")
    cfg = _small_config(tmp_path, register=False, build_features=True)
    cfg.category_candidates = ("logreg_c10",)
    summary = train(["category", "amount"], tmp_path / "data", cfg)["tasks"]
    assert summary["category"]["metrics"]["test_rows"] == 20
    assert summary["category"]["metrics"]["accuracy"] >= 0.85
    assert summary["amount"]["metrics"]["mae"] < summary["amount"]["baselines"]["category_median"]["mae"]


def test_training_refuses_a_feature_store_built_from_another_clean_table(trained, tmp_path: Path) -> None:
    from titans.data.generate import generate
    from titans.data.ingest import ingest
    from titans.train import train

    tmp, summary = trained
    other = tmp_path / "other.csv"
    generate(300, 1, SEED + 1, FRAUD_RATE).to_csv(other, index=False)
    ingest([other], tmp_path / "data")
    mp = pytest.MonkeyPatch()
    mp.setenv("TITANS_HOME", str(tmp / "home"))
    try:
        with pytest.raises(UserError, match=f"built from another clean table \\(data_hash {summary['data_hash']}"):
            train(["amount"], tmp_path / "data", _small_config(tmp_path, register=False))
    finally:
        mp.undo()
    assert not (tmp_path / "models" / "amount").exists()


def test_mlflow_copy_of_the_model_folder_carries_its_registered_version(trained) -> None:
    import mlflow

    from titans import registry

    tmp, summary = trained
    mp = pytest.MonkeyPatch()
    mp.setenv("TITANS_HOME", str(tmp / "home"))
    try:
        registry.configure(f"sqlite:///{tmp / 'mlflow.db'}")
        for task in ("amount", "cashflow"):
            s = summary["tasks"][task]
            local = Path(mlflow.artifacts.download_artifacts(f"models:/titans-{task}/{s['version']}"))
            meta = json.loads((local / "artifacts" / task / "metadata.json").read_text())
            assert meta["version"] == s["version"] == "1"
            assert meta["lineage"]["mlflow_run_id"] == s["run_id"]
            assert meta["gate"]["decision"] == s["gate"]["decision"]
    finally:
        mp.undo()


def test_train_publishes_only_versions_the_gate_passes(trained, tmp_path: Path) -> None:
    """Run last on the shared fixture: it registers a second amount version (rejected)."""
    from titans.train import train

    tmp, summary = trained
    for task, s in summary["tasks"].items():
        assert s["published"] is (s["gate"]["promote"] is True), (task, s["publish_reason"])
    amount = summary["tasks"]["amount"]
    assert amount["published"] and Path(amount["model_dir"]) == tmp / "models" / "amount"
    served_before = (tmp / "models" / "amount" / "metadata.json").read_text()
    strict = tmp_path / "strict.json"
    strict.write_text(json.dumps({"maximum": {"amount": {"mae": 0.0}}}))
    mp = pytest.MonkeyPatch()
    mp.setenv("TITANS_HOME", str(tmp / "home"))
    try:
        again = train(["amount"], tmp / "data", _small_config(tmp, gate_config=str(strict)))["tasks"]["amount"]
    finally:
        mp.undo()
    assert again["gate"]["decision"] == "rejected" and again["published"] is False
    assert (tmp / "models" / "amount" / "metadata.json").read_text() == served_before
    candidate = json.loads((Path(again["model_dir"]) / "metadata.json").read_text())
    assert Path(again["model_dir"]) == tmp / "models" / "_candidates" / "amount"
    assert candidate["version"] == again["version"] == "2"
    assert not list((tmp / "models").glob(".staging-*"))


def test_cashflow_reports_interval_coverage_on_a_short_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    """100 days of one account: the default plan (30-day horizon after 60 days) has one origin."""
    from titans.data.generate import GenerateConfig, write_csv
    from titans.data.ingest import ingest
    from titans.train import train

    monkeypatch.setenv("TITANS_HOME", str(tmp_path / "home"))
    raw = tmp_path / "short.csv"
    write_csv(GenerateConfig(rows=400, accounts=1, seed=SEED, days=100), raw)
    ingest([raw], tmp_path / "data")
    cfg = _small_config(tmp_path, register=False, build_features=True)
    cfg.backtest_origins, cfg.horizon_days = 4, 30
    cf = train(["cashflow"], tmp_path / "data", cfg)["tasks"]["cashflow"]
    assert cf["metrics"]["origins"] >= 2 and cf["metrics"]["backtest_horizon_days"] < 30
    assert 0.0 < cf["metrics"]["coverage_80"] <= cf["metrics"]["coverage_95"] <= 1.0
    assert "short history" in Path(cf["report"]).read_text()
