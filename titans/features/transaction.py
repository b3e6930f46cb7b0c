"""Request-time transaction features: the one implementation used at training and at serving.

Why one module: a model is only as good as the agreement between the numbers it was trained
on and the numbers it is served. These functions run inside Feast's on-demand feature views,
so ``get_historical_features`` (training) and ``get_online_features`` (serving) call the very
same code; ``transaction_features`` is the same math for callers that hold a frame and no
feature store (notebooks, the evaluation step).

They are vectorised pandas, depend only on the row itself (``amount``, ``date``), and never
look at other rows, so they cannot leak information across time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from titans.errors import UserError
from titans.features.spec import NEVER_SEEN_DAYS

_EPOCH = np.datetime64("1970-01-01", "D")


def _require(df: pd.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise UserError(f"transaction features need column(s) {missing}; got {list(df.columns)}")


def to_day(values: pd.Series) -> pd.Series:
    """Parse dates (ISO strings, datetimes, tz-aware or not) to tz-naive midnight timestamps.

    Why: the V2 request carries ``date`` as ISO text, the clean table as datetime64; both
    must land on the same calendar day. Aware values are converted to UTC first, matching
    the clean table's "read as UTC" rule.
    """
    try:
        parsed = pd.to_datetime(values, utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise UserError(f"unparseable date in transaction features: {exc}") from exc
    if parsed.isna().any():
        raise UserError("transaction features need a date on every row; found missing dates")
    return parsed.dt.tz_localize(None).dt.normalize()


def amount_features(df: pd.DataFrame) -> pd.DataFrame:
    """|amount|, log1p(|amount|) and sign of the signed amount (income > 0, expense < 0)."""
    _require(df, ["amount"])
    amount = pd.to_numeric(df["amount"], errors="coerce").astype("float64")
    if not np.isfinite(amount.to_numpy()).all():
        raise UserError("transaction features need a finite numeric amount on every row")
    magnitude = amount.abs()
    return pd.DataFrame(
        {
            "amount_abs": magnitude,
            "amount_log": np.log1p(magnitude),
            "amount_sign": np.sign(amount).astype("int64"),
        },
        index=df.index,
    )


def calendar_features(df: pd.DataFrame) -> pd.DataFrame:
    """Weekday, day of month, month, month start/end flags and their cyclical encodings.

    The day-of-month cycle divides by the length of that month, so the last day of every
    month sits at the same angle; month start/end flags mark pay-day and billing effects.
    """
    _require(df, ["date"])
    day = to_day(df["date"]).dt
    weekday = day.weekday.astype("int64")
    dom = day.day.astype("int64")
    month = day.month.astype("int64")
    month_len = day.days_in_month.astype("float64")
    two_pi = 2.0 * np.pi
    return pd.DataFrame(
        {
            "weekday": weekday,
            "day_of_month": dom,
            "month": month,
            "is_month_start": (dom == 1).astype("int64"),
            "is_month_end": (dom == day.days_in_month).astype("int64"),
            "weekday_sin": np.sin(two_pi * weekday / 7.0),
            "weekday_cos": np.cos(two_pi * weekday / 7.0),
            "day_of_month_sin": np.sin(two_pi * (dom - 1) / month_len),
            "day_of_month_cos": np.cos(two_pi * (dom - 1) / month_len),
            "month_sin": np.sin(two_pi * (month - 1) / 12.0),
            "month_cos": np.cos(two_pi * (month - 1) / 12.0),
        },
        index=df.index,
    )


def transaction_features(df: pd.DataFrame) -> pd.DataFrame:
    """All request-time features of each row, from its ``amount`` and ``date`` columns."""
    return pd.concat([amount_features(df), calendar_features(df)], axis=1)


def merchant_recency(df: pd.DataFrame) -> pd.DataFrame:
    """Days between the request ``date`` and ``merchant_last_seen_epoch_day``.

    Why at request time: the gap grows every day, so a stored value would be stale the day
    after the snapshot; the snapshot keeps only the last day seen. An unknown merchant
    (missing or negative last-seen day) gets ``NEVER_SEEN_DAYS``.
    """
    _require(df, ["date", "merchant_last_seen_epoch_day"])
    request_day = (to_day(df["date"]).to_numpy().astype("datetime64[D]") - _EPOCH).astype("int64")
    last_seen = pd.to_numeric(df["merchant_last_seen_epoch_day"], errors="coerce").to_numpy(dtype="float64")
    known = np.isfinite(last_seen) & (last_seen >= 0)
    gap = np.where(known, request_day - np.where(known, last_seen, 0), NEVER_SEEN_DAYS)
    return pd.DataFrame({"merchant_days_since_last_seen": gap.astype("int64")}, index=df.index)
