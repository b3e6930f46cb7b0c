"""What each dashboard page shows, as plain tables computed from a scored export (``dashboard.results``).

Why apart from the Streamlit code: these are the numbers a person acts on (which rows are flagged, which
supplier went quiet, what the next 30 days hold), so they are tested on real scored exports without a
browser; ``dashboard.app`` only lays them out.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from titans.models.evaluation import FLAGGED_RISK_LEVELS

RISK_ORDER = ("critical", "high", "medium", "low")
# How many days of history the cash-flow page draws before the forecast starts.
HISTORY_DAYS = 90
# A supplier is "regular" when it appears in at least this many distinct months of the export ...
REGULAR_MIN_MONTHS = 3
# ... and "stopped" when its last charge is older than this many of its own typical gaps before the export ends.
STOPPED_GAPS = 2.0
# The reference layout's headers, in order (docs/layouts/titans_reference.yaml): what a corrections file is
# written in, so ``titans monitor labels`` (and ingest) read it with no layout.
REFERENCE_HEADERS = ("Date", "Type", "Description", "Amount", "Category", "Payment Method", "Status", "Reference",
                     "Receipt URL")


def accounts(transactions: pd.DataFrame) -> list[str]:
    """The export's accounts, sorted (the filters' choices)."""
    return sorted(transactions["account_id"].dropna().astype(str).unique().tolist())


def for_accounts(transactions: pd.DataFrame, chosen: Sequence[str] | None) -> pd.DataFrame:
    """Rows of the chosen accounts; all rows when none are chosen."""
    if not chosen:
        return transactions
    return transactions[transactions["account_id"].isin(list(chosen))]


def monthly_flows(transactions: pd.DataFrame) -> pd.DataFrame:
    """Spend (expenses, as positive money) and income per month: the Overview's time series."""
    frame = transactions.assign(month=transactions["date"].dt.to_period("M").dt.to_timestamp())
    money = frame["amount"].abs()
    frame = frame.assign(spend=np.where(frame["type"] == "Expense", money, 0.0),
                         income=np.where(frame["type"] == "Income", money, 0.0))
    flows = frame.groupby("month", sort=True)[["spend", "income"]].sum()
    flows["net"] = flows["income"] - flows["spend"]
    return flows.reset_index()


def category_mix(transactions: pd.DataFrame) -> pd.DataFrame:
    """Expense money per category (the given one, else the model's), largest first, with its share."""
    expenses = transactions[transactions["type"] == "Expense"]
    category = expenses["category_given"] if "category_given" in expenses else pd.Series(None, index=expenses.index)
    if "category_predicted" in expenses:
        category = category.fillna(expenses["category_predicted"])
    mix = (expenses.assign(category=category.fillna("uncategorized"), spend=expenses["amount"].abs())
           .groupby("category")["spend"].agg(["sum", "count"]).rename(columns={"sum": "spend", "count": "rows"})
           .sort_values("spend", ascending=False).reset_index())
    total = mix["spend"].sum()
    mix["share"] = mix["spend"] / total if total else 0.0
    return mix


