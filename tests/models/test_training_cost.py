"""Training-cost shortcuts that must not change the model: TF-IDF from distinct texts, CV on a sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion

from titans.models.common import expenses, text_of


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ingested generated export (repeating descriptions, typos, card descriptors)."""
    from titans.data.generate import GenerateConfig, write_csv
    from titans.data.ingest import ingest

    tmp = tmp_path_factory.mktemp("cost")
    write_csv(GenerateConfig(rows=3000, accounts=2, seed=11), tmp / "raw.csv")
    ingest([tmp / "raw.csv"], tmp / "data")
    return tmp / "data"


@pytest.fixture(scope="module")
def rows(data_dir: Path) -> pd.DataFrame:
    """Generated expenses from the clean table."""
    from titans.data.ingest import read_clean

    return expenses(read_clean(data_dir))


def test_clean_table_order_comes_from_arrow_and_is_not_sorted_twice(data_dir: Path) -> None:
    """read_clean sorts in Arrow and expenses() skips a sort of ordered rows: same frames as pandas' sorts."""
    import pyarrow.parquet as pq

    from titans.data.ingest import read_clean

    clean = read_clean(data_dir)
    by_pandas = pq.read_table(data_dir / "clean", partitioning="hive").to_pandas()[list(clean.columns)]
    by_pandas["is_fraud"] = by_pandas["is_fraud"].astype("Int8")
    by_pandas = by_pandas.sort_values(["date", "transaction_id"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(clean, by_pandas)
    # Rows out of order (another caller's frame) are still sorted: the shortcut only skips a no-op.
    shuffled = clean.sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(expenses(shuffled), expenses(clean))
    assert expenses(clean)["date"].is_monotonic_increasing


def _union() -> FeatureUnion:
    return FeatureUnion([("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
                         ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True))])


def test_tfidf_fitted_on_distinct_texts_equals_the_fit_on_every_row(rows: pd.DataFrame) -> None:
    from titans.models.amount import fit_as_on_rows

    text = text_of(rows)
    assert text.nunique() < len(text) / 2  # the shortcut only matters, and is only tested, with repeats
    on_rows, on_distinct = _union().fit(text), fit_as_on_rows(_union(), text)
    for (_, a), (_, b) in zip(on_rows.transformer_list, on_distinct.transformer_list, strict=True):
        assert a.vocabulary_ == b.vocabulary_
        np.testing.assert_allclose(b.idf_, a.idf_, rtol=0, atol=1e-12)
    probe = pd.concat([text.head(200), pd.Series(["office365 subscription", "unseen words entirely"])])
    assert abs(on_rows.transform(probe) - on_distinct.transform(probe)).max() < 1e-12


def test_category_candidates_compete_on_a_sample_and_a_single_one_skips_cv(rows: pd.DataFrame) -> None:
    from titans.models.category import CategoryModel

    model = CategoryModel(cv_folds=2, cv_max_rows=600, candidates=("logreg_c10", "logreg_c30")).fit(
        rows, rows["category"])
    assert model.cv_rows == 600 and set(model.cv_scores) == {"logreg_c10", "logreg_c30"}
    assert model.chosen == max(model.cv_scores, key=lambda n: (model.cv_scores[n], n == "logreg_c10"))
    # The winner is refitted on every row, not on the sample.
    assert model.pipeline.named_steps["features"].n_features_in_ > 0
    assert set(model.classes) == set(rows["category"].astype(str))
    single = CategoryModel(cv_folds=2, candidates=(model.chosen,)).fit(rows, rows["category"])
    assert single.cv_scores == {} and single.cv_rows == 0 and single.chosen == model.chosen
    np.testing.assert_allclose(single.predict_proba(rows.head(50)).to_numpy(),
                               model.predict_proba(rows.head(50)).to_numpy(), atol=1e-9)


def test_fits_in_worker_processes_equal_the_fits_in_process(rows: pd.DataFrame,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """CV folds and the holdout/final pair run in processes (titans.models.parallel): same scores, same models."""
    from functools import partial

    from titans.models.amount import AmountModel
    from titans.models.category import CategoryModel
    from titans.models.parallel import run_all, train_workers
    from titans.models.recipe import fitted as _fitted

    monkeypatch.setattr("titans.models.parallel.IN_PROCESS_ROWS", 0)  # these few rows would otherwise stay here

    def compete(workers: str) -> CategoryModel:
        monkeypatch.setenv("TITANS_TRAIN_WORKERS", workers)
        assert train_workers() == int(workers)
        model = CategoryModel(cv_folds=3, cv_max_rows=900, candidates=("logreg_c10", "xgboost"))
        model.select(rows, rows["category"])
        return model

    alone, pooled = compete("1"), compete("2")
    assert pooled.cv_scores == alone.cv_scores and pooled.chosen == alone.chosen and pooled.cv_rows == 900
    assert set(pooled.cv_scores) == {"logreg_c10", "xgboost"} and 0 < min(pooled.cv_scores.values()) <= 1

    half = rows.iloc[: len(rows) // 2]
    calls = [partial(_fitted, AmountModel(cv_folds=2, n_estimators=40), half, half["spend"]),
             partial(_fitted, AmountModel(cv_folds=2, n_estimators=40), rows, rows["spend"])]
    in_process, in_workers = run_all(calls, workers=1), run_all(calls, workers=2)
    probe = rows.tail(300)
    for a, b in zip(in_process, in_workers, strict=True):
        np.testing.assert_allclose(b.predict(probe)["amount"], a.predict(probe)["amount"], rtol=0, atol=1e-9)
    # The two calls really are different fits (the half-window model is not the all-rows one).
    assert not np.allclose(in_process[0].predict(probe)["amount"], in_process[1].predict(probe)["amount"])


def test_small_fits_stay_in_this_process_and_large_ones_go_to_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pool's start costs more than a small export's fits: under IN_PROCESS_ROWS rows no worker is started."""
    import os
    from functools import partial

    from titans.models.parallel import IN_PROCESS_ROWS, run_all

    monkeypatch.setenv("TITANS_TRAIN_WORKERS", "2")
    calls = [partial(os.getpid), partial(os.getpid)]
    assert run_all(calls, rows=IN_PROCESS_ROWS - 1) == [os.getpid()] * 2
    assert os.getpid() not in run_all(calls, rows=IN_PROCESS_ROWS)


def test_worker_count_is_refused_when_not_a_positive_whole_number(monkeypatch: pytest.MonkeyPatch) -> None:
    from titans.models.parallel import train_workers

    for bad in ("two", "0", "-1"):
        monkeypatch.setenv("TITANS_TRAIN_WORKERS", bad)
        with pytest.raises(ValueError, match="TITANS_TRAIN_WORKERS"):
            train_workers()
    monkeypatch.delenv("TITANS_TRAIN_WORKERS")
    assert train_workers() >= 1
