"""The serving fast path gives the reference path's answers, on the session's real trained models.

Why these tests: the models' array paths (``array_predictor()``, ``titans.models.arrays``)
answer from numpy columns instead of the DataFrame route the model objects take
(``model_dir.predict``), for speed. That is only worth having if
nothing changes: same classes and risk levels, same factors, scores equal to 1e-9, and the
same number in every design column for every row. The rows are the session's generated
expenses (the holdout for predictions, every row for design columns); stored features come
from the session's real Feast online store, as the server reads them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from serving.enrich import StoredFeatures
from serving.feature_cache import CachedStoredFeatures
from serving.models import feature_service
from titans import model_dir
from titans.features.transaction import _epoch_day_of, epoch_days
from titans.models.amount import AmountFast
from titans.models.anomaly import AnomalyFast
from titans.models.arrays import FlatForest, TfidfRows, array_path
from titans.models.category import CategoryFast
from titans.models.common import expenses, request_frame, time_split

TRANSACTION_TASKS = ("category", "amount", "anomaly")


@pytest.fixture(scope="module")
def expense_rows(serving_home: Any) -> pd.DataFrame:
    """Every expense of the session's clean table, time-ordered (what training sees)."""
    from titans.data.ingest import read_clean

    return expenses(read_clean(serving_home.home / "data"))


