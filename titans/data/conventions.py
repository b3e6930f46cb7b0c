"""How one export writes its numbers and dates, decided from the whole column, then applied.

Why: exports differ in conventions a single value often cannot reveal. ``1.234`` is a thousand and
more in Germany and one and a bit in the US; ``03/05/2024`` is 3 May in Britain and 5 March in the
US. Read value by value, ``-120,50`` became -12050.00 and ``-1.234,56`` became -1.23456, silently.
A column settles what a value cannot: one ``120,50`` shows a decimal comma, one ``25/05/2024``
shows day-first dates. So every value of the column is classified first (``count_*_classes``,
summed over the whole input by ingest), the convention is decided once (``decide_*``), and
then each chunk is read under it (``parse_*``). A value the decision cannot read unambiguously, or
that contradicts it, gets a reason and goes to quarantine; it is never guessed.

Classification runs once per distinct value (exports repeat values) with vectorised string
operations (pyarrow's regular expressions), so it keeps up with million-row files.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from titans.data.report_text import snippet

MIN_YEAR, MAX_YEAR = 1990, 2100
MAX_ABS_AMOUNT = 1e9

# -- amounts --------------------------------------------------------------------------------------------------

# Removed before classifying: spaces (also the no-break and thin spaces some locales group digits with),
# currency symbols and the apostrophe Swiss exports group thousands with.
_AMOUNT_NOISE = "[ \t\u00a0\u202f\u2009$€£¥'\u2019]"
_PLAIN = r"^\d+$"
# One separator followed by exactly three digits after one to three leading digits: ``1,234`` or ``1.234``.
_AMBIGUOUS = r"^[1-9]\d{0,2}[.,]\d{3}$"
_DECIMAL_POINT = r"^(?:\d{1,3}(?:,\d{3})+(?:\.\d*)?|\d+\.\d*|\.\d+|\d+(?:\.\d+)?[eE][-+]?\d+)$"
_DECIMAL_COMMA = r"^(?:\d{1,3}(?:\.\d{3})+(?:,\d*)?|\d+,\d*|,\d+)$"
DECIMALS = {".": "decimal point", ",": "decimal comma"}


@dataclass(frozen=True)
class Decision:
    """What a column's values are read as, and why (the data-quality report prints ``note``).

    ``value`` is ``"."``/``","`` for amounts, ``"day-first"``/``"month-first"`` for dates, ``None``
    when the column does not tell; ``conflict`` marks a column that contradicts itself evenly.
    """

    value: str | None
    note: str
    conflict: bool = False


Column = pd.Series | pa.Array | pa.ChunkedArray


def _factorized(values: pd.Series) -> tuple[np.ndarray, pd.Series]:
    codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=False)
    return codes, pd.Series(uniques, dtype=object).fillna("").astype(str)


def _distinct(values: Column) -> tuple[pd.Series, np.ndarray]:
    """The distinct texts of a column slice and how often each occurs (pyarrow arrays stay in Arrow)."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        counted = pc.value_counts(pc.fill_null(values.cast(pa.string()), ""))
        uniques = counted.field("values").to_numpy(zero_copy_only=False)
        return pd.Series(uniques, dtype=object), counted.field("counts").to_numpy(zero_copy_only=False)
    codes, uniques = _factorized(values)
    return uniques, np.bincount(codes, minlength=len(uniques))


def _class_counts(classes: np.ndarray, counts: np.ndarray) -> Counter:
    return Counter({str(k): int(v) for k, v in pd.Series(counts).groupby(classes).sum().items()})


def _shown(uniques: pd.Series, which: np.ndarray | None) -> np.ndarray:
    """Quoted, shortened texts for messages: only of the distinct values that may need one (``which``)."""
    shown = np.full(len(uniques), "", dtype=object)
    picked = np.ones(len(uniques), dtype=bool) if which is None else which
    if picked.any():
        shown[picked] = uniques[picked].map(snippet).to_numpy(dtype=object)
    return shown


