"""The feature catalogue: view names, column names, dtypes and serving defaults in one place.

Why a plain-Python catalogue: the Feast definitions (``feature_repo/``), the offline-table
builder (``history.py``) and the client (``store.py``) must agree on every column name and
type, and on the value a model sees when an entity is unknown. Keeping that agreement here,
free of Feast imports, lets a test check all three against one list and lets the model code
read the feature names without loading a feature store.

Dtype names are ``"int64"``, ``"float64"`` and ``"string"``; ``feature_repo`` maps them to
Feast types.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from titans.errors import UserError

# Join keys of the entities (the names users put in their entity frames).
TRANSACTION_KEY = "transaction_id"
MERCHANT_KEY = "merchant"
ACCOUNT_KEY = "account_id"
CATEGORY_KEY = "category"
EVENT_TIMESTAMP = "event_timestamp"

# Request-time inputs the on-demand views read (typed as the V2 request carries them).
REQUEST_AMOUNT = "amount"
REQUEST_DATE = "date"

# Trailing windows of the merchant history, in days.
MERCHANT_WINDOWS = (7, 30, 90)

# Every stored snapshot table gets a row at least this often per known entity, and the
# feature views use the same span as their TTL. Why: Feast's point-in-time join scans every
# snapshot of an entity older than the entity row unless a TTL bounds it; a heartbeat plus an
# equal TTL keeps the join linear while "no snapshot within the TTL" still means exactly
# "never seen before t".
SNAPSHOT_HEARTBEAT = timedelta(days=7)

# The value a model sees for a merchant, account or category the store has never seen.
UNSEEN_CATEGORY = "none"
NEVER_SEEN_DAYS = -1


@dataclass(frozen=True)
class Column:
    """One feature column: name, dtype name and the default for unknown entities."""

    name: str
    dtype: str
    default: float | int | str
    doc: str


@dataclass(frozen=True)
class View:
    """A feature view (stored or on-demand) as the rest of the code sees it."""

    name: str
    columns: tuple[Column, ...]
    entity_keys: tuple[str, ...] = ()
    request_inputs: tuple[str, ...] = ()
    on_demand: bool = False

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _merchant_window_columns() -> tuple[Column, ...]:
    cols: list[Column] = []
    for days in MERCHANT_WINDOWS:
        cols += [
            Column(f"merchant_txn_count_{days}d", "int64", 0, f"transactions in the {days} days before t"),
            Column(f"merchant_amount_mean_{days}d", "float64", 0.0, "mean |amount| in the window"),
            Column(f"merchant_amount_std_{days}d", "float64", 0.0, "sample std of |amount|; 0 below 2 rows"),
            Column(f"merchant_amount_max_{days}d", "float64", 0.0, "max |amount| in the window"),
        ]
    return tuple(cols)


TRANSACTION_AMOUNT = View(
    name="transaction_amount",
    on_demand=True,
    request_inputs=(REQUEST_AMOUNT,),
    columns=(
        Column("amount_abs", "float64", 0.0, "|amount|"),
        Column("amount_log", "float64", 0.0, "log1p(|amount|)"),
        Column("amount_sign", "int64", 0, "-1 expense, 1 income, 0 zero"),
    ),
)

TRANSACTION_CALENDAR = View(
    name="transaction_calendar",
    on_demand=True,
    request_inputs=(REQUEST_DATE,),
    columns=(
        Column("weekday", "int64", 0, "0 = Monday"),
        Column("day_of_month", "int64", 1, "1..31"),
        Column("month", "int64", 1, "1..12"),
        Column("is_month_start", "int64", 0, "1 on the first day of the month"),
        Column("is_month_end", "int64", 0, "1 on the last day of the month"),
        Column("weekday_sin", "float64", 0.0, "sin(2 pi weekday / 7)"),
        Column("weekday_cos", "float64", 1.0, "cos(2 pi weekday / 7)"),
        Column("day_of_month_sin", "float64", 0.0, "sin(2 pi (day-1) / days in month)"),
        Column("day_of_month_cos", "float64", 1.0, "cos(2 pi (day-1) / days in month)"),
        Column("month_sin", "float64", 0.0, "sin(2 pi (month-1) / 12)"),
        Column("month_cos", "float64", 1.0, "cos(2 pi (month-1) / 12)"),
    ),
)

MERCHANT_HISTORY = View(
    name="merchant_history",
    entity_keys=(MERCHANT_KEY,),
    columns=_merchant_window_columns()
    + (
        Column("merchant_last_seen_epoch_day", "int64", NEVER_SEEN_DAYS, "last day seen before t (days since 1970)"),
        Column("merchant_dominant_category_90d", "string", UNSEEN_CATEGORY, "most frequent category, 90 days"),
        Column("merchant_dominant_category_share_90d", "float64", 0.0, "its share of the 90-day rows"),
    ),
)

MERCHANT_RECENCY = View(
    name="merchant_recency",
    on_demand=True,
    entity_keys=(MERCHANT_KEY,),
    request_inputs=(REQUEST_DATE,),
    columns=(Column("merchant_days_since_last_seen", "int64", NEVER_SEEN_DAYS, "days from the last day seen to t"),),
)

MERCHANT_FREQUENCY = View(
    name="merchant_frequency",
    entity_keys=(MERCHANT_KEY,),
    columns=(
        Column("merchant_txn_count_all", "int64", 0, "all transactions before t"),
        Column("merchant_distinct_categories_all", "int64", 0, "distinct categories before t"),
        Column("merchant_amount_mean_all", "float64", 0.0, "mean |amount| before t"),
    ),
)

CATEGORY_FREQUENCY = View(
    name="category_frequency",
    entity_keys=(CATEGORY_KEY,),
    columns=(
        Column("category_txn_count_all", "int64", 0, "all transactions of the category before t"),
        Column("category_txn_share_all", "float64", 0.0, "its share of all transactions before t"),
        Column("category_amount_mean_all", "float64", 0.0, "mean |amount| before t"),
        Column("category_amount_std_all", "float64", 0.0, "sample std of |amount| before t"),
    ),
)

ACCOUNT_CASHFLOW = View(
    name="account_cashflow",
    entity_keys=(ACCOUNT_KEY,),
    columns=(
        Column("account_inflow_1d", "float64", 0.0, "income on the day before t"),
        Column("account_outflow_1d", "float64", 0.0, "spend (positive) on the day before t"),
        Column("account_net_1d", "float64", 0.0, "inflow - outflow on the day before t"),
        Column("account_net_mean_7d", "float64", 0.0, "mean daily net, 7 days before t"),
        Column("account_net_mean_30d", "float64", 0.0, "mean daily net, 30 days before t"),
        Column("account_inflow_mean_30d", "float64", 0.0, "mean daily inflow, 30 days before t"),
        Column("account_outflow_mean_30d", "float64", 0.0, "mean daily outflow, 30 days before t"),
    ),
)

# The account x merchant interactions the recommender reads. Why a log-space weight: a
# recency-weighted sum decays every day, but sum_i w_i * exp((d_i - ORIGIN) / DECAY) does not
# change between purchases, so a snapshot stays exact until the next one; a reader at day T
# gets the decayed weight as exp(value - (T - ORIGIN) / DECAY).
INTERACTION_DECAY_DAYS = 60.0
INTERACTION_ORIGIN_EPOCH_DAY = 10_957  # 2000-01-01; 0.0 (the default) then means "no purchase before t"
INTERACTION_WINDOW_DAYS = 90

ACCOUNT_MERCHANT = View(
    name="account_merchant",
    entity_keys=(ACCOUNT_KEY, MERCHANT_KEY),
    columns=(
        Column("account_merchant_txn_count_all", "int64", 0, "purchases of the account at the merchant before t"),
        Column(f"account_merchant_txn_count_{INTERACTION_WINDOW_DAYS}d", "int64", 0,
               f"purchases in the {INTERACTION_WINDOW_DAYS} days before t"),
        Column("account_merchant_amount_sum_all", "float64", 0.0, "sum of |amount| of those purchases"),
        Column("account_merchant_weight_log", "float64", 0.0,
               "log sum over purchases of (1 + log1p|amount|) * exp((day - 2000-01-01) / 60 days)"),
        Column("account_merchant_last_seen_epoch_day", "int64", NEVER_SEEN_DAYS, "last purchase day before t"),
        Column("account_merchant_first_seen_epoch_day", "int64", NEVER_SEEN_DAYS, "first purchase day before t"),
    ),
)

STORED_VIEWS: tuple[View, ...] = (MERCHANT_HISTORY, MERCHANT_FREQUENCY, CATEGORY_FREQUENCY, ACCOUNT_CASHFLOW,
                                  ACCOUNT_MERCHANT)
ON_DEMAND_VIEWS: tuple[View, ...] = (TRANSACTION_AMOUNT, TRANSACTION_CALENDAR, MERCHANT_RECENCY)
VIEWS: dict[str, View] = {v.name: v for v in STORED_VIEWS + ON_DEMAND_VIEWS}

# Which views each model's feature service serves. The category model must not see
# category statistics keyed by its own label; the amount model gets no amount-derived
# request features (amount is what it predicts).
SERVICES: dict[str, tuple[str, ...]] = {
    "category_service": (
        "transaction_amount",
        "transaction_calendar",
        "merchant_history",
        "merchant_recency",
        "merchant_frequency",
    ),
    "amount_service": (
        "transaction_calendar",
        "merchant_history",
        "merchant_recency",
        "merchant_frequency",
        "category_frequency",
    ),
    "anomaly_service": (
        "transaction_amount",
        "transaction_calendar",
        "merchant_history",
        "merchant_recency",
        "merchant_frequency",
        "category_frequency",
        "account_cashflow",
    ),
    "cashflow_service": ("transaction_calendar", "account_cashflow"),
    "recommend_service": ("account_merchant",),
}

# Stored views computed from the clean table, plus the forecaster's daily series.
ACCOUNT_DAILY_TABLE = "account_daily_cashflow"


def service_views(service: str) -> list[View]:
    """The views of one feature service, in catalogue order."""
    if service not in SERVICES:
        raise UserError(f"unknown feature service {service!r}; expected one of {sorted(SERVICES)}")
    return [VIEWS[name] for name in SERVICES[service]]


def service_columns(service: str) -> list[Column]:
    """Feature columns a service returns, in a stable order."""
    return [col for view in service_views(service) for col in view.columns]


def service_inputs(service: str) -> list[str]:
    """Entity keys and request inputs an entity frame must carry for ``service``."""
    names: list[str] = []
    for view in service_views(service):
        for name in view.entity_keys + view.request_inputs:
            if name not in names:
                names.append(name)
    return names
