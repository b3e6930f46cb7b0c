"""Export text made safe to show: cut to a readable length for error lines, escaped for Markdown.

Why: whatever an export holds ends up in messages and reports, and an export can hold anything:
a 300 KB field, a header with a newline, an account id with ``|`` or ``<script>``. Unbounded, one
field made a 65 KB error line; unescaped, a ``|`` split a report table and HTML went into the
Kubeflow UI's rendered Markdown as markup.
"""

from __future__ import annotations

import re

MAX_MESSAGE_CHARS = 300

# Markdown punctuation that can start markup that matters: code, emphasis, links and images, table cells.
# ``_`` is left alone: snake_case labels fill these reports, and inside a word it is no markup.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]|])")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")


def shorten(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out (``... (65012 more characters)``)."""
    text = str(text)
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    return f"{text[:limit]}... ({cut} more characters)"


def snippet(text: str, limit: int = 40) -> str:
    """One export value quoted for a message: ``'Money Out'``, at most ``limit`` characters of it."""
    text = str(text)
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text) - limit} more characters)"


def markdown_text(text: object) -> str:
    """Export text as inert Markdown on one line: markup characters escaped, HTML as entities.

    Line breaks become spaces, since a report row or list item must stay one line; ``&``, ``<``
    and ``>`` become entities so no tag survives even in renderers that allow raw HTML.
    """
    value = _LINE_BREAKS.sub(" ", str(text))
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", value)
