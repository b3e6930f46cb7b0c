"""Where feature data lives: the offline tables root and the repository's yaml.

Why here and not in ``titans.settings``: only the feature store reads these, and the Feast
definitions (``feature_repo/``) need the same answer at ``apply`` time that the builder used
at write time, so both call these functions.

Feast is imported inside the functions that read a yaml with it: its import takes ~5 s, and the
path functions here serve processes that never open a store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from titans.errors import UserError
from titans.settings import load_settings

logger = logging.getLogger(__name__)

# Object-store (or any pyarrow-writable) root for the offline tables in production,
# e.g. ``s3://titans-features/offline``. Unset: ``$TITANS_HOME/features/offline``.
OFFLINE_URI_ENV = "TITANS_FEATURE_OFFLINE_URI"
# Which yaml of the repository configures the store: a file name inside the repository
# (``feature_store.production.yaml``) or a path. Unset: ``feature_store.yaml``.
STORE_YAML_ENV = "TITANS_FEATURE_STORE_YAML"
DEFAULT_STORE_YAML = "feature_store.yaml"
# An opt-in store profile: a yaml of the same folder (the repository, or the chart's mount) by a short name.
# Unset: the default above, exactly as without profiles. ``spark``: Spark offline store and batch engine.
STORE_PROFILE_ENV = "TITANS_FEATURE_STORE_PROFILE"
SPARK_PROFILE = "spark"
PROFILE_STORE_YAMLS = {SPARK_PROFILE: "feature_store.spark.yaml"}
# The yamls whose relative sqlite registry and online store titans moves under $TITANS_HOME/features.
EMBEDDED_STORE_YAMLS = (DEFAULT_STORE_YAML, *PROFILE_STORE_YAMLS.values())
# Which offline store the definitions build their sources for. Set by titans around its import of the
# definitions (``definitions_offline_store``); a person running the Feast CLI on a profile may set it too.
DEFINITIONS_OFFLINE_STORE_ENV = "TITANS_FEATURE_OFFLINE_STORE"
# Where the embedded yaml's relative store paths lead, from the repository folder: the clone's ``var/``,
# the Makefile's TITANS_HOME, so the Feast CLI run in feature_repo/ finds what `make run` built.
CLI_HOME_FROM_REPO = Path("..") / "var"
# The module-name prefix under which titans loads the definition files (the Feast CLI uses the bare name).
TITANS_MODULE_PREFIX = "titans_feature_repo_"


def ensure_home_env() -> Path:
    """Export an absolute ``TITANS_HOME`` before Feast objects are built.

    The definitions (imported later, by Feast or by ``load_repo_contents``) name their tables from
    it, and a ``${TITANS_HOME}`` in a yaml a user selects resolves to the same folder; exporting the
    embedded default here keeps runtime data out of the repository.
    """
    home = load_settings().home
    os.environ["TITANS_HOME"] = str(home)
    return home


def cli_home(repo: Path) -> Path:
    """The TITANS_HOME the embedded yaml's relative paths name when the Feast CLI reads it."""
    return (repo / CLI_HOME_FROM_REPO).resolve()


def use_cli_home(repo: Path) -> Path:
    """Called by the definitions when the Feast CLI (not titans) imports them: offline tables from ``cli_home``.

    Why: the CLI reads the embedded yaml as written (registry and online store under the clone's ``var/``),
    so the tables the definitions name must come from the same home; an exported TITANS_HOME elsewhere
    would split one store across two folders. The folder is created because sqlite creates none.
    """
    home = cli_home(repo)
    exported = os.environ.get("TITANS_HOME")
    if exported and Path(exported).expanduser().resolve() != home and not os.environ.get(OFFLINE_URI_ENV):
        print(f"feature_repo: the Feast CLI uses the store in {home} (feature_store.yaml); "
              f"TITANS_HOME={exported} applies to titans commands", file=sys.stderr)
    os.environ["TITANS_HOME"] = str(home)
    (home / "features").mkdir(parents=True, exist_ok=True)
    return home


def is_embedded(yaml_path: Path) -> bool:
    """Whether ``yaml_path`` is the embedded default: registry and online store in sqlite at relative paths.

    Why by content and not by name: a cluster mounts its own ``feature_store.yaml`` (the chart's ConfigMap,
    Redis and a shared registry) under the same name. Taken for the embedded file, it was rewritten to
    sqlite files under ``$TITANS_HOME/features``, which a read-only pod cannot create: the predictor never
    started. A yaml with absolute, remote or non-sqlite stores is read as it is written.
    """
    if yaml_path.name not in EMBEDDED_STORE_YAMLS:
        return False
    try:
        raw = read_store_yaml(yaml_path)
    except UserError:
        return False  # the reader that opens it for real says what is wrong
    registry, online = raw.get("registry"), raw.get("online_store")
    registry_path = str(registry.get("path", "")) if isinstance(registry, dict) else str(registry or "")
    online = online if isinstance(online, dict) else {}
    relative_registry = registry_path.startswith("sqlite:///") and not registry_path[len("sqlite:///"):].startswith("/")
    return relative_registry and online.get("type") == "sqlite" and not str(online.get("path", "")).startswith("/")


