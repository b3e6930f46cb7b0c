"""The merchant recommender on a real server: V2 round trips (kserve's JSON and tritonclient), 400s, metrics.

Why a home of its own: the recommender learns from the generator's small-business accounts,
which the session home of the other serving tests does not generate (it keeps their data as
it was). Small sizes: one book account, 60 small accounts, a year; the server imports its
libraries while the home is trained (``launcher.py``), then serves the trained folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serving_harness import FOREIGN_ENV, ServerProcess, start_server
from serving_payloads import RECOMMEND_ACCOUNTS, json_body, replace_input

HERE = Path(__file__).resolve().parent
MODEL = "titans-recommend"


def _train_home(home: Path) -> None:
    from titans.data.generate import GenerateConfig, write_csv
    from titans.data.ingest import ingest
    from titans.features.build import build_features
    from titans.train import TrainConfig, train

    raw = home / "raw" / "transactions.csv"
    write_csv(GenerateConfig(rows=600, accounts=1, seed=5, days=365, small_accounts=60), raw)
    ingest([raw], home / "data")
    build_features(home / "data")
    train(["recommend"], home / "data", TrainConfig(register=False))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    root = tmp_path_factory.mktemp("recommend")
    home, ready = root / "home", root / "ready"
    folder = home / "models" / "recommend"
    server = start_server(["--model-uri", str(folder), "--enrichment", "none"], root / "server.log",
                          {"TITANS_HOME": str(home)}, wait_for=ready)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("TITANS_HOME", str(home))
            for name in FOREIGN_ENV:
                mp.delenv(name, raising=False)
            _train_home(home)
        ready.touch()
        server.wait_ready([MODEL])
        yield server, folder
    finally:
        server.terminate()
        server.stop()


def infer(server: ServerProcess, body: dict) -> httpx.Response:
    return httpx.post(f"{server.http_url}/v2/models/{MODEL}/infer", json=body, timeout=30)


def outputs(response: httpx.Response) -> dict[str, np.ndarray]:
    return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in response.json()["outputs"]}


def test_round_trip_answers_what_the_model_folder_answers(served: tuple[ServerProcess, Path]) -> None:
    from titans import model_dir

    server, folder = served
    loaded = model_dir.load(folder)
    meta = httpx.get(f"{server.http_url}/v2/models/{MODEL}").json()
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [
        ("account_id", "BYTES", [-1]), ("k", "INT32", [1]), ("exclude_recent_days", "INT32", [1])]
    assert {t["name"] for t in meta["outputs"]} == {"merchants", "scores", "categories"}

    response = infer(server, json_body(MODEL, 3))
    assert response.status_code == 200, response.text
    assert response.json()["model_version"] == loaded.metadata["version"]
    out = outputs(response)
    assert out["merchants"].shape == out["scores"].shape == out["categories"].shape == (3, 5)
    expected = loaded.model.recommend(list(RECOMMEND_ACCOUNTS), 5)
    assert out["merchants"].tolist() == expected["merchants"].tolist()
    np.testing.assert_allclose(out["scores"], expected["scores"], rtol=1e-12)
    assert np.all(np.diff(out["scores"], axis=1) <= 0)  # best first
    # The unknown account is the cold start: the most popular merchants, in order.
    popular = np.array(loaded.model.merchants)[np.argsort(-loaded.model.scores(["acct_nobody"])[0], kind="stable")]
    assert out["merchants"][2].tolist() == popular[:5].tolist()
    assert "acct_s0001" in loaded.model.accounts and out["merchants"][0].tolist() != out["merchants"][2].tolist()


def test_exclude_recent_days_leaves_out_what_the_account_just_bought(served: tuple[ServerProcess, Path]) -> None:
    from titans import model_dir

    server, folder = served
    model = model_dir.load(folder).model
    row = model.accounts.index("acct_s0001")
    last = model.last_seen[row].toarray().ravel() - 1
    recent = {m for m, day in zip(model.merchants, last, strict=True)
              if day >= 0 and day >= model.reference_epoch_day - 120}
    assert recent
    body = json_body(MODEL, 1)
    body["inputs"].append({"name": "exclude_recent_days", "shape": [1], "datatype": "INT32", "data": [120]})
    out = outputs(infer(server, body))
    assert not recent & set(out["merchants"][0]) and len(set(out["merchants"][0])) == 5
    plain = outputs(infer(server, json_body(MODEL, 1)))
    assert recent & set(plain["merchants"][0])


@pytest.mark.parametrize(("name", "change", "reason"), [
    ("k", {"data": [0]}, "expected a value in [1,"),
    ("k", {"data": [10_000]}, "expected a value in [1,"),
    ("k", {"datatype": "FP64", "data": [5.0]}, "expected INT32"),
    ("k", {"shape": [2], "data": [5, 5]}, "expected [1]"),
    ("account_id", {}, "missing input 'account_id'"),
    ("exclude_recent_days", None, "expected a value in [0,"),
])
def test_bad_input_is_a_400_naming_it(served: tuple[ServerProcess, Path], name: str, change: dict | None,
                                      reason: str) -> None:
    server, _ = served
    body = json_body(MODEL, 2)
    if change is None:
        body["inputs"].append({"name": name, "shape": [1], "datatype": "INT32", "data": [-1]})
    else:
        body = replace_input(body, name, **change)
    response = infer(server, body)
    assert response.status_code == 400, response.text
    assert f"'{name}'" in response.text and reason in response.text


def test_series_carry_the_model_version(served: tuple[ServerProcess, Path]) -> None:
    server, folder = served
    version = json.loads((folder / "metadata.json").read_text())["version"]

    def scrape() -> dict[str, list]:
        text = httpx.get(f"{server.http_url}/metrics").text
        return {f.name: f.samples for f in text_string_to_metric_families(text)}

    def total(samples: dict[str, list], family: str, name: str, **labels: str) -> float:
        wanted = {"model_name": MODEL, "model_version": version} | labels
        return sum(s.value for s in samples.get(family, []) if s.name == name
                   and all(s.labels.get(k) == v for k, v in wanted.items()))

    before = scrape()
    assert infer(server, json_body(MODEL, 3)).status_code == 200
    assert infer(server, replace_input(json_body(MODEL, 3), "k", data=[0])).status_code == 400
    after = scrape()
    for family, name, labels, rows in (
        ("titans_predictions", "titans_predictions_total", {"outcome": "ok"}, 3),
        ("titans_predictions", "titans_predictions_total", {"outcome": "error"}, 3),
        ("titans_request_errors", "titans_request_errors_total", {"reason": "bad_value"}, 1),
        ("titans_predicted_class", "titans_predicted_class_total", {}, 3),
    ):
        assert total(after, family, name, **labels) - total(before, family, name, **labels) == rows, (family, labels)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_tritonclient_round_trip(served: tuple[ServerProcess, Path], protocol: str) -> None:
    """NVIDIA's V2 client (in its own process: its gRPC protos clash with kserve's)."""
    server, _ = served
    url = f"127.0.0.1:{server.http_port}" if protocol == "http" else server.grpc_address
    result = subprocess.run([sys.executable, str(HERE / "triton_check.py"), protocol, url, MODEL],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)[MODEL]
    assert report["live"] and report["ready"]
    assert report["inputs"] == ["account_id", "k", "exclude_recent_days"]
    merchants = np.asarray(report["outputs"]["merchants"], dtype=object)
    scores = np.asarray(report["outputs"]["scores"], dtype=float)
    assert merchants.shape == scores.shape == (3, 5) and all(m for m in merchants.ravel())


def test_each_suggestion_explains_its_log_odds_and_the_explain_route_agrees(served: tuple[ServerProcess, Path]
                                                                             ) -> None:
    """Per account, one entry per suggested merchant: base plus factors is the ranker's log-odds of the served
    score; a similarity factor names the account's own merchants behind it; :explain answers the same."""
    server, _ = served
    plain = outputs(infer(server, json_body(MODEL, 3)))
    response = infer(server, {**json_body(MODEL, 3), "parameters": {"explain": True}})
    assert response.status_code == 200, response.text
    (explained,) = [[json.loads(v) for v in o["data"]] for o in response.json()["outputs"]
                    if o["name"] == "explanation"]
    for row, entries in enumerate(explained):
        assert [e["merchant"] for e in entries] == [m for m in plain["merchants"][row].tolist() if m]
        for column, entry in enumerate(entries):
            log_odds = entry["base"] + sum(f["value"] for f in entry["factors"]) + entry["other"]
            assert 1 / (1 + np.exp(-log_odds)) == pytest.approx(plain["scores"][row][column], abs=1e-9)
    similar = [f["factor"] for e in explained[0] for f in e["factors"] if f["factor"].startswith("similar to")]
    assert all("(" in name for name in similar)
    route = httpx.post(f"{server.http_url}/v1/models/{MODEL}:explain", timeout=30, json={"instances": [
        {"account_id": a, "k": 5} for a in RECOMMEND_ACCOUNTS]})
    assert route.status_code == 200, route.text
    assert route.json()["explanations"] == explained
