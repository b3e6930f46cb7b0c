"""The Dockerfiles lint clean, build only from their own stages, and leave nothing build-only behind."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from images_helpers import PIPELINE_IMAGE, REPO, SERVING_IMAGE, require_image

from titans.spark_app import SparkSettings

DOCKERFILES = (REPO / "Dockerfile", REPO / "serving" / "Dockerfile")
HADOLINT = REPO / ".venv-tools" / "bin" / "hadolint"


def test_hadolint_clean() -> None:
    """hadolint at its strictest threshold; an ignore would have to be a commented `# hadolint ignore=`."""
    if not HADOLINT.exists():
        pytest.skip(f"hadolint not installed at {HADOLINT} (`make tools` installs it)")
    result = subprocess.run([str(HADOLINT), "--failure-threshold", "style", *map(str, DOCKERFILES)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    for dockerfile in DOCKERFILES:
        lines = dockerfile.read_text().splitlines()
        for i, line in enumerate(lines):
            if "hadolint ignore" in line:
                assert i > 0 and lines[i - 1].startswith("#") and "hadolint" not in lines[i - 1], \
                    f"{dockerfile.name}:{i + 1}: an ignore needs a comment above it saying why"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_builds_from_its_base_argument_and_own_stages(dockerfile: Path) -> None:
    """FROM only ${BASE_IMAGE} (default the public python:3.11 slim image) or an earlier stage of its own (the
    Spark image is the project image's stage plus a JRE); COPY --from only a named stage."""
    text = dockerfile.read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11[\w.-]*slim", text, re.M)
    stages = set()
    for match in re.finditer(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M):
        assert match.group(1) in {"${BASE_IMAGE}", *stages}, f"{dockerfile.name}: FROM {match.group(1)}"
        if match.group(2):
            stages.add(match.group(2))
    for source in re.findall(r"COPY\s+--from=(\S+)", text):
        assert source in stages, f"{dockerfile.name}: COPY --from={source} is not one of its stages {stages}"


# What must not be in a final image: the build's CA bundle and uv, compilers, and (serving) training parts.
BUILD_ONLY = "test ! -e /tmp/build-ca && test ! -e /opt/uv && ! command -v gcc && ! command -v cc"
SITE = "/app/.venv/lib/python3.11/site-packages"


@pytest.mark.parametrize(("image", "absent"), [
    (PIPELINE_IMAGE, ["pytest", "ruff", "helm_python"]),
    (SparkSettings().image, ["pytest", "ruff", "helm_python"]),
    (SERVING_IMAGE, ["pytest", "ruff", "helm_python", "kfp", "mypy", "matplotlib", "duckdb", "grpc_tools",
                     "mlflow"]),
])
def test_final_image_holds_no_build_only_files(engine: Any, image: str, absent: list[str]) -> None:
    require_image(engine, image)
    env = engine.images.get(image).attrs["Config"]["Env"]
    assert not [e for e in env if e.startswith(("SSL_CERT_FILE=", "PIP_CERT=", "UV_"))], env
    packages = " ".join(f"{SITE}/{name}" for name in absent)
    script = f"{BUILD_ONLY} && for p in {packages}; do test ! -e $p || {{ echo present: $p; exit 1; }}; done"
    engine.containers.run(image, entrypoint=["sh", "-c", script], remove=True, network_mode="host")
