"""Export layouts: which header of a business's own export holds which field of ours, and how to read it.

Why: banks and bookkeeping tools each name and shape their columns their own way ("Transaction
Date", "Money Out" and "Money In" instead of a signed amount, ``;`` and decimal commas). Rather than
guessing from header names, a short YAML file says it once per export shape:

    columns: {date: Transaction Date, description: Details, debit: Money Out, credit: Money In}
    date_format: "%d/%m/%Y"   # optional; otherwise the order is decided from the whole column
    decimal: ","              # optional; otherwise detected from the whole column
    delimiter: ";"            # optional; otherwise detected from the header line

``amount`` is one signed column; ``debit`` (money out, made negative) and ``credit`` (money in,
positive) are two unsigned ones. Without a ``type`` column the type follows the sign. The
command line reads the file; the pipeline carries the YAML text itself (a parameter), so a run
on a cluster needs no file. See ``docs/layouts/`` for ready-made layouts.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from titans.data.report_text import shorten, snippet
from titans.errors import UserError

KEYS = ("columns", "date_format", "decimal", "delimiter")
# Layout field -> the ingest column it fills.
FIELDS = {
    "date": "date", "description": "description", "amount": "amount", "debit": "debit", "credit": "credit",
    "type": "type", "category": "category", "payment_method": "payment_method", "status": "status",
    "reference": "reference", "receipt_url": "receipt_url", "account": "account_id", "is_fraud": "is_fraud",
}
DECIMAL_SEPARATORS = (".", ",")


@dataclass(frozen=True)
class Layout:
    """A parsed layout: ``columns`` maps ingest columns (``date``, ``debit``, ``account_id``) to header texts."""

    origin: str
    columns: dict[str, str]
    date_format: str | None = None
    decimal: str | None = None
    delimiter: str | None = None
    digest: str = ""

    @property
    def split_amount(self) -> bool:
        """True when amounts come as two unsigned columns (debit, credit) rather than one signed one."""
        return "debit" in self.columns


def load_layout(path: Path | str) -> Layout:
    """Read and check a layout file (``--layout FILE``)."""
    return parse_layout(read_layout_text(path), str(path))


def read_layout_text(path: Path | str) -> str:
    """A layout file's text, checked: what ``titans pipeline run --layout`` hands the pipeline."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"layout {path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"layout {path}: is a directory; pass a YAML file") from None
    except UnicodeDecodeError:
        raise UserError(f"layout {path}: not UTF-8 text") from None
    except OSError as exc:
        raise UserError(f"layout {path}: cannot be read ({exc.strerror})") from None
    parse_layout(text, str(path))
    return text


def parse_layout(text: str, origin: str = "layout") -> Layout:
    """Check a layout's YAML text; every problem is one line naming the key at fault."""
    where = f"layout {origin}"
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise UserError(f"{where}: not valid YAML{at}: {shorten(getattr(exc, 'problem', None) or exc, 120)}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a YAML mapping with a `columns` key")
    unknown = [str(k) for k in raw if k not in KEYS]
    if unknown:
        raise UserError(f"{where}: unknown key {snippet(unknown[0])} (known: {', '.join(KEYS)})")
    columns = _columns(raw.get("columns"), where)
    return Layout(origin=origin, columns=columns, date_format=_date_format(raw.get("date_format"), where),
                  decimal=_choice(raw.get("decimal"), "decimal", DECIMAL_SEPARATORS, where),
                  delimiter=_delimiter(raw.get("delimiter"), where),
                  digest=hashlib.sha256(text.encode("utf-8")).hexdigest())


def _columns(value: object, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not value:
        raise UserError(f"{where}: `columns` must map our fields to the export's headers "
                        f"(fields: {', '.join(FIELDS)})")
    columns: dict[str, str] = {}
    for field, header in value.items():
        if field not in FIELDS:
            raise UserError(f"{where}: unknown field {snippet(field)} in columns (known: {', '.join(FIELDS)})")
        if not isinstance(header, str) or not header.strip():
            raise UserError(f"{where}: columns.{field} must name a header (text), not {snippet(header)}")
        columns[FIELDS[field]] = header.strip()
    for required in ("date", "description"):
        if required not in columns:
            raise UserError(f"{where}: columns.{required} is missing (the header holding the {required})")
    split = ("debit" in columns, "credit" in columns)
    if "amount" in columns and any(split):
        raise UserError(f"{where}: columns.amount and columns.debit/credit exclude each other: "
                        "one signed amount column, or two unsigned ones")
    if "amount" not in columns and not all(split):
        missing = "columns.amount" if not any(split) else f"columns.{'credit' if split[0] else 'debit'}"
        raise UserError(f"{where}: {missing} is missing (give amount, or both debit and credit)")
    return columns


def _choice(value: object, key: str, allowed: tuple[str, ...], where: str) -> str | None:
    if value is None:
        return None
    if value not in allowed:
        raise UserError(f"{where}: {key} must be one of {', '.join(repr(a) for a in allowed)}, not {snippet(value)}")
    return str(value)


def _delimiter(value: object, where: str) -> str | None:
    if value is None:
        return None
    if value == "tab":
        return "\t"
    if not isinstance(value, str) or len(value) != 1 or value in "\"\r\n" or value.isalnum():
        raise UserError(f"{where}: delimiter must be one character such as ',', ';', '|' or \"\\t\" "
                        f"(or the word tab), not {snippet(value)}")
    return value


def _date_format(value: object, where: str) -> str | None:
    """A strptime format that names a whole date (checked by writing and reading back a sample day)."""
    if value is None:
        return None
    sample = datetime(2024, 5, 25)
    try:
        ok = isinstance(value, str) and datetime.strptime(sample.strftime(value), value).date() == sample.date()
    except ValueError:
        ok = False
    if not ok:
        raise UserError(f"{where}: date_format {snippet(value)} is not a strptime format naming day, month and "
                        "year (for example \"%d/%m/%Y\")")
    return str(value)


def _header_key(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lstrip("\ufeff")).casefold()


def map_header(layout: Layout, header: list[str], source: Path) -> dict[str, int]:
    """Ingest column -> field index in ``header``; a header the layout names but the file lacks is an error.

    Headers match exactly after trimming, else ignoring case and runs of spaces; the first match wins.
    """
    exact: dict[str, int] = {}
    loose: dict[str, int] = {}
    for i, name in enumerate(header):
        exact.setdefault(name.strip().lstrip("\ufeff"), i)
        loose.setdefault(_header_key(name), i)
    columns: dict[str, int] = {}
    for column, name in layout.columns.items():
        index = exact.get(name, loose.get(_header_key(name)))
        if index is None:
            field = next(k for k, v in FIELDS.items() if v == column)
            shown = ", ".join(snippet(h) for h in header[:12]) + (", ..." if len(header) > 12 else "")
            raise UserError(f"{source}: layout {layout.origin} maps {field} to the header {snippet(name)}, "
                            f"which the file lacks (header read: {shown})")
        columns[column] = index
    return columns


def has_headers(layout: Layout, header: list[str]) -> bool:
    """True when every header the layout names is in ``header`` (used to pick the delimiter)."""
    keys = {_header_key(h) for h in header}
    return all(_header_key(name) in keys for name in layout.columns.values())
