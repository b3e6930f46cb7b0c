"""The deploy step's rule: publish only what the gate passed, and only after the deploy went through."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from titans import publish


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def served(titans_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A model folder already being served (v1) and a new artifact (v2) waiting to be deployed.

    MLflow is this test's own empty sqlite registry: the deploy looks the stable version's artifacts
    up there, and a registry URI left over by another test in this process (MLflow exports it to the
    environment) would have it wait out MLflow's HTTP retries against a server long gone.
    """
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    current = titans_home / "models" / "category"
    current.mkdir(parents=True)
    (current / "metadata.json").write_text('{"version": "1"}')
    artifact = tmp_path / "artifact"
    (artifact / "category").mkdir(parents=True)
    (artifact / "category" / "metadata.json").write_text('{"version": "2"}')
    return current, artifact


def _summary(promote: bool) -> dict:
    return {"category": {"registered_name": "titans-category", "version": "2", "model_uri": None,
                         "alias": "champion" if promote else "challenger",
                         "gate": {"promote": promote, "reasons": ["r"], "champion_before": "1"}}}


def test_rejected_version_leaves_the_served_folder(served: tuple[Path, Path], tmp_path: Path) -> None:
    current, artifact = served
    before = _digest(current)
    result = publish.deploy_promoted(_summary(False), {"category": str(artifact)}, 10, "titans", str(tmp_path / "m"))
    assert result["category"]["action"] == "kept-previous" and _digest(current) == before


def test_failed_deploy_leaves_the_served_folder(served: tuple[Path, Path], tmp_path: Path) -> None:
    current, artifact = served
    before = _digest(current)
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the manifests folder should be")
    with pytest.raises(OSError):
        publish.deploy_promoted(_summary(True), {"category": str(artifact)}, 10, "titans", str(blocked))
    assert _digest(current) == before


def test_passed_version_is_swapped_in_after_its_manifest(served: tuple[Path, Path], tmp_path: Path) -> None:
    current, artifact = served
    result = publish.deploy_promoted(_summary(True), {"category": str(artifact)}, 10, "titans", str(tmp_path / "m"))
    assert result["category"]["action"] == "manifest-written"
    assert (current / "metadata.json").read_text() == '{"version": "2"}'
    assert "canaryTrafficPercent: 10" in Path(result["category"]["manifest_path"]).read_text()
