"""Task ``cashflow``: an account's daily net cash flow over the next days, with 80% and 95% intervals.

The model is ``titans.models.cashflow``; it forecasts from the history saved with it, so the
server does no feature lookup, and it knows only its own accounts and horizon.
"""

from collections.abc import Mapping
from typing import Any

from titans.models import cashflow
from titans.tasks.spec import BatchScoring, InputBounds, Requirements, Serving, Task, Tensor, tensors

FORECAST_COLUMNS = ("date", "net_amount", "lower_80", "upper_80", "lower_95", "upper_95")
# Forecast horizon bound when a model's metadata does not state its own.
DEFAULT_MAX_HORIZON_DAYS = 90


def input_bounds(described: Mapping[str, Any]) -> InputBounds:
    """Only the accounts the forecaster was saved with, and horizons up to its own maximum."""
    accounts = described.get("accounts")
    return InputBounds(
        categories={"account_id": frozenset(str(a) for a in accounts)} if accounts else {},
        ranges={"horizon_days": (1, int(described.get("max_horizon_days") or DEFAULT_MAX_HORIZON_DAYS))},
    )


TASK = Task(
    name="cashflow",
    order=40,
    summary="daily net cash flow per account with 80% and 95% intervals",
    inputs=(Tensor("account_id", "BYTES", (1,)), Tensor("horizon_days", "INT32", (1,))),
    outputs=(Tensor("date", "BYTES"), *tensors("FP64", "net_amount", "lower_80", "upper_80", "lower_95", "upper_95")),
    feature_service=cashflow.SERVICE,
    sample="none",  # the daily series comes from the feature store
    training_frame=cashflow.training_frame,
    train=cashflow.train,
    primary_metric=(cashflow.PRIMARY_METRIC, False),
    gated_metrics=cashflow.GATED_METRICS,
    headline_metrics=("mae", "mase", "coverage_80", "coverage_95"),
    requirements=Requirements(min_days=cashflow.FLOOR_TRAIN_DAYS + 2 * cashflow.MIN_HORIZON_DAYS),
    gate_maximum={"mase": 1.0},
    drift_output="net_amount",
    reference_predictions=cashflow.reference_forecast,
    distribution="none",
    serving=Serving(stored_features=False, input_rules=input_bounds),
    batch=BatchScoring("account", {name: name for name in FORECAST_COLUMNS}, params={"horizon_days": 30},
                       table="forecast"),
)
