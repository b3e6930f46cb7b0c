"""Offline feature tables computed from the clean table: point-in-time snapshots per entity.

The rule, everywhere in this module: **a feature row stamped t summarises only transactions on
days strictly before t's day.** The clean table has day resolution and no time of day, so two
transactions on the same day cannot be ordered; treating them as simultaneous is the only rule
that never lets one see the other (a row's own day is excluded from its history). Every
snapshot is stamped at midnight (UTC) of the first day it is valid for, and Feast's
point-in-time join picks, for an entity row at t, the latest snapshot stamped <= t: a
transaction on day D is matched with the snapshot stamped D, built from days < D.

Snapshots are written only when a value can change, not for every entity and every day:

- merchant history: the day after each active day (a row enters the windows), the day each
  row leaves a 7/30/90-day window (D+8, D+31, D+91), plus a heartbeat (``SNAPSHOT_HEARTBEAT``)
  and the ``as_of`` day. Between those days nothing in the row can change; "days since last
  seen" changes daily and is therefore computed at request time (``merchant_recency``).
- merchant and category frequencies: the day after each active day, heartbeat, ``as_of``.
- account cash flow: one row per account per day (accounts are few and the rolling means
  move daily).

``as_of`` is the day after the last day in the data: the state the online store serves.

Amounts are summarised as magnitudes (``|amount|``) because a merchant's rows share a sign
and the models ask "how large is this charge for this merchant", not "which way".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from titans.errors import UserError
from titans.features import spec

REQUIRED_COLUMNS = ("transaction_id", "account_id", "date", "amount", "category", "merchant", "status")

# Statuses whose money never moved: left out of cash flow (still behaviour for the merchant).
NO_CASH_STATUSES = frozenset({"failed", "cancelled"})

_DAY = pd.Timedelta(days=1)


def prepare(clean: pd.DataFrame) -> pd.DataFrame:
    """Check the clean table's columns and add ``day`` (naive midnight) and ``abs_amount``."""
    if clean is None or len(clean) == 0:
        raise UserError("the clean table is empty: nothing to build features from (run `titans data ingest`)")
    missing = [c for c in REQUIRED_COLUMNS if c not in clean.columns]
    if missing:
        raise UserError(f"the clean table lacks column(s) {missing}; see docs/contracts.md")
    tx = clean.loc[:, list(REQUIRED_COLUMNS)].copy()
    day = pd.to_datetime(tx["date"], utc=True)
    if day.isna().any():
        raise UserError("the clean table has rows without a date")
    tx["day"] = day.dt.tz_localize(None).dt.normalize()
    tx["amount"] = tx["amount"].astype("float64")
    if not np.isfinite(tx["amount"].to_numpy()).all():
        raise UserError("the clean table has rows without a finite amount")
    tx["abs_amount"] = tx["amount"].abs()
    for col in ("transaction_id", "account_id", "category", "merchant", "status"):
        tx[col] = tx[col].astype("string").fillna("unknown").astype(object)
    return tx.sort_values(["day", "transaction_id"], kind="mergesort").reset_index(drop=True)


def as_of_day(tx: pd.DataFrame) -> pd.Timestamp:
    """The day after the last transaction day: snapshots up to here are complete."""
    return pd.Timestamp(tx["day"].max()) + _DAY


def _utc(ts: pd.Series) -> pd.Series:
    return pd.to_datetime(ts).dt.tz_localize("UTC")


