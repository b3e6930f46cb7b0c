"""The dashboard in the project image, started from the chart's own render as its pod would be.

Why: the chart runs the dashboard from the pipeline image with a read-only root, uid 10001, no
capabilities, and only /tmp writable. So the container gets the rendered Deployment's command and env
(production values: the dashboard on, behind JWT) under those settings, one change made and said: the
``--endpoint`` names the cluster's InferenceServices, here it is a model server on loopback serving the
subprocess run's models. A person's upload in a real browser must be scored through that server.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from images_helpers import PIPELINE_IMAGE, http_status, require_image
from infra_helpers import CHART, find, load_values, render_chart
from serving_harness import start_server

from dashboard.page_ready import PAGES, navigate, upload

STARTUP_S = 120.0


def _dashboard_container() -> dict[str, Any]:
    objs, _ = render_chart(load_values(CHART / "ci" / "production-values.yaml"))
    deployment = find(objs, "Deployment", "titans-dashboard")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_the_dashboard_runs_in_the_image_as_its_pod_and_scores_an_upload(
        engine: Any, subprocess_run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    require_image(engine, PIPELINE_IMAGE)
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no chromium on PATH (Debian package chromium; .ci/run installs it)")
    home, _ = subprocess_run
    server = start_server(["--models", str(home / "models"), "--no-grpc"], tmp_path / "serve.log",
                          {"TITANS_HOME": str(home)})
    container = _dashboard_container()
    security = container["securityContext"]
    command = list(container["command"])
    command[command.index("--endpoint") + 1] = server.http_url
    port = int(command[command.index("--port") + 1])
    env = {item["name"]: item["value"] for item in container["env"]}
    # The Secret the chart mounts (a stand-in token: here no mesh checks it), readable by the pod's user.
    token_file = Path(command[command.index("--token-file") + 1])
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / token_file.name).write_text("a-token-the-mesh-would-check\n")
    for path in (secret, secret / token_file.name):
        path.chmod(0o755 if path.is_dir() else 0o644)
    if http_status(f"http://127.0.0.1:{port}/_stcore/health") is not None:
        pytest.fail(f"port {port} is in use on 127.0.0.1; the chart fixes it, so free it first")
    started = engine.containers.run(
        PIPELINE_IMAGE, command=command, environment=env, detach=True, read_only=True,
        tmpfs={"/tmp": ""}, cap_drop=["ALL"], security_opt=["no-new-privileges"],
        user=f"{security['runAsUser']}:{security['runAsGroup']}", network_mode="host",
        volumes={str(secret): {"bind": str(token_file.parent), "mode": "ro"}})
    try:
        server.wait_ready(["titans-category", "titans-anomaly"])
        deadline = time.monotonic() + STARTUP_S
        while http_status(f"http://127.0.0.1:{port}/_stcore/health") != 200:
            started.reload()
            assert started.status != "exited" and time.monotonic() < deadline, started.logs().decode()[-3000:]
            time.sleep(0.5)
        from playwright.sync_api import sync_playwright  # here: only this test of the folder drives a browser

        export = next(home.glob("pipeline_root/*/ingest-data/generated.csv"))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            base = f"http://127.0.0.1:{port}"
            upload(page, base, str(export))
            caption = page.locator("[data-testid=stSidebar] [data-testid=stCaptionContainer]").first.inner_text()
            assert "generated.csv" in caption and f"V2 endpoint {server.http_url}" in caption.replace("\n", " ")
            navigate(page, PAGES[1])  # the upload's session: the flagged rows of the uploaded export
            assert page.locator("[data-testid=stException]").count() == 0
            assert page.locator("[data-testid=stTable]").count() >= 1
            browser.close()
        assert "Traceback" not in started.logs().decode()
    finally:
        started.remove(force=True)
        server.stop()
