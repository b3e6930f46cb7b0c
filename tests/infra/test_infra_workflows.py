"""The GitHub Actions workflows, checked offline: actionlint, zizmor, and what each job must do.

Why: neither workflow can run here (no GitHub runner; the kind job needs Docker registries and a
cluster), so a broken expression, an unpinned third-party action or a step that drifted from the README's
quick start would be found only by whoever runs them first. actionlint type-checks the workflow syntax and
expressions; zizmor audits them for security mistakes (template injection, credentials persisted by
checkout, unpinned actions, excessive permissions). Both live in .venv-tools (`make tools`) and the tests
skip with a reason where they are absent. The structural tests need no tool: they hold the jobs to what
.ci/run, the Makefile and docs/deploying.md say, and the image names to what the chart pulls.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_helpers import CHART, REPO, load_values, run, tool

WORKFLOWS = REPO / ".github" / "workflows"
SCRIPTS = REPO / ".github" / "scripts"
TOOLS_BIN = REPO / ".venv-tools" / "bin"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def workflow(name: str) -> dict[str, Any]:
    # PyYAML reads the bare key `on` as True (YAML 1.1); GitHub reads it as the string.
    loaded = yaml.safe_load((WORKFLOWS / name).read_text())
    if True in loaded:
        loaded["on"] = loaded.pop(True)
    return loaded


def steps(wf: dict[str, Any], job: str) -> list[dict[str, Any]]:
    return wf["jobs"][job]["steps"]


def run_text(wf: dict[str, Any], job: str) -> str:
    """Every `run:` script of one job, in order, as one text."""
    return "\n".join(step.get("run", "") for step in steps(wf, job))


def image_names() -> set[str]:
    """repository:tag of the chart's two Titans images (what a kind node must already hold)."""
    images = load_values(CHART / "values.yaml")["images"]
    return {f"{images[k]['repository']}:{images[k]['tag']}" for k in ("pipeline", "serving")}


def side_tool(name: str) -> str:
    """A linter from .venv-tools (else PATH); skip visibly when neither has it."""
    found = tool(name, TOOLS_BIN / name)
    if found is None:
        pytest.skip(f"{name} not installed (run `make tools`: it goes to .venv-tools)")
    return found


@pytest.fixture(scope="module")
def actionlint() -> str:
    return side_tool("actionlint")


@pytest.fixture(scope="module")
def zizmor() -> str:
    return side_tool("zizmor")


def test_actionlint_finds_nothing(actionlint: str) -> None:
    result = run([actionlint, "-color=false", *sorted(str(p) for p in WORKFLOWS.glob("*.yml"))], cwd=REPO)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_actionlint_would_catch_a_broken_expression(actionlint: str, tmp_path: Path) -> None:
    """The linter really type-checks: a misspelt context in a copy of ci.yml is an error."""
    broken = (WORKFLOWS / "ci.yml").read_text().replace("${{ github.ref }}", "${{ github.reff }}")
    (tmp_path / "ci.yml").write_text(broken)
    result = run([actionlint, "-color=false", str(tmp_path / "ci.yml")], cwd=tmp_path)
    assert result.returncode != 0 and "reff" in result.stdout


def test_zizmor_finds_nothing_even_pedantic(zizmor: str) -> None:
    """--offline: no GitHub API calls (the online audits need a token and a network)."""
    env = {k: v for k, v in os.environ.items() if k not in {"GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN"}}
    result = run([zizmor, "--offline", "--no-progress", "--persona=pedantic", "--format", "json", str(WORKFLOWS)],
                 cwd=REPO, env=env)
    findings = json.loads(result.stdout or "[]")
    assert result.returncode == 0 and findings == [], result.stdout[-4000:] + result.stderr[-2000:]


def test_every_action_is_pinned_by_commit_and_tokens_are_read_only() -> None:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        wf = workflow(path.name)
        assert wf["permissions"] == {"contents": "read"}, path.name
        for job_name, job in wf["jobs"].items():
            assert job.get("timeout-minutes"), f"{path.name}:{job_name} has no timeout"
            for step in job["steps"]:
                if "uses" in step:
                    assert PINNED.match(step["uses"]), f"{path.name}:{job_name}: {step['uses']} is not pinned"
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False


