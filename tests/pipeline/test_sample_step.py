"""The pipeline's sample step with ``engine=pandas``: a Dataset saying "no sample", and no Spark, no scikit-learn.

Its command (``titans data sample``) samples only with Spark and says so in one line otherwise.

Why: the step is in every compiled run, so a pandas run (the default) must pay only a small process for it:
pyspark, the Spark step's module and the model stack stay unloaded, and the trainings then read the clean
table as before (tests/spark/test_pipeline_training_sample.py runs both engines through kfp.local).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from titans.cli import main

REPO = Path(__file__).resolve().parents[2]
STEP = """
import json, sys
from kfp.dsl import Dataset
from components.sample import sample_training_data

out = sample_training_data.python_func(
    clean_data=Dataset(name="clean_data", uri=sys.argv[1]), task_names=["category", "anomaly"],
    titans_home=sys.argv[2], training_sample=Dataset(name="training_sample", uri=sys.argv[3]), engine="pandas")
print(json.dumps({"output": json.loads(out),
                  "loaded": sorted(m for m in ("pyspark", "titans.spark_step", "sklearn") if m in sys.modules)}))
"""


def test_with_pandas_the_step_writes_no_sample_and_loads_no_spark(tmp_path: Path) -> None:
    missing = tmp_path / "no-clean-table"  # never read: a pandas step does not open the clean table
    done = subprocess.run([sys.executable, "-c", STEP, str(missing), str(tmp_path / "home"), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    assert result["output"] == {"format": 1, "sampled": False, "engine": "pandas"}
    assert json.loads((tmp_path / "out" / "sample.json").read_text()) == result["output"]


def test_the_sample_command_refuses_the_pandas_engine_in_one_line(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Only Spark samples: with pandas, ``titans train`` reads the table itself, so there is nothing to write."""
    assert main(["data", "sample", "--out", str(tmp_path / "sample"), "--engine", "pandas"]) == 2
    assert "give --engine spark" in capsys.readouterr().err
    assert not (tmp_path / "sample").exists()
