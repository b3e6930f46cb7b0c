"""Where the built store is, said truthfully: the build summary names the store it built and a Feast CLI
command that opens it; and the Feast CLI in a fresh clone's feature_repo/ answers instead of a traceback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

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
