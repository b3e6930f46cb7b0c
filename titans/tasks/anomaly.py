"""Task: how unusual a transaction is, its risk level and the factors behind it (``titans.models.anomaly``)."""

from titans.models import anomaly
from titans.tasks.spec import BatchScoring, Gate, Requirements, Serving, Task, Tensor, tensors

TASK = Task(
    name="anomaly",
    order=30,
    summary="anomaly score, risk level and top factors",
    inputs=(*tensors("BYTES", "description", "merchant", "category", "payment_method", "date", "account_id"),
            Tensor("amount", "FP64")),
    outputs=(Tensor("anomaly_score", "FP64"), Tensor("risk_level", "BYTES"), Tensor("top_factors", "BYTES")),
    feature_service=anomaly.SERVICE,
    sample="latest_keep_fraud",  # the classifier keeps every labelled positive (recipe.latest_expenses)
    training_frame=anomaly.training_frame,
    train=anomaly.train,
    primary_metric=("pr_auc", True),
    gated_metrics=(("pr_auc", True),),
    headline_metrics=("pr_auc", "roc_auc", "recall_at_1pct_fpr", "injected_recall", "alert_rate"),
    requirements=Requirements(min_rows=20),
    gate_minimum={"pr_auc": 0.5},
    # One business's export has no fraud labels: catch at least half of the injected anomalies,
    # better than the amount rule at the same alert rate, alerting on at most one in ten ordinary rows.
    unlabelled_gate=Gate("unlabelled", ("injected_recall", True), (("injected_recall", True),),
                         minimum={"injected_recall": 0.5}, maximum={"alert_rate": 0.1}),
    drift_output="anomaly_score",
    reference_predictions=anomaly.reference_scores,
    distribution="class",  # the risk level, under the predicted-class counter
    serving=Serving(observed=(("anomaly_scores", "anomaly_score"), ("risk_levels", "risk_level"),
                              ("classes", "risk_level")), graded_outputs=("anomaly_score", "risk_level")),
    batch=BatchScoring("row", {"anomaly_score": "anomaly_score", "risk_level": "risk_level",
                               "top_factors": "risk_factors"}),
)