def top_merchants(transactions: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The merchants the money went to, by expense total."""
    expenses = transactions[transactions["type"] == "Expense"]
    return (expenses.assign(spend=expenses["amount"].abs()).groupby("merchant")
            .agg(spend=("spend", "sum"), rows=("spend", "size"), last_seen=("date", "max"))
            .sort_values("spend", ascending=False).head(n).reset_index())


def factor_list(value: Any) -> list[dict[str, Any]]:
    """An anomaly row's factors (stored as JSON text by ``titans score``) as a list of dicts."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return [{"feature": value}]
    return [f if isinstance(f, dict) else {"feature": str(f)} for f in value]


def factor_text(factors: Iterable[Mapping[str, Any]]) -> str:
    """Factors as one readable line: ``amount_vs_category 2.25 (+3.40)``, strongest first as the model gave them."""
    parts = []
    for factor in factors:
        name = str(factor.get("feature") or factor.get("name") or "?")
        value, push = factor.get("value"), factor.get("contribution")
        text = name if not isinstance(value, int | float) else f"{name} {value:.3g}"
        if isinstance(push, int | float):
            text += f" ({push:+.2f})"
        parts.append(text)
    return "; ".join(parts)


def flagged(transactions: pd.DataFrame, risks: Sequence[str] = FLAGGED_RISK_LEVELS,
            accounts_chosen: Sequence[str] | None = None, start: Any = None, end: Any = None) -> pd.DataFrame:
    """Rows at the chosen risk levels, most suspicious first, with their factors as text (the Anomalies table)."""
    if "risk_level" not in transactions:
        return transactions.iloc[0:0]
    rows = for_accounts(transactions, accounts_chosen)
    rows = rows[rows["risk_level"].isin(list(risks))]
    if start is not None:
        rows = rows[rows["date"] >= pd.Timestamp(start)]
    if end is not None:
        rows = rows[rows["date"] <= pd.Timestamp(end)]
    rows = rows.sort_values(["anomaly_score", "date"], ascending=[False, True])
    factors = rows["risk_factors"].map(factor_list) if "risk_factors" in rows else pd.Series([], dtype=object)
    out = rows[[c for c in ("transaction_id", "date", "account_id", "description", "merchant", "amount",
                            "amount_expected", "risk_level", "anomaly_score") if c in rows]].copy()
    out["factors"] = factors.map(factor_text).to_numpy() if len(rows) else []
    return out.reset_index(drop=True)


def risk_counts(transactions: pd.DataFrame) -> dict[str, int]:
    """Scored rows per risk level, in severity order (levels with no rows left out)."""
    if "risk_level" not in transactions:
        return {}
    counts = transactions["risk_level"].value_counts()
    return {level: int(counts[level]) for level in RISK_ORDER if level in counts}


def daily_net(transactions: pd.DataFrame, days: int = HISTORY_DAYS) -> pd.DataFrame:
    """The last ``days`` of net money per day (income minus spend), days without rows at zero: the forecast's past."""
    if transactions.empty:
        return pd.DataFrame({"date": pd.Series(dtype="datetime64[ns]"), "net_amount": pd.Series(dtype=float)})
    net = transactions.groupby(transactions["date"].dt.normalize())["amount"].sum()
    end = net.index.max()
    index = pd.date_range(end - pd.Timedelta(days=days - 1), end, freq="D")
    return net.reindex(index, fill_value=0.0).rename_axis("date").rename("net_amount").reset_index()


def forecast_for(forecast: pd.DataFrame | None, chosen: Sequence[str] | None) -> pd.DataFrame:
    """The 30-day forecast summed over the chosen accounts (bands summed too: a conservative envelope)."""
    if forecast is None or forecast.empty:
        return pd.DataFrame(columns=["date", "net_amount", "lower_80", "upper_80", "lower_95", "upper_95"])
    rows = for_accounts(forecast, chosen)
    columns = ["net_amount", "lower_80", "upper_80", "lower_95", "upper_95"]
    out = rows.assign(date=pd.to_datetime(rows["date"])).groupby("date")[columns].sum().reset_index()
    return out


def review_queue(transactions: pd.DataFrame, n: int = 25) -> pd.DataFrame:
    """Expense rows to review first: the model disagrees with the given category, then the least confident."""
    if "category_predicted" not in transactions:
        return transactions.iloc[0:0]
    rows = transactions[(transactions["type"] == "Expense") & transactions["category_predicted"].notna()]
    disagrees = rows["category_disagrees"].fillna(False).astype(bool) if "category_disagrees" in rows else False
    rows = rows.assign(_disagrees=disagrees).sort_values(["_disagrees", "category_confidence"],
                                                         ascending=[False, True])
    keep = [c for c in ("transaction_id", "date", "account_id", "description", "merchant", "amount",
                        "category_given", "category_predicted", "category_confidence", "category_disagrees")
            if c in rows]
    return rows[keep].head(n).reset_index(drop=True)


def predicted_vs_given(transactions: pd.DataFrame) -> pd.DataFrame:
    """Counts of (given, predicted) pairs where both exist: where the model and the books differ, largest first."""
    if "category_predicted" not in transactions or "category_given" not in transactions:
        return pd.DataFrame(columns=["category_given", "category_predicted", "rows"])
    both = transactions.dropna(subset=["category_given", "category_predicted"])
    return (both.groupby(["category_given", "category_predicted"]).size().rename("rows").reset_index()
            .sort_values(["rows", "category_given"], ascending=[False, True]).reset_index(drop=True))


def corrections_export(transactions: pd.DataFrame, corrections: Mapping[str, str]) -> bytes:
    """The corrected rows as an export in the reference layout: what ``titans monitor labels`` reads.

    Why these columns: a delayed label is joined to what the servers scored by account, day, description
    and amount (``titans.monitoring.scoring_key``), so those are written exactly as the scored rows hold
    them; the category column carries the person's correction. An ``Account ID`` column is written when
    the rows are not all the default account, so a many-account export keeps its keys.
    """
    chosen = transactions[transactions["transaction_id"].isin(list(corrections))]
    if chosen.empty:
        raise ValueError("no corrected rows: choose a category for at least one transaction")
    out = pd.DataFrame({
        "Date": chosen["date"].dt.strftime("%Y-%m-%d"),
        "Type": chosen["type"],
        "Description": chosen["description"],
        "Amount": chosen["amount"].map(lambda a: f"{a:.2f}"),
        "Category": chosen["transaction_id"].map(corrections),
        "Payment Method": chosen.get("payment_method", ""),
        "Status": chosen.get("status", ""),
        "Reference": chosen.get("merchant", ""),
        "Receipt URL": "",
    }, columns=list(REFERENCE_HEADERS))
    if set(chosen["account_id"].astype(str)) != {"acct_default"}:
        out["Account ID"] = chosen["account_id"].to_numpy()
    buffer = io.StringIO()
    out.to_csv(buffer, index=False)
    return buffer.getvalue().encode("utf-8")


def next_merchants(recommendations: pd.DataFrame | None, chosen: Sequence[str] | None) -> pd.DataFrame:
    """The recommender's likely next merchants per account, in rank order."""
    if recommendations is None or recommendations.empty:
        return pd.DataFrame(columns=["account_id", "rank", "merchant", "category", "score"])
    rows = for_accounts(recommendations, chosen)
    keep = [c for c in ("account_id", "rank", "merchant", "category", "score") if c in rows]
    return rows[keep].sort_values(["account_id", "rank"]).reset_index(drop=True)


def stopped_suppliers(transactions: pd.DataFrame, min_months: int = REGULAR_MIN_MONTHS,
                      gaps: float = STOPPED_GAPS) -> pd.DataFrame:
    """Regular suppliers that stopped appearing: seen in ``min_months`` months, then silent for ``gaps`` gaps.

    A supplier's typical gap is the median number of days between its charges; it counts as stopped
    when the export's last day is more than ``gaps`` such gaps (and at least 31 days) after its last
    charge. Per account: a supplier one account dropped is news even if another still pays it.
    """
    columns = ["account_id", "merchant", "months_seen", "last_seen", "typical_gap_days", "days_silent",
               "usual_amount"]
    expenses = transactions[transactions["type"] == "Expense"]
    if expenses.empty:
        return pd.DataFrame(columns=columns)
    end = expenses["date"].max()
    keys = ["account_id", "merchant"]
    days = (expenses.assign(day=expenses["date"].dt.normalize())[[*keys, "day"]].drop_duplicates()
            .sort_values([*keys, "day"]))
    days["gap"] = days.groupby(keys, sort=False)["day"].diff().dt.days
    per = days.groupby(keys, sort=True).agg(last_seen=("day", "max"), typical_gap_days=("gap", "median"),
                                            n_days=("day", "size"))
    months = expenses.assign(month=expenses["date"].dt.to_period("M"))[[*keys, "month"]].drop_duplicates()
    per["months_seen"] = months.groupby(keys, sort=True).size()
    per["usual_amount"] = expenses.assign(money=expenses["amount"].abs()).groupby(keys, sort=True)["money"].median()
    per["days_silent"] = (end - per["last_seen"]).dt.days
    stopped = per[(per["months_seen"] >= min_months) & (per["n_days"] >= 2)
                  & (per["days_silent"] > np.maximum(gaps * per["typical_gap_days"], 31))]
    return (stopped.reset_index()[columns].astype({"months_seen": int, "days_silent": int, "typical_gap_days": float})
            .sort_values(["days_silent"], ascending=False, kind="stable").reset_index(drop=True))
