"""Pipeline step: one page with every model's metrics, baselines and gate decision."""


from kfp import dsl
from kfp.dsl import Markdown, Metrics, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE)
def gate_report(summaries: list[str], report: Output[Markdown], decisions: Output[Metrics]) -> str:
    """Collect the trainings' summaries (one JSON each) into the gate report; returns ``{task: summary}`` as JSON.

    The gate itself ran when each version was registered (so the alias and its reasons are
    recorded in MLflow atomically with the version); this step makes the decisions readable in
    the Kubeflow UI and hands them to the deploy step.
    """
    import json

    from titans.pipeline_report import gate_markdown

    parsed = {summary["task"]: summary for summary in map(json.loads, summaries)}
    with open(report.path, "w") as fh:
        fh.write(gate_markdown(parsed))
    for task, summary in parsed.items():
        decisions.log_metric(f"{task}_promoted", 1.0 if (summary.get("gate") or {}).get("promote") else 0.0)
    return json.dumps(parsed)
