"""Compile the training pipeline to the IR YAML the Kubeflow UI uploads.

Why committed output: a reviewer reads what the cluster will run, and a test recompiles and
compares, so the YAML can never drift from the Python.
"""

from __future__ import annotations

from pathlib import Path

from kfp import compiler

COMPILED_DIR = Path(__file__).resolve().parent / "compiled"
TRAINING_YAML = COMPILED_DIR / "training_pipeline.yaml"


def compile_training(out: Path = TRAINING_YAML) -> Path:
    """Write the training pipeline's IR YAML to ``out`` and return the path."""
    # Here, not at the top: importing the pipeline builds every component (~4 s); TRAINING_YAML's users need none.
    from pipelines.training import training_pipeline

    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_func=training_pipeline, package_path=str(out))
    return out
