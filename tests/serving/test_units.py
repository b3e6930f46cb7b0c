"""Unit tests of the serving pieces that need no server: validation, metrics, storage, config.

Why: these are the rules every request passes through; testing them directly pins the
messages and reason codes that the server tests then see end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, RequestedOutput, serialize_byte_tensor
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from serving.config import discover_models
from serving.metrics import TitansMetrics
from serving.score_remote import _day_pieces
from serving.storage import ModelUriError, find_model_dir, resolve_model_uri
from serving.tensors import TensorSpec, encode_bytes_tensor, infer_outputs, output_array, set_binary_output
from serving.validation import InputRules, RequestRejected, check_requested_outputs, decode_inputs

SPECS = (
    TensorSpec("merchant", "BYTES", (-1,)),
    TensorSpec("amount", "FP64", (-1,)),
    TensorSpec("date", "BYTES", (-1,)),
    TensorSpec("payment_method", "BYTES", (-1,)),
)
RULES = InputRules(max_batch_rows=5, categories={"payment_method": frozenset({"cash", "check"})},
                   dates=frozenset({"date"}))


def tensor(name: str, datatype: str, values: list, shape: list[int] | None = None, binary: bool = False) -> InferInput:
    shape = shape or [len(values)]
    array = np.asarray(values, dtype=object if datatype == "BYTES" else None)
    t = InferInput(name, shape, datatype)
    if binary and array.size == int(np.prod(shape)):
        array = array.reshape(shape)
    if binary:
        t.set_data_from_numpy(array, binary_data=True)
    else:
        t.data = list(values)
    return t


def request(**overrides: InferInput | None) -> InferRequest:
    inputs = {
        "merchant": tensor("merchant", "BYTES", ["Shell", "BP"]),
        "amount": tensor("amount", "FP64", [-12.5, -80.0]),
        "date": tensor("date", "BYTES", ["2024-03-05", "2024-03-06T10:00:00Z"]),
        "payment_method": tensor("payment_method", "BYTES", ["cash", "check"]),
    }
    inputs.update(overrides)
    return InferRequest("m", [t for t in inputs.values() if t is not None])


def rejected(req: InferRequest) -> RequestRejected:
    with pytest.raises(RequestRejected) as info:
        decode_inputs(req, SPECS, RULES)
    return info.value


def test_valid_request_decodes_to_typed_columns() -> None:
    columns = decode_inputs(request(), SPECS, RULES)
    assert list(columns["merchant"]) == ["Shell", "BP"]
    assert columns["amount"].dtype == np.float64 and list(columns["amount"]) == [-12.5, -80.0]


def test_binary_bytes_and_column_shapes_decode_like_json() -> None:
    req = request(merchant=tensor("merchant", "BYTES", [b"Shell", "BP"], shape=[2, 1], binary=True),
                  amount=tensor("amount", "FP64", [-12.5, -80.0], binary=True))
    columns = decode_inputs(req, SPECS, RULES)
    assert list(columns["merchant"]) == ["Shell", "BP"]
    assert list(columns["amount"]) == [-12.5, -80.0]


@pytest.mark.parametrize(
    ("overrides", "code", "names"),
    [
        ({"amount": None}, "missing_input", "'amount'"),
        ({"extra": tensor("extra", "FP64", [1.0, 2.0])}, "unexpected_input", "'extra'"),
        ({"amount": tensor("amount", "FP32", [1.0, 2.0])}, "wrong_datatype", "'amount'"),
        ({"amount": tensor("amount", "FP64", [1.0, 2.0], shape=[2, 2])}, "wrong_shape", "'amount'"),
        ({"amount": tensor("amount", "FP64", [1.0, 2.0, 3.0])}, "wrong_shape", "'amount'"),
        ({"amount": tensor("amount", "FP64", [1.0, 2.0], shape=[3])}, "wrong_shape", "'amount'"),
        ({"amount": tensor("amount", "FP64", ["a", "b"])}, "wrong_datatype", "'amount'"),
        ({"merchant": tensor("merchant", "BYTES", [1, 2])}, "wrong_datatype", "'merchant'"),
        ({"amount": tensor("amount", "FP64", [1.0, float("nan")], binary=True)}, "non_finite", "'amount' row 1"),
        ({"amount": tensor("amount", "FP64", [float("inf"), 1.0], binary=True)}, "non_finite", "'amount' row 0"),
        ({"payment_method": tensor("payment_method", "BYTES", ["cash", "bitcoin"])}, "unknown_category",
         "'payment_method' row 1"),
        ({"date": tensor("date", "BYTES", ["2024-03-05", "yesterday"])}, "bad_value", "'date' row 1"),
        ({"date": tensor("date", "BYTES", ["", "2024-03-05"])}, "bad_value", "'date' row 0"),
        ({"merchant": tensor("merchant", "BYTES", [b"\xff\xfe", b"ok"], binary=True)}, "bad_value", "'merchant'"),
    ],
)
def test_client_mistakes_are_rejected_with_a_reason_and_the_input_named(
    overrides: dict, code: str, names: str
) -> None:
    error = rejected(request(**overrides))
    assert error.code == code
    assert names in error.reason


@pytest.mark.parametrize("values", [
    np.array(["Shell", "", "caf\u00e9 \u20ac", b"raw\x00bytes", 7, "x" * 70_000], dtype=object),
    np.array([["a", "bc"], ["", "d"]], dtype=object),
    np.array([], dtype=object),
])
def test_bytes_outputs_encode_as_kserve_does_and_decode_back(values: np.ndarray) -> None:
    """The gRPC answer's BYTES encoding is kserve's byte for byte, and kserve's decoder reads it back."""
    expected = serialize_byte_tensor(values)
    assert encode_bytes_tensor(values) == (expected.item() if expected.size else b"")
    output = InferOutput("o", list(values.shape), "BYTES", data=values)
    set_binary_output(output)
    assert output.parameters["binary_data_size"] == len(encode_bytes_tensor(values))
    decoded = output.as_numpy()
    assert decoded.shape == values.shape
    assert [v.decode() if isinstance(v, bytes) else v for v in decoded.ravel().tolist()] == [
        v.decode() if isinstance(v, bytes) else str(v) for v in values.ravel().tolist()]


