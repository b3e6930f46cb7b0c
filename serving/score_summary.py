"""The Markdown summary of a ``titans score`` run: what a person reads first.

Why its own module: the scorer collects numbers (``summary.json``); how they read is a separate
concern, and every value that came from the export (descriptions, merchants, factors) is escaped
for Markdown here, in one place (``titans.data.report_text.markdown_text``).
"""

from __future__ import annotations

from typing import Any

from titans.data.report_text import markdown_text

SHOWN_FLAGGED = 20


def render_summary(summary: dict[str, Any]) -> str:
    """``summary.md``: counts, absent tasks, flagged rows with their factors, category mix, forecast, merchants."""
    lines = ["# Scored export", "",
             f"- rows in: {summary['rows_in']} = scored {summary['rows_scored']} + quarantined "
             f"{summary['rows_quarantined']} (of which refused by a model: {summary['rows_refused_by_models']})",
             f"- accounts: {len(summary['accounts'])}; tasks scored: {', '.join(summary['tasks_scored']) or 'none'}",
             f"- took {summary.get('seconds', '?')} s (up to {summary['workers']} worker processes)",
             f"- stored features: {summary.get('features', 'point-in-time')}" + (
                 " (each row's history as of its date, as in training)"
                 if summary.get("features", "point-in-time") == "point-in-time"
                 else " (the store's latest values, as a V2 server answers today)")]
    for task, model in summary.get("models", {}).items():
        lines.append(f"- {task}: {model['name']} version {model['version']}")
    if summary["tasks_absent"]:
        lines += ["", "## Not in this output", ""]
        lines += [f"- **{task}**: {markdown_text(why)}" for task, why in summary["tasks_absent"].items()]
    lines += _flagged(summary)
    lines += _categories(summary)
    interval = summary.get("amount_interval") or {}
    if interval.get("rows"):
        share = interval["outside"] / interval["rows"]
        lines += ["", "## Amounts", "",
                  f"{interval['outside']} of {interval['rows']} expenses ({share:.1%}) fall outside the "
                  "expected amount's interval (`amount_lower`..`amount_upper` in transactions.parquet)."]
    lines += _per_account(summary)
    return "\n".join(lines) + "\n"


def _flagged(summary: dict[str, Any]) -> list[str]:
    levels = summary.get("risk_levels") or {}
    if not levels:
        return []
    counts = ", ".join(f"{level} {levels.get(level, 0)}" for level in ("low", "medium", "high", "critical"))
    lines = ["", "## Suspicious transactions", "", f"Risk levels: {counts}.", ""]
    flagged = summary.get("flagged") or []
    if not flagged:
        return lines + ["No transaction at high or critical risk."]
    lines += [f"The {min(len(flagged), SHOWN_FLAGGED)} highest scores (all flagged rows are in transactions.parquet, "
              "`risk_level` high or critical):", "",
              "| date | account | description | amount | risk | score | factors |", "|---|---|---|---:|---|---:|---|"]
    for row in flagged[:SHOWN_FLAGGED]:
        factors = "; ".join(_factor(f) for f in row.get("risk_factors") or [])
        lines.append(f"| {row['date']} | {markdown_text(row['account_id'])} | {markdown_text(row['description'])} | "
                     f"{row['amount']:.2f} | {row['risk_level']} | {row['anomaly_score']:.3f} | "
                     f"{markdown_text(factors)} |")
    return lines


def _factor(factor: Any) -> str:
    if isinstance(factor, dict):
        name = factor.get("feature") or factor.get("name") or "?"
        value = factor.get("value")
        return f"{name}={value:.3g}" if isinstance(value, int | float) else str(name)
    return str(factor)


def _categories(summary: dict[str, Any]) -> list[str]:
    cats = summary.get("categories") or {}
    predicted = cats.get("predicted") or {}
    if not predicted:
        return []
    total = sum(predicted.values()) or 1
    lines = ["", "## Categories", "", "| predicted category | expenses | share |", "|---|---:|---:|"]
    lines += [f"| {markdown_text(c)} | {n} | {n / total:.1%} |" for c, n in list(predicted.items())[:15]]
    if cats.get("given"):
        lines += ["", f"The model disagrees with the export's own category on {cats['disagreements']} expenses "
                  "(`category_disagrees` in transactions.parquet)."]
        if cats.get("top_disagreements"):
            lines += ["", "| given | predicted | rows |", "|---|---|---:|"]
            lines += [f"| {markdown_text(g)} | {markdown_text(p)} | {n} |" for g, p, n in cats["top_disagreements"]]
    return lines


def _per_account(summary: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    per = summary.get("per_account") or {}
    if "cashflow" in per:
        lines += ["", "## Cash flow, next 30 days", "",
                  "| account | days | forecast net total | daily 80% range |", "|---|---:|---:|---|"]
        for account, p in per["cashflow"]["preview"].items():
            lines.append(f"| {markdown_text(account)} | {p['days']} | {p['net_total']:.2f} | "
                         f"{p['daily_80'][0]:.2f} .. {p['daily_80'][1]:.2f} |")
        lines.append("\nEvery day with its 80% and 95% intervals: forecast.parquet.")
    if "recommend" in per:
        lines += ["", "## Likely next merchants", ""]
        preview = per["recommend"]["preview"]
        lines += [f"- {markdown_text(a)}: {markdown_text(', '.join(m))}" for a, m in preview.items()]
    for task, refused in (summary.get("account_notes") or {}).items():
        lines += ["", f"{task}: not scored for " + "; ".join(f"{markdown_text(a)} ({markdown_text(why)})"
                                                              for a, why in refused.items())]
    return lines
