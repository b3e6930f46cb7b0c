"""The trained home the model tests share: generated data, ingested, a Feast store, four models (small sizes).

Why a module (and the fixture in conftest.py): the toy-task test trains beside the same store, so the
folder builds it once; a uniquely named module, imported by name (the folder is on sys.path).
"""

from __future__ import annotations

from pathlib import Path

from titans.models.recipe import TrainConfig

ROWS, ACCOUNTS, SEED, FRAUD_RATE = 2500, 2, 7, 0.04


def small_config(tmp: Path, register: bool = True, **kw: object) -> TrainConfig:
    """Small sizes: two folds, 80 trees, three backtest origins; MLflow in ``tmp``'s sqlite."""
    return TrainConfig(cv_folds=2, n_estimators=80, category_candidates=("logreg_c10", "xgboost"),
                       backtest_origins=3, register=register, out_dir=tmp / "models",
                       tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}", **kw)
