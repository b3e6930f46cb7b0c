"""The store a build actually wrote, described so a person can open it with the Feast CLI.

Why: the embedded ``feature_repo/feature_store.yaml`` names paths relative to ``feature_repo/``
(the clone's ``var/``, for the Feast CLI run there), while titans keeps the registry and the online
store under ``$TITANS_HOME/features``. A build summary naming that yaml pointed at the clone's store,
not at the one just built by a test, a pipeline step or any other TITANS_HOME. So a build writes the
yaml of the store it built beside that store, with absolute paths, and the summary names that file
and the command that reads it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from titans.features import paths

BUILT_YAML = "feature_store.yaml"
# The Feast CLI imports every .py file of the folder it plans or applies; with no definitions here, a
# `feast -c <store> apply` would delete every registered object. This file stops it with a message.
GUARD = "not_a_feature_repository.py"
_PREAMBLE = ("# Written by `titans features build`: the store it built, with absolute paths, for the Feast CLI\n"
             "# (`feast -c <this folder> feature-views list`). Feature definitions live in the repository named\n"
             "# below; apply them with `titans features build`, not `feast apply` in this folder.\n")
_GUARD_DOC = '"""Not a Feast repository: the store `titans features build` wrote (see feature_store.yaml here)."""'


def _guard(folder: Path, repo: Path) -> str:
    message = (f"feast: {folder} holds the store `titans features build` built, not feature definitions; "
               "`feast plan` or `feast apply` here would delete every registered object. Apply the definitions in "
               f"{repo} with `titans features build`; read this store with `feast -c {folder} feature-views list`.")
    return f"{_GUARD_DOC}\n\nraise SystemExit({message!r})\n"


def describe(client: Any) -> dict[str, str | None]:
    """``feature_store_yaml`` (the built store's yaml), ``store_dir`` and a ``feast_cli`` command to read it.

    ``client`` is the ``FeatureClient`` the build used. A yaml other than the embedded one names its
    store itself (Redis, PostgreSQL, an object store), so it is reported as it is, with no ``store_dir``.
    """
    if not paths.is_embedded(client.yaml_path):
        return {"feature_store_yaml": str(client.yaml_path), "store_dir": None,
                "feast_cli": f"feast -c {client.repo_path} -f {client.yaml_path} feature-views list"}
    config = client.store.config
    raw = yaml.safe_load(os.path.expandvars(client.yaml_path.read_text())) or {}
    raw["registry"] = {**raw.get("registry", {}), "path": config.registry.path}
    raw["online_store"] = {**raw.get("online_store", {}), "path": str(config.online_store.path)}
    folder = paths.feature_home()
    target = folder / BUILT_YAML
    partial = target.with_suffix(".yaml.partial")
    partial.write_text(_PREAMBLE + f"# Definitions: {client.repo_path}\n" + yaml.safe_dump(raw, sort_keys=False))
    partial.replace(target)
    (folder / GUARD).write_text(_guard(folder, client.repo_path))
    return {"feature_store_yaml": str(target), "store_dir": str(folder),
            "feast_cli": f"feast -c {folder} feature-views list"}

