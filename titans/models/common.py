"""What the transaction models share: request parsing, feature assembly, time-ordered splits.

Why one module: every model's ``predict`` receives the same kind of frame (the V2 input
names, plus whatever stored features the server or the Feast training set added), and must
compute request-time features with the very function the feature store uses
(``titans.features.transaction``). Doing that in one place keeps training and serving on
the same numbers and gives absent history columns one documented default: the value
``titans.features.spec`` declares for an entity the store has never seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold

from titans.errors import UserError
from titans.features import spec
from titans.features.transaction import calendar_features, merchant_recency, transaction_features

# V2 inputs of each transactional model (docs/contracts.md).
CATEGORY_INPUTS = ("description", "merchant", "amount", "date", "payment_method", "account_id")
AMOUNT_INPUTS = ("description", "merchant", "category", "payment_method", "date", "account_id")
ANOMALY_INPUTS = ("description", "merchant", "category", "payment_method", "date", "account_id", "amount")
CASHFLOW_INPUTS = ("account_id", "horizon_days")

_TEXT_INPUTS = {"description", "merchant", "category", "payment_method", "account_id"}


def _as_text(values: pd.Series) -> pd.Series:
    """V2 BYTES arrive as bytes or str; missing text becomes "" (a word the model never saw)."""

    def one(v: object) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        if isinstance(v, bytes | bytearray):
            return bytes(v).decode("utf-8", errors="replace")
        return str(v)

    return values.map(one).astype(object)


def request_frame(frame: pd.DataFrame, inputs: Sequence[str]) -> pd.DataFrame:
    """Check that ``frame`` carries ``inputs`` and coerce their types (text, amount, date).

    Raises UserError naming the missing inputs, since a caller can fix that and a
    traceback would not tell them how.
    """
    if not isinstance(frame, pd.DataFrame):
        raise UserError(f"predict needs a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in inputs if c not in frame.columns]
    if missing:
        raise UserError(f"missing input column(s) {missing}; this model needs {list(inputs)}")
    out = frame.reset_index(drop=True).copy()
    for name in inputs:
        if name in _TEXT_INPUTS:
            out[name] = _as_text(out[name])
    if "merchant" in inputs:
        out["merchant"] = normalize_merchant(out["merchant"])
    if "amount" in inputs:
        out["amount"] = pd.to_numeric(out["amount"], errors="coerce").astype("float64")
    if "date" in inputs:
        out["date"] = _as_text(out["date"]) if out["date"].dtype == object else out["date"]
    return out


def normalize_merchant(values: pd.Series) -> pd.Series:
    """The clean table's merchant key: lower case, non-alphanumerics collapsed to ``_``.

    Why here too: a V2 client may send "Best Buy" where the clean table says ``best_buy``;
    both must hit the same history and the same learned tokens.
    """
    text = values.astype(str).str.lower().str.replace(r"[^a-z0-9]+", "_", regex=True).str.strip("_")
    return text.where(text != "", "unknown")


def text_of(frame: pd.DataFrame) -> pd.Series:
    """Description plus merchant words: the text the category and amount models read."""
    merchant = frame["merchant"].astype(str).str.replace("_", " ", regex=False)
    return (frame["description"].astype(str) + " " + merchant).str.lower()


def stored_columns(service: str) -> list[spec.Column]:
    """Stored (not on-demand) feature columns of a service: the ones a caller must supply."""
    return [c for v in spec.service_views(service) if not v.on_demand for c in v.columns]


def history_features(frame: pd.DataFrame, service: str, numeric_only: bool = True) -> pd.DataFrame:
    """Stored features of ``service`` from ``frame``, each absent column at its unseen default.

    Why defaults and not an error: the server enriches from Feast online, which answers an
    unknown merchant with exactly these defaults; a caller without a feature store gets the
    same "never seen" view of the world, which is the honest one.
    """
    cols: dict[str, pd.Series] = {}
    for col in stored_columns(service):
        if numeric_only and col.dtype == "string":
            continue
        if col.name in frame.columns:
            values = frame[col.name]
            if col.dtype == "string":
                cols[col.name] = _as_text(values).replace("", str(col.default))
            else:
                cols[col.name] = pd.to_numeric(values, errors="coerce").fillna(col.default).astype("float64")
        else:
            fill = col.default if col.dtype == "string" else float(col.default)
            cols[col.name] = pd.Series([fill] * len(frame), index=frame.index)
    out = pd.DataFrame(cols, index=frame.index)
    views = spec.SERVICES.get(service, ())
    if "merchant_recency" in views:
        out["merchant_days_since_last_seen"] = _recency(frame, out).astype("float64")
    return out


def _recency(frame: pd.DataFrame, hist: pd.DataFrame) -> pd.Series:
    if "merchant_last_seen_epoch_day" in frame.columns:
        probe = pd.DataFrame(
            {"date": frame["date"], "merchant_last_seen_epoch_day": hist["merchant_last_seen_epoch_day"]}
        )
        return merchant_recency(probe)["merchant_days_since_last_seen"]
    if "merchant_days_since_last_seen" in frame.columns:
        return pd.to_numeric(frame["merchant_days_since_last_seen"], errors="coerce").fillna(spec.NEVER_SEEN_DAYS)
    return pd.Series(float(spec.NEVER_SEEN_DAYS), index=frame.index)


def request_features(frame: pd.DataFrame, with_amount: bool = True) -> pd.DataFrame:
    """Request-time features through the shared feature function (amount only if known)."""
    if with_amount:
        return transaction_features(frame[["amount", "date"]])
    return calendar_features(frame[["date"]])


def expenses(clean: pd.DataFrame) -> pd.DataFrame:
    """Expense rows of the clean table, time-ordered, with ``spend`` = positive amount."""
    rows = clean[clean["type"] == "Expense"].copy()
    rows["spend"] = -rows["amount"].astype("float64")
    rows = rows[rows["spend"] > 0]
    if _ordered_by_date_and_id(rows):  # the clean table's contract (read_clean): no second sort
        return rows.reset_index(drop=True)
    return rows.sort_values(["date", "transaction_id"], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class ExpenseFacts:
    """What the readiness checks (``titans.tasks.readiness``) read from the expenses of a clean table.

    Why a value of its own: the Spark engine computes these over the whole table in the cluster and
    hands training only a sample of the rows (``titans.models.spark_sample``); a task must be judged
    ready or not on the whole table, whichever engine read it, so both engines produce these facts.
    ``filled``: the asked-for label columns present with at least one value that is not blank.
    """

    rows: int
    accounts: int
    first: pd.Timestamp | None  # the earliest expense's date (naive), None without expenses
    last: pd.Timestamp | None
    filled: frozenset[str]

    @property
    def days(self) -> int:
        """Whole days between the first and the last expense (0 without expenses)."""
        return int((self.last - self.first).days) if self.first is not None and self.last is not None else 0


def expense_facts(clean: pd.DataFrame, labels: Iterable[str] = ()) -> ExpenseFacts:
    """``ExpenseFacts`` of a clean table in this process (the pandas engine's way)."""
    rows = expenses(clean)
    dates = pd.to_datetime(rows["date"]) if len(rows) else pd.Series(dtype="datetime64[ns]")
    # A label is missing when absent, all null, or all blank text (a null reads as text here, as before).
    filled = frozenset(label for label in labels if label in rows and not rows[label].isna().all()
                       and not (rows[label].astype(str).str.strip() == "").all())
    return ExpenseFacts(
        rows=int(len(rows)), accounts=int(rows["account_id"].nunique()) if "account_id" in rows else 0,
        first=pd.Timestamp(dates.min()) if len(dates) else None, last=pd.Timestamp(dates.max()) if len(dates) else None,
        filled=filled,
    )


def _ordered_by_date_and_id(rows: pd.DataFrame) -> bool:
    """Whether ``rows`` already run by (date, transaction_id): one vectorised pass, not a sort."""
    dates, ids = rows["date"].to_numpy(), rows["transaction_id"].to_numpy()
    if dates.dtype.kind != "M":  # text or mixed dates: leave the ordering to sort_values
        return False
    later, same = dates[1:] > dates[:-1], dates[1:] == dates[:-1]
    return bool(np.all(later | (same & (ids[1:] >= ids[:-1]))))


def time_split(frame: pd.DataFrame, test_fraction: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Earliest days for fitting, the latest ``test_fraction`` of rows (about) for testing.

    Why by date and cut between days: no fitted statistic may see a later row than the ones
    it predicts, and rows of one day share what the feature store knows about that day, so a
    day split across both sides would leak. The cut goes at the day boundary nearest to the
    requested fraction (the holdout is then a little larger or smaller than exactly 20%).
    """
    if not 0.0 < test_fraction < 1.0:
        raise UserError(f"test fraction must be in (0, 1), got {test_fraction}")
    ordered = frame.sort_values(["date", "transaction_id"] if "transaction_id" in frame else ["date"], kind="stable")
    days = pd.to_datetime(ordered["date"]).dt.normalize().to_numpy()
    target = len(ordered) - max(1, int(round(len(ordered) * test_fraction)))
    # Candidate cuts: positions where a new day starts (train = rows before the cut).
    starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
    starts = starts[(starts >= 2) & (starts < len(ordered))]
    if not len(starts):
        raise UserError(f"need more days to split: {len(ordered)} rows on {len(np.unique(days))} day(s)")
    cut = int(starts[np.argmin(np.abs(starts - target))])
    return ordered.iloc[:cut].reset_index(drop=True), ordered.iloc[cut:].reset_index(drop=True)


def kfold_indices(n: int, n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Shuffled k-fold indices inside a training window (the holdout stays untouched)."""
    n_splits = max(2, min(n_splits, n))
    return list(KFold(n_splits=n_splits, shuffle=True, random_state=seed).split(np.arange(n)))


def to_json_safe(values: Iterable[object]) -> list[object]:
    """Plain Python values for JSON metadata."""
    return [v.item() if hasattr(v, "item") else v for v in values]
