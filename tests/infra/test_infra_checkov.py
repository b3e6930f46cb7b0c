"""checkov over the rendered manifests and the Terraform, offline (--skip-download).

Why: checkov encodes hundreds of known misconfigurations (CIS-style Kubernetes checks, AWS storage and
IAM checks). The rule here is zero failed checks; every skip carries its reason, either inline in the
Terraform or in data/checkov-kubernetes-skips.yaml. checkov lives in .venv-tools (`make tools`) so its
pins never constrain the product's lock.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_helpers import DATA, REPO, TERRAFORM, Manifest, tool

SKIPS: dict[str, str] = yaml.safe_load((DATA / "checkov-kubernetes-skips.yaml").read_text())
PRODUCTION_MUST_PASS = {"CKV_K8S_43"}


@pytest.fixture(scope="module")
def checkov() -> str:
    found = tool("checkov", REPO / ".venv-tools" / "bin" / "checkov")
    if found is None:
        pytest.skip("checkov not installed (run `make tools`: it goes to .venv-tools)")
    return found


def write(folder: Path, name: str, objs: list[Manifest]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump_all(objs))


def reports(stdout: str) -> list[dict[str, Any]]:
    """checkov prints one report object, or a list when several frameworks ran."""
    data = json.loads(stdout)
    return data if isinstance(data, list) else [data]


@pytest.fixture(scope="module")
def scans(checkov: str, tmp_path_factory: pytest.TempPathFactory, default_render: tuple[list[Manifest], str],
          kind_render: tuple[list[Manifest], str], production_render: tuple[list[Manifest], str]
          ) -> dict[str, list[dict[str, Any]]]:
    """Two checkov runs in parallel (2 cores): dev renders with all skips; production + Terraform with
    the digest check enforced."""
    root = tmp_path_factory.mktemp("checkov")
    write(root / "dev", "default", default_render[0])
    write(root / "dev", "kind", kind_render[0])
    write(root / "prod", "production", production_render[0])
    common = [checkov, "--skip-download", "--compact", "-o", "json", "--skip-results-upload"]
    commands = {
        "dev": [*common, "-d", str(root / "dev"), "--framework", "kubernetes", "--skip-check", ",".join(SKIPS)],
        "production": [*common, "-d", str(root / "prod"), "-d", str(TERRAFORM), "--framework", "kubernetes",
                       "terraform", "--skip-check", ",".join(sorted(set(SKIPS) - PRODUCTION_MUST_PASS))],
    }
    # Each run writes its report to its own folder: two checkov processes sharing stdout pipes were seen
    # interleaving reports, so stdout is not trusted.
    running = {}
    for name, cmd in commands.items():
        (root / f"{name}-report").mkdir()
        cmd = [*cmd, "--output-file-path", str(root / f"{name}-report")]
        running[name] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=root)
    out: dict[str, list[dict[str, Any]]] = {}
    for name, process in running.items():
        _, stderr = process.communicate(timeout=300)
        # Exit 1 means "failed checks", reported below; anything else is checkov itself failing.
        assert process.returncode in (0, 1), stderr[-2000:]
        out[name] = reports((root / f"{name}-report" / "results_json.json").read_text())
    return out


def failures(report_list: list[dict[str, Any]]) -> list[str]:
    return [f"{c['check_id']} {c['resource']} ({c.get('file_path')}): {c['check_name']}"
            for report in report_list for c in report["results"]["failed_checks"]]


def test_skips_have_reasons() -> None:
    assert SKIPS and all(len(reason.split()) >= 12 for reason in SKIPS.values()), SKIPS


@pytest.mark.parametrize("scan", ["dev", "production"])
def test_no_failed_checks(scans: dict[str, list[dict[str, Any]]], scan: str) -> None:
    """Every failed check is a finding to fix or to skip with a reason; none may be left standing."""
    report_list = scans[scan]
    assert sum(r["summary"]["passed"] for r in report_list) > 100, "checkov scanned (almost) nothing"
    assert failures(report_list) == []


def test_terraform_and_production_were_both_scanned(scans: dict[str, list[dict[str, Any]]]) -> None:
    """A framework that silently scanned nothing would pass the test above."""
    kinds = {r["check_type"]: r["summary"]["passed"] for r in scans["production"]}
    assert kinds.get("kubernetes", 0) > 50 and kinds.get("terraform", 0) > 100, kinds


def test_inline_terraform_skips_are_explained(scans: dict[str, list[dict[str, Any]]]) -> None:
    """Terraform suppressions sit next to the resource with a sentence saying why."""
    skipped = [c for r in scans["production"] if r["check_type"] == "terraform"
               for c in r["results"]["skipped_checks"]]
    assert skipped, "expected the documented inline skips"
    for check in skipped:
        assert len((check.get("check_result", {}).get("suppress_comment") or "").split()) >= 8, check["check_id"]
