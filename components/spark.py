"""Pipeline exit step: delete the run's SparkApplications, whatever became of the steps that made them."""

from kfp import dsl

from components.image import IMAGE


@dsl.component(base_image=IMAGE)
def delete_spark_applications(run_id: str) -> str:
    """Delete every SparkApplication labelled with ``run_id``; nothing to do off a cluster (kfp.local).

    Why: a step deletes its application in a ``finally``, but a step pod that is killed (OOM, node loss, a
    cancelled run) runs no ``finally``; KFP v2 has no resource op whose lifetime would do it
    (kubeflow/pipelines#9703). Returns the names deleted, as JSON.
    """
    import json

    from titans.spark_step import delete_run_applications

    return json.dumps(delete_run_applications(run_id))
