"""Task: the expected amount of a purchase, with an 80% interval (``titans.models.amount``)."""

from titans.models import amount
from titans.tasks.spec import BatchScoring, Requirements, Serving, Task, tensors

TASK = Task(
    name="amount",
    order=20,
    summary="expected spend with an 80% interval",
    inputs=tensors("BYTES", "description", "merchant", "category", "payment_method", "date", "account_id"),
    outputs=tensors("FP64", "amount", "amount_lower", "amount_upper"),
    feature_service=amount.SERVICE,
    training_frame=amount.training_frame,
    train=amount.train,
    primary_metric=("mae", False),
    gated_metrics=amount.GATED_METRICS,
    headline_metrics=("mae", "rmse", "interval_coverage"),
    requirements=Requirements(min_rows=20),
    drift_output="amount",
    distribution="histogram",
    serving=Serving(observed=(("amounts", "amount"),)),
    batch=BatchScoring("row", {"amount": "amount_expected", "amount_lower": "amount_lower",
                               "amount_upper": "amount_upper"}),
)
