"""The real Feast store: point-in-time training sets, online features, defaults, errors, config.

One store is built per session from the hand-checkable rows (``hand_store``); the build is the
public ``build_from_clean`` (offline tables, in-process apply, materialize).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from features_fixtures import titans_home_env

from titans.errors import UserError
from titans.features import spec
from titans.features.store import FeatureClient, load_repo_contents

REPO = Path(__file__).resolve().parents[2] / "feature_repo"


def entity(rows: list[tuple[str, str, str, str, float]], stamp: str | None = None) -> pd.DataFrame:
    """Entity rows (merchant, account, category, date, amount); event_timestamp = stamp or date."""
    frame = pd.DataFrame(rows, columns=["merchant", "account_id", "category", "date", "amount"])
    frame.insert(0, "transaction_id", [f"q{i}" for i in range(len(frame))])
    frame["event_timestamp"] = pd.to_datetime(stamp if stamp else frame["date"])
    return frame


def test_build_summary_names_repo_views_and_row_counts(hand_store: dict) -> None:
    summary = hand_store["summary"]
    assert summary["repo_path"] == str(REPO)
    assert summary["online_store"] == "sqlite" and summary["offline_store"] == "duckdb"
    assert summary["as_of"] == "2024-03-13"
    assert set(summary["feature_services"]) == set(spec.SERVICES)
    for view in spec.STORED_VIEWS:
        entry = summary["feature_views"][view.name]
        assert entry["rows"] == len(pd.read_parquet(entry["source"])) > 0
        assert entry["features"] == view.column_names
    assert summary["feature_views"]["transaction_calendar"]["kind"] == "on_demand"
    assert any("materializing" in m for m in hand_store["progress"])
    # Runtime data lives under TITANS_HOME, never in the repository.
    assert summary["registry"].endswith(str(hand_store["home"] / "features" / "registry.db"))
    assert not [p for p in REPO.rglob("*") if p.suffix in {".db", ".parquet"}]
    client: FeatureClient = hand_store["client"]
    assert {fs.name for fs in client.store.list_feature_services()} == set(spec.SERVICES)


def test_point_in_time_join_uses_only_earlier_days(hand_store: dict) -> None:
    """Feast's duckdb join over the built tables gives the hand-computed values."""
    client: FeatureClient = hand_store["client"]
    rows = entity(
        [
            ("acme", "acct_a", "food", "2024-03-01", -10.0),  # first day: its own rows are not history
            ("acme", "acct_a", "food", "2024-03-03", -20.0),  # sees Mar 1: 10 and 30
            ("acme", "acct_a", "food", "2024-03-03", -21.0),  # a second row, same merchant and day
            ("acme", "acct_a", "food", "2024-03-09", -1.0),  # 7-day window [Mar 2, Mar 9): only Mar 3
            ("acme", "acct_a", "food", "2024-03-10", -5.0),  # same-day rows of Mar 10 not seen
            ("nobody", "acct_z", "food", "2024-03-10", -5.0),  # unknown merchant and account
        ]
    )
    rows.index = [50, 40, 30, 20, 10, 0]  # the caller's index and order survive
    out = client.training_set("category_service", rows)
    assert len(out) == len(rows) and list(out.index) == list(rows.index)
    assert out["transaction_id"].tolist() == rows["transaction_id"].tolist()
    assert out["merchant_txn_count_90d"].tolist() == [0, 2, 2, 3, 3, 0]
    assert out["merchant_txn_count_7d"].tolist() == [0, 2, 2, 1, 1, 0]
    assert out.loc[40, "merchant_amount_mean_7d"] == 20.0 and out.loc[40, "merchant_amount_max_7d"] == 30.0
    assert out.loc[40, "merchant_amount_std_7d"] == pytest.approx(np.sqrt(200.0))
    assert out["merchant_days_since_last_seen"].tolist() == [-1, 2, 2, 6, 7, -1]
    assert out["merchant_dominant_category_90d"].tolist() == ["none", "food", "food", "food", "food", "none"]
    assert out.loc[30, "amount_abs"] == 21.0 and out.loc[20, "weekday"] == 5  # 2024-03-09: Saturday
    cash = client.training_set("cashflow_service", rows)
    assert cash.loc[20, "account_outflow_1d"] == 0.0 and cash.loc[40, "account_outflow_1d"] == 0.0
    assert cash.loc[20, "account_net_mean_7d"] == pytest.approx(-20.0 / 7)  # Mar 2..8: only Mar 3 moved
    assert cash.loc[0, "account_net_mean_30d"] == 0.0


