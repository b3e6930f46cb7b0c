"""Task ``recommend``: the next merchants for each account, with scores and their categories.

The model is ``titans.models.recommend`` (evaluated by ``titans.models.recommend_eval``); it holds
its interaction state as of its reference day, so the server does no feature lookup. Unknown
accounts are not refused: they are the cold start, answered with popularity.
"""

from collections.abc import Mapping
from typing import Any

from titans.models import recommend, recommend_eval
from titans.tasks.spec import BatchScoring, InputBounds, Requirements, Serving, Task, Tensor


def input_bounds(described: Mapping[str, Any]) -> InputBounds:
    """``k`` up to the merchants the model knows; a look-back of at most ten years."""
    return InputBounds(ranges={"k": (1, int(described.get("max_k") or 1)),
                               "exclude_recent_days": (0, recommend.MAX_EXCLUDE_DAYS)})


TASK = Task(
    name="recommend",
    order=50,
    summary="top-k merchants per account with scores and categories",
    # A batch of accounts; k and exclude_recent_days hold one value for the whole batch.
    inputs=(Tensor("account_id", "BYTES"), Tensor("k", "INT32", (1,)),
            Tensor("exclude_recent_days", "INT32", (1,), optional=True)),
    outputs=(Tensor("merchants", "BYTES", (-1, -1)), Tensor("scores", "FP64", (-1, -1)),
             Tensor("categories", "BYTES", (-1, -1))),
    feature_service=recommend.SERVICE,
    sample="accounts",  # interaction_entities reads every purchase of the accounts it ranks for
    training_frame=recommend.training_frame,
    train=recommend_eval.train_recommend,
    primary_metric=("ndcg_at_10", True),
    gated_metrics=(("recall_at_10", True), ("ndcg_at_10", True)),
    headline_metrics=("recall_at_10", "ndcg_at_10", "new_merchant_recall_at_10"),
    requirements=Requirements(min_rows=50, min_accounts=2),
    drift_output="scores",  # every recommended merchant's score (reference: the top 10 of each account)
    reference_predictions=recommend.reference_scores,
    distribution="class",  # the category of each account's first recommendation
    serving=Serving(stored_features=False, observed=(("classes", "categories"),), input_rules=input_bounds),
    batch=BatchScoring("account", {"merchants": "merchant", "scores": "score", "categories": "category"},
                       params={"k": 5}, table="recommendations"),
)