def read_store_yaml(yaml_path: Path) -> dict[str, Any]:
    """A store yaml with ``${VAR}`` expanded; a ``UserError`` of one line naming the file when it cannot be read.

    Why one line: a server logs why a model is not ready in one line, and a mounted ConfigMap that a
    person mistyped must be found from that line (the file and the place), not from a parser's dump.
    """
    try:
        raw = yaml.safe_load(os.path.expandvars(yaml_path.read_text()))
    except OSError as exc:
        raise UserError(f"{yaml_path}: cannot read the feature store config ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise UserError(f"{yaml_path}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{yaml_path}: a feature store config is a mapping, not {type(raw).__name__}")
    return raw


def _repo_config(raw: dict[str, Any], yaml_path: Path) -> Any:
    """Feast's ``RepoConfig`` of ``raw``; its validation errors as one line naming the file."""
    from feast.repo_config import RepoConfig

    try:
        return RepoConfig(**offline_store_available(raw, yaml_path))
    except Exception as exc:  # pydantic's ValidationError and Feast's own errors alike
        raise UserError(f"{yaml_path}: not a Feast store config: {' '.join(str(exc).split())[:300]}") from None


def embedded_store_config(repo: Path, yaml_path: Path) -> Any:
    """The embedded yaml as Feast reads it, with its sqlite files moved to ``$TITANS_HOME/features``.

    Why: the yaml names repository-relative paths so that the Feast CLI works in feature_repo/ with
    nothing exported; titans honours TITANS_HOME (tests, pipeline steps, other homes), so it keeps the
    yaml's file names and swaps their folder. Parsed as Feast's ``load_repo_config`` parses it.
    """
    raw = read_store_yaml(yaml_path)
    registry, online = raw.get("registry") or {}, raw.get("online_store") or {}
    registry_path = str(registry.get("path", "")) if isinstance(registry, dict) else ""
    if not registry_path.startswith("sqlite:///") or online.get("type") != "sqlite":
        raise UserError(f"{yaml_path}: the embedded store must keep its registry and online store in sqlite "
                        f"(select another yaml with {STORE_YAML_ENV})")
    home = feature_home()
    registry["path"] = f"sqlite:///{home / Path(registry_path.removeprefix('sqlite:///')).name}"
    online["path"] = str(home / Path(str(online["path"])).name)
    override_spark_master(raw)
    config = _repo_config(raw, yaml_path)
    config.repo_path = repo
    return config


def yaml_store_config(repo: Path, yaml_path: Path) -> Any:
    """Any other yaml (production, the chart's ConfigMap) as Feast's ``load_repo_config`` reads it."""
    config = _repo_config(read_store_yaml(yaml_path), yaml_path)
    config.repo_path = repo
    return config


def offline_store_available(raw: dict[str, Any], yaml_path: Path) -> dict[str, Any]:
    """``raw`` with its offline store swapped for Feast's built-in file store when this process lacks it.

    Why: Feast validates the offline store's class when it reads a yaml, even for online reads. The
    serving image carries no duckdb (the training store, ~80 MB it never uses), so the same yaml the
    pipeline writes with must still open there; training-set reads in such a process say what is missing.
    """
    from feast.errors import FeastModuleImportError
    from feast.repo_config import get_offline_config_from_type

    kind = offline_store_type(raw)
    try:
        get_offline_config_from_type(kind)
    except FeastModuleImportError as exc:
        logger.warning("%s: offline store %r is not installed here (%s); online reads only", yaml_path, kind,
                       exc.__cause__ or exc)
        raw = {**raw, "offline_store": {"type": "file"}}
    return raw


def offline_store_type(raw: dict[str, Any]) -> str:
    """The ``offline_store`` type a parsed yaml names (Feast's default, ``dask``, when it names none)."""
    offline = raw.get("offline_store") or {}
    return str(offline.get("type", "dask") if isinstance(offline, dict) else offline)


def override_spark_master(raw: dict[str, Any]) -> None:
    """``TITANS_SPARK_MASTER``, when exported, as the master of a local profile's Spark sessions.

    Why: the profile says ``local[*]``; the same variable that picks the data plane's master
    (``titans.engines.spark_master``) picks this one, so one export moves both to ``local[2]`` or a cluster.
    """
    from titans.engines import SPARK_MASTER_ENV

    master = os.environ.get(SPARK_MASTER_ENV)
    if not master:
        return
    for section in ("offline_store", "batch_engine"):
        block = raw.get(section)
        if isinstance(block, dict) and block.get("type") in ("spark", "spark.engine"):
            block["spark_conf"] = {**(block.get("spark_conf") or {}), "spark.master": master.strip()}


def uses_spark(config: Any) -> bool:
    """Whether a loaded store starts Spark sessions in this process (Spark offline store or ``spark.engine``)."""
    engine = getattr(config, "batch_engine", None)
    return (getattr(config.offline_store, "type", "") == "spark"
            or getattr(engine, "type", "") == "spark.engine")


@contextlib.contextmanager
def definitions_offline_store(kind: str) -> Iterator[None]:
    """Inside the block, the definitions build sources for the offline store ``kind`` (restored after).

    Why scoped: the definitions are imported once per apply, by a client whose yaml names the store; a
    process may hold clients of two profiles (the tests do), and the next import must not inherit this one.
    """
    before = os.environ.get(DEFINITIONS_OFFLINE_STORE_ENV)
    os.environ[DEFINITIONS_OFFLINE_STORE_ENV] = kind
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(DEFINITIONS_OFFLINE_STORE_ENV, None)
        else:
            os.environ[DEFINITIONS_OFFLINE_STORE_ENV] = before


def definitions_store_type(repo: Path) -> str:
    """The offline store the definitions build sources for: the one titans is applying with, else the yaml
    the selection names (``store_yaml``), as when the Feast CLI imports them."""
    kind = os.environ.get(DEFINITIONS_OFFLINE_STORE_ENV)
    if kind:
        return kind
    try:
        return offline_store_type(read_store_yaml(store_yaml(repo)))
    except UserError:
        return "duckdb"  # no readable yaml: the reader that opens the store says what is wrong


def spark_path(uri: str) -> str:
    """A table URI as Spark's Hadoop filesystems name it: ``s3://`` is ``s3a://`` there; local paths unchanged."""
    return "s3a://" + uri.removeprefix("s3://") if uri.startswith("s3://") else uri


def feature_home() -> Path:
    """``$TITANS_HOME/features``: registry, online store and (by default) offline tables."""
    return load_settings().feature_data_dir


def offline_uri() -> str:
    """Root URI of the offline tables (local directory or object-store URI), no trailing slash."""
    uri = os.environ.get(OFFLINE_URI_ENV)
    if uri:
        return uri.rstrip("/")
    return str(feature_home() / "offline")


def table_uri(name: str) -> str:
    """The parquet file of one offline table."""
    return f"{offline_uri()}/{name}.parquet"


def repo_path(repo: str | Path | None = None) -> Path:
    """The feature repository: argument, else ``TITANS_FEATURE_REPO``, else ``feature_repo/``."""
    return Path(repo).expanduser().resolve() if repo else load_settings().feature_repo


# Where a cluster mounts the chart's rendered store configuration (the titans-feast ConfigMap): the serving
# pods and, through the compiled pipeline, the steps that build and read features.
CLUSTER_STORE_DIR = Path("/etc/titans/feature_repo")


def profile_store_yaml() -> str:
    """The yaml file name the store profile (``TITANS_FEATURE_STORE_PROFILE``) selects; unset: the default."""
    profile = (os.environ.get(STORE_PROFILE_ENV) or "").strip().lower()
    if not profile:
        return DEFAULT_STORE_YAML
    if profile not in PROFILE_STORE_YAMLS:
        raise UserError(f"{STORE_PROFILE_ENV}={profile!r}: expected one of {sorted(PROFILE_STORE_YAMLS)} or unset")
    return PROFILE_STORE_YAMLS[profile]


def use_mounted_store(mount: Path = CLUSTER_STORE_DIR) -> Path | None:
    """Select the chart's store configuration when it is mounted here (a pipeline step on a cluster).

    Why: the steps must write where the predictors and the Feast server read (the registry in the object
    store, the in-chart Redis), not into the image's embedded sqlite store. The compiled pipeline mounts
    the ConfigMap as optional, so a laptop run (kfp.local, nothing mounted) and an install without Feast
    keep the embedded store. An explicit ``TITANS_FEATURE_STORE_YAML`` wins. A store profile picks its own
    file of the mount; a mount without it (the chart renders the Spark profile only when asked) is an error,
    not a silent fall-back to the image's local profile.
    """
    config = mount / profile_store_yaml()
    if os.environ.get(STORE_YAML_ENV):
        return None
    if not config.is_file():
        if config.name != DEFAULT_STORE_YAML and (mount / DEFAULT_STORE_YAML).is_file():
            raise UserError(f"{STORE_PROFILE_ENV}: {mount} has no {config.name}; the chart renders it only with "
                            "feast.spark.enabled=true")
        return None
    os.environ[STORE_YAML_ENV] = str(config)
    return config


def store_yaml(repo: Path) -> Path:
    """The ``feature_store*.yaml`` selected by ``TITANS_FEATURE_STORE_YAML``, else by the store profile
    (``TITANS_FEATURE_STORE_PROFILE``), else the embedded default."""
    name = os.environ.get(STORE_YAML_ENV) or profile_store_yaml()
    path = Path(name).expanduser()
    return path if path.is_absolute() else repo / path
