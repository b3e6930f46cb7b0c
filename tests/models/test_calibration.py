"""Calibration of the category model's served probabilities, and the accuracy they estimate without labels.

Why these tests: the estimated live accuracy (the mean served top-class probability, docs/monitoring.md)
is only worth an alert if, on traffic like the holdout, it lands on the true accuracy, and if it falls
when the traffic moves away from what the model knows. Both are measured on the shared trained home's
point-in-time category set: a model fitted on the training window, its temperature fitted on one half
of the holdout, judged on the other half, as is and shifted (typos, merchants never seen).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from titans.models import calibration
from titans.models.category import CategoryFast, CategoryModel
from titans.models.common import time_split


def test_figures_by_hand() -> None:
    """Two bins: 0.9 right 2 of 4 (gap 0.4), 0.55 right 1 of 2 (gap 0.05): ECE = 4/6*0.4 + 2/6*0.05."""
    confidence = np.array([0.9, 0.9, 0.9, 0.9, 0.55, 0.55])
    correct = np.array([1, 1, 0, 0, 1, 0], dtype=bool)
    assert calibration.expected_calibration_error(confidence, correct) == pytest.approx(4 / 6 * 0.4 + 2 / 6 * 0.05)
    proba = np.array([[0.7, 0.3], [0.2, 0.8]])
    assert calibration.brier_score(proba, np.array([0, 0])) == pytest.approx(((0.09 + 0.09) + (0.64 + 0.64)) / 2)
    # A label the model never saw: every probability it gave counts against it.
    assert calibration.brier_score(proba[:1], np.array([-1])) == pytest.approx(0.49 + 0.09)
    assert np.array_equal(calibration.apply_temperature(proba, 1.0), proba)


def test_an_overconfident_classifier_is_recalibrated_without_changing_any_answer() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(4000, 5)) * 1.5
    truth = np.array([rng.choice(5, p=p) for p in calibration.apply_temperature(np.exp(logits), 1.0)
                      / np.exp(logits).sum(axis=1, keepdims=True)])
    honest = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    overconfident = calibration.apply_temperature(honest, 0.4)
    fitted = calibration.calibrate(overconfident, truth, ece_max=0.03)
    assert fitted["before"]["ece"] > 0.15 and fitted["calibrated"]
    assert fitted["after"]["ece"] < 0.05 < fitted["before"]["ece"]
    assert fitted["after"]["brier"] < fitted["before"]["brier"]
    assert 2.0 < fitted["temperature"] < 3.2  # undoes the 0.4 it was sharpened by
    served = calibration.apply_temperature(overconfident, fitted["temperature"])
    assert np.array_equal(served.argmax(axis=1), overconfident.argmax(axis=1))
    # Calibrated already: left as it is.
    assert not calibration.calibrate(honest, truth, ece_max=0.03)["calibrated"]


@pytest.fixture(scope="module")
def holdout_model(trained: Any) -> dict[str, Any]:
    """A category model of the training window, calibrated on one half of the holdout, and the other half."""
    from titans.data.ingest import read_clean
    from titans.features.store import FeatureClient
    from titans.models.category import training_frame

    tmp, _ = trained
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TITANS_HOME", str(tmp / "home"))
        ts = training_frame(read_clean(tmp / "data"), FeatureClient(), 0, 0.2)
    train_rows, test = time_split(ts, 0.2)
    model = CategoryModel(cv_folds=2, candidates=("logreg_c10",)).fit(train_rows, train_rows["category"])
    halves = np.random.default_rng(0).permutation(len(test)) % 2 == 0
    fit_half, judge_half = test[halves], test[~halves]
    proba = model.predict_proba(fit_half).to_numpy()
    position = {name: i for i, name in enumerate(model.classes)}
    truth = np.array([position.get(str(c), -1) for c in fit_half["category"]])
    model.temperature = calibration.fit_temperature(proba, truth)
    return {"model": model, "judge": judge_half, "train": train_rows}


def estimate_and_truth(model: CategoryModel, rows: pd.DataFrame) -> tuple[float, float]:
    served = model.predict(rows)
    return float(np.mean(served["probability"])), float(np.mean(served["category"] == rows["category"].astype(str)))


def typos(text: str, rng: np.random.Generator) -> str:
    """Two adjacent letters swapped in every word of four or more letters, one letter dropped in others."""
    words = []
    for word in str(text).split():
        if len(word) >= 4:
            i = int(rng.integers(0, len(word) - 1))
            word = word[:i] + word[i + 1] + word[i] + word[i + 2:]
        elif len(word) > 1:
            word = word[1:]
        words.append(word)
    return " ".join(words)


def test_on_holdout_traffic_the_estimate_is_within_002_of_the_true_accuracy(holdout_model: dict[str, Any]) -> None:
    model, judge = holdout_model["model"], holdout_model["judge"]
    estimate, truth = estimate_and_truth(model, judge)
    assert len(judge) >= 200, len(judge)
    assert abs(estimate - truth) <= 0.02, (estimate, truth, model.temperature)


def test_on_shifted_traffic_estimate_and_accuracy_both_fall(holdout_model: dict[str, Any]) -> None:
    """Typos in every description and merchants the model never saw: the model is unsure, and right less often."""
    model, judge = holdout_model["model"], holdout_model["judge"]
    rng = np.random.default_rng(5)
    shifted = judge.assign(
        description=[typos(d, rng) for d in judge["description"]],
        merchant=[f"Unheard Of Trader {i}" for i in range(len(judge))],
        merchant_dominant_category_90d="none", merchant_txn_count_90d=0)
    base_estimate, base_truth = estimate_and_truth(model, judge)
    estimate, truth = estimate_and_truth(model, shifted)
    assert truth < base_truth - 0.05 and estimate < base_estimate - 0.05, (base_estimate, base_truth, estimate, truth)
    assert abs(estimate - truth) < 0.15, (estimate, truth)  # it falls with the accuracy, not to nowhere


def test_the_array_path_serves_the_same_calibrated_probabilities(holdout_model: dict[str, Any]) -> None:
    """The server's fast path applies the model's temperature exactly as the reference path does."""
    model, judge = holdout_model["model"], holdout_model["judge"].head(120)
    assert model.temperature != 1.0
    reference = model.predict(judge)
    text = ("description", "merchant", "payment_method", "account_id", "merchant_dominant_category_90d")
    columns = {name: judge[name].astype(str).to_numpy(dtype=object) for name in text}
    columns["amount"] = judge["amount"].to_numpy(dtype=np.float64)
    columns["date"] = pd.to_datetime(judge["date"]).dt.strftime("%Y-%m-%d").to_numpy(dtype=object)
    fast = CategoryFast(model).predict(columns)
    assert np.array_equal(fast["category"], reference["category"])
    np.testing.assert_allclose(fast["top_k_probabilities"], reference["top_k_probabilities"], atol=1e-9)
