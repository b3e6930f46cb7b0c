"""Training settings for the test suites that need real trained models quickly (serving, production stores).

Why one place: both suites train the four models on a small generated home and must stay fast; a
change of the settings (fewer candidates, shorter backtests) should reach both. A uniquely named module
(tests/ is on sys.path through the root conftest), so no folder's conftest is imported by another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

SMALL_TRAIN_SETTINGS: dict[str, Any] = {
    "n_estimators": 30,
    "cv_folds": 2,
    "register": False,
    "category_candidates": ("logreg_c10",),
    "backtest_origins": 2,
    "horizon_days": 14,
    # These suites test the learned models' serving (their array paths, their internals); at these sizes a
    # baseline rule can win the holdout and would be served in their place (tests/models/test_served_baselines.py).
    "serve_baselines": False,
}


def train_small_home(home: Path, tasks: Sequence[str], rows: int = 2500, accounts: int = 2, seed: int = 11,
                     settings: Mapping[str, Any] | None = None) -> Path:
    """generate -> ingest -> features -> train ``tasks`` under ``home`` (its TITANS_HOME); returns the data dir.

    The functions the pipeline's components call, in their order, on a generated export (``home/raw``).
    """
    from titans.data.generate import GenerateConfig, write_csv
    from titans.data.ingest import ingest
    from titans.features.build import build_features
    from titans.train import TrainConfig, train

    raw, data = home / "raw" / "transactions.csv", home / "data"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TITANS_HOME", str(home))
        write_csv(GenerateConfig(rows=rows, accounts=accounts, seed=seed), raw)
        ingest([raw], data)
        build_features(data)
        train(list(tasks), data, TrainConfig(**(settings or SMALL_TRAIN_SETTINGS)))
    return data