def _heartbeats(first: pd.Series, as_of: pd.Timestamp) -> pd.DataFrame:
    """Days first+1, first+1+H, first+1+2H, ... up to ``as_of`` for each key of ``first``."""
    step = spec.SNAPSHOT_HEARTBEAT.days
    start = first + _DAY
    n = ((as_of - start).dt.days // step + 1).clip(lower=0).to_numpy()
    keys = np.repeat(first.index.to_numpy(), n)
    k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    ts = np.repeat(start.to_numpy(), n) + (k * step).astype("timedelta64[D]")
    return pd.DataFrame({first.index.name: keys, "ts": ts})


def _snapshot_days(active: pd.DataFrame, key: str, offsets: list[int], as_of: pd.Timestamp) -> pd.DataFrame:
    """Distinct (key, ts) at which a snapshot is due: day+offset, heartbeats and ``as_of``."""
    parts = [
        pd.DataFrame({key: active[key].to_numpy(), "ts": active["day"].to_numpy() + np.timedelta64(o, "D")})
        for o in offsets
    ]
    first = active.groupby(key)["day"].min()
    first.index.name = key
    parts.append(_heartbeats(first, as_of))
    parts.append(pd.DataFrame({key: first.index.to_numpy(), "ts": as_of}))
    snaps = pd.concat(parts, ignore_index=True)
    snaps["ts"] = pd.to_datetime(snaps["ts"])
    snaps = snaps[snaps["ts"] <= as_of].drop_duplicates()
    return snaps.sort_values([key, "ts"], kind="mergesort").reset_index(drop=True)


class _RangeMax:
    """Maximum of a value over rows whose sorted int key lies in [lo, hi), in O(1) per query.

    Why not ``rolling().max()``: with jumping window bounds pandas rescans each window. Keys
    are (entity, day) codes, so rows are first reduced to one maximum per key (at most
    ``max_rows`` keys per window), then a sparse table answers each query with two lookups.
    """

    def __init__(self, keys: np.ndarray, values: np.ndarray, max_rows: int):
        self.keys, first = np.unique(keys, return_index=True)
        level = np.maximum.reduceat(values, first) if len(values) else values
        self.levels = [level]
        width = 1
        while width * 2 <= max_rows:
            level = np.maximum(level[:-width], level[width:]) if len(level) > width else level[:0]
            self.levels.append(level)
            width *= 2

    def query(self, lo_keys: np.ndarray, hi_keys: np.ndarray) -> np.ndarray:
        lo = np.searchsorted(self.keys, lo_keys, "left")
        hi = np.searchsorted(self.keys, hi_keys, "left")
        size = hi - lo
        out = np.zeros(len(lo), dtype="float64")
        has = size > 0
        k = np.floor(np.log2(np.where(has, size, 1))).astype("int64")
        for j, level in enumerate(self.levels):
            sel = has & (k == j)
            if sel.any():
                out[sel] = np.maximum(level[lo[sel]], level[hi[sel] - (1 << j)])
        return out


def _coded_days(keys: pd.Series, days: pd.Series, uniques: pd.Index, span: int, origin: pd.Timestamp) -> np.ndarray:
    """One sortable int64 per row: key code * span + day number (keys never overlap)."""
    return uniques.get_indexer(keys).astype("int64") * span + _day_index(days, origin)


def _window_counts(daily: pd.DataFrame, snaps: pd.DataFrame, key: str, window: int) -> np.ndarray:
    """Rows (``n`` summed) of each snapshot's key on days [t - window, t), from per-(key, day) rows.

    Days are coded one integer each (key code * span + day), so a window is a contiguous run of codes;
    same-day rows (day == t) are outside it by construction.
    """
    origin = daily["day"].min() - pd.Timedelta(days=window + 1)
    span = int((snaps["ts"].max() - origin).days) + window + 2
    uniques = pd.Index(pd.unique(daily[key]))
    rows = _RowsBetween(_coded_days(daily[key], daily["day"], uniques, span, origin), daily["n"])
    query = _coded_days(snaps[key], snaps["ts"], uniques, span, origin)
    return rows.between(query - window, query)


class _RowsBetween:
    """Rows (``n`` summed) whose integer code lies in [lo, hi): two binary searches and a running total."""

    def __init__(self, codes: np.ndarray, n: pd.Series):
        order = np.argsort(codes, kind="stable")
        self.codes = codes[order]
        self.before = np.r_[0, np.cumsum(n.to_numpy("int64")[order])]

    def between(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        codes = self.codes
        return self.before[np.searchsorted(codes, hi, "left")] - self.before[np.searchsorted(codes, lo, "left")]


def _day_index(days: pd.Series | np.ndarray, origin: pd.Timestamp) -> np.ndarray:
    return ((pd.to_datetime(days) - origin) // _DAY).to_numpy().astype("int64")


def _dominant_category(days: pd.DataFrame, snaps: pd.DataFrame, window: int) -> pd.DataFrame:
    """Most frequent category of each merchant over [t - window, t) and its share of the rows.

    From ``merchant_category_days``: counts are sums of ``n`` over (merchant, category, day) integer keys
    between two binary searches, so they are exact; ties go to the alphabetically first category so the
    answer is reproducible.
    """
    origin = days["day"].min() - pd.Timedelta(days=window + 1)
    span = int((snaps["ts"].max() - origin).days) + window + 2
    merchants = pd.Index(pd.unique(days["merchant"]))
    categories = pd.Index(np.sort(pd.unique(days["category"])))
    n_cat = len(categories)
    m = merchants.get_indexer(days["merchant"]).astype("int64")
    c = categories.get_indexer(days["category"]).astype("int64")
    rows = _RowsBetween((m * n_cat + c) * span + _day_index(days["day"], origin), days["n"])

    # Each snapshot is expanded to the categories its merchant has ever had.
    pairs = np.unique(m * n_cat + c)
    pair_merchant = pairs // n_cat
    per_merchant = np.bincount(pair_merchant, minlength=len(merchants))
    first_pair = np.cumsum(per_merchant) - per_merchant
    snap_m = merchants.get_indexer(snaps["merchant"]).astype("int64")
    reps = per_merchant[snap_m]
    snap_id = np.repeat(np.arange(len(snaps)), reps)
    within = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
    pair = pairs[np.repeat(first_pair[snap_m], reps) + within]
    t = np.repeat(_day_index(snaps["ts"], origin), reps)
    n = rows.between(pair * span + t - window, pair * span + t)

    total = np.bincount(snap_id, weights=n, minlength=len(snaps))
    # Highest count wins, then the smallest category code (alphabetical order).
    score = n * (n_cat + 1) + (n_cat - 1 - pair % n_cat)
    best = np.full(len(snaps), -1, dtype="int64")
    np.maximum.at(best, snap_id, score)
    best_n = best // (n_cat + 1)
    best_c = n_cat - 1 - best % (n_cat + 1)
    has = total > 0
    return pd.DataFrame(
        {
            "category": np.where(
                has, categories.to_numpy(dtype=object)[np.clip(best_c, 0, n_cat - 1)], spec.UNSEEN_CATEGORY
            ),
            "share": np.where(has, best_n / np.where(has, total, 1), 0.0),
        }
    )


def _last_seen_epoch_day(tx: pd.DataFrame, snaps: pd.DataFrame, key: str) -> np.ndarray:
    """Epoch day of the key's last transaction day strictly before each snapshot's t."""
    codes = {k: i for i, k in enumerate(pd.unique(tx[key]))}
    origin = pd.Timestamp("1970-01-01")
    span = int((snaps["ts"].max() - origin).days) + 2
    keys = np.sort(tx[key].map(codes).to_numpy("int64") * span + _day_index(tx["day"], origin))
    base = snaps[key].map(codes).to_numpy("int64") * span
    idx = np.searchsorted(keys, base + _day_index(snaps["ts"], origin), "left") - 1
    found = (idx >= 0) & (keys[np.clip(idx, 0, None)] >= base)
    return np.where(found, keys[np.clip(idx, 0, None)] - base, spec.NEVER_SEEN_DAYS).astype("int64")


def merchant_history(tx: pd.DataFrame, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """Trailing 7/30/90-day merchant statistics as point-in-time snapshots (see module doc)."""
    return merchant_history_from_days(merchant_category_days(tx), as_of or as_of_day(tx))


def merchant_category_days(tx: pd.DataFrame) -> pd.DataFrame:
    """Per (merchant, category, day): rows ``n``, and the ``mean``, ``m2`` (sum of squared deviations from the
    mean) and ``max`` of their |amount|.

    Why a table of its own: ``merchant_history`` needs no more of the rows than this (``merchant_daily``'s
    why), so an engine can aggregate it where the rows are: a popular merchant is then a few rows per day,
    not all its rows in one worker. Deviations from each day's own mean, not sums of squares, so a window
    of equal amounts has a standard deviation of exactly 0 and no large sums cancel.
    """
    amounts = tx.groupby(["merchant", "category", "day"], sort=True)["abs_amount"]
    out = amounts.agg(["count", "mean", "max"]).rename(columns={"count": "n"})
    out["m2"] = amounts.var(ddof=0).to_numpy() * out["n"].to_numpy()
    return out.reset_index()[["merchant", "category", "day", "n", "mean", "m2", "max"]]


def merchant_history_from_days(days: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """``merchant_history`` from ``merchant_category_days`` (any set of whole merchants, rows in any order)."""
    days = days.sort_values(["merchant", "day", "category"], kind="mergesort").reset_index(drop=True)
    per_day = _merchant_days_merged(days)
    snaps = _snapshot_days(per_day[["merchant", "day"]], "merchant", [1] + [w + 1 for w in spec.MERCHANT_WINDOWS],
                           as_of)
    out = pd.DataFrame({spec.MERCHANT_KEY: snaps["merchant"].to_numpy(), spec.EVENT_TIMESTAMP: _utc(snaps["ts"])})
    for window, stats in _day_window_stats(per_day, snaps, spec.MERCHANT_WINDOWS).items():
        out[f"merchant_txn_count_{window}d"] = stats["count"]
        out[f"merchant_amount_mean_{window}d"] = stats["mean"]
        out[f"merchant_amount_std_{window}d"] = stats["std"]
        out[f"merchant_amount_max_{window}d"] = stats["max"]
    out["merchant_last_seen_epoch_day"] = _last_seen_epoch_day(per_day, snaps, "merchant")
    dominant = _dominant_category(days, snaps, 90)
    out["merchant_dominant_category_90d"] = dominant["category"].to_numpy()
    out["merchant_dominant_category_share_90d"] = dominant["share"].to_numpy()
    return out


def _merchant_days_merged(days: pd.DataFrame) -> pd.DataFrame:
    """Per (merchant, day): a day's categories merged (rows sorted by merchant, day, category)."""
    starts = np.flatnonzero(np.r_[True, (days["merchant"].to_numpy()[1:] != days["merchant"].to_numpy()[:-1])
                                  | (days["day"].to_numpy()[1:] != days["day"].to_numpy()[:-1])])
    n = days["n"].to_numpy("float64")
    mean = days["mean"].to_numpy("float64")
    total = np.add.reduceat(n, starts)
    day_mean = np.add.reduceat(n * mean, starts) / total
    spread = n * (mean - np.repeat(day_mean, np.diff(np.r_[starts, len(days)]))) ** 2
    return pd.DataFrame({"merchant": days["merchant"].to_numpy()[starts], "day": days["day"].to_numpy()[starts],
                         "n": total, "mean": day_mean,
                         "m2": np.add.reduceat(days["m2"].to_numpy("float64") + spread, starts),
                         "max": np.maximum.reduceat(days["max"].to_numpy("float64"), starts)})


def _merged(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, mean, m2) of two disjoint sets of rows from each one's (Chan et al.'s pairwise update)."""
    n = a[0] + b[0]
    safe = np.where(n > 0, n, 1.0)
    delta = b[1] - a[1]
    return n, a[1] + delta * b[0] / safe, a[2] + b[2] + delta * delta * a[0] * b[0] / safe


def _day_window_stats(per_day: pd.DataFrame, snaps: pd.DataFrame,
                      windows: tuple[int, ...]) -> dict[int, dict[str, np.ndarray]]:
    """count/mean/std/max of |amount| over days [t - N, t) per snapshot and window N, from per-day stats.

    Days are sorted by one integer each (merchant code * span + day), so a window is a contiguous run of
    at most N day rows found by binary search. Its (n, mean, m2) are merged from power-of-two blocks
    (``levels[j][i]``: days i .. i + 2**j - 1), at most log2(N) + 1 merges per query, left to right.
    """
    origin = per_day["day"].min() - pd.Timedelta(days=max(windows) + 1)
    span = int((snaps["ts"].max() - origin).days) + max(windows) + 2
    uniques = pd.Index(pd.unique(per_day["merchant"]))
    # Ascending: the rows are sorted by merchant and day, and codes follow first appearance.
    keys = _coded_days(per_day["merchant"], per_day["day"], uniques, span, origin)
    query = _coded_days(snaps["merchant"], snaps["ts"], uniques, span, origin)
    levels = [(per_day["n"].to_numpy("float64"), per_day["mean"].to_numpy("float64"),
               per_day["m2"].to_numpy("float64"))]
    while 2 ** len(levels) <= max(windows):
        width, (n, mean, m2) = 2 ** (len(levels) - 1), levels[-1]
        levels.append(_merged((n[:-width], mean[:-width], m2[:-width]), (n[width:], mean[width:], m2[width:])))
    daily_max = _RangeMax(keys, per_day["max"].to_numpy("float64"), max(windows))
    end = np.searchsorted(keys, query, "left")
    results: dict[int, dict[str, np.ndarray]] = {}
    for window in windows:
        start = np.searchsorted(keys, query - window, "left")
        n, mean, m2 = np.zeros(len(query)), np.zeros(len(query)), np.zeros(len(query))
        at, left = start.copy(), end - start
        for j in range(len(levels) - 1, -1, -1):
            take = np.flatnonzero((left >> j) & 1)
            if len(take):
                block = tuple(level[at[take]] for level in levels[j])
                n[take], mean[take], m2[take] = _merged((n[take], mean[take], m2[take]), block)
                at[take] += 1 << j
        std = np.sqrt(np.clip(m2, 0.0, None) / np.where(n > 1, n - 1, 1.0))
        results[window] = {"count": n.astype("int64"), "mean": np.where(n > 0, mean, 0.0),
                           "std": np.where(n > 1, std, 0.0), "max": daily_max.query(query - window, query)}
    return results


def _cumulative_before(daily: pd.DataFrame, snaps: pd.DataFrame, key: str | None, cols: list[str]) -> pd.DataFrame:
    """Running totals of ``cols`` over all days strictly before each snapshot's t."""
    daily = daily.sort_values([key, "day"] if key else ["day"], kind="mergesort").copy()
    cum = daily.groupby(key, sort=False)[cols].cumsum() if key else daily[cols].cumsum()
    daily[cols] = cum
    left = snaps.assign(_order=np.arange(len(snaps))).sort_values("ts", kind="mergesort")
    merged = pd.merge_asof(
        left,
        daily[([key] if key else []) + ["day"] + cols].sort_values("day"),
        left_on="ts",
        right_on="day",
        by=key,
        direction="backward",
        allow_exact_matches=False,
    )
    merged = merged.sort_values("_order")
    return merged[cols].fillna(0).reset_index(drop=True)


def _mean_std(n: np.ndarray, s1: np.ndarray, s2: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample std from counts and sums of (x - shift); shifting keeps sums small."""
    safe_n = np.where(n > 0, n, 1)
    mean = np.where(n > 0, s1 / safe_n + shift, 0.0)
    var = np.where(n > 1, (s2 - s1 * s1 / safe_n) / np.where(n > 1, n - 1, 1), 0.0)
    return mean, np.sqrt(np.clip(var, 0.0, None))


def _shifted_daily(tx: pd.DataFrame, key: str) -> tuple[pd.DataFrame, pd.Series]:
    """Per (key, day): n, sum and sum of squares of |amount| minus the key's first |amount|."""
    shift = tx.groupby(key)["abs_amount"].first()
    x = tx["abs_amount"] - tx[key].map(shift)
    daily = tx.assign(n=1, s1=x, s2=x * x).groupby([key, "day"], sort=True)[["n", "s1", "s2"]].sum().reset_index()
    return daily, shift


def merchant_daily(tx: pd.DataFrame) -> pd.DataFrame:
    """Per (merchant, day): ``_shifted_daily``'s n, s1, s2 and shift, and the categories first seen that day.

    Why a table of its own: ``merchant_frequency`` needs no more of the rows than this, so an engine
    can compute it where the rows are (Spark aggregates it before any group is formed: a popular
    merchant is then one row per day, not all its rows in one worker).
    """
    daily, shift = _shifted_daily(tx, "merchant")
    new_cats = tx.groupby(["merchant", "category"])["day"].min().reset_index()
    new_cats = new_cats.groupby(["merchant", "day"]).size().rename("new_categories").reset_index()
    daily = daily.merge(new_cats, on=["merchant", "day"], how="left").fillna({"new_categories": 0})
    return daily.assign(shift=daily["merchant"].map(shift).to_numpy())


def merchant_frequency(tx: pd.DataFrame, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """How often each merchant was seen before t, how many categories it spans, its mean size."""
    return merchant_frequency_from_daily(merchant_daily(tx), as_of or as_of_day(tx))


def merchant_frequency_from_daily(daily: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """``merchant_frequency`` from ``merchant_daily`` (one merchant's days or all of them)."""
    snaps = _snapshot_days(daily[["merchant", "day"]], "merchant", [1], as_of)
    shift = daily.groupby("merchant")["shift"].first()
    cum = _cumulative_before(daily, snaps, "merchant", ["n", "s1", "s2", "new_categories"])
    n = cum["n"].to_numpy()
    mean, _ = _mean_std(n, cum["s1"].to_numpy(), cum["s2"].to_numpy(), snaps["merchant"].map(shift).to_numpy())
    return pd.DataFrame(
        {
            spec.MERCHANT_KEY: snaps["merchant"].to_numpy(),
            spec.EVENT_TIMESTAMP: _utc(snaps["ts"]),
            "merchant_txn_count_all": n.astype("int64"),
            "merchant_distinct_categories_all": cum["new_categories"].to_numpy().astype("int64"),
            "merchant_amount_mean_all": mean,
        }
    )


def day_counts(tx: pd.DataFrame) -> pd.Series:
    """Rows per day over the whole table (index ``day``): the category share's denominator."""
    return tx.groupby("day").size().rename("n")


def category_daily(tx: pd.DataFrame) -> pd.DataFrame:
    """Per (category, day): ``_shifted_daily``'s n, s1, s2 and the category's shift (``merchant_daily``'s why)."""
    daily, shift = _shifted_daily(tx, "category")
    return daily.assign(shift=daily["category"].map(shift).to_numpy())


def category_frequency(tx: pd.DataFrame, as_of: pd.Timestamp | None = None,
                       totals: pd.Series | None = None) -> pd.DataFrame:
    """Count, share of all transactions, and mean/std of |amount| per category before t.

    The share's denominator grows on every active day of any category, so every category
    gets a snapshot the day after every active day (categories are few: this stays small).
    ``totals`` is ``day_counts`` of the whole table (default: of ``tx``); it is a parameter so
    an engine that hands this function one category's rows at a time still gets the shares
    and snapshot days of the whole table.
    """
    return category_frequency_from_daily(category_daily(tx), as_of or as_of_day(tx),
                                         day_counts(tx) if totals is None else totals)


def category_frequency_from_daily(daily: pd.DataFrame, as_of: pd.Timestamp, totals: pd.Series) -> pd.DataFrame:
    """``category_frequency`` from ``category_daily`` (one category's days or all of them) and the whole table's
    ``day_counts``."""
    first = daily.groupby("category")["day"].min()
    shift = daily.groupby("category")["shift"].first()
    global_days = (pd.DatetimeIndex(totals.index + _DAY).append(pd.DatetimeIndex([as_of])).unique()
                   .sort_values())
    grid = pd.DataFrame(
        {
            "category": np.repeat(first.index.to_numpy(), len(global_days)),
            "ts": np.tile(global_days.to_numpy(), len(first)),
        }
    )
    grid = grid[grid["ts"] > grid["category"].map(first)]
    beats = _heartbeats(first.rename_axis("category"), as_of)
    snaps = pd.concat([grid, beats], ignore_index=True)
    snaps["ts"] = pd.to_datetime(snaps["ts"])
    snaps = snaps.drop_duplicates().sort_values(["category", "ts"], kind="mergesort").reset_index(drop=True)

    cum = _cumulative_before(daily, snaps, "category", ["n", "s1", "s2"])
    everything = totals.rename_axis("day").rename("n").reset_index()
    total = _cumulative_before(everything, snaps[["ts"]], None, ["n"])["n"].to_numpy()
    n = cum["n"].to_numpy()
    mean, std = _mean_std(n, cum["s1"].to_numpy(), cum["s2"].to_numpy(), snaps["category"].map(shift).to_numpy())
    return pd.DataFrame(
        {
            spec.CATEGORY_KEY: snaps["category"].to_numpy(),
            spec.EVENT_TIMESTAMP: _utc(snaps["ts"]),
            "category_txn_count_all": n.astype("int64"),
            "category_txn_share_all": np.where(total > 0, n / np.where(total > 0, total, 1), 0.0),
            "category_amount_mean_all": mean,
            "category_amount_std_all": std,
        }
    )


def account_daily_cashflow(tx: pd.DataFrame, end: pd.Timestamp | None = None) -> pd.DataFrame:
    """Per-account daily inflow, outflow (positive), net and row count, zero-filled.

    One row per account per day from its first day through ``end`` (default: the last day in
    the data), so a forecaster gets a regular series where quiet days are real zeros. Rows
    whose money never moved (status failed or cancelled) are left out.
    """
    return account_daily_from_sums(account_day_sums(tx), tx["day"].max() if end is None else end)


def account_day_sums(tx: pd.DataFrame) -> pd.DataFrame:
    """Per (account, day) with money moved: inflow, outflow (positive) and rows; ``merchant_daily``'s why."""
    moved = tx[~tx["status"].isin(NO_CASH_STATUSES)]
    sums = moved.assign(inflow=moved["amount"].clip(lower=0), outflow=(-moved["amount"]).clip(lower=0), n=1)
    return sums.groupby(["account_id", "day"])[["inflow", "outflow", "n"]].sum().reset_index()


def account_daily_from_sums(sums: pd.DataFrame, end: pd.Timestamp) -> pd.DataFrame:
    """``account_daily_cashflow`` from ``account_day_sums`` (one account's days or all of them), through ``end``."""
    if sums.empty:
        return pd.DataFrame(
            {
                spec.ACCOUNT_KEY: pd.Series(dtype=object),
                "date": pd.Series(dtype="datetime64[ns]"),
                "inflow": 0.0,
                "outflow": 0.0,
                "net": 0.0,
                "n_transactions": 0,
            }
        ).iloc[:0]
    first = sums.groupby("account_id")["day"].min()
    sums = sums.set_index(["account_id", "day"]).sort_index()
    lengths = ((end - first).dt.days + 1).clip(lower=0).to_numpy()
    accounts = np.repeat(first.index.to_numpy(), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    days = np.repeat(first.to_numpy(), lengths) + offsets.astype("timedelta64[D]")
    grid = pd.MultiIndex.from_arrays([accounts, pd.DatetimeIndex(days)], names=["account_id", "day"])
    dense = sums.reindex(grid, fill_value=0).reset_index()
    return pd.DataFrame(
        {
            spec.ACCOUNT_KEY: dense["account_id"].to_numpy(),
            "date": dense["day"].to_numpy(),
            "inflow": dense["inflow"].to_numpy("float64"),
            "outflow": dense["outflow"].to_numpy("float64"),
            "net": (dense["inflow"] - dense["outflow"]).to_numpy("float64"),
            "n_transactions": dense["n"].to_numpy("int64"),
        }
    )


def account_cashflow(daily: pd.DataFrame) -> pd.DataFrame:
    """Snapshots stamped t = day + 1 from the daily series: yesterday's flows, trailing means.

    The means average the zero-filled days in [t - N, t) that lie on or after the account's
    first day (a young account averages over the days it has).
    """
    daily = daily.sort_values([spec.ACCOUNT_KEY, "date"], kind="mergesort").reset_index(drop=True)
    grouped = daily.groupby(spec.ACCOUNT_KEY, sort=False)

    def trailing(col: str, days: int) -> np.ndarray:
        return grouped[col].rolling(days, min_periods=1).mean().droplevel(0).sort_index().to_numpy()

    return pd.DataFrame(
        {
            spec.ACCOUNT_KEY: daily[spec.ACCOUNT_KEY].to_numpy(),
            spec.EVENT_TIMESTAMP: _utc(daily["date"] + _DAY),
            "account_inflow_1d": daily["inflow"].to_numpy(),
            "account_outflow_1d": daily["outflow"].to_numpy(),
            "account_net_1d": daily["net"].to_numpy(),
            "account_net_mean_7d": trailing("net", 7),
            "account_net_mean_30d": trailing("net", 30),
            "account_inflow_mean_30d": trailing("inflow", 30),
            "account_outflow_mean_30d": trailing("outflow", 30),
        }
    )


def account_merchant(tx: pd.DataFrame, as_of: pd.Timestamp | None = None,
                     labelled_fraud: pd.Series | None = None) -> pd.DataFrame:
    """Point-in-time account x merchant purchase snapshots (expenses: amount < 0).

    Rows labelled fraud (``labelled_fraud``, by transaction id, where the export has the label)
    are left out: a stolen card's purchase says nothing about where the business buys.

    Snapshots like the merchant history's, per (account, merchant) pair: the day after each
    purchase day, the day a purchase leaves the 90-day window, a heartbeat and ``as_of``. The
    recency weight is kept in log space against a fixed origin (``spec.ACCOUNT_MERCHANT``), so
    it is exact at every day until the pair's next purchase.
    """
    return account_merchant_from_days(account_merchant_days(tx, labelled_fraud), as_of or as_of_day(tx))


def account_merchant_days(tx: pd.DataFrame, labelled_fraud: pd.Series | None = None) -> pd.DataFrame:
    """Per (account, merchant, day) of purchases not labelled fraud: rows ``n``, |amount| summed and the
    recency weights ``w`` summed (``merchant_daily``'s why: all ``account_merchant`` needs of the rows)."""
    bought = tx[tx["amount"] < 0]
    if labelled_fraud is not None and len(labelled_fraud):
        bought = bought[~bought["transaction_id"].isin(set(labelled_fraud.astype(str)))]
    offset = (_day_index(bought["day"], pd.Timestamp("1970-01-01")) - spec.INTERACTION_ORIGIN_EPOCH_DAY)
    weight = (1.0 + np.log1p(bought["abs_amount"].to_numpy())) * np.exp(offset / spec.INTERACTION_DECAY_DAYS)
    return (bought.assign(n=1, w=weight).groupby(["account_id", "merchant", "day"], sort=True)
            [["n", "abs_amount", "w"]].sum().reset_index())


def account_merchant_from_days(days: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """``account_merchant`` from ``account_merchant_days`` (any set of whole pairs, rows in any order)."""
    columns = [c.name for c in spec.ACCOUNT_MERCHANT.columns]
    if days.empty:
        return pd.DataFrame(columns=[spec.ACCOUNT_KEY, spec.MERCHANT_KEY, spec.EVENT_TIMESTAMP, *columns])
    pair = (days["account_id"] + "\x1f" + days["merchant"]).to_numpy(object)
    daily = (days.assign(pair=pair)[["pair", "day", "n", "abs_amount", "w"]]
             .sort_values(["pair", "day"], kind="mergesort").reset_index(drop=True))
    window = spec.INTERACTION_WINDOW_DAYS
    snaps = _snapshot_days(daily[["pair", "day"]], "pair", [1, window + 1], as_of)
    cum = _cumulative_before(daily, snaps, "pair", ["n", "abs_amount", "w"])
    counts = _window_counts(daily, snaps, "pair", window)
    keys = snaps["pair"].str.split("\x1f", n=1, expand=True)
    first = pd.Series(_day_index(daily["day"], pd.Timestamp("1970-01-01")), index=daily.index).groupby(
        daily["pair"]).min()
    w = cum["w"].to_numpy()
    return pd.DataFrame(
        {
            spec.ACCOUNT_KEY: keys[0].to_numpy(object),
            spec.MERCHANT_KEY: keys[1].to_numpy(object),
            spec.EVENT_TIMESTAMP: _utc(snaps["ts"]),
            columns[0]: cum["n"].to_numpy().astype("int64"),
            columns[1]: counts,
            columns[2]: cum["abs_amount"].to_numpy("float64"),
            columns[3]: np.log(np.where(w > 0, w, 1.0)),
            columns[4]: _last_seen_epoch_day(daily, snaps, "pair"),
            columns[5]: np.where(cum["n"].to_numpy() > 0, snaps["pair"].map(first).to_numpy("int64"),
                                 spec.NEVER_SEEN_DAYS).astype("int64"),
        }
    )


def fraud_ids(clean: pd.DataFrame) -> pd.Series:
    """Transaction ids the export labels fraud (empty where it has no ``is_fraud`` label)."""
    if "is_fraud" not in clean.columns:
        return pd.Series([], dtype=object)
    flagged = pd.to_numeric(clean["is_fraud"], errors="coerce").fillna(0).to_numpy() == 1
    return clean.loc[flagged, "transaction_id"]


def offline_tables(clean: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], pd.Timestamp]:
    """Every offline table the feature repo reads, keyed by view name, plus ``as_of``.

    Also returns the forecaster's zero-filled daily series under ``ACCOUNT_DAILY_TABLE``.
    """
    tx = prepare(clean)
    as_of = as_of_day(tx)
    daily = account_daily_cashflow(tx)
    tables = {
        spec.MERCHANT_HISTORY.name: merchant_history(tx, as_of),
        spec.MERCHANT_FREQUENCY.name: merchant_frequency(tx, as_of),
        spec.CATEGORY_FREQUENCY.name: category_frequency(tx, as_of),
        spec.ACCOUNT_CASHFLOW.name: account_cashflow(daily),
        spec.ACCOUNT_MERCHANT.name: account_merchant(tx, as_of, fraud_ids(clean)),
        spec.ACCOUNT_DAILY_TABLE: daily,
    }
    return tables, as_of
