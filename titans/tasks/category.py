"""Task: the category of a transaction, with its probability and the top three (``titans.models.category``)."""

from titans.models import category
from titans.tasks.spec import BatchScoring, Requirements, Serving, Task, Tensor, tensors

TASK = Task(
    name="category",
    order=10,
    summary="transaction category with probability and top-3",
    inputs=(*tensors("BYTES", "description", "merchant"), Tensor("amount", "FP64"),
            *tensors("BYTES", "date", "payment_method", "account_id")),
    outputs=(Tensor("category", "BYTES"), Tensor("probability", "FP64"),
             Tensor("top_k_categories", "BYTES", (-1, 3)), Tensor("top_k_probabilities", "FP64", (-1, 3))),
    feature_service=category.SERVICE,
    training_frame=category.training_frame,
    train=category.train,
    primary_metric=("macro_f1", True),
    gated_metrics=(("accuracy", True), ("macro_f1", True)),
    headline_metrics=("accuracy", "macro_f1"),
    requirements=Requirements(min_rows=20, labels=("category",)),
    gate_minimum={"accuracy": 0.6, "macro_f1": 0.2},
    drift_output="category",
    prediction_kind="categorical",
    distribution="class",
    # confidence: the served (calibrated) top-class probability, summed for the estimated live accuracy.
    serving=Serving(observed=(("classes", "category"), ("confidence", "probability")),
                    graded_outputs=("category", "probability")),
    batch=BatchScoring("row", {"category": "category_predicted", "probability": "category_confidence"},
                       fills={"category": "category"}),
    max_train_rows=50_000,  # bench/results/learning-curve.md: the holdout metric is flat beyond it
)
