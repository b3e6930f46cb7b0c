"""The merchant recommender on real parts: generated accounts -> ingest -> Feast -> train -> MLflow (sqlite).

One module-scoped run on a small home (one book account, 100 small businesses over two years)
is shared: it must beat both baselines on the time split and pass the gate, its Feast
interaction features must be point in time, and its model folder must answer the contract
(cold start = popularity, k bounded, recent merchants excluded on request).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from titans.errors import UserError

SEED = 3


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    from titans.data.generate import GenerateConfig, write_csv
    from titans.data.ingest import ingest
    from titans.train import TrainConfig, train

    tmp = tmp_path_factory.mktemp("recommend")
    mp = pytest.MonkeyPatch()
    mp.setenv("TITANS_HOME", str(tmp / "home"))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    mp.delenv("TITANS_GATE_CONFIG", raising=False)
    raw = tmp / "raw.csv"
    write_csv(GenerateConfig(rows=1200, accounts=1, seed=SEED, days=730, small_accounts=100), raw)
    ingest([raw], tmp / "data")
    cfg = TrainConfig(out_dir=tmp / "models", tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}", build_features=True)
    summary = train(["recommend"], tmp / "data", cfg)["tasks"]["recommend"]
    yield tmp, summary
    mp.undo()


def test_beats_both_baselines_and_passes_the_gate(trained) -> None:
    import mlflow
    from mlflow import MlflowClient

    tmp, s = trained
    m, b = s["metrics"], s["baselines"]
    for metric in ("recall_at_10", "ndcg_at_10"):
        assert m[metric] > b["own_most_frequent"][metric] and m[metric] > b["global_popularity"][metric], metric
    assert m["ndcg_at_10"] > b["own_most_frequent"]["ndcg_at_10"] + 0.02
    assert m["accounts_evaluated"] >= 100 and m["ranker_windows"] >= 1
    assert s["gate"]["decision"] == "promoted" and s["alias"] == "champion"
    assert set(s["gate"]["deciding_baselines"]) == {"recall_at_10", "ndcg_at_10"}
    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
    client = MlflowClient()
    run = client.get_run(s["run_id"])
    assert run.data.metrics["ndcg_at_10"] == pytest.approx(m["ndcg_at_10"])
    assert run.data.metrics["baseline_own_most_frequent_recall_at_10"] == pytest.approx(
        b["own_most_frequent"]["recall_at_10"])
    artifacts = {a.path for a in client.list_artifacts(s["run_id"], "evaluation")}
    assert "evaluation/recommend_recall.png" in artifacts
    assert str(client.get_model_version_by_alias("titans-recommend", "champion").version) == s["version"]


def test_interaction_features_are_point_in_time(trained, monkeypatch: pytest.MonkeyPatch) -> None:
    """Feast's rows at a reference day equal the purchases strictly before that day (fraud left out)."""
    from titans.data.ingest import read_clean
    from titans.features.store import FeatureClient
    from titans.features.transaction import epoch_days
    from titans.models.common import expenses
    from titans.models.recommend import interaction_entities

    tmp, _ = trained
    monkeypatch.setenv("TITANS_HOME", str(tmp / "home"))  # the trained home (each test gets a private one)
    clean = read_clean(tmp / "data")
    entities = interaction_entities(clean)
    fit = entities[entities["role"] == "fit"].head(400).reset_index(drop=True)
    got = FeatureClient().training_set("recommend_service", fit)
    ref = pd.Timestamp(fit["date"].iloc[0])
    rows = expenses(clean)
    rows = rows[pd.to_numeric(rows["is_fraud"]).fillna(0) == 0]
    rows = rows.assign(day=pd.to_datetime(rows["date"]).dt.normalize())
    assert (rows["day"] == ref).any()  # purchases on the reference day exist and must not count
    before = rows[rows["day"] < ref]
    grouped = before.groupby(["account_id", "merchant"])
    expected = pd.DataFrame({"n": grouped.size(), "last": grouped["day"].max(),
                             "amount": grouped["spend"].sum()}).reset_index()
    merged = got.merge(expected, on=["account_id", "merchant"], how="left")
    assert (merged["account_merchant_txn_count_all"] == merged["n"].fillna(0)).all()
    seen = merged["n"].notna()
    assert seen.sum() > 100 and (~seen).any()  # pairs first bought after the cut get the unseen defaults
    assert (merged.loc[seen, "account_merchant_last_seen_epoch_day"].to_numpy()
            == epoch_days(merged.loc[seen, "last"].to_numpy())).all()
    assert (merged.loc[~seen, "account_merchant_last_seen_epoch_day"] == -1).all()
    np.testing.assert_allclose(merged.loc[seen, "account_merchant_amount_sum_all"], merged.loc[seen, "amount"],
                               rtol=1e-9)
    one = before[(before["account_id"] == merged.loc[seen, "account_id"].iloc[0])
                 & (before["merchant"] == merged.loc[seen, "merchant"].iloc[0])]
    weight = np.sum((1 + np.log1p(one["spend"])) * np.exp((epoch_days(one["day"].to_numpy()) - 10_957) / 60.0))
    assert merged.loc[seen, "account_merchant_weight_log"].iloc[0] == pytest.approx(np.log(weight), rel=1e-9)


def test_model_folder_answers_the_contract(trained) -> None:
    from titans import model_dir

    _, s = trained
    loaded = model_dir.load(Path(s["model_dir"]))
    model = loaded.model
    assert loaded.metadata["name"] == "titans-recommend"
    assert [t.get("optional", False) for t in loaded.metadata["inputs"]] == [False, False, True]
    out = loaded.predict(pd.DataFrame({"account_id": ["acct_s0001", "never_seen", "also_new"], "k": [10] * 3}))
    assert out["merchants"].shape == out["scores"].shape == out["categories"].shape == (3, 10)
    # Cold start: every unknown account gets the same list, led by the popular merchants.
    assert out["merchants"][1].tolist() == out["merchants"][2].tolist() != out["merchants"][0].tolist()
    popular = np.array(model.merchants)[np.argsort(-model.popularity, kind="stable")][:10]
    assert len(set(out["merchants"][1]) & set(popular)) >= 6
    with pytest.raises(UserError, match="k must be between 1 and"):
        model.recommend(["acct_s0001"], model.max_k + 1)
    row = model.accounts.index("acct_s0001")
    bought = {m for m, d in zip(model.merchants, model.last_seen[row].toarray().ravel(), strict=True) if d > 0}
    fresh = model.recommend(["acct_s0001"], 10, exclude_recent_days=3650)
    assert not bought & set(fresh["merchants"][0])
