"""The pipeline's closing summary: metrics next to baselines, gate decisions, where things are.

Why in the core: the gate step renders it as Markdown for the Kubeflow UI and the local
runner prints the same table, so both read one function.
"""

from __future__ import annotations

from typing import Any

from titans import tasks


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else str(value)


def metric_rows(summaries: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(task, metric, ours, baselines) rows for the headline metrics that are present."""
    rows = []
    for task, summary in summaries.items():
        metrics = summary.get("metrics") or {}
        baselines = summary.get("baselines") or {}
        declared = tasks.by_name(task)
        for name in declared.headline_metrics if declared else ():
            if name not in metrics:
                continue
            base = ", ".join(f"{b} {_fmt(v[name])}" for b, v in baselines.items()
                             if isinstance(v, dict) and name in v) or "-"
            rows.append((task, name, _fmt(metrics[name]), base))
    return rows


def gate_markdown(summaries: dict[str, dict[str, Any]]) -> str:
    """Markdown: metrics against baselines, then each gate decision with its reasons."""
    lines = ["# Training run: models against baselines", "", "| model | metric | ours | baselines |",
             "|---|---|---:|---|"]
    lines += [f"| {t} | {m} | {o} | {b} |" for t, m, o, b in metric_rows(summaries)]
    lines += ["", "## Gate decisions", "", "Promoted versions become `champion` once the deploy step deploys them.",
              "", "| model | version | decision | reasons |", "|---|---|---|---|"]
    for task, s in summaries.items():
        reasons = "; ".join((s.get("gate") or {}).get("reasons", [])) or "-"
        version, decision = s.get("version") or "-", (s.get("gate") or {}).get("decision") or "-"
        lines.append(f"| {s.get('registered_name', task)} | {version} | {decision} | {reasons} |")
    return "\n".join(lines) + "\n"
