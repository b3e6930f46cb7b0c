"""The MLflow registry the canary tests move aliases in: real sqlite store, built once, copied per test.

Why a module of its own (not conftest): the Prometheus scenarios build it from their module
fixture, in parallel with the model servers starting, and importing ``conftest`` by name is
ambiguous when several test folders have one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REGISTERED_MODEL = "titans-category"
VERSIONS = 5


def build_registry_template(root: Path) -> Path:
    """One sqlite registry: a tiny sklearn model registered as versions 1..5 of titans-category.

    Aliases as the register step leaves them: ``champion`` -> 1 (the stable revision).
    """
    import mlflow
    import mlflow.sklearn
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        experiment = mlflow.create_experiment("canary-tests", artifact_location=(root / "artifacts").as_uri())
        features = np.random.default_rng(0).normal(size=(40, 2))
        model = LogisticRegression().fit(features, (features[:, 0] > 0).astype(int))
        with mlflow.start_run(experiment_id=experiment):
            info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
        for _ in range(VERSIONS):
            mlflow.register_model(info.model_uri, REGISTERED_MODEL)
        mlflow.MlflowClient(uri, uri).set_registered_model_alias(REGISTERED_MODEL, "champion", "1")
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    return root / "mlflow.db"


_TEMPLATE: dict[str, Path] = {}


def registry_template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the template registry once per session, whoever asks first."""
    if "db" not in _TEMPLATE:
        _TEMPLATE["db"] = build_registry_template(tmp_path_factory.mktemp("mlflow-template"))
    return _TEMPLATE["db"]
