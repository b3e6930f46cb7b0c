"""The project image runs the command line, and the whole pipeline runs step by step inside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from images_helpers import PIPELINE_IMAGE, require_image


def test_pipeline_image_runs_the_command_line(engine: Any) -> None:
    """The image's default command is `titans --help`, as the image's user, with nothing else set."""
    require_image(engine, PIPELINE_IMAGE)
    output = engine.containers.run(PIPELINE_IMAGE, remove=True, network_mode="host").decode()
    assert "pipeline" in output and "serve" in output, output
    user = engine.images.get(PIPELINE_IMAGE).attrs["Config"]["User"]
    assert user == "10001"


def test_pipeline_in_containers_decides_as_the_subprocess_run(
        docker_run: tuple[Path, dict[str, Any]], subprocess_run: tuple[Path, dict[str, Any]]) -> None:
    """Every step in the image, TITANS_HOME as the mounted volume: the same gate decisions and deployments."""
    home, summary = docker_run
    _, reference = subprocess_run
    assert summary["runner"] == "docker" and reference["runner"] == "subprocess"
    decisions = {task: (m["alias"], (m["gate"] or {}).get("decision")) for task, m in summary["models"].items()}
    expected = {task: (m["alias"], (m["gate"] or {}).get("decision")) for task, m in reference["models"].items()}
    assert decisions == expected
    assert set(decisions) == {"category", "amount", "anomaly", "cashflow", "recommend"}
    assert summary["data"]["rows_clean"] == reference["data"]["rows_clean"] > 0
    assert {t: d.get("action") for t, d in summary["deployments"].items()} == \
        {t: d.get("action") for t, d in reference["deployments"].items()}
    # What the steps wrote landed in the mounted home, owned by the home's owner (the image's user here).
    for task in decisions:
        metadata = home / "models" / task / "metadata.json"
        assert metadata.is_file(), f"{task}: the deploy step wrote no model folder into the volume"
        assert metadata.stat().st_uid == home.stat().st_uid
    assert (home / "mlflow.db").is_file()