def _amount_table(uniques: pd.Series) -> tuple[np.ndarray, pa.Array, np.ndarray]:
    """Per distinct amount text: its class, its digits and separators, and whether it is negative.

    Classes: ``empty``, ``plain`` (digits only), ``ambiguous`` (``1,234``), ``point`` or ``comma``
    (the value itself shows its decimal separator), ``bad`` (not a number).
    """
    text = pc.utf8_trim_whitespace(pa.array(uniques.to_numpy(dtype=object), type=pa.string()))
    text = pc.replace_substring(text, "\u2212", "-")  # the typographic minus
    paren = pc.match_substring_regex(text, r"^\(.*\)$")
    text = pc.replace_substring_regex(text, r"^\((.*)\)$", r"\1")
    text = pc.replace_substring_regex(text, _AMOUNT_NOISE, "")
    negative = pc.or_(paren, pc.starts_with(text, "-")).to_numpy(zero_copy_only=False)
    number = pc.replace_substring_regex(text, r"^[-+]", "")

    def matches(pattern: str) -> np.ndarray:
        return pc.match_substring_regex(number, pattern).to_numpy(zero_copy_only=False)

    classes = np.select(
        [pc.equal(text, "").to_numpy(zero_copy_only=False), matches(_PLAIN), matches(_AMBIGUOUS),
         matches(_DECIMAL_POINT), matches(_DECIMAL_COMMA)],
        ["empty", "plain", "ambiguous", "point", "comma"], "bad")
    return classes, number, negative


def count_amount_classes(values: Column) -> Counter:
    """How many values of each class (see ``_amount_table``) a slice of the column holds."""
    uniques, counts = _distinct(values)
    return _class_counts(_amount_table(uniques)[0], counts)


def decide_decimal(counts: Counter, declared: str | None = None) -> Decision:
    """The column's decimal separator: the layout's, else what its values show, majority first."""
    if declared:
        return Decision(declared, f"{DECIMALS[declared]} ({declared!r}), set by the layout")
    point, comma = counts.get("point", 0), counts.get("comma", 0)
    if not point and not comma:
        ambiguous = counts.get("ambiguous", 0)
        return Decision(None, "no amount shows its decimal separator"
                        + (f"; {ambiguous} that could be read either way are quarantined" if ambiguous else ""))
    if point == comma:
        return Decision(None, f"{point} amounts show a decimal point and {comma} a decimal comma: "
                              "set `decimal` in a layout", conflict=True)
    value = "." if point > comma else ","
    against = min(point, comma)
    return Decision(value, f"{DECIMALS[value]} ({value!r}): {max(point, comma)} amounts can only be read that way"
                           + (f"; {against} that contradict it are quarantined" if against else ""))


def parse_amounts(values: pd.Series, decimal: Decision) -> tuple[pd.Series, pd.Series]:
    """Amount texts to signed floats under the column's decimal separator; returns (amounts, reasons).

    Accepts ``$1,295.83``, ``-1.234,56``, ``1 234,56 €``, ``(12.50)`` for negatives. ``reasons``
    holds ``None`` for a readable value, else why it is not (non-numeric, ambiguous, or written
    with the other decimal separator than the column's).
    """
    codes, uniques = _factorized(values)
    classes, number, negative = _amount_table(uniques)
    sep = decimal.value
    read_comma = (classes == "comma") | ((classes == "ambiguous") & (sep == ","))
    as_comma = pc.replace_substring(pc.replace_substring(number, ".", ""), ",", ".")
    as_point = pc.replace_substring(number, ",", "")
    normalized = pc.if_else(pa.array(read_comma), as_comma, as_point)
    amount = pd.to_numeric(pd.Series(normalized.to_numpy(zero_copy_only=False), dtype=object), errors="coerce")
    amount = amount.astype("float64").to_numpy()
    amount = np.where(negative, -np.abs(amount), amount)
    readable = np.isfinite(amount) & (np.abs(np.nan_to_num(amount, nan=np.inf)) < MAX_ABS_AMOUNT)

    other = np.where(classes == "point", "decimal point", "decimal comma").astype(object)
    column = DECIMALS.get(sep or "", "")
    failing = np.isin(classes, ["empty", "bad", "point", "comma", "ambiguous"]) | ~readable
    shown = _shown(uniques, failing)
    reasons = np.select(
        [np.isin(classes, ["empty", "bad"]) | ~readable,
         decimal.conflict & np.isin(classes, ["point", "comma", "ambiguous"]),
         (classes == "ambiguous") & (sep is None),
         ((classes == "point") & (sep == ",")) | ((classes == "comma") & (sep == "."))],
        ["non-numeric amount: " + shown,
         "decimal separator: " + shown + " in a column that mixes decimal points and commas evenly; "
         "set `decimal` in a layout",
         "ambiguous amount: " + shown + " could have a thousands separator or a decimal one; "
         "set `decimal` in a layout",
         "decimal separator: " + shown + " has a " + other + f", but this column's amounts use a {column}"],
        None)
    reasons = pd.Series(reasons[codes], index=values.index, dtype=object)
    amounts = pd.Series(amount[codes], index=values.index, dtype="float64")
    return amounts.where(reasons.isna()), reasons


