"""Where the built store is, said truthfully: the build summary names the store it built and a Feast CLI
command that opens it; and the Feast CLI in a fresh clone's feature_repo/ answers instead of a traceback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from titans.features import built_store, spec

ROOT = Path(__file__).resolve().parents[2]
FEAST = Path(sys.executable).with_name("feast")


def _bare_env() -> dict[str, str]:
    """A fresh shell: nothing of titans exported."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("TITANS_", "MLFLOW_"))}


def _feast(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FEAST), *args], cwd=cwd, env=_bare_env(), capture_output=True, text=True, timeout=180,
                          check=False)


def test_summary_names_the_store_built_and_how_to_open_it(hand_store: dict, tmp_path: Path) -> None:
    summary, home = hand_store["summary"], hand_store["home"]
    store = home / "features"
    assert summary["store_dir"] == str(store)
    assert summary["feature_store_yaml"] == str(store / built_store.BUILT_YAML)
    assert summary["feast_cli"] == f"feast -c {store} feature-views list"
    config = yaml.safe_load(Path(summary["feature_store_yaml"]).read_text())
    assert config["registry"]["path"] == f"sqlite:///{store / 'registry.db'}" == summary["registry"]
    assert config["online_store"]["path"] == str(store / "online.db")

    # The command works from anywhere, with nothing exported, and lists what the build registered.
    listed = _feast(summary["feast_cli"].split()[1:], cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert all(view.name in listed.stdout for view in spec.STORED_VIEWS), listed.stdout

    # `feast plan`/`apply` in the store folder (no definitions there) would delete everything: it is refused.
    plan = _feast(["-c", str(store), "plan"], cwd=tmp_path)
    assert plan.returncode != 0 and "would delete every registered object" in plan.stderr, plan.stdout + plan.stderr
    assert "Deleted" not in plan.stdout
    again = _feast(summary["feast_cli"].split()[1:], cwd=tmp_path)
    assert all(view.name in again.stdout for view in spec.STORED_VIEWS)


def test_feast_cli_in_a_fresh_clone_before_any_build(tmp_path: Path) -> None:
    """A clone as git gives it: feature_repo/ and the tracked var/features/README.md, no store built yet."""
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "feature_repo", clone / "feature_repo", ignore=shutil.ignore_patterns("__pycache__"))
    (clone / "var" / "features").mkdir(parents=True)
    shutil.copy(ROOT / "var" / "features" / "README.md", clone / "var" / "features" / "README.md")
    listed = _feast(["feature-views", "list"], cwd=clone / "feature_repo")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "Traceback" not in listed.stderr and "NAME" in listed.stdout


def test_a_registry_that_cannot_be_opened_is_one_line_before_any_work(tmp_path: Path) -> None:
    """The chart's kind of store (an S3 registry) with its object store unreachable: `titans features build` says
    which config and why in one line, exit 2, and writes no offline table (it used to write them all first and
    end in a traceback from Feast)."""
    import socket

    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "config" / "feature_store.yaml"
    config.parent.mkdir()
    config.write_text("project: titans\nprovider: local\nregistry:\n  registry_type: file\n"
                      "  path: s3://titans-feast/registry.db\nonline_store:\n  type: sqlite\n"
                      f"  path: {tmp_path / 'online.db'}\noffline_store:\n  type: duckdb\n"
                      "entity_key_serialization_version: 3\n")
    data = tmp_path / "data"
    subprocess.run([sys.executable, "-m", "titans.cli", "data", "generate", "--rows", "300", "--accounts", "1",
                    "--small-accounts", "0", "--out", str(tmp_path / "export.csv")], check=True, env=_bare_env(),
                   capture_output=True, timeout=120)
    subprocess.run([sys.executable, "-m", "titans.cli", "data", "ingest", "--input", str(tmp_path / "export.csv"),
                    "--out", str(data)], check=True, env={**_bare_env(), "TITANS_HOME": str(tmp_path / "home")},
                   capture_output=True, timeout=120)
    env = {**_bare_env(), "TITANS_HOME": str(tmp_path / "home"), "TITANS_FEATURE_STORE_YAML": str(config),
           "FEAST_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",
           "AWS_ACCESS_KEY_ID": "unused", "AWS_SECRET_ACCESS_KEY": "unused", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_MAX_ATTEMPTS": "1"}
    result = subprocess.run([sys.executable, "-m", "titans.cli", "features", "build", "--data", str(data)],
                            env=env, capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("titans: error:")]
    assert len(errors) == 1 and f"{config}: cannot open the feature registry" in errors[0], result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "home" / "features" / "offline").exists()


def test_a_step_uses_the_charts_store_only_where_a_cluster_mounted_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled pipeline mounts the chart's feature_store.yaml (optional) where the serving pods read it: a
    step then writes to that store; with nothing mounted (kfp.local) the embedded store stays; an explicit
    TITANS_FEATURE_STORE_YAML is never overridden."""
    from titans.features.paths import STORE_YAML_ENV, store_yaml, use_mounted_store

    # Set, then removed, through monkeypatch: the selection below writes os.environ itself, and only a variable
    # monkeypatch has recorded is put back as it was (a leak made every later run in this worker use it).
    monkeypatch.setenv(STORE_YAML_ENV, "recorded")
    monkeypatch.delenv(STORE_YAML_ENV)
    mount = tmp_path / "etc-titans-feature_repo"
    assert use_mounted_store(mount) is None and STORE_YAML_ENV not in os.environ
    assert store_yaml(tmp_path / "repo") == tmp_path / "repo" / "feature_store.yaml"
    mount.mkdir()
    (mount / "feature_store.yaml").write_text("project: titans\n")
    assert use_mounted_store(mount) == mount / "feature_store.yaml"
    assert store_yaml(tmp_path / "repo") == mount / "feature_store.yaml"
    monkeypatch.setenv(STORE_YAML_ENV, "feature_store.production.yaml")
    assert use_mounted_store(mount) is None and os.environ[STORE_YAML_ENV] == "feature_store.production.yaml"
