"""``/metrics``: KServe's histograms and ours, every titans series labelled with the model version."""

from __future__ import annotations

import json

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serving_harness import MODEL_NAMES, ServerProcess
from serving_payloads import ROWS, json_body, replace_input

OUR_FAMILIES = (
    "titans_predictions", "titans_request_errors", "titans_request_latency_seconds", "titans_predicted_class",
    "titans_risk_level", "titans_anomaly_score", "titans_predicted_amount", "titans_input_feature",
    "titans_top_confidence", "titans_holdout_accuracy",
)


def scrape(server: ServerProcess) -> dict[str, list]:
    text = httpx.get(f"{server.http_url}/metrics").text
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(samples: list, name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_series_carry_model_version_and_count_what_happened(server: ServerProcess, trained_models) -> None:
    versions = {
        f"titans-{task}": json.loads((trained_models / task / "metadata.json").read_text())["version"]
        for task in ("category", "amount", "anomaly", "cashflow")
    }
    before = scrape(server)
    answers = {}
    for model in MODEL_NAMES:
        body = json_body(model, 1 if model == "titans-cashflow" else 3)
        response = httpx.post(f"{server.http_url}/v2/models/{model}/infer", json=body, timeout=30)
        assert response.status_code == 200
        answers[model] = {o["name"]: o["data"] for o in response.json()["outputs"]}
    bad = replace_input(json_body("titans-category"), "payment_method", data=["cash", "gold", "cash"])
    assert httpx.post(f"{server.http_url}/v2/models/titans-category/infer", json=bad).status_code == 400
    garbage = httpx.post(f"{server.http_url}/v2/models/titans-category/infer", content=b"{not json",
                         headers={"Content-Type": "application/json"})
    assert garbage.status_code == 400
    after = scrape(server)

    for family in OUR_FAMILIES:
        assert family in after, family
        for sample in after[family]:
            assert sample.labels.get("model_version"), (family, sample)
    for family in ("request_predict_seconds", "request_preprocess_seconds"):
        assert {s.labels["model_name"] for s in after[family]} >= set(MODEL_NAMES)

    category = {"model_name": "titans-category", "model_version": versions["titans-category"]}
    delta = lambda fam, name, **kw: value(after[fam], name, **kw) - value(before.get(fam, []), name, **kw)  # noqa: E731
    assert delta("titans_predictions", "titans_predictions_total", outcome="ok", **category) == 3
    assert delta("titans_predictions", "titans_predictions_total", outcome="error", **category) == 3
    assert delta("titans_request_errors", "titans_request_errors_total", reason="unknown_category", **category) == 1
    assert delta("titans_request_errors", "titans_request_errors_total", reason="malformed_request", **category) == 1
    assert delta("titans_predicted_class", "titans_predicted_class_total", **category) == 3
    # The served top-class probabilities, added up for the estimated accuracy, beside the holdout accuracy.
    assert delta("titans_top_confidence", "titans_top_confidence_count", **category) == 3
    assert delta("titans_top_confidence", "titans_top_confidence_sum", **category) == pytest.approx(
        sum(answers["titans-category"]["probability"]))
    holdout = json.loads((trained_models / "category" / "metadata.json").read_text())["metrics"]["accuracy"]
    assert value(after["titans_holdout_accuracy"], "titans_holdout_accuracy", **category) == pytest.approx(holdout)
    assert delta("titans_request_latency_seconds", "titans_request_latency_seconds_count", **category) == 1
    assert delta("titans_input_feature", "titans_input_feature_count", feature="amount", **category) == 3
    assert delta("titans_input_feature", "titans_input_feature_sum", feature="amount", **category) == pytest.approx(
        sum(row["amount"] for row in ROWS))
    # Enriched stored features are summarised too (the server looks them up in process).
    assert delta("titans_input_feature", "titans_input_feature_count", feature="merchant_txn_count_all",
                 **category) == 3
    assert delta("titans_input_feature", "titans_input_feature_sum", feature="merchant_txn_count_all",
                 **category) > 0

    anomaly = {"model_name": "titans-anomaly", "model_version": versions["titans-anomaly"]}
    assert delta("titans_anomaly_score", "titans_anomaly_score_count", **anomaly) == 3
    assert delta("titans_risk_level", "titans_risk_level_total", **anomaly) == 3
    amount = {"model_name": "titans-amount", "model_version": versions["titans-amount"]}
    assert delta("titans_predicted_amount", "titans_predicted_amount_count", **amount) == 3
