"""Request-time transaction features: the one implementation used at training and at serving.

Why one module: a model is only as good as the agreement between the numbers it was trained
on and the numbers it is served. The math lives in three numpy functions (``amount_arrays``,
``calendar_arrays``, ``recency_arrays``). Feast's on-demand feature views call them through
the ``*_udf`` adapters, so ``get_historical_features`` (training) and ``get_online_features``
(serving) run the very same code; ``transaction_features`` is the same math for callers
holding a DataFrame and no feature store (notebooks, evaluation).

The views run in Feast's ``python`` mode: on one row, pandas-mode views cost ~2-5 ms each
(Arrow -> pandas -> Arrow round trips), python mode a few tens of microseconds (measured in
``bench/bench_features.py``). Everything here depends only on the row itself, never on other
rows, so it cannot leak information across time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd

from titans.errors import UserError
from titans.features.spec import NEVER_SEEN_DAYS

_SECONDS_PER_DAY = 86400


# -- parsing -------------------------------------------------------------------------------


def _epoch_day_of(value: Any) -> int:
    """Days since 1970-01-01 of one date-like value; naive values are taken as UTC."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return int(aware.timestamp() // _SECONDS_PER_DAY)
    if isinstance(value, date):
        return value.toordinal() - 719163  # date(1970, 1, 1).toordinal()
    if isinstance(value, np.datetime64):
        return int(value.astype("datetime64[D]").astype("int64"))
    if value is None or (isinstance(value, float) and np.isnan(value)):
        raise UserError("transaction features need a date on every row; found a missing date")
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise UserError(f"unparseable date {value!r} in transaction features") from exc
    if pd.isna(stamp):
        raise UserError("transaction features need a date on every row; found a missing date")
    return _epoch_day_of(stamp.to_pydatetime())


def epoch_days(values: Any) -> np.ndarray:
    """Parse dates (ISO strings, datetimes, datetime64; aware or naive) to int64 epoch days.

    Why epoch days: the clean table is day-resolution, the V2 request carries ISO text and
    Feast hands over UTC datetimes; all three must land on the same calendar day. Aware
    values are converted to UTC first, matching the clean table's "read as UTC" rule.
    """
    if isinstance(values, pd.Series | pd.Index | np.ndarray) and pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.DatetimeIndex(values)
        if stamps.isna().any():
            raise UserError("transaction features need a date on every row; found missing dates")
        if stamps.tz is not None:
            stamps = stamps.tz_convert("UTC").tz_localize(None)
        return stamps.to_numpy().astype("datetime64[D]").astype("int64")
    iso = _iso_days(values)
    if iso is not None:
        return iso
    return np.fromiter((_epoch_day_of(v) for v in values), dtype="int64", count=len(values))


# ISO dates without a UTC offset, with an optional valid time: their day is their first ten
# characters (naive values are UTC), so numpy parses a whole batch at once.
_NAIVE_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ](?:[01]\d|2[0-3])(?::[0-5]\d(?::[0-5]\d(?:\.\d{1,9})?)?)?)?")


def _iso_days(values: Any) -> np.ndarray | None:
    """Epoch days of a batch of offset-free ISO strings in one numpy call; None for anything else.

    Why: parsing each V2 date through ``pd.Timestamp`` cost ~15 us a row, most of a
    1000-row request's feature time. Strings with an offset, other objects and impossible
    dates (numpy refuses 2024-02-30 as pandas does) take the per-value path, which also
    names the bad value.
    """
    if len(values) == 0:
        return None
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    try:
        uniques = list(dict.fromkeys(items))  # a batch holds few distinct days: check and parse each once
    except TypeError:  # unhashable values are not ISO strings
        return None
    if not all(isinstance(v, str) and _NAIVE_ISO.fullmatch(v) for v in uniques):
        return None
    try:
        days = np.array([v[:10] for v in uniques], dtype="datetime64[D]").astype("int64")
    except ValueError:
        return None
    if len(uniques) == len(items):
        return days
    day_of = dict(zip(uniques, days.tolist(), strict=True))
    return np.fromiter(map(day_of.__getitem__, items), dtype="int64", count=len(items))


def to_day(values: Any) -> pd.Series:
    """Dates as tz-naive midnight timestamps (the clean table's ``date`` convention)."""
    index = values.index if isinstance(values, pd.Series) else None
    days = epoch_days(values).astype("datetime64[D]").astype("datetime64[ns]")
    return pd.Series(days, index=index)


def _amounts(values: Any) -> np.ndarray:
    try:
        amount = np.asarray(values, dtype="float64")  # None -> nan, numeric text parses
    except (TypeError, ValueError) as exc:
        raise UserError(f"transaction features need a numeric amount on every row: {exc}") from exc
    if not np.isfinite(amount).all():
        raise UserError("transaction features need a finite numeric amount on every row")
    return amount


# -- the math ------------------------------------------------------------------------------


def amount_arrays(amount: np.ndarray) -> dict[str, np.ndarray]:
    """|amount|, log1p(|amount|) and sign of the signed amount (income > 0, expense < 0)."""
    magnitude = np.abs(amount)
    return {
        "amount_abs": magnitude,
        "amount_log": np.log1p(magnitude),
        "amount_sign": np.sign(amount).astype("int64"),
    }