# -- dates ----------------------------------------------------------------------------------------------------

# Day and month as one or two digits in either order, one separator used twice, a two- or four-digit year,
# an optional time of day (dropped).
_NUMERIC_DATE = r"^(\d{1,2})([./-])(\d{1,2})\2(\d{4}|\d{2})(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?$"
ORDERS = {"day-first": "day-first (25/05/2024)", "month-first": "month-first (05/25/2024)"}


def _date_table(uniques: pd.Series) -> tuple[np.ndarray, pd.DataFrame]:
    """Per distinct date text: its class and, for numeric dates, the first, second and year fields.

    Classes: ``empty``; ``other`` (anything not of the day/month form, read as ISO 8601); for the
    day/month form ``day-first`` (first field > 12), ``month-first`` (second field > 12), ``same``
    (both fields equal: either order gives one date), ``ambiguous`` (both <= 12 and different),
    ``bad`` (both > 12).
    """
    parts = uniques.str.strip().str.extract(_NUMERIC_DATE)
    first = pd.to_numeric(parts[0], errors="coerce").to_numpy()
    second = pd.to_numeric(parts[2], errors="coerce").to_numpy()
    numeric = parts[0].notna().to_numpy()
    classes = np.select(
        [uniques.str.strip().eq("").to_numpy(), ~numeric, (first > 12) & (second > 12), first > 12, second > 12,
         first == second],
        ["empty", "other", "bad", "day-first", "month-first", "same"], "ambiguous")
    return classes, parts


def count_date_classes(values: Column) -> Counter:
    """How many values of each class (see ``_date_table``) a slice of the column holds."""
    uniques, counts = _distinct(values)
    return _class_counts(_date_table(uniques)[0], counts)


def decide_date_order(counts: Counter, date_format: str | None = None) -> Decision:
    """Day-first or month-first for the column's ``dd/mm`` dates: the layout's format, else the values'.

    Any first field above 12 shows day-first, any second field above 12 month-first; when both
    occur, the majority decides and the others are quarantined; when no value tells, the ones
    that could be read either way are quarantined (the report says to set ``date_format``).
    """
    if date_format:
        return Decision("format", f"date_format {date_format!r}, set by the layout")
    day, month = counts.get("day-first", 0), counts.get("month-first", 0)
    if not any(counts.get(c, 0) for c in ("day-first", "month-first", "same", "ambiguous")):
        return Decision(None, "no dd/mm dates: read as ISO 8601 (year first)")
    if not day and not month:
        ambiguous = counts.get("ambiguous", 0)
        return Decision(None, "no date shows its day/month order" + (
            f"; {ambiguous} that could be read either way are quarantined (set `date_format` in a layout)"
            if ambiguous else ""))
    if day == month:
        return Decision(None, f"{day} dates are day-first and {month} month-first: set `date_format` in a layout",
                        conflict=True)
    value = "day-first" if day > month else "month-first"
    against = min(day, month)
    return Decision(value, f"{ORDERS[value]}: {max(day, month)} dates can only be read that way"
                           + (f"; {against} that contradict it are quarantined" if against else ""))