def test_ci_runs_the_ci_script_the_ir_check_and_the_images() -> None:
    wf = workflow("ci.yml")
    assert {"push", "pull_request"} <= set(wf["on"])
    assert "bash .ci/run" in run_text(wf, "test")
    ir = run_text(wf, "compiled-ir")
    assert "make compile" in ir and "git diff --exit-code -- pipelines/compiled/" in ir
    images = run_text(wf, "images")
    assert "make images" in images
    assert all(name in images for name in image_names())


def quick_start_commands() -> list[str]:
    """The commands of docs/deploying.md's quick start block, comments stripped, in order."""
    docs = (REPO / "docs" / "deploying.md").read_text()
    block = docs[docs.index("## The quick start"):]
    block = block[block.index("```bash") + len("```bash"):]
    block = block[:block.index("```")]
    return [line.split("#")[0].strip() for line in block.strip().splitlines() if line.split("#")[0].strip()]


def test_e2e_runs_the_documented_quick_start_and_asserts_promotion_and_rollback() -> None:
    """The workflow runs exactly the documented commands, in their order (extra arguments only where a command
    takes a name, like RUN_NAME), and no cluster patches of its own; then asserts the canaries."""
    wf = workflow("e2e-kind.yml")
    text = run_text(wf, "kind")
    commands = quick_start_commands()
    assert commands[:6] == ["make kind-up", "make images kind-load", "make kind-secrets", "make deploy",
                            "make kfp-forward", "make kind-train"], commands
    order = ["make install", *commands[:5], "kind-train RUN_NAME=e2e-1", "infer-through-ingress.sh",
             "kind-train RUN_NAME=e2e-2", "make canary MODEL=category VERSION=2 PERCENT=10",
             "make promote MODEL=category", "make canary MODEL=amount VERSION=2 PERCENT=10",
             "make canary MODEL=amount VERSION=2 PERCENT=0"]
    positions = [text.find(needle) for needle in order]
    assert -1 not in positions, [n for n, p in zip(order, positions, strict=True) if p < 0]
    assert positions == sorted(positions), "steps out of the quick start's order"
    assert "kubectl patch" not in text and " -n knative-serving patch" not in text, "a private cluster patch"
    assert "port-forward" not in text and "titans pipeline submit" not in text, "a step the docs do not have"
    assert "assert-isvc-traffic.sh \"$NAMESPACE\" titans-category 100" in text
    assert "assert-isvc-traffic.sh \"$NAMESPACE\" titans-amount 0" in text
    # The images the node is given are the ones the chart's pods ask for.
    env = wf["env"]
    assert {env["PIPELINE_IMAGE"], env["SERVING_IMAGE"]} == image_names()
    # Every make target the docs and the job call exists.
    makefiles = (REPO / "Makefile").read_text() + "".join(p.read_text() for p in (REPO / "mk").glob("*.mk"))
    for target in sorted(set(re.findall(r"\bmake (?:--[\w-]+ )*([a-z][a-z-]*)", text + "\n".join(commands)))):
        assert re.search(rf"^{target}:", makefiles, re.MULTILINE), f"make {target} is not a target"


def test_make_images_builds_the_names_the_chart_pulls() -> None:
    """`make images` (ci.yml builds with its defaults) tags what values.yaml names, or the pods pull nothing."""
    makefiles = "".join(p.read_text() for p in (REPO / "mk").glob("*.mk"))
    defaults = dict(re.findall(r"^(PIPELINE_IMAGE|SERVING_IMAGE) \?= (\S+)$", makefiles, re.MULTILINE))
    assert set(defaults) == {"PIPELINE_IMAGE", "SERVING_IMAGE"}, "make images no longer names its images"
    assert set(defaults.values()) == image_names()


def test_helper_scripts_exist_parse_and_are_executable() -> None:
    used = set()
    for path in WORKFLOWS.glob("*.yml"):
        used |= set(re.findall(r"\.github/scripts/([\w.-]+)", path.read_text()))
    assert used, "the workflows call no helper script"
    bash = tool("bash")
    for name in sorted(used):
        script = SCRIPTS / name
        assert script.is_file(), name
        if script.suffix == ".sh":
            assert os.access(script, os.X_OK), f"{name} is not executable"
            if bash:
                result = run([bash, "-n", str(script)])
                assert result.returncode == 0, result.stderr
        else:
            compile(script.read_text(), str(script), "exec")
