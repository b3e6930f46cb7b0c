"""Training rules that are functions of dates and sizes: the holdout cut and the backtest plan."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from titans.errors import UserError
from titans.models.cashflow import backtest_plan
from titans.models.common import time_split


def _days(counts: list[int]) -> pd.DataFrame:
    dates = np.repeat(pd.date_range("2024-01-01", periods=len(counts), freq="D"), counts)
    return pd.DataFrame({"date": dates, "transaction_id": [f"t{i:04d}" for i in range(len(dates))]})


@pytest.mark.parametrize("counts", [[5] * 10, [1, 9, 2, 30, 4, 6, 3], [40, 1, 1, 1, 1, 1], [3, 3, 3, 20]])
def test_holdout_cut_falls_between_days(counts: list[int]) -> None:
    train, test = time_split(_days(counts), 0.2)
    assert len(train) + len(test) == sum(counts)
    assert train["date"].max() < test["date"].min()
    assert not set(train["date"]) & set(test["date"])


def test_holdout_cut_is_the_day_boundary_nearest_the_fraction() -> None:
    # 100 rows, a busy day over the 80% mark (rows 70..89): boundaries at 70 and 90 are equally
    # near; the tie goes to the earlier one, so the holdout is not smaller than asked.
    train, test = time_split(_days([70, 20, 10]), 0.2)
    assert (len(train), len(test)) == (70, 30)
    train, test = time_split(_days([75, 20, 5]), 0.2)
    assert (len(train), len(test)) == (75, 25)


def test_one_day_cannot_be_split() -> None:
    with pytest.raises(UserError, match="more days"):
        time_split(_days([50]), 0.2)


@pytest.mark.parametrize(("span", "horizon", "min_train"), [(400, 30, 60), (100, 20, 60), (80, 10, 60),
                                                            (60, 7, 46), (45, 7, 31)])
def test_backtest_plan_keeps_two_origins_on_short_histories(span: int, horizon: int, min_train: int) -> None:
    h, m, note = backtest_plan(span, 4, 30)
    assert (h, m) == (horizon, min_train)
    assert (span - m) // h >= 2
    assert bool(note) is (span < 120)
