"""A training sample's folder (``titans.models.training_sample``): what a training reads back is what was picked.

Why: the pipeline's trainings read the sample step's folder instead of the clean table, so the rows must come
back with the dtypes and order ``read_clean`` gives (or the models differ from ``titans train --engine spark``),
the whole table's facts exactly, and a sample picked for another cap must be refused, never trained on.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from titans.data.generate import GenerateConfig, write_csv
from titans.data.ingest import ingest, read_clean
from titans.errors import UserError
from titans.models.common import expense_facts, expenses
from titans.models.training_sample import Pick, TrainingSample, read_sample, write_no_sample, write_sample
from titans.train import data_hash

PICK = Pick("latest_keep_fraud", 200_000)


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sample-files")
    write_csv(GenerateConfig(rows=400, accounts=2, small_accounts=0, seed=3), root / "export.csv")
    ingest([root / "export.csv"], root / "data", hold_home=False)
    return root / "data"


def _sample(clean: pd.DataFrame) -> TrainingSample:
    """The latest 150 expenses as a Spark sample hands them over: read_clean's dtypes, a fresh index."""
    rows = expenses(clean)[list(clean.columns)].tail(150).reset_index(drop=True)
    return TrainingSample(clean=rows, data_hash=data_hash(clean), facts=expense_facts(clean, ["category"]),
                          rows=len(clean), picked={"anomaly": len(rows)})


def test_the_rows_and_the_whole_tables_facts_come_back_as_written(clean_dir: Path, tmp_path: Path) -> None:
    clean = read_clean(clean_dir)
    sample = _sample(clean)
    record = write_sample(tmp_path / "sample", sample, {"anomaly": PICK, "cashflow": Pick("none", 0)})
    assert record["sampled_rows"] == 150 < record["rows"] == len(clean)
    got = read_sample(tmp_path / "sample", "anomaly", PICK)
    assert got is not None
    pd.testing.assert_frame_equal(got.clean, sample.clean)  # dtypes, column order, row order
    assert got.facts == sample.facts and got.facts.first is not None
    assert (got.data_hash, got.rows, got.picked) == (sample.data_hash, sample.rows, sample.picked)


def test_a_sample_picked_for_another_cap_or_without_the_task_is_refused(clean_dir: Path, tmp_path: Path) -> None:
    write_sample(tmp_path / "sample", _sample(read_clean(clean_dir)), {"anomaly": PICK})
    with pytest.raises(UserError, match="picked for anomaly with .*'cap': 200000.*'cap': 5000"):
        read_sample(tmp_path / "sample", "anomaly", Pick("latest_keep_fraud", 5_000))
    with pytest.raises(UserError, match="picked for category with None"):
        read_sample(tmp_path / "sample", "category", Pick("latest", 50_000))


def test_a_run_without_a_sample_says_so_and_an_unfinished_step_is_an_error(tmp_path: Path) -> None:
    assert write_no_sample(tmp_path / "none", "pandas") == {"format": 1, "sampled": False, "engine": "pandas"}
    assert read_sample(tmp_path / "none", "anomaly", PICK) is None
    with pytest.raises(UserError, match="no sample.json"):
        read_sample(tmp_path / "empty", "anomaly", PICK)


def test_a_folder_holding_anything_but_a_sample_is_never_overwritten(clean_dir: Path, tmp_path: Path) -> None:
    clean = read_clean(clean_dir)
    before = sorted(p.relative_to(clean_dir) for p in clean_dir.rglob("*"))
    with pytest.raises(UserError, match="not empty and no training sample"):
        write_sample(clean_dir, _sample(clean), {"anomaly": PICK})
    assert sorted(p.relative_to(clean_dir) for p in clean_dir.rglob("*")) == before
    # An earlier sample is replaced whole: the second write's rows, not both.
    write_sample(tmp_path / "sample", _sample(clean), {"anomaly": PICK})
    smaller = TrainingSample(clean=_sample(clean).clean.tail(10).reset_index(drop=True), data_hash="x",
                             facts=expense_facts(clean), rows=len(clean), picked={"anomaly": 10})
    write_sample(tmp_path / "sample", smaller, {"anomaly": PICK})
    got = read_sample(tmp_path / "sample", "anomaly", PICK)
    assert got is not None and len(got.clean) == 10 and got.data_hash == "x"