def parse_dates(values: pd.Series, order: Decision, date_format: str | None = None) -> tuple[pd.Series, pd.Series]:
    """Date texts to days (midnight, tz-naive); returns (dates, reasons), reasons ``None`` where readable.

    With a layout's ``date_format`` every value must match it. Otherwise ``dd/mm/yyyy`` forms
    (``/``, ``.`` or ``-``, two- or four-digit years) follow the column's ``order`` and everything
    else is read as ISO 8601 (``2024-03-06``, ``2024-03-06T10:00:00Z``). Times of day are dropped.
    Time zones: a value with a zone or offset is converted to UTC first and then cut to its day
    (``2024-03-06T23:30:00-05:00`` is 2024-03-07), since the clean table holds UTC days; a value
    without one is taken as UTC already.
    """
    codes, uniques = _factorized(values)
    if order.value == "format" and date_format:
        classes = np.full(len(uniques), "format", dtype=object)
        parsed = pd.to_datetime(uniques, format=date_format, errors="coerce", utc=True)
    else:
        classes, parts = _date_table(uniques)
        parsed = pd.Series(pd.NaT, index=uniques.index, dtype="datetime64[ns, UTC]")
        iso = classes == "other"
        if iso.any():
            parsed[iso] = pd.to_datetime(uniques[iso], format="ISO8601", errors="coerce", utc=True)
        numeric = np.isin(classes, ["day-first", "month-first", "same", "ambiguous"])
        if numeric.any():
            parsed[numeric] = _numeric_dates(parts[numeric], classes[numeric], order.value)
    parsed = pd.Series(parsed).dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    readable = parsed.dt.year.between(MIN_YEAR, MAX_YEAR).to_numpy()
    shown = _shown(uniques, ~readable | np.isin(classes, ["day-first", "month-first", "ambiguous"]))
    reasons = np.select(
        [(classes == "format") & ~readable,
         order.conflict & np.isin(classes, ["day-first", "month-first", "ambiguous"]),
         (classes == "ambiguous") & (order.value is None),
         ((classes == "day-first") & (order.value == "month-first"))
         | ((classes == "month-first") & (order.value == "day-first")),
         ~readable],
        ["bad date: " + shown + f" does not match date_format {date_format!r}",
         "date order: " + shown + " in a column with as many day-first as month-first dates; "
         "set `date_format` in a layout",
         "ambiguous date: " + shown + " could be day-first or month-first; set `date_format` in a layout",
         "date order: " + shown + " is " + classes.astype(object) + f", but this column's dates are {order.value}",
         "bad date: " + shown],
        None)
    reasons = pd.Series(reasons[codes], index=values.index, dtype=object)
    dates = pd.Series(parsed.to_numpy()[codes], index=values.index, dtype="datetime64[ns]")
    return dates.where(reasons.isna()), reasons


def _numeric_dates(parts: pd.DataFrame, classes: np.ndarray, order: str | None) -> pd.Series:
    """``dd/mm/yyyy``-form fields to UTC days, day-first where the value or the column says so."""
    day_first = (classes == "day-first") | ((classes != "month-first") & (order == "day-first"))
    first, second, year = parts[0].str.zfill(2), parts[2].str.zfill(2), parts[3]
    # Two-digit years as strptime's %y reads them: 69-99 are 19xx, 00-68 are 20xx.
    short = year.str.len() == 2
    year = year.where(~short, np.where(pd.to_numeric(year, errors="coerce") >= 69, "19", "20") + year)
    day = first.where(day_first, second)
    month = second.where(day_first, first)
    return pd.to_datetime(year + "-" + month + "-" + day, format="%Y-%m-%d", errors="coerce", utc=True)
