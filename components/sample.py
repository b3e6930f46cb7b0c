"""Pipeline step: the rows every task's training takes, picked in Spark, so no training pod reads the whole table.

Why a step of its own: with ``engine=spark`` the clean table may be larger than a training pod can hold. One
Spark job (``titans data sample``, what ``titans train --engine spark`` runs before it fits) hashes the table,
checks its readiness facts and picks each task's rows under its cap; the trainings, one pod each, read that
sample (``titans.models.training_sample``). With ``engine=pandas`` it only says "no sample" and the trainings
read the clean table as they always did: no Spark session, nothing read.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE)
def sample_training_data(clean_data: Input[Dataset], task_names: list[str], titans_home: str,
                         training_sample: Output[Dataset], engine: str = "pandas", spark_master: str = "local[*]",
                         run_id: str = "") -> str:
    """Sample ``task_names``' training rows from the clean table into the ``training_sample`` Dataset.

    ``engine``: spark runs a SparkApplication on a cluster, or the same command in process on ``spark_master``
    under kfp.local (``titans.spark_step``); anything else writes a Dataset saying there is no sample. Returns
    the sample's summary (rows of the table, rows sampled, each task's pick) as JSON.
    """
    import json
    import os
    from pathlib import Path

    if titans_home:
        os.environ["TITANS_HOME"] = titans_home
    from titans.models.training_sample import sample_arguments, write_no_sample

    out = Path(training_sample.path)
    if engine != "spark":
        summary = write_no_sample(out, engine)
    else:
        from titans.spark_step import move_contents, run_on_spark, staged_input

        # On a cluster the driver sees the data claim, not this pod's copy of the artifact: staged there.
        with staged_input(Path(clean_data.path), step="sample", run_id=run_id,
                          local_dir=out.parent / "spark-sample") as (data, stage):
            summary = run_on_spark(sample_arguments(data, stage / "sample", task_names), step="sample",
                                   run_id=run_id, work_dir=stage, spark_master=spark_master)
            move_contents(stage / "sample", out)
        summary["out"] = str(out)
    training_sample.metadata.update({"engine": engine, "sampled_rows": summary.get("sampled_rows", 0),
                                     "table_rows": summary.get("rows"), "data_hash": summary.get("data_hash")})
    return json.dumps(summary, default=str)
