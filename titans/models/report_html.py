"""The training report with its plots inside it, for the Kubeflow UI: one HTML page, one Markdown text.

Why: ``report.write`` links each PNG by a path beside the report, but a Kubeflow artifact is one
file, so the UI showed broken images. The UI's HTML viewer (run > Visualizations, ``system.HTML``)
puts the page into a sandboxed iframe through ``srcdoc``, with no base URL: an image reaches it only
as a ``data:`` URI. Its Markdown viewer (markdown-to-jsx) shows ``data:image`` URIs since KFP 2.17
(2.16 and older drop every ``data:`` URL), shows raw HTML such as ``<details>`` as literal text, and
cuts everything past ``KFP_MARKDOWN_LIMIT`` characters, so the Markdown gets its own variant.

Why convert the Markdown rather than render again from the metrics: the Markdown is the report
(a skipped task writes its own, a task module may too), so one input serves every report. The
converter knows only what ``report.py`` writes: headings, bullets, paragraphs, pipe tables, bold,
images on their own line and the ``<details>`` block; every other character is escaped as text.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from pathlib import Path

# The KFP UI's MarkdownViewer truncates past this many characters (MAX_MARKDOWN_STR_LENGTH, 50 * 1000 * 8).
KFP_MARKDOWN_LIMIT = 400_000
_NOTE = 200  # room kept per image for the line that names it when it does not fit

_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_HEADING = re.compile(r"(#{1,6}) +(.*)")
_DETAILS = re.compile(r"<details><summary>(.*)</summary>")
_TABLE_RULE = re.compile(r"\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?")

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #202124; line-height: 1.45; }
h1, h2 { border-bottom: 1px solid #eee; padding-bottom: .3em; }
table { border-collapse: collapse; margin: .8em 0; }
th, td { border: 1px solid #ddd; padding: .3em .7em; text-align: left; }
th { background: #f6f8fa; }
img { max-width: 100%; height: auto; display: block; margin: .8em 0; }
summary { cursor: pointer; font-weight: 600; }
"""


def data_uri(path: Path) -> str:
    """The file as a ``data:`` URI (type from its suffix, PNG when unknown)."""
    kind = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _plot(src: str, base: Path) -> Path | None:
    """The plot file a link names, when it is a local file beside the report (never a URL)."""
    if ":" in src or src.startswith("/"):
        return None
    path = base / src
    return path if path.is_file() else None


def _inline(text: str, base: Path) -> str:
    """Escaped text with ``**bold**``; an image becomes ``<img>`` with its data, or its label when absent."""
    parts, pos = [], 0
    for m in _IMAGE.finditer(text):
        parts.append(_BOLD.sub(r"<strong>\1</strong>", html.escape(text[pos:m.start()])))
        label, path = m.group(1), _plot(m.group(2), base)
        if path is None:
            parts.append(f"<em>{html.escape(label)} (plot not found: {html.escape(m.group(2))})</em>")
        else:
            parts.append(f'<img alt="{html.escape(label)}" title="{html.escape(label)}" src="{data_uri(path)}">')
        pos = m.end()
    parts.append(_BOLD.sub(r"<strong>\1</strong>", html.escape(text[pos:])))
    return "".join(parts)


def _cells(line: str) -> list[str]:
    """The cells of a pipe-table row (the outer pipes optional)."""
    s = line.strip()
    s = s[1:] if s.startswith("|") else s
    s = s[:-1] if s.endswith("|") else s
    return [c.strip() for c in s.split("|")]


def to_html(markdown: str, base: Path) -> str:
    """The body HTML of report Markdown; images are read from ``base`` (the report's folder)."""
    lines = markdown.splitlines()
    out: list[str] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            out.append("<p>" + " ".join(_inline(p, base) for p in para) + "</p>")
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        s = line.strip()
        heading = _HEADING.fullmatch(s)
        details = _DETAILS.fullmatch(s)
        if not s:
            flush()
        elif heading:
            flush()
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2), base)}</h{level}>")
        elif details:
            flush()
            out.append(f"<details><summary>{_inline(details.group(1), base)}</summary>")
        elif s == "</details>":
            flush()
            out.append("</details>")
        elif s.startswith("- "):
            flush()
            items = []
            while i < len(lines) and lines[i].strip().startswith("- "):
                items.append(f"<li>{_inline(lines[i].strip()[2:], base)}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        elif s.startswith("|") and i + 1 < len(lines) and _TABLE_RULE.fullmatch(lines[i + 1].strip()):
            flush()
            head = "".join(f"<th>{_inline(c, base)}</th>" for c in _cells(s))
            rows, i = [], i + 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append("<tr>" + "".join(f"<td>{_inline(c, base)}</td>" for c in _cells(lines[i])) + "</tr>")
                i += 1
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
            continue
        else:
            para.append(s)
        i += 1
    flush()
    return "\n".join(out) + "\n"


def html_page(report: Path) -> str:
    """The report as a self-contained HTML page: plots embedded, no link to anything outside it."""
    markdown = report.read_text(encoding="utf-8")
    title = next((m.group(2) for m in map(_HEADING.fullmatch, markdown.splitlines()) if m), report.stem)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
            f"{to_html(markdown, report.parent)}</body></html>\n")


def kfp_markdown(report: Path, limit: int = KFP_MARKDOWN_LIMIT) -> str:
    """The report's Markdown for the KFP Markdown viewer: plots as data URIs, ``<details>`` as a bold line.

    A plot that would take the text past ``limit`` (where the viewer cuts) is named instead, with a
    pointer to the HTML artifact, which has no such limit.
    """
    lines = []
    for line in report.read_text(encoding="utf-8").splitlines():
        details = _DETAILS.fullmatch(line.strip())
        if details:
            line = f"**{details.group(1)}**"
        elif line.strip() == "</details>":
            continue
        lines.append(line)
    text = "\n".join(lines) + "\n"
    # What the text takes without its images, each image counted as its longest replacement line.
    room = limit - len(_IMAGE.sub("", text)) - _NOTE * len(_IMAGE.findall(text))

    def embed(m: re.Match[str]) -> str:
        nonlocal room
        path = _plot(m.group(2), report.parent)
        if path is None:
            return f"*{m.group(1)}: plot not found ({m.group(2)})*"
        image = f"![{m.group(1)}]({data_uri(path)})"
        if len(image) > room:
            return f"*{m.group(1)}: too large for this viewer; see the report_html artifact (Static HTML)*"
        room -= len(image)
        return image

    return _IMAGE.sub(embed, text)