@pytest.mark.parametrize("service", sorted(spec.SERVICES))
def test_training_and_serving_paths_agree(hand_store: dict, hand_clean: pd.DataFrame, service: str) -> None:
    """The same rows through get_historical_features (stamped at as_of) and get_online_features."""
    client: FeatureClient = hand_store["client"]
    as_of = hand_store["summary"]["as_of"]
    rows = hand_clean[["transaction_id", "merchant", "account_id", "category", "amount", "date"]].copy()
    rows = pd.concat([rows, rows.assign(date=pd.Timestamp(as_of), merchant="never_seen")], ignore_index=True)
    rows["event_timestamp"] = pd.Timestamp(as_of)
    offline = client.training_set(service, rows)
    online = client.online_features(service, rows.drop(columns=["event_timestamp"]))
    columns = [c.name for c in spec.service_columns(service)]
    assert list(online.columns[-len(columns) :]) == columns
    pd.testing.assert_frame_equal(online[columns], offline[columns])
    assert (offline[columns].notna()).all().all()


@pytest.mark.parametrize("service", sorted(spec.SERVICES))
def test_stored_history_is_the_training_sets_stored_columns(hand_store: dict, hand_clean: pd.DataFrame,
                                                             service: str) -> None:
    """The batch scorer's point-in-time join (stored views only) equals the training set's stored values."""
    client: FeatureClient = hand_store["client"]
    rows = hand_clean[["transaction_id", "merchant", "account_id", "category", "amount", "date"]].copy()
    rows = pd.concat([rows, rows.assign(merchant="never_seen")], ignore_index=True).sample(frac=1.0, random_state=3)
    rows["event_timestamp"] = rows["date"]
    stored = [c.name for view in spec.service_views(service) if not view.on_demand for c in view.columns]
    history = client.stored_history(service, rows)
    assert list(history.columns) == stored and len(history) == len(rows)
    pd.testing.assert_frame_equal(history, client.training_set(service, rows)[stored].reset_index(drop=True))


@pytest.mark.parametrize("service", sorted(spec.SERVICES))
def test_in_memory_as_of_join_equals_feasts(hand_store: dict, hand_clean: pd.DataFrame, service: str) -> None:
    """The scorer's join over tables read once (``titans.features.as_of``) gives Feast's values, dtypes and order:
    on the rows' own days, days later (snapshots up to the TTL old), past the TTL, and for unknown entities."""
    client: FeatureClient = hand_store["client"]
    rows = hand_clean[["transaction_id", "merchant", "account_id", "category", "amount", "date"]].copy()
    later = [rows.assign(date=rows["date"] + pd.Timedelta(days=days)) for days in (1, 6, 7, 8, 30)]
    rows = pd.concat([rows, *later, rows.assign(merchant="never_seen", account_id="acct_none", category="none")],
                     ignore_index=True).sample(frac=1.0, random_state=5)
    rows["event_timestamp"] = rows["date"]
    feast = client.stored_history(service, rows)
    for _ in range(2):  # the second call answers from the tables the first one read (and the first call's join)
        pd.testing.assert_frame_equal(client.stored_history_in_memory(service, rows), feast)
    # The same keys a day later, right after: a view's last join is reused only for the same keys and timestamps.
    later = rows.assign(event_timestamp=rows["event_timestamp"] + pd.Timedelta(days=1))
    pd.testing.assert_frame_equal(client.stored_history_in_memory(service, later),
                                  client.stored_history(service, later))
    assert feast.nunique().max() > 1  # the rows do not all get the same values


