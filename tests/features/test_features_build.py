"""``titans features build`` end to end: generate, ingest, build through the CLI, read back.

The store built here from generated data is also checked against the naive reference
(``features_reference``) through Feast's own point-in-time join, and rebuilt to show the
build is idempotent.
"""

from __future__ import annotations

import json
from pathlib import Path

import features_reference as reference
import numpy as np
import pandas as pd
import pytest
from features_fixtures import titans_home_env

from titans.cli import main
from titans.errors import UserError
from titans.features import spec
from titans.features.build import build_from_clean
from titans.features.store import FeatureClient

SERVICE_OF_VIEW = {
    "merchant_history": "category_service",
    "merchant_frequency": "category_service",
    "category_frequency": "amount_service",
    "account_cashflow": "cashflow_service",
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Generated export -> ingest -> `titans features build --json` in a fresh TITANS_HOME."""
    from titans.data.generate import GenerateConfig, write_csv
    from titans.data.ingest import ingest, read_clean

    home = tmp_path_factory.mktemp("e2e_home")
    with titans_home_env(home):
        csv = home / "raw" / "transactions.csv"
        write_csv(GenerateConfig(rows=1500, accounts=2, seed=11, days=200), csv)
        ingest([csv], home / "data")
        clean = read_clean(home / "data")
        summaries = [run_build(home / "data")]
        client = FeatureClient()
        before = client.online_features("anomaly_service", entity_rows(clean).tail(50))
        summaries.append(run_build(home / "data"))  # the second run must change nothing
        after = client.online_features("anomaly_service", entity_rows(clean).tail(50))
    return {
        "home": home,
        "clean": clean,
        "summaries": summaries,
        "client": client,
        "online_before": before,
        "online_after": after,
    }


def run_build(data_dir: Path) -> dict:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["features", "build", "--data", str(data_dir), "--json"])
    assert code == 0
    return json.loads(out.getvalue())


def entity_rows(clean: pd.DataFrame) -> pd.DataFrame:
    return clean[["transaction_id", "merchant", "account_id", "category", "amount", "date"]].assign(
        event_timestamp=clean["date"]
    )


def test_cli_summary_names_repo_views_and_row_counts(generated: dict) -> None:
    first, second = generated["summaries"]
    assert first["repo_path"].endswith("feature_repo") and Path(first["repo_path"]).is_dir()
    assert first["input_rows"] == len(generated["clean"]) > 1000
    for view in spec.STORED_VIEWS:
        entry = first["feature_views"][view.name]
        table = pd.read_parquet(entry["source"])
        assert entry["rows"] == len(table) > 0
        assert entry["entities"] == len(table[list(view.entity_keys)].drop_duplicates())
        assert Path(entry["source"]).is_relative_to(generated["home"] / "features")
    assert first["account_daily_cashflow"]["rows"] > 0


def test_rebuild_is_idempotent(generated: dict) -> None:
    first, second = generated["summaries"]
    for key in ("feature_views", "as_of", "data_hash", "account_daily_cashflow", "repo_path"):
        assert first[key] == second[key], key
    assert second["registry_changes"]["deleted"] == []
    pd.testing.assert_frame_equal(generated["online_before"], generated["online_after"])


def test_training_sets_have_one_row_per_entity_row(generated: dict) -> None:
    client: FeatureClient = generated["client"]
    rows = entity_rows(generated["clean"])
    for service in spec.SERVICES:
        out = client.training_set(service, rows)
        assert len(out) == len(rows), service
        assert out["transaction_id"].tolist() == rows["transaction_id"].tolist()
        assert out[[c.name for c in spec.service_columns(service)]].notna().all().all()


def test_feast_join_matches_the_reference_on_generated_data(generated: dict) -> None:
    """Feast's duckdb point-in-time join agrees with the definitions on sampled transactions."""
    client: FeatureClient = generated["client"]
    clean = generated["clean"]
    sample = entity_rows(clean).sample(120, random_state=4).reset_index(drop=True)
    records = reference.records(clean)
    merchant = client.training_set("category_service", sample)
    category = client.training_set("amount_service", sample)
    cash = client.training_set("cashflow_service", sample)
    for i, row in sample.iterrows():
        t = row["date"].date()
        want = reference.merchant_features(records, row["merchant"], t)
        want |= reference.category_features(records, row["category"], t)
        want |= reference.account_features(records, row["account_id"], t)
        got = {**merchant.loc[i].to_dict(), **category.loc[i].to_dict(), **cash.loc[i].to_dict()}
        for name, value in want.items():
            if isinstance(value, str):
                assert got[name] == value, (name, row.to_dict())
            else:
                assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-9), (name, row.to_dict())
        last = want["merchant_last_seen_epoch_day"]
        expected_gap = -1 if last < 0 else (t - reference.EPOCH).days - last
        assert got["merchant_days_since_last_seen"] == expected_gap


def test_cashflow_series_covers_every_day(generated: dict) -> None:
    series = generated["client"].account_daily_cashflow()
    for _, days in series.groupby("account_id")["date"]:
        assert (np.diff(days.to_numpy()) == np.timedelta64(1, "D")).all()
    assert series["n_transactions"].sum() > 0 and (series["n_transactions"] == 0).any()


def test_missing_or_empty_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with titans_home_env(tmp_path):
        assert main(["features", "build", "--data", str(tmp_path / "missing")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [
            f"titans: error: data directory not found: {tmp_path / 'missing'} (run `titans data ingest` first)"
        ]
        (tmp_path / "empty" / "clean").mkdir(parents=True)
        assert main(["features", "build", "--data", str(tmp_path / "empty")]) == 2
        assert "no clean table" in capsys.readouterr().err
        with pytest.raises(UserError, match="empty"):
            build_from_clean(pd.DataFrame(columns=["transaction_id", "date", "amount"]))
        assert not (tmp_path / "features").exists()  # nothing was written
