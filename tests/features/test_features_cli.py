"""The Feast CLI works in feature_repo/ with nothing exported, on the store titans built.

Why: people reach for `feast plan`, `feast feature-views list` or `feast get-online-features` in the
repository folder; the embedded yaml names repository-relative paths (the clone's var/, where `make run`
builds the store), so those work without exporting TITANS_HOME, while titans keeps honouring TITANS_HOME.
The test runs the real CLI in a copy of feature_repo/ (so the clone's var/ is a temp folder, never ./var),
after titans built the store into that clone's var/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
from features_fixtures import titans_home_env

from titans.features import paths, spec

REPO = Path(__file__).resolve().parents[2] / "feature_repo"
FEAST = Path(sys.executable).with_name("feast")


def feast(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(FEAST), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180,
                            check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def bare_env() -> dict[str, str]:
    """This environment with nothing of titans' exported: what a fresh shell has."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("TITANS_", "MLFLOW_"))}


def test_embedded_yaml_paths_lead_to_the_clone_var_folder() -> None:
    assert paths.cli_home(REPO) == REPO.parent / "var"


def test_feast_cli_in_feature_repo_needs_no_exports(tmp_path: Path, hand_clean: pd.DataFrame) -> None:
    from titans.features.build import build_from_clean
    from titans.features.store import FeatureClient

    repo = tmp_path / "clone" / "feature_repo"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns("__pycache__", "*.md"))
    home = tmp_path / "clone" / "var"
    with titans_home_env(home):
        build_from_clean(hand_clean, repo=repo)
        expected = FeatureClient(repo).store.get_online_features(
            features=["merchant_frequency:merchant_txn_count_all"], entity_rows=[{"merchant": "acme"}]).to_dict()
    assert (home / "features" / "registry.db").is_file()

    # Nothing exported: the CLI reads the registry titans wrote ...
    env = bare_env()
    services = feast(["feature-services", "list"], repo, env)
    assert all(name in services.stdout for name in spec.SERVICES), services.stdout
    # ... and the online store it materialized.
    online = feast(["get-online-features", "-e", "merchant=acme", "-f", "merchant_frequency:merchant_txn_count_all"],
                   repo, env)
    count = expected["merchant_txn_count_all"][0]
    assert count > 0 and str(count) in online.stdout, online.stdout

    # An exported TITANS_HOME elsewhere does not split the store: `feast plan` loads the definitions, which
    # name the tables of the home the yaml names (the plan finds the tables: no "Could not validate"), and
    # the CLI says which home it uses.
    elsewhere = feast(["plan"], repo, env | {"TITANS_HOME": str(tmp_path / "elsewhere")})
    assert f"uses the store in {home}" in elsewhere.stderr
    assert "Could not validate FileSource" not in elsewhere.stderr + elsewhere.stdout
    assert not (tmp_path / "elsewhere").exists()
    # Runtime data stays out of the repository folder.
    assert sorted(p.name for p in repo.iterdir() if p.name != "__pycache__") == sorted(
        p.name for p in REPO.iterdir() if p.name != "__pycache__" and p.suffix != ".md")