def request_columns(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """The rows as a server's validated V2 columns: text as object arrays of str, ISO dates."""
    text = ("description", "merchant", "payment_method", "account_id", "category")
    columns = {name: rows[name].astype(str).to_numpy(dtype=object) for name in text}
    columns["amount"] = rows["amount"].to_numpy(dtype=np.float64)
    columns["date"] = pd.to_datetime(rows["date"]).dt.strftime("%Y-%m-%d").to_numpy(dtype=object)
    return columns


@pytest.fixture(scope="module")
def loaded(trained_models: Any) -> dict[str, Any]:
    return {task: model_dir.load(trained_models / task) for task in (*TRANSACTION_TASKS, "cashflow")}


def served_columns(task: str, model: Any, rows: pd.DataFrame, feature_client: Any) -> dict[str, np.ndarray]:
    """Request columns of ``task`` plus its stored features from the real online store."""
    columns = {name: values for name, values in request_columns(rows).items() if name in model.input_names}
    service = feature_service(model.metadata, task)
    columns.update(StoredFeatures(service, feature_client.store).lookup(columns))
    return columns


@pytest.mark.parametrize("task", TRANSACTION_TASKS)
def test_fast_path_answers_as_the_reference_path_on_the_holdout(
    task: str, loaded: dict, expense_rows: pd.DataFrame, feature_client: Any
) -> None:
    _, holdout = time_split(expense_rows)
    model = loaded[task]
    columns = served_columns(task, model, holdout, feature_client)
    reference = model.predict(pd.DataFrame(columns))
    fast = array_path(model.model)
    assert fast is not None, f"{task}: the trained model should have a fast path"
    # Twice: the second time, reversed, every text and stored row comes from the fast path's memories.
    for order in (slice(None), slice(None, None, -1)):
        got = fast.predict({name: values[order] for name, values in columns.items()})
        assert set(got) == set(reference)
        for name, expected in reference.items():
            values, expected = np.asarray(got[name]), expected[order]
            assert values.shape == expected.shape, name
            if expected.dtype == object:  # classes, top-k names, risk levels, factor JSON
                assert values.tolist() == expected.tolist(), name
            else:
                np.testing.assert_allclose(values, expected, rtol=1e-9, atol=1e-9, err_msg=f"{task} {name}")


def test_anomaly_factors_explain_the_flagged_rows_and_are_skipped_when_not_asked_for(
    loaded: dict, expense_rows: pd.DataFrame, feature_client: Any
) -> None:
    import json

    _, holdout = time_split(expense_rows)
    columns = served_columns("anomaly", loaded["anomaly"], holdout, feature_client)
    fast = array_path(loaded["anomaly"].model)
    full, scores_only = fast.predict(columns), fast.predict(columns, frozenset({"anomaly_score"}))
    assert "top_factors" in full and "top_factors" not in scores_only
    np.testing.assert_array_equal(full["anomaly_score"], scores_only["anomaly_score"])
    factors = [json.loads(f) for f in full["top_factors"]]
    flagged = full["risk_level"] != "low"
    assert 0 < flagged.sum() < len(flagged), "the holdout should hold flagged and unflagged rows"
    assert all(f == [] for f, up in zip(factors, flagged, strict=True) if not up)
    # Flagged rows owe their score to something: nearly all of them name at least one factor.
    assert np.mean([bool(f) for f, up in zip(factors, flagged, strict=True) if up]) > 0.9


def assert_same_columns(got: dict[str, np.ndarray], expected: pd.DataFrame, what: str) -> None:
    assert list(got) == list(expected.columns), what
    for name in expected.columns:
        want = expected[name].to_numpy()
        if want.dtype == object:
            assert np.asarray(got[name]).tolist() == want.tolist(), f"{what} {name}"
        else:
            np.testing.assert_allclose(np.asarray(got[name], dtype=float), want.astype(float), rtol=1e-12,
                                       atol=1e-12, err_msg=f"{what} {name}")


def test_anomaly_design_equals_training_design_on_every_column(
    loaded: dict, expense_rows: pd.DataFrame, feature_client: Any
) -> None:
    from titans.models.anomaly import design

    model = loaded["anomaly"].model
    columns = served_columns("anomaly", loaded["anomaly"], expense_rows, feature_client)
    expected = design(request_frame(pd.DataFrame(columns), model.inputs), model.categories)[model.feature_names]
    matrix = AnomalyFast(model).design(columns)
    assert len(expected) >= 2000
    assert_same_columns(dict(zip(model.feature_names, matrix.T, strict=True)), expected, "anomaly")


def test_amount_priors_and_booster_features_equal_training_on_every_column(
    loaded: dict, expense_rows: pd.DataFrame, feature_client: Any
) -> None:
    from titans.models.amount import _booster_features

    model = loaded["amount"].model
    columns = served_columns("amount", loaded["amount"], expense_rows, feature_client)
    req = request_frame(pd.DataFrame(columns), model.inputs)
    fast = AmountFast(model)
    priors = fast.priors(columns)
    for got, want in zip(priors, model.prior.predict(req), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    expected = _booster_features(req, priors)[model.feature_names]
    matrix = fast.booster_matrix(columns, priors)
    assert_same_columns(dict(zip(model.feature_names, matrix.T, strict=True)), expected, "amount")


def test_category_design_and_sparse_matrix_equal_the_column_transformer(
    loaded: dict, expense_rows: pd.DataFrame, feature_client: Any
) -> None:
    from titans.models.category import _design

    model = loaded["category"].model
    columns = served_columns("category", loaded["category"], expense_rows, feature_client)
    expected = _design(request_frame(pd.DataFrame(columns), model.inputs))
    fast = CategoryFast(model)
    design = fast.design(columns)
    assert_same_columns(design, expected, "category")
    want = model.pipeline.named_steps["features"].transform(expected)
    got = fast.matrix(design)
    assert got.shape == want.shape
    difference = abs(sp.csr_matrix(got) - sp.csr_matrix(want))
    assert difference.max() < 1e-12
    # Same sparsity, not only the same values: XGBoost reads an absent entry as missing.
    assert (sp.csr_matrix(got) != 0).nnz == (sp.csr_matrix(want) != 0).nnz


def test_tfidf_rows_equal_the_vectorizer_on_unseen_and_empty_text(loaded: dict) -> None:
    features = loaded["category"].model.pipeline.named_steps["features"]
    texts = ["software license", "", "!!!", "Zebra Quantum Widgets 9000", "fuel fuel fuel", "software license"]
    for _, vectorizer, _ in features.transformers_:
        if hasattr(vectorizer, "vocabulary_"):
            got, want = TfidfRows(vectorizer).matrix(texts), vectorizer.transform(texts)
            assert abs(got - want).max() < 1e-12
            np.testing.assert_array_equal(got.indptr, want.indptr)


def test_flat_forest_equals_score_samples(loaded: dict, expense_rows: pd.DataFrame, feature_client: Any) -> None:
    model = loaded["anomaly"].model
    columns = served_columns("anomaly", loaded["anomaly"], expense_rows, feature_client)
    values = AnomalyFast(model).design(columns)
    rng = np.random.default_rng(0)
    odd = values[:200] * rng.uniform(0.5, 2.0, size=(200, values.shape[1]))  # off the training manifold too
    forest = FlatForest(model.forest)
    # 1 and 31 rows take the all-trees walk, larger batches scikit-learn's per-tree apply
    for matrix in (values[:1], odd[:1], values[:31], values, odd):
        np.testing.assert_allclose(forest.score_samples(matrix), model.forest.score_samples(matrix), rtol=1e-12)


@pytest.mark.parametrize("horizon", [1, 14, "max"])
def test_array_forecaster_equals_the_dataframe_forecaster(loaded: dict, horizon: int | str) -> None:
    model = loaded["cashflow"].model
    days = 90 if horizon == "max" else horizon
    for account in model.accounts:
        expected = model.predict(pd.DataFrame({"account_id": [account], "horizon_days": [days]}))
        got = model.predict_arrays(np.array([account], dtype=object), np.array([days]))
        assert got["date"].tolist() == expected["date"].tolist()
        for name in ("net_amount", "lower_80", "upper_80", "lower_95", "upper_95"):
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-9, err_msg=f"{account} {name}")


def test_cached_features_equal_the_store_and_expire(serving_home: Any, feature_client: Any) -> None:
    store = StoredFeatures("anomaly_service", feature_client.store)
    now = [0.0]
    cached = CachedStoredFeatures(store, ttl_seconds=60, clock=lambda: now[0])
    entity = {"merchant": ["Adobe", "adobe", "Never Seen Shop", "Shell"], "account_id": ["acct_001"] * 4,
              "category": ["software", "software", "software", "fuel"]}
    first = cached.lookup(entity)
    assert cached.misses == 3  # "Adobe" and "adobe" are one merchant key
    again = cached.lookup(entity)
    assert cached.hits == 5  # the duplicate in the first batch, then all four
    want = store.lookup(entity)
    for name, values in want.items():
        assert first[name].dtype == values.dtype and again[name].tolist() == values.tolist() == first[name].tolist()
    now[0] = 61.0
    cached.lookup(entity)
    assert cached.misses == 6  # older than the bound: looked up again


@pytest.mark.parametrize("values", [
    ["2024-03-05", "2024-02-29T23:59:59", "1999-12-31 00:00", "2024-03-05T10"],
    ["2024-03-05T23:30:00-05:00", "2024-03-05"],  # an offset moves the day: the per-value path
    ["2024-03-05T10:30:00Z"],
])
def test_batch_date_parsing_agrees_with_the_per_value_path(values: list[str]) -> None:
    array = np.array(values, dtype=object)
    assert epoch_days(array).tolist() == [_epoch_day_of(v) for v in values]


def test_batch_calendar_and_top_classes_equal_their_row_by_row_definitions() -> None:
    """Calendar features computed once per distinct day, top classes by arg-max passes: same answers."""
    from titans.features.transaction import _calendar, calendar_arrays
    from titans.models.category import top_indices

    rng = np.random.default_rng(3)
    days = rng.integers(19_000, 19_040, size=500)  # a batch of few distinct days, leap February included
    by_day, row_by_row = calendar_arrays(days), _calendar(days)
    assert by_day.keys() == row_by_row.keys()
    for name, values in row_by_row.items():
        assert by_day[name].dtype == values.dtype and np.array_equal(by_day[name], values), name
    proba = rng.dirichlet(np.ones(6), size=400)
    proba[:50, 1:4] = proba[:50, [0]]  # exact ties: the lower column first, as a stable sort puts it
    proba[50:60] = 1 / 6
    assert np.array_equal(top_indices(proba, 3), np.argsort(-proba, axis=1, kind="stable")[:, :3])


def test_impossible_dates_still_fail_with_the_value_named() -> None:
    from titans.errors import UserError

    with pytest.raises(UserError, match="2024-02-30"):
        epoch_days(np.array(["2024-02-30"], dtype=object))


def test_direct_booster_call_equals_inplace_predict(
    loaded: dict, expense_rows: pd.DataFrame, feature_client: Any
) -> None:
    from titans.models.arrays import DensePredictor

    model = loaded["anomaly"].model
    values = AnomalyFast(model).design(served_columns("anomaly", loaded["anomaly"], expense_rows, feature_client))
    for booster, matrix in ((model.classifier.get_booster(), values),
                            (loaded["cashflow"].model.booster.get_booster(), np.random.default_rng(1).normal(
                                size=(300, loaded["cashflow"].model.booster.get_booster().num_features())))):
        for rows in (matrix[:1], matrix):
            np.testing.assert_array_equal(DensePredictor(booster)(rows),
                                          booster.inplace_predict(rows, validate_features=False))
