"""Compile the training and scoring pipelines to the IR YAML the Kubeflow UI uploads.

Why committed output: a reviewer reads what the cluster will run, and a test recompiles and
compares, so the YAML can never drift from the Python.
"""

from __future__ import annotations

from pathlib import Path

from kfp import compiler

COMPILED_DIR = Path(__file__).resolve().parent / "compiled"
TRAINING_YAML = COMPILED_DIR / "training_pipeline.yaml"
SCORING_YAML = COMPILED_DIR / "scoring_pipeline.yaml"
PIPELINES = {"training": TRAINING_YAML, "scoring": SCORING_YAML}


def compile_training(out: Path = TRAINING_YAML) -> Path:
    """Write the training pipeline's IR YAML to ``out`` and return the path."""
    # Here, not at the top: importing the pipeline builds every component (~4 s); TRAINING_YAML's users need none.
    from pipelines.training import training_pipeline

    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_func=training_pipeline, package_path=str(out))
    return out


def compile_scoring(out: Path = SCORING_YAML) -> Path:
    """Write the scoring pipeline's IR YAML to ``out`` and return the path."""
    from pipelines.scoring import scoring_pipeline  # here: as above

    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_func=scoring_pipeline, package_path=str(out))
    return out


def compile_all(out_dir: Path = COMPILED_DIR) -> list[Path]:
    """Both pipelines' IR YAML into ``out_dir`` (their committed names)."""
    return [compile_training(out_dir / TRAINING_YAML.name), compile_scoring(out_dir / SCORING_YAML.name)]
