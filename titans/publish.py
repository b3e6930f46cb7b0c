"""Publishing promoted models: the deploy step's logic, shared by the pipeline and the CLI.

Why a separate module: "deploy only what the gate promoted, and leave the rest exactly as it
was" is a rule about state (model folders served locally, InferenceServices in a cluster),
not about Kubeflow, so it lives in the core and is tested without a pipeline.
"""

from __future__ import annotations

import logging
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from titans import deploy, registry
from titans import model_store as model_store_lib
from titans.settings import load_settings

log = logging.getLogger(__name__)


def publish_model_dir(source: Path, task: str, models_dir: Path | None = None) -> Path:
    """Swap ``source`` in as ``<models_dir>/<task>`` (copy aside, then two renames).

    A crash mid-copy leaves the previous folder in place; ``titans serve`` never sees half a model.
    """
    target_root = models_dir or load_settings().models_dir
    target_root.mkdir(parents=True, exist_ok=True)
    target = target_root / task
    staging = target_root / f".{task}.incoming"
    retired = target_root / f".{task}.previous"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    shutil.rmtree(retired, ignore_errors=True)
    if target.exists():
        target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)
    return target


def publish_trained(summary: dict[str, Any], models_dir: Path) -> dict[str, Any]:
    """After ``titans train``: publish the staged folder if the gate passed it, else keep it aside.

    The rule the pipeline's deploy step follows (the gate's verdict, not the alias). Without
    registration there is no gate, and the folder is published as before (``--no-register`` is
    the "just give me a model folder" mode). A rejected model goes to ``_candidates/<task>``.
    """
    if summary.get("skipped"):
        return {"model_dir": None, "published": False, "publish_reason": f"skipped: {summary['skipped']}"}
    task, staged = summary["task"], Path(summary["model_dir"])
    gate = summary.get("gate")
    if gate is None or gate.get("promote"):
        published = publish_model_dir(staged, task, models_dir)
        why = "gate passed" if gate else "not registered (no gate)"
        log.info("%s: published %s (%s)", task, published, why)
        out = {"model_dir": str(published), "published": True, "publish_reason": why}
        if summary.get("crown"):  # published: now champion may name it
            out["alias"] = registry.crown(summary["registered_name"], summary["version"])
        return out
    candidate = publish_model_dir(staged, task, models_dir / "_candidates")
    log.info("%s: gate rejected; %s kept as it was, candidate in %s", task, models_dir / task, candidate)
    return {"model_dir": str(candidate), "published": False,
            "publish_reason": "gate rejected: " + "; ".join(gate.get("reasons", []))}


# How long the deploy waits for an MLflow server's /health before deploying without artifact URIs.
REGISTRY_PROBE_SECONDS = 3.0


def registry_unreachable(uri: str) -> str | None:
    """Why the MLflow server at ``uri`` cannot be reached (None: it answers, or ``uri`` is not a server).

    Why probe first: MLflow's client retries a refused connection with backoff for minutes
    (7 retries by default) before it gives up, and the deploy step would sit out all of it.
    """
    if not uri.startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=REGISTRY_PROBE_SECONDS):
            return None
    except urllib.error.HTTPError:
        return None  # it answers (behind a proxy or auth /health may not be 200): MLflow's client decides
    except (urllib.error.URLError, OSError) as exc:
        return f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"


def registry_problem() -> str | None:
    """Why MLflow's registry cannot be reached right now ("<uri> unreachable (<reason>)"), or None."""
    import mlflow  # here: MLflow takes seconds to import, and only a registered deploy asks it

    uri = mlflow.get_registry_uri()
    reason = registry_unreachable(uri)
    return f"registry {uri} unreachable ({reason})" if reason else None


def mlflow_storage_uri(model_uri: str | None, problem: str | None = None) -> str:
    """Where the registered model's directory lives in MLflow's artifact store (s3://... in a cluster).

    ``problem``: the registry is known to be unreachable (``registry_problem``): say so, return "".
    """
    if not model_uri:
        return ""
    if problem:
        log.warning("could not resolve the artifact location of %s: %s", model_uri, problem)
        return ""
    try:
        from mlflow import MlflowClient  # here, as in registry_problem

        _, name, version = model_uri.split("/")
        # pyfunc keeps the logged folder's own name (the task) under the model's artifacts/.
        folder = name.removeprefix("titans-")
        return MlflowClient().get_model_version_download_uri(name, version).rstrip("/") + f"/artifacts/{folder}"
    except Exception as exc:  # an unreachable registry must not block a laptop deploy
        log.warning("could not resolve the artifact location of %s: %s", model_uri, exc)
        return ""


def deploy_promoted(summaries: dict[str, dict[str, Any]], model_paths: dict[str, str], canary_percent: int,
                    namespace: str, manifests_dir: str, model_store: str = "") -> dict[str, Any]:
    """Deploy each task whose new version passed the gate; report what happened to every task.

    ``model_store`` (``s3://titans-models`` on a cluster): each model folder is copied to
    ``<store>/<task>/<version>`` and the InferenceService names that, where KServe's storage initializer
    fetches it; empty: the registered version's location in MLflow's artifact store.
    """
    results: dict[str, Any] = {}
    problem: str | None = None
    probed = False  # the registry is probed once, when the first task needs it
    for task, summary in summaries.items():
        gate = summary.get("gate") or {}
        # The gate's verdict, not the alias: with champion_after_canary the alias waits for the canary.
        if not gate.get("promote"):
            results[task] = {"action": "kept-previous", "reasons": gate.get("reasons", ["not registered"])}
            continue
        source = Path(model_paths[task]) / task
        stable = str(gate.get("champion_before") or "")
        name = summary["registered_name"]
        if not probed:
            problem, probed = registry_problem(), True
        if model_store:
            uri = model_store_lib.upload_model_dir(source, model_store, task, str(summary["version"]))
            stable_uri = model_store_lib.version_uri(model_store, task, stable) if stable else ""
        else:
            uri = mlflow_storage_uri(summary.get("model_uri"), problem)
            stable_uri = mlflow_storage_uri(f"models:/{name}/{stable}", problem) if stable else ""
        outcome = deploy.deploy(
            name, str(summary["version"]), canary_traffic_percent=canary_percent,
            namespace=namespace, storage_uri=uri, out_dir=manifests_dir, stable_version=stable,
            create_missing=False, stable_storage_uri=stable_uri,
        )
        outcome.pop("manifest", None)
        # Only once the deploy went through, and only on a laptop (no cluster): the folder
        # `titans serve` loads. In a cluster the InferenceService is the deployment.
        local = publish_model_dir(source, task) if outcome.get("action") == "manifest-written" else None
        results[task] = {"local_model_dir": str(local) if local else None, "stable_version": stable or None,
                         **outcome}
        # Deployed: now ``champion`` may name it (with champion_after_canary the canary analysis moves it).
        if summary.get("crown") and problem is None:
            results[task]["alias"] = registry.crown(name, str(summary["version"]))
        elif summary.get("crown"):
            results[task] |= {"alias": registry.CHALLENGER, "alias_not_moved": problem}
    return results
