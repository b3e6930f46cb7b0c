"""A real ``kserve.ModelServer`` hosting a tiny classifier, for the canary scenarios.

Why not the project's runtime in ``serving/``: it is being written in parallel, and canary
analysis only needs what the contract promises every titans server exports: the
``titans_*`` series of docs/contracts.md, labelled ``model_name`` and ``model_version``.
This server predicts a spending category with a scikit-learn model trained here on
synthetic data and exports exactly those series with ``prometheus_client``.

One process hosts one or more model versions (the stable server one, the canary server
several, as a cluster would run several canary revisions over time). Each is a kserve model
routed as ``titans-category-v<version>``; all label their series ``model_name="titans-category"``
and their own ``model_version``, which is what the analysis keys on.

Each version can be degraded by configuration, at run time: a JSON control file (re-read
whenever it changes) sets an injected error rate, added latency, and a shift of the decision
scores towards one class ("a shifted model"). That is how a scenario makes a canary go bad
at a known instant and measures how long the analysis takes to notice.

Run: ``CANARY_SERVER_CONFIG='{"port": 18080, "models": [{"version": "2", "seed": 1,
"control_file": "/tmp/c.json"}]}' python tests/canary/canary_server.py``.
kserve binds its REST server to 0.0.0.0 with no host option (kserve 0.21
``protocol/rest/server.py`` hard-codes it in ``uvicorn.Config``), so the REST server class is
swapped for one that binds 127.0.0.1, and gRPC is switched off.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

# Read our configuration before kserve is imported: kserve parses sys.argv at import time.
CONFIG: dict[str, Any] = json.loads(os.environ.get("CANARY_SERVER_CONFIG", "{}"))

import numpy as np  # noqa: E402
from prometheus_client import Counter, Histogram  # noqa: E402

CLASSES = np.array(["groceries", "dining", "transport", "utilities"])
CENTERS = np.array([[0.0, 0.0], [4.0, 4.0], [0.0, 4.0], [4.0, 0.0]])
MODEL_NAME = "titans-category"
LABELS = ["model_name", "model_version"]


class Series:
    """The contract's series on the default registry (what kserve's ``/metrics`` serves).

    Created in ``main`` only: importing this module (the tests do, for ``sample_features``)
    must not register ``titans_*`` names in the importer's registry.
    """

    def __init__(self) -> None:
        self.predictions = Counter("titans_predictions", "Rows predicted, by outcome.", [*LABELS, "outcome"])
        self.request_errors = Counter("titans_request_errors", "Failed requests, by reason.", [*LABELS, "reason"])
        self.latency = Histogram("titans_request_latency_seconds", "Whole-request latency.", LABELS)
        self.predicted_class = Counter(
            "titans_predicted_class", "Rows per predicted class.", [*LABELS, "predicted_class"]
        )


def sample_features(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Transactions as 2-d points around the four category centres (the traffic's inputs)."""
    centres = CENTERS[rng.integers(0, len(CENTERS), size=rows)]
    return centres + rng.normal(scale=1.2, size=(rows, 2))


def train_classifier(seed: int) -> Any:
    """A logistic regression on 800 synthetic rows; different seeds give slightly different models."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CENTERS), size=800)
    features = CENTERS[labels] + rng.normal(scale=1.2, size=(800, 2))
    return LogisticRegression(max_iter=500).fit(features, labels)


class Control:
    """The degradation knobs, re-read from the control file whenever its mtime changes."""

    def __init__(self, path: str) -> None:
        self.path = Path(path) if path else None
        self.mtime = -1.0
        self.values = {"error_rate": 0.0, "added_latency_seconds": 0.0, "class_shift": 0.0}

    def current(self) -> dict[str, float]:
        if self.path is not None and self.path.exists():
            mtime = self.path.stat().st_mtime
            if mtime != self.mtime:
                self.values.update(json.loads(self.path.read_text()))
                self.mtime = mtime
        return self.values


def route_name(version: str) -> str:
    """The V2 route of one hosted version (the series still say ``model_name=titans-category``)."""
    return f"{MODEL_NAME}-v{version}"


def build_model(config: dict[str, Any], series: Series) -> Any:
    """One hosted version as a kserve.Model subclass (defined after kserve is imported)."""
    import kserve
    from kserve.errors import InferenceError

    class CanaryClassifier(kserve.Model):
        """Predicts ``category`` for V2 input ``features`` FP64 [n, 2]."""

        def __init__(self) -> None:
            super().__init__(route_name(str(config["version"])))
            self.version = str(config["version"])
            self.classifier = train_classifier(int(config.get("seed", 0)))
            self.control = Control(config.get("control_file", ""))
            self.random = random.Random(int(config.get("seed", 0)))
            # Export every label combination at zero now: increase() cannot see the first
            # increment of a series that appears with a value already above zero.
            for outcome in ("ok", "error"):
                series.predictions.labels(MODEL_NAME, self.version, outcome)
            for name in CLASSES:
                series.predicted_class.labels(MODEL_NAME, self.version, str(name))
            series.request_errors.labels(MODEL_NAME, self.version, "injected")
            self.ready = True

        async def predict(self, payload: Any, headers: Any = None, response_headers: Any = None) -> Any:
            started = time.perf_counter()
            try:
                return await self._predict(payload)
            finally:
                series.latency.labels(MODEL_NAME, self.version).observe(time.perf_counter() - started)

        async def _predict(self, payload: Any) -> Any:
            control = self.control.current()
            features = np.asarray(payload.inputs[0].as_numpy(), dtype=float).reshape(-1, 2)
            rows = len(features)
            if control["added_latency_seconds"] > 0:
                await asyncio.sleep(control["added_latency_seconds"])
            if self.random.random() < control["error_rate"]:
                series.predictions.labels(MODEL_NAME, self.version, "error").inc(rows)
                series.request_errors.labels(MODEL_NAME, self.version, "injected").inc()
                raise InferenceError("injected failure (canary degraded by configuration)")
            scores = self.classifier.decision_function(features)
            scores[:, 0] += control["class_shift"]
            predicted = CLASSES[scores.argmax(axis=1)]
            series.predictions.labels(MODEL_NAME, self.version, "ok").inc(rows)
            for name, count in zip(*np.unique(predicted, return_counts=True), strict=True):
                series.predicted_class.labels(MODEL_NAME, self.version, str(name)).inc(int(count))
            output = kserve.InferOutput("category", [rows], "BYTES", data=[str(p) for p in predicted])
            return kserve.InferResponse(
                response_id=payload.id or "",
                model_name=self.name,
                model_version=self.version,
                infer_outputs=[output],
            )

    return CanaryClassifier()


def main() -> None:
    sys.argv = sys.argv[:1]
    import kserve
    from kserve import model_server
    from kserve.protocol.rest.server import RESTServer

    class LoopbackRESTServer(RESTServer):
        """kserve's REST server, bound to 127.0.0.1 instead of every interface."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.config.host = "127.0.0.1"

    model_server.RESTServer = LoopbackRESTServer
    series = Series()
    models = [build_model(model_config, series) for model_config in CONFIG["models"]]
    kserve.ModelServer(http_port=int(CONFIG["port"]), enable_grpc=False, grace_period=1).start(models)


if __name__ == "__main__":
    main()
