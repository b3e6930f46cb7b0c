"""A Markdown report per training run: verdict first, metrics beside baselines, then plots.

Why Markdown: it renders in MLflow's artifact view, on GitHub and in any editor, and a
person scanning it sees at once whether each model beat its baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from titans.models.evaluation import baseline_checks, beats_baselines


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def beats_baseline(gated: Sequence[tuple[str, bool]], result: dict[str, Any]) -> bool | None:
    """Whether the model beats the best of its baselines on every gated metric (the gate's rule)."""
    return beats_baselines(gated, result["metrics"], result["baselines"])


def section(task: str, result: dict[str, Any], plots: dict[str, str], gated: Sequence[tuple[str, bool]],
            gate_applied: str | None = None) -> str:
    """The task's part of the report: one verdict line per gated metric, naming the deciding baseline.

    ``gate_applied`` names the gate when the task has more than one (``Task.gate_for``: labelled or not).
    """
    lines = [f"## {task}", ""]
    if gate_applied:
        lines += [f"Gate applied: {gate_applied}.", ""]
    for note in result.get("notes", []):
        lines += [note, ""]
    for check in baseline_checks(gated, result["metrics"], result["baselines"]):
        mark = {True: "beats", False: "does NOT beat", None: "cannot be compared with"}[check["passed"]]
        base = check["deciding_baseline"] or "any"
        lines.append(
            f"- **{check['metric']} {_fmt(check['model'])}** {mark} the best baseline, {base} "
            f"({_fmt(check['baseline_value'])}); {'higher' if check['higher_is_better'] else 'lower'} is better."
        )
    lines.append("")
    if result.get("backtest_note"):
        lines += [f"Backtest: {result['backtest_note']}.", ""]
    if result.get("ceiling"):
        c = result["ceiling"]
        lines += [f"Ceiling: {c['note']}", ""]
    names = sorted({k for b in result["baselines"].values() for k in b if not isinstance(b[k], str)})
    shown = [m for m in result["metrics"] if m in names or not result["baselines"]]
    lines += ["| metric | model | " + " | ".join(result["baselines"]) + " |",
              "|---|---|" + "---|" * len(result["baselines"])]
    for m in shown:
        row = [_fmt(result["baselines"][b].get(m)) for b in result["baselines"]]
        lines.append(f"| {m} | {_fmt(result['metrics'][m])} | " + " | ".join(row) + " |")
    extra = {k: v for k, v in result["metrics"].items() if k not in shown}
    if extra:
        lines += ["", "Also: " + ", ".join(f"{k} {_fmt(v)}" for k, v in extra.items())]
    if result.get("gate"):
        g = result["gate"]
        lines += ["", f"Gate: **{g['decision']}** ({'; '.join(g['reasons'])})"]
    lines.append("")
    if result.get("calibration"):
        lines += calibration_lines(result["calibration"])
    for label, rel in plots.items():
        lines += [f"![{label}]({rel})", ""]
    per_class = result.get("per_class")
    if per_class:
        lines += ["<details><summary>per class</summary>", "", "| class | precision | recall | f1 | support |",
                  "|---|---|---|---|---|"]
        for lab, s in per_class.items():
            lines.append(f"| {lab} | {s['precision']:.2f} | {s['recall']:.2f} | {s['f1']:.2f} | {s['support']} |")
        lines += ["", "</details>", ""]
    return "\n".join(lines)


def calibration_lines(cal: dict[str, Any]) -> list[str]:
    """The calibration table: ECE, Brier, mean confidence against accuracy, before and held-out after."""
    verdict = (f"recalibrated with temperature {cal['temperature']:.3f}" if cal["calibrated"]
               else "served as the model gives them")
    threshold = f"threshold ECE {_fmt(cal['ece_max'])}" if cal["ece_max"] is not None else "no threshold"
    lines = [f"Calibration ({threshold}): {verdict}; {cal['reason']}.", "",
             "| | ECE | Brier | mean confidence | accuracy |", "|---|---|---|---|---|"]
    for name in ("before", "after"):
        f = cal[name]
        label = "before" if name == "before" else "after (held-out halves)"
        lines.append(f"| {label} | {_fmt(f['ece'])} | {_fmt(f['brier'])} | {_fmt(f['mean_confidence'])} | "
                     f"{_fmt(f['accuracy'])} |")
    return [*lines, ""]


def write(path: Path, title: str, context: dict[str, Any], sections: list[str]) -> Path:
    head = [f"# {title}", ""] + [f"- {k}: {_fmt(v)}" for k, v in context.items()] + [""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(head + sections) + "\n")
    return path
