"""``titans canary analyze`` and ``titans deploy`` from the command line, plus analysis glue.

The command-line tests call the real ``titans.cli.main`` with the areas narrowed to
deploy and canary, so a half-written module of another area cannot fail them; one
test runs the installed entry point as a subprocess, because "``titans canary analyze
--help`` documents the policy" is a promise about the real command.
"""

from __future__ import annotations

import functools
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from titans import cli, deploy
from titans.canary.analyze import alias_plan, planned_patches, resolve_rollout
from titans.canary.policy import HOLD, PROMOTE, ROLLBACK, Decision
from titans.errors import UserError


@pytest.fixture
def titans() -> Any:
    return functools.partial(cli.main, only={"deploy", "canary"})


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on: an unreachable Prometheus, for real."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_help_of_the_real_command_documents_the_policy() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "titans.cli", "canary", "analyze", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for phrase in [
        "10% -> 50% -> 100%",
        ">= 200 predicted rows",
        "canary <= 0.05 (--max-error-ratio)",
        "canary <= stable + 0.01 (--max-error-ratio-increase)",
        "canary p95 <= stable p95 x 1.5 (--max-latency-ratio)",
        "under 0.05s (--min-latency-increase)",
        "score buckets <= 0.2 (--max-psi)",
        "p < 0.01",
        "HOLD",
        "ROLLBACK",
        "canaryTrafficPercent: 0",
        "'champion'",
    ]:
        assert phrase in text, phrase