def test_batch_limits() -> None:
    six = {name: tensor(name, t.datatype, [v] * 6) for name, t, v in (
        ("merchant", SPECS[0], "x"), ("amount", SPECS[1], 1.0), ("date", SPECS[2], "2024-01-01"),
        ("payment_method", SPECS[3], "cash"))}
    assert rejected(request(**six)).code == "batch_too_large"
    empty = {name: tensor(name, spec.datatype, []) for name, spec in zip(six, SPECS, strict=True)}
    assert rejected(request(**empty)).code == "empty_batch"


def test_duplicate_inputs_and_unknown_outputs_are_refused() -> None:
    req = request()
    req.inputs.append(tensor("amount", "FP64", [1.0, 2.0]))
    assert rejected(req).code == "duplicate_input"
    asked = request()
    asked.request_outputs = [RequestedOutput("nope")]
    with pytest.raises(RequestRejected, match="requested output 'nope'"):
        check_requested_outputs(asked, (TensorSpec("category", "BYTES", (-1,)),))


def test_outputs_are_coerced_to_declared_datatypes() -> None:
    assert output_array(TensorSpec("c", "BYTES", (-1,)), np.array(["a", "b"])).dtype == object
    assert output_array(TensorSpec("p", "FP64", (-1,)), np.array([0.5], dtype=np.float32)).dtype == np.float64
    outputs = infer_outputs((TensorSpec("top", "BYTES", (-1, 3)),), {"top": np.array([["a", "b", "c"]])})
    assert outputs[0].shape == [1, 3] and outputs[0].datatype == "BYTES"
    with pytest.raises(KeyError, match="probability"):
        infer_outputs((TensorSpec("probability", "FP64", (-1,)),), {})


