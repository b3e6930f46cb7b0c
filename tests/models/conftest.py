"""Fixtures of the model tests: one trained home for the folder (``trained_home``)."""

from __future__ import annotations

import pytest
from trained_home import ACCOUNTS, FRAUD_RATE, ROWS, SEED, small_config


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """Generate, ingest, build the Feast store and train four models once, for every test of this folder."""
    from titans.data.generate import GenerateConfig, write_csv
    from titans.data.ingest import ingest
    from titans.train import train

    tmp = tmp_path_factory.mktemp("models")
    mp = pytest.MonkeyPatch()
    mp.setenv("TITANS_HOME", str(tmp / "home"))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    mp.delenv("TITANS_GATE_CONFIG", raising=False)
    raw = tmp / "raw.csv"
    write_csv(GenerateConfig(rows=ROWS, accounts=ACCOUNTS, seed=SEED, fraud_rate=FRAUD_RATE), raw)
    ingest([raw], tmp / "data")
    summary = train(["category", "amount", "anomaly", "cashflow"], tmp / "data",
                    small_config(tmp, build_features=True))
    yield tmp, summary
    mp.undo()
