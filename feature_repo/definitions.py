"""Feast objects of Titans Finance: entities, sources, feature views and one service per model.

Why generated from ``titans.features.spec``: the offline builder, the client's defaults and
these definitions must name and type every column identically; the catalogue is the single
list, this file only turns it into Feast objects.

Stored views read parquet snapshots written by ``titans features build`` under
``$TITANS_HOME/features/offline`` (or ``TITANS_FEATURE_OFFLINE_URI``); each row summarises
only days strictly before its ``event_timestamp`` (see ``titans.features.history``).
Request-time views are on-demand views whose bodies call ``titans.features.transaction``,
the same functions the training path runs.
"""

from __future__ import annotations

from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, RequestSource, ValueType
from feast.data_source import DataSource
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64, String, UnixTimestamp

from titans.features import paths, spec
from titans.features.paths import table_uri

# The Feast CLI imports this file as ``definitions``; titans loads it under its own prefix after exporting
# TITANS_HOME (titans.features.store.load_repo_contents). Under the CLI the tables come from the home
# the embedded feature_store.yaml names, so nothing needs exporting first.
if not __name__.startswith(paths.TITANS_MODULE_PREFIX):
    paths.use_cli_home(Path(__file__).resolve().parent)

_FEAST_TYPES = {"int64": Int64, "float64": Float64, "string": String}


def _fields(view: spec.View) -> list[Field]:
    # On-demand outputs are checked against fields inferred from a trial run, which carry
    # no description; Field equality includes it, so only stored views get one.
    return [
        Field(name=c.name, dtype=_FEAST_TYPES[c.dtype], description="" if view.on_demand else c.doc)
        for c in view.columns
    ]


transaction = Entity(
    name="transaction",
    join_keys=[spec.TRANSACTION_KEY],
    value_type=ValueType.STRING,
    description="One row of the clean table; the row identity of every entity frame.",
)
merchant = Entity(
    name="merchant",
    join_keys=[spec.MERCHANT_KEY],
    value_type=ValueType.STRING,
    description="Counterparty, normalised from the export's Reference.",
)
account = Entity(
    name="account",
    join_keys=[spec.ACCOUNT_KEY],
    value_type=ValueType.STRING,
    description="The account a transaction belongs to.",
)
category = Entity(
    name="category",
    join_keys=[spec.CATEGORY_KEY],
    value_type=ValueType.STRING,
    description="Spending category (snake_case); keys the category frequency view.",
)


# The offline store these definitions are applied with (titans says which; under the Feast CLI, the selected yaml).
# Feast's Spark offline store reads only SparkSource and the others only FileSource, so the one list of views
# below gets the source class of the store; both read the same parquet tables the builder writes.
_OFFLINE_STORE = paths.definitions_store_type(Path(__file__).resolve().parent)


def _source(view: spec.View) -> DataSource:
    name, doc = f"{view.name}_source", f"Point-in-time snapshots of {view.name} written by `titans features build`."
    if _OFFLINE_STORE == "spark":
        return SparkSource(name=name, path=paths.spark_path(table_uri(view.name)), file_format="parquet",
                           timestamp_field=spec.EVENT_TIMESTAMP, description=doc)
    return FileSource(name=name, path=table_uri(view.name), timestamp_field=spec.EVENT_TIMESTAMP, description=doc)


def _stored_view(view: spec.View, *entities: Entity) -> FeatureView:
    source = _source(view)
    return FeatureView(
        name=view.name,
        entities=list(entities),
        # Equal to the builder's heartbeat: every known entity has a snapshot at most this
        # old, so the TTL only bounds the join; it never hides a known entity.
        ttl=spec.SNAPSHOT_HEARTBEAT,
        schema=_fields(view),
        source=source,
        online=True,
        tags={"owner": "features", "rule": "strictly-before-day"},
    )


merchant_history = _stored_view(spec.MERCHANT_HISTORY, merchant)
merchant_frequency = _stored_view(spec.MERCHANT_FREQUENCY, merchant)
category_frequency = _stored_view(spec.CATEGORY_FREQUENCY, category)
account_cashflow = _stored_view(spec.ACCOUNT_CASHFLOW, account)
account_merchant = _stored_view(spec.ACCOUNT_MERCHANT, account, merchant)

# Two request sources, so a service asks only for what its model's request carries (the
# amount model is served without an amount).
amount_request = RequestSource(name="amount_request", schema=[Field(name=spec.REQUEST_AMOUNT, dtype=Float64)])
date_request = RequestSource(name="date_request", schema=[Field(name=spec.REQUEST_DATE, dtype=UnixTimestamp)])


@on_demand_feature_view(
    name=spec.TRANSACTION_AMOUNT.name,
    sources=[amount_request],
    schema=_fields(spec.TRANSACTION_AMOUNT),
    mode="python",
    description="|amount|, log and sign, computed per request.",
)
def transaction_amount(inputs: dict[str, list]) -> dict[str, list]:
    # Imported in the body: Feast stores this function by value, and the import then
    # resolves in whichever process loads the registry (trainer or server).
    from titans.features.transaction import amount_udf

    return amount_udf(inputs)


@on_demand_feature_view(
    name=spec.TRANSACTION_CALENDAR.name,
    sources=[date_request],
    schema=_fields(spec.TRANSACTION_CALENDAR),
    mode="python",
    description="Weekday, day of month, month start/end and cyclical encodings of the date.",
)
def transaction_calendar(inputs: dict[str, list]) -> dict[str, list]:
    from titans.features.transaction import calendar_udf

    return calendar_udf(inputs)


@on_demand_feature_view(
    name=spec.MERCHANT_RECENCY.name,
    sources=[merchant_history[["merchant_last_seen_epoch_day"]], date_request],
    schema=_fields(spec.MERCHANT_RECENCY),
    mode="python",
    description="Days since the merchant was last seen, from the stored last-seen day.",
)
def merchant_recency(inputs: dict[str, list]) -> dict[str, list]:
    from titans.features.transaction import recency_udf

    return recency_udf(inputs)


_VIEWS = {
    "transaction_amount": transaction_amount,
    "transaction_calendar": transaction_calendar,
    "merchant_history": merchant_history,
    "merchant_recency": merchant_recency,
    "merchant_frequency": merchant_frequency,
    "category_frequency": category_frequency,
    "account_cashflow": account_cashflow,
    "account_merchant": account_merchant,
}

category_service = FeatureService(
    name="category_service",
    features=[_VIEWS[v] for v in spec.SERVICES["category_service"]],
    description="Features of the category classifier.",
)
amount_service = FeatureService(
    name="amount_service",
    features=[_VIEWS[v] for v in spec.SERVICES["amount_service"]],
    description="Features of the amount regressor (no amount-derived request features).",
)
anomaly_service = FeatureService(
    name="anomaly_service",
    features=[_VIEWS[v] for v in spec.SERVICES["anomaly_service"]],
    description="Features of the anomaly/fraud detector.",
)
cashflow_service = FeatureService(
    name="cashflow_service",
    features=[_VIEWS[v] for v in spec.SERVICES["cashflow_service"]],
    description="Features of the cash-flow forecaster.",
)
recommend_service = FeatureService(
    name="recommend_service",
    features=[_VIEWS[v] for v in spec.SERVICES["recommend_service"]],
    description="Account x merchant interactions of the merchant recommender.",
)