def scrape(registry: CollectorRegistry) -> dict[str, dict[tuple, float]]:
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return samples


def test_batch_histogram_and_summary_match_prometheus_semantics() -> None:
    registry = CollectorRegistry()
    metrics = TitansMetrics(registry)
    model = metrics.for_model("titans-anomaly", "7")
    model.anomaly_scores(np.array([0.05, 0.07, 0.5, 1.0, np.nan]))
    model.input_feature("amount", np.array([1.0, 2.0, 3.0]))
    model.predicted_classes(["high", "low", "low"])
    model.error("non_finite", 4)
    samples = scrape(registry)
    labels = (("model_name", "titans-anomaly"), ("model_version", "7"))
    buckets = samples["titans_anomaly_score_bucket"]
    assert buckets[tuple(sorted((*labels, ("le", "0.05"))))] == 1  # le is inclusive
    assert buckets[tuple(sorted((*labels, ("le", "0.1"))))] == 2
    assert buckets[tuple(sorted((*labels, ("le", "+Inf"))))] == 4  # NaN is not observed
    assert samples["titans_anomaly_score_sum"][labels] == pytest.approx(1.62)
    feature = tuple(sorted((*labels, ("feature", "amount"))))
    assert samples["titans_input_feature_count"][feature] == 3
    assert samples["titans_input_feature_sum"][feature] == 6.0
    assert samples["titans_predicted_class_total"][tuple(sorted((*labels, ("predicted_class", "low"))))] == 2
    assert samples["titans_request_errors_total"][tuple(sorted((*labels, ("reason", "non_finite"))))] == 1
    assert samples["titans_predictions_total"][tuple(sorted((*labels, ("outcome", "error"))))] == 4


def test_model_uris_resolve_to_model_directories(tmp_path: Path) -> None:
    model = tmp_path / "wrapped" / "category"
    model.mkdir(parents=True)
    (model / "metadata.json").write_text(json.dumps({"name": "titans-category"}))
    assert resolve_model_uri(str(model)) == model
    assert resolve_model_uri(f"file://{model}") == model
    assert find_model_dir(tmp_path / "wrapped") == model  # one level down, as MLflow downloads it
    with pytest.raises(ModelUriError, match="no such directory"):
        resolve_model_uri(str(tmp_path / "absent"))
    with pytest.raises(ModelUriError, match="kserve-storage|download failed"):
        resolve_model_uri("s3://titans-models/category/1")


def test_discovery_names_models_from_metadata_and_keeps_broken_ones(tmp_path: Path) -> None:
    (tmp_path / "category").mkdir()
    (tmp_path / "category" / "metadata.json").write_text(json.dumps({"name": "titans-category"}))
    (tmp_path / "amount").mkdir()  # no metadata: still listed, so it is reported as not ready
    assert discover_models(tmp_path) == [("titans-amount", str(tmp_path / "amount")),
                                         ("titans-category", str(tmp_path / "category"))]


def test_remote_requests_are_whole_days_within_the_row_limit() -> None:
    """``titans score --endpoint`` cuts rows (in date order) at day boundaries; a day over the limit goes whole."""
    rng = np.random.default_rng(3)
    for _ in range(300):
        days = np.sort(rng.integers(0, 12, size=int(rng.integers(1, 60)))).astype(str).astype(object)
        limit = int(rng.integers(1, 15))
        pieces = _day_pieces({"date": days}, np.arange(len(days)), limit)
        assert np.array_equal(np.concatenate(pieces), np.arange(len(days)))
        seen: set[str] = set()
        for piece in pieces:
            own = set(days[piece])
            assert not own & seen, "a day split across two requests"
            seen |= own
            assert len(piece) <= limit or len(own) == 1, "an over-limit request holding more than one day"