def test_unreachable_prometheus_holds_from_the_cli(
    titans: Any, closed_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("min_predictions: 50\nsteps: [20, 100]\n")
    code = titans(
        [
            "canary",
            "analyze",
            "--model",
            "titans-category",
            "--canary-version",
            "2",
            "--stable-version",
            "1",
            "--current-percent",
            "20",
            "--prometheus-url",
            f"http://127.0.0.1:{closed_port}",
            "--window",
            "5m",
            "--policy",
            str(policy),
            "--max-psi",
            "0.3",
            "--no-registry",
            "--out-dir",
            str(tmp_path / "records"),
            "--json",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["action"] == HOLD and summary["target_percent"] == 20
    assert any("unreachable" in reason for reason in summary["reasons"])
    record = json.loads(Path(summary["record_path"]).read_text())
    assert record["evidence"]["window_seconds"] == 300
    assert record["policy"]["min_predictions"] == 50 and record["policy"]["steps"] == [20, 100]
    assert record["policy"]["max_psi"] == 0.3  # the flag beats the file's default
    assert record["patches"] == [] and record["aliases"]["changes"] == []
    report = Path(summary["report_path"]).read_text()
    assert report.startswith("# Canary decision: HOLD") and "Prometheus problems" in report


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--window", "ten minutes", "--current-percent", "10"], "window must look like"),
        (["--steps", "50,10,100", "--current-percent", "10"], "strictly increasing"),
        ([], "--current-percent"),
        (["--current-percent", "10", "--canary-version", "1"], "same model version"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    titans: Any, extra: list[str], message: str, closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["canary", "analyze", "--model", "titans-category", "--prometheus-url", f"http://127.0.0.1:{closed_port}"]
    versions = [] if "--canary-version" in extra else ["--canary-version", "2"]
    code = titans([*base, *versions, "--stable-version", "1", "--no-registry", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("titans: error:") and message in err and err.count("\n") == 1


def test_unknown_policy_key_in_a_file_is_a_user_error(
    titans: Any, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"max_error_rate": 0.1}))
    code = titans(
        ["canary", "analyze", "--model", "titans-category", "--policy", str(policy), "--current-percent", "10"]
    )
    assert code == 2 and "unknown canary policy keys ['max_error_rate']" in capsys.readouterr().err


def test_unregistered_version_stops_before_anything_is_patched(
    titans: Any, tracking_uri: str, closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code = titans(
        [
            "canary",
            "analyze",
            "--model",
            "titans-category",
            "--canary-version",
            "42",
            "--stable-version",
            "1",
            "--current-percent",
            "10",
            "--prometheus-url",
            f"http://127.0.0.1:{closed_port}",
            "--tracking-uri",
            tracking_uri,
        ]
    )
    assert code == 2 and "has no version 42" in capsys.readouterr().err


def test_deploy_render_prints_the_manifest(titans: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code = titans(["deploy", "render", "--model", "titans-amount", "--version", "4", "--canary-percent", "10"])
    assert code == 0
    assert yaml.safe_load(capsys.readouterr().out) == deploy.render_inference_service(
        "titans-amount", "4", canary_traffic_percent=10
    )


def test_deploy_apply_without_a_cluster_writes_and_says_so(
    titans: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = titans(["deploy", "apply", "--model", "titans-category", "--version", "3", "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("no Kubernetes configuration found: wrote ") and "kubectl apply -f" in out
    assert (tmp_path / "titans-category-3.yaml").is_file()


def test_deploy_apply_against_the_double(
    titans: Any, kubeconfig: str, kube_double: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["deploy", "apply", "--model", "titans-category", "--kubeconfig", kubeconfig, "--timeout", "10"]
    assert titans([*args, "--version", "1"]) == 0
    assert titans([*args, "--version", "2", "--canary-percent", "25"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "created titans/titans-category model version 1: Ready",
        "patched titans/titans-category model version 2: Ready",
    ]
    assert kube_double.patches()[-1].body["spec"]["predictor"]["canaryTrafficPercent"] == 25


# --- analysis glue (pure) --------------------------------------------------------------------


def decision(action: str, target: int, full: bool = False) -> Decision:
    return Decision(action, 10, target, full, ("because",), ())


def test_alias_plan_for_each_decision() -> None:
    before = {"champion": "1", "challenger": "2"}
    assert alias_plan(decision(PROMOTE, 50), "2", "1", before) == [{"alias": "canary", "from": None, "to": "2"}]
    assert alias_plan(decision(PROMOTE, 100, True), "2", "1", {**before, "canary": "2"}) == [
        {"alias": "champion", "from": "1", "to": "2"},
        {"alias": "previous-champion", "from": None, "to": "1"},
        {"alias": "canary", "from": "2", "to": None},
        {"alias": "challenger", "from": "2", "to": None},
    ]
    assert alias_plan(decision(ROLLBACK, 0), "2", "1", {**before, "canary": "2"}) == [
        {"alias": "canary", "from": "2", "to": None},
        {"alias": "challenger", "from": "2", "to": None},
    ]
    assert alias_plan(decision(HOLD, 10), "2", "1", before) == []


def test_alias_plan_when_the_gate_already_made_the_canary_champion() -> None:
    # titans.registry's gate sets champion at registration; rollback must then restore the stable one.
    gate_flow = {"champion": "2", "challenger": "2"}
    assert alias_plan(decision(PROMOTE, 100, True), "2", "1", gate_flow) == [
        {"alias": "challenger", "from": "2", "to": None}
    ]
    assert alias_plan(decision(ROLLBACK, 0), "2", "1", gate_flow) == [
        {"alias": "challenger", "from": "2", "to": None},
        {"alias": "champion", "from": "2", "to": "1"},
    ]


def live_isvc(percent: int | None) -> dict[str, Any]:
    manifest = deploy.render_inference_service(
        "titans-category", "3", canary_traffic_percent=percent, stable_version="2", stable_storage_uri="s3://b/2"
    )
    return manifest


def test_rollout_is_read_from_the_cluster() -> None:
    rollout = resolve_rollout("titans-category", "", "", -1, "", live_isvc(50))
    assert (rollout.canary_version, rollout.stable_version, rollout.current_percent) == ("3", "2", 50)
    assert rollout.stable_storage_uri == "s3://b/2" and rollout.source == "cluster"
    assert resolve_rollout("titans-category", "", "", 10, "", live_isvc(None)).current_percent == 100
    with pytest.raises(UserError, match="runs model version 3"):
        resolve_rollout("titans-category", "4", "", -1, "", live_isvc(10))


def test_rollback_patch_uses_the_recorded_stable_location() -> None:
    rollout = resolve_rollout("titans-category", "", "", -1, "", live_isvc(10))
    assert planned_patches(decision(ROLLBACK, 0), rollout, "titans-category")[1]["spec"]["predictor"]["model"] == {
        "storageUri": "s3://b/2",
        "env": [{"name": "TITANS_MODEL_VERSION", "value": "2"}],
    }
    assert planned_patches(decision(HOLD, 10), rollout, "titans-category") == []