def calendar_arrays(day: np.ndarray) -> dict[str, np.ndarray]:
    """Weekday, day of month, month, month start/end flags and cyclical encodings of epoch days.

    The day-of-month cycle divides by the length of that month, so the first day of every
    month is at angle 0 and "late in the month" means the same phase in February and in
    March; month start/end flags mark pay-day and billing effects.

    A batch spans few distinct days (a 1000-row request ~30): each is computed once and the
    results gathered back per row, which gives the same values element by element.
    """
    day = np.asarray(day)
    if day.ndim == 1 and len(day) > 64:
        uniques, inverse = np.unique(day, return_inverse=True)
        if 4 * len(uniques) <= len(day):
            return {name: values[inverse] for name, values in _calendar(uniques).items()}
    return _calendar(day)


def _calendar(day: np.ndarray) -> dict[str, np.ndarray]:
    days = day.astype("datetime64[D]")
    months = days.astype("datetime64[M]")
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    dom = (days - months.astype("datetime64[D]")).astype("int64") + 1
    month = months.astype("int64") % 12 + 1
    month_len = ((months + 1).astype("datetime64[D]") - months.astype("datetime64[D]")).astype("int64")
    two_pi = 2.0 * np.pi
    return {
        "weekday": weekday.astype("int64"),
        "day_of_month": dom,
        "month": month,
        "is_month_start": (dom == 1).astype("int64"),
        "is_month_end": (dom == month_len).astype("int64"),
        "weekday_sin": np.sin(two_pi * weekday / 7.0),
        "weekday_cos": np.cos(two_pi * weekday / 7.0),
        "day_of_month_sin": np.sin(two_pi * (dom - 1) / month_len),
        "day_of_month_cos": np.cos(two_pi * (dom - 1) / month_len),
        "month_sin": np.sin(two_pi * (month - 1) / 12.0),
        "month_cos": np.cos(two_pi * (month - 1) / 12.0),
    }


def recency_arrays(day: np.ndarray, last_seen: np.ndarray) -> dict[str, np.ndarray]:
    """Days from ``merchant_last_seen_epoch_day`` to the request day.

    Why at request time: the gap grows every day, so a stored value would be stale the day
    after its snapshot; the snapshot keeps only the last day seen. An unknown merchant
    (missing or negative last-seen day) gets ``NEVER_SEEN_DAYS``.
    """
    known = np.isfinite(last_seen) & (last_seen >= 0)
    gap = np.where(known, day - np.where(known, last_seen, 0), NEVER_SEEN_DAYS)
    return {"merchant_days_since_last_seen": gap.astype("int64")}


def _last_seen(values: Any) -> np.ndarray:
    return np.asarray(values, dtype="float64")  # None (unknown merchant) -> nan


# -- pandas entry points (training code, notebooks, evaluation) ----------------------------


def _require(columns: Sequence[str], needed: list[str]) -> None:
    missing = [c for c in needed if c not in columns]
    if missing:
        raise UserError(f"transaction features need column(s) {missing}; got {list(columns)}")


def amount_features(df: pd.DataFrame) -> pd.DataFrame:
    """``amount_arrays`` of a frame's ``amount`` column."""
    _require(df.columns, ["amount"])
    return pd.DataFrame(amount_arrays(_amounts(df["amount"])), index=df.index)


def calendar_features(df: pd.DataFrame) -> pd.DataFrame:
    """``calendar_arrays`` of a frame's ``date`` column."""
    _require(df.columns, ["date"])
    return pd.DataFrame(calendar_arrays(epoch_days(df["date"])), index=df.index)


def transaction_features(df: pd.DataFrame) -> pd.DataFrame:
    """All request-time features of each row, from its ``amount`` and ``date`` columns."""
    return pd.concat([amount_features(df), calendar_features(df)], axis=1)


def merchant_recency(df: pd.DataFrame) -> pd.DataFrame:
    """``recency_arrays`` of a frame's ``date`` and ``merchant_last_seen_epoch_day``."""
    _require(df.columns, ["date", "merchant_last_seen_epoch_day"])
    out = recency_arrays(epoch_days(df["date"]), _last_seen(df["merchant_last_seen_epoch_day"]))
    return pd.DataFrame(out, index=df.index)


# -- Feast python-mode adapters (dict of lists in, dict of lists out) ----------------------


def _lists(arrays: dict[str, np.ndarray]) -> dict[str, list]:
    return {name: values.tolist() for name, values in arrays.items()}


def amount_udf(inputs: dict[str, list]) -> dict[str, list]:
    """The ``transaction_amount`` on-demand view."""
    return _lists(amount_arrays(_amounts(inputs["amount"])))


def calendar_udf(inputs: dict[str, list]) -> dict[str, list]:
    """The ``transaction_calendar`` on-demand view."""
    return _lists(calendar_arrays(epoch_days(inputs["date"])))


def recency_udf(inputs: dict[str, list]) -> dict[str, list]:
    """The ``merchant_recency`` on-demand view."""
    return _lists(recency_arrays(epoch_days(inputs["date"]), _last_seen(inputs["merchant_last_seen_epoch_day"])))