def test_online_unknown_entities_get_documented_defaults(hand_store: dict) -> None:
    client: FeatureClient = hand_store["client"]
    rows = pd.DataFrame(
        {
            "merchant": ["ghost", "acme"],
            "account_id": ["nope", "acct_a"],
            "category": ["nothing", "food"],
            "amount": [-3.0, -3.0],
            "date": ["2024-03-20"] * 2,
        }
    )
    out = client.online_features("anomaly_service", rows)
    for col in spec.service_columns("anomaly_service"):
        if col.name in spec.TRANSACTION_CALENDAR.column_names + spec.TRANSACTION_AMOUNT.column_names:
            continue
        assert out.loc[0, col.name] == col.default, col.name
        assert out[col.name].dtype == (object if col.dtype == "string" else np.dtype(col.dtype)), col.name
    # acme as of the materialization: rows of Mar 1..10, last seen Mar 10.
    assert out.loc[1, "merchant_txn_count_all"] == 5
    assert out.loc[1, "merchant_days_since_last_seen"] == 10


def test_bad_entity_frames_are_user_errors(hand_store: dict) -> None:
    client: FeatureClient = hand_store["client"]
    rows = entity([("acme", "acct_a", "food", "2024-03-03", -20.0)])
    with pytest.raises(UserError, match="category"):
        client.training_set("amount_service", rows.drop(columns=["category"]))
    with pytest.raises(UserError, match="amount"):
        client.online_features("anomaly_service", rows.drop(columns=["amount"]))
    with pytest.raises(UserError, match="unknown feature service"):
        client.training_set("fraud_service", rows)
    with pytest.raises(UserError, match="date"):
        client.online_features("anomaly_service", rows.assign(date="31/31/2024"))
    empty = client.training_set("anomaly_service", rows.iloc[:0])
    assert len(empty) == 0 and "merchant_txn_count_7d" in empty.columns


def test_cashflow_series_is_zero_filled(hand_store: dict) -> None:
    series = hand_store["client"].account_daily_cashflow(["acct_b"])
    assert series["date"].tolist() == list(pd.date_range("2024-03-05", "2024-03-12"))
    assert series["net"].tolist() == [500.0, 0, 0, 0, 0, 0, 0, -40.0]


def test_missing_repo_or_config_is_a_user_error(tmp_path: Path) -> None:
    with titans_home_env(tmp_path):
        with pytest.raises(UserError, match="feature repository not found"):
            FeatureClient(tmp_path / "nowhere")
        with pytest.raises(UserError, match="config not found"):
            FeatureClient(tmp_path)


def test_production_variant_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Selected by TITANS_FEATURE_STORE_YAML: Redis online, PostgreSQL registry, s3 offline tables."""
    monkeypatch.setenv("TITANS_HOME", str(tmp_path))
    monkeypatch.setenv("TITANS_FEATURE_STORE_YAML", "feature_store.production.yaml")
    monkeypatch.setenv("TITANS_FEAST_REGISTRY_URL", "postgresql+psycopg://feast:secret@postgres:5432/feast")
    monkeypatch.setenv("TITANS_FEAST_REDIS", "redis-master:6379,password=secret")
    monkeypatch.setenv("TITANS_FEATURE_OFFLINE_URI", "s3://titans-features/offline")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio:9000")
    client = FeatureClient(REPO)  # constructs without connecting to anything
    config = client.store.config
    assert client.yaml_path.name == "feature_store.production.yaml"
    assert config.registry.registry_type == "sql" and config.registry.path.startswith("postgresql+psycopg://")
    assert config.online_store.type == "redis" and config.online_store.connection_string.startswith("redis-master")
    assert config.offline_store.type == "duckdb"
    assert config.offline_store.staging_location == "s3://titans-features/offline/staging"
    contents = load_repo_contents(REPO)
    paths = {fv.name: fv.batch_source.path for fv in contents.feature_views}
    assert paths["merchant_history"] == "s3://titans-features/offline/merchant_history.parquet"
    assert not (tmp_path / "features").exists()  # the embedded default's folder is not created
