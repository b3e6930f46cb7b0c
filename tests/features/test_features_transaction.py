"""Request-time features: known calendar facts, parsing equivalence, and the Feast adapters."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from titans.errors import UserError
from titans.features import spec
from titans.features.transaction import (
    amount_udf,
    calendar_udf,
    merchant_recency,
    recency_udf,
    transaction_features,
)


def test_calendar_facts_of_known_days() -> None:
    frame = pd.DataFrame({"date": ["2024-02-29", "2024-03-01", "2023-12-31", "2024-06-10"], "amount": 1.0})
    out = transaction_features(frame)
    # 2024-02-29 is a Thursday and the last day of a leap February.
    assert out["weekday"].tolist() == [3, 4, 6, 0]
    assert out["day_of_month"].tolist() == [29, 1, 31, 10]
    assert out["month"].tolist() == [2, 3, 12, 6]
    assert out["is_month_end"].tolist() == [1, 0, 1, 0]
    assert out["is_month_start"].tolist() == [0, 1, 0, 0]
    # The angle is the position of the day within its own month: 0 on the 1st.
    assert (out.loc[1, "day_of_month_sin"], out.loc[1, "day_of_month_cos"]) == pytest.approx((0.0, 1.0))
    assert out.loc[0, "day_of_month_cos"] == pytest.approx(np.cos(2 * np.pi * 28 / 29))
    assert out.loc[2, "day_of_month_cos"] == pytest.approx(np.cos(2 * np.pi * 30 / 31))
    assert out.loc[3, "weekday_sin"] == pytest.approx(0.0) and out.loc[3, "weekday_cos"] == pytest.approx(1.0)
    assert list(out.columns) == spec.TRANSACTION_AMOUNT.column_names + spec.TRANSACTION_CALENDAR.column_names


def test_amount_features() -> None:
    out = transaction_features(pd.DataFrame({"amount": [-99.0, 0.0, 1500.5], "date": "2024-01-01"}))
    assert out["amount_abs"].tolist() == [99.0, 0.0, 1500.5]
    assert out["amount_sign"].tolist() == [-1, 0, 1]
    assert out["amount_log"].to_numpy() == pytest.approx(np.log1p([99.0, 0.0, 1500.5]))


def test_every_date_spelling_lands_on_the_same_day() -> None:
    spellings = [
        "2024-03-10",
        "2024-03-10T00:00:00",
        date(2024, 3, 10),
        datetime(2024, 3, 10, 18, 30),
        datetime(2024, 3, 10, 23, 0, tzinfo=UTC),
        datetime(2024, 3, 11, 1, 0, tzinfo=timezone(timedelta(hours=2))),  # 23:00 UTC on the 10th
        pd.Timestamp("2024-03-10"),
        np.datetime64("2024-03-10"),
    ]
    out = transaction_features(pd.DataFrame({"date": pd.Series(spellings, dtype=object), "amount": 1.0}))
    assert out["day_of_month"].nunique() == 1 and out["day_of_month"].iloc[0] == 10
    column = pd.DataFrame({"date": pd.to_datetime(["2024-03-10"]).tz_localize("UTC"), "amount": [1.0]})
    assert transaction_features(column)["day_of_month"].iloc[0] == 10


def test_adapters_match_the_frame_functions() -> None:
    """The Feast views (dict-of-lists adapters) compute exactly what the frame functions do."""
    days = pd.date_range("2023-12-25", periods=70, freq="D")
    frame = pd.DataFrame(
        {
            "date": days,
            "amount": np.linspace(-500, 300, len(days)),
            "merchant_last_seen_epoch_day": [None, 19700.0] * 35,
        }
    )
    expected = transaction_features(frame)
    as_lists = {"date": [d.to_pydatetime().replace(tzinfo=UTC) for d in days], "amount": frame["amount"].tolist()}
    got = {**amount_udf(as_lists), **calendar_udf(as_lists)}
    for name in expected.columns:
        assert got[name] == pytest.approx(expected[name].tolist()), name
    recency = recency_udf({**as_lists, "merchant_last_seen_epoch_day": frame["merchant_last_seen_epoch_day"].tolist()})
    assert recency["merchant_days_since_last_seen"] == merchant_recency(frame)["merchant_days_since_last_seen"].tolist()


def test_recency_of_unknown_merchant_is_never_seen() -> None:
    out = merchant_recency(
        pd.DataFrame({"date": ["2024-03-10", "2024-03-10"], "merchant_last_seen_epoch_day": [np.nan, 19787]})
    )
    # 19787 = 2024-03-05
    assert out["merchant_days_since_last_seen"].tolist() == [spec.NEVER_SEEN_DAYS, 5]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"amount": [1.0]}), "date"),
        (pd.DataFrame({"date": ["2024-01-01"]}), "amount"),
        (pd.DataFrame({"date": ["not a date"], "amount": [1.0]}), "unparseable date"),
        (pd.DataFrame({"date": [None], "amount": [1.0]}), "missing date"),
        (pd.DataFrame({"date": ["2024-01-01"], "amount": [np.nan]}), "finite numeric amount"),
        (pd.DataFrame({"date": ["2024-01-01"], "amount": ["ten"]}), "numeric amount"),
    ],
)
def test_bad_requests_are_user_errors(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(UserError, match=message):
        transaction_features(frame)
