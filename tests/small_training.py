"""Training settings for the test suites that need real trained models quickly (serving, production stores).

Why one place: both suites train the four models on a small generated home and must stay fast; a
change of the settings (fewer candidates, shorter backtests) should reach both. A uniquely named module
(tests/ is on sys.path through the root conftest), so no folder's conftest is imported by another.
"""

from __future__ import annotations

from typing import Any

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
