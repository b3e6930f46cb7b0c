"""Request validation: every client mistake becomes a 400 that names the input.

Why a module of its own: a model that sees an unexpected column, a NaN or an unseen category
either crashes (a 500 that blames us) or answers nonsense (worse). The checks run against
the model directory's declared inputs, before any model code, and each refusal carries a
closed ``reason`` code that ``titans_request_errors_total{reason}`` counts.

``RequestRejected`` subclasses kserve's ``InvalidInput``, so kserve's own REST and gRPC
handlers map it to HTTP 400 / ``INVALID_ARGUMENT``; nothing here hand-writes a response.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

from serving.config import DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_TEXT_CHARS
from serving.tensors import TensorSpec

# ISO 8601 calendar dates with optional time and offset; "base" is what numpy parses.
_ISO_DATE = re.compile(
    r"(?P<base>\d{4}-\d{2}-\d{2}(?:[T ]\d{2}(?::\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?)?)(?:Z|[+-]\d{2}(?::?\d{2})?)?"
)
# Transaction dates the models can place (pandas' nanosecond timestamps end in 2262).
_FIRST_DAY = np.datetime64("1900-01-01T00:00:00", "s")
_END_DAY = np.datetime64("2200-01-01T00:00:00", "s")


class RequestRejected(InvalidInput):
    """A client mistake: kserve answers it with 400 / INVALID_ARGUMENT and ``reason`` as text."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class InputRules:
    """What a model accepts beyond names, datatypes and shapes.

    ``categories`` closes the vocabulary of inputs such as ``payment_method``; ``dates`` lists
    the BYTES inputs that must parse as ISO dates; ``ranges`` bounds numeric inputs such as
    ``horizon_days``. Values come from the model metadata where it declares them.
    """

    max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
    categories: Mapping[str, frozenset[str]] = field(default_factory=dict)
    dates: frozenset[str] = frozenset()
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)


def decode_inputs(
    request: InferRequest, specs: Sequence[TensorSpec], rules: InputRules
) -> dict[str, np.ndarray]:
    """Check a request against the declared inputs and return one 1-D column per input.

    BYTES columns come back as object arrays of ``str``; numeric ones in the declared dtype.
    Optional inputs the request leaves out are absent from the result. Where some inputs are
    batched (``[-1]``) and others fixed (``[1]``, e.g. the recommender's ``k``), the fixed ones
    are one value for the whole batch: they are checked once and repeated to the batch's length,
    so every column has one value per row.
    """
    by_name = _check_names(request.inputs, specs)
    present = [spec for spec in specs if spec.name in by_name]
    rows: dict[str, int] = {}
    for spec in present:
        rows[spec.name] = _check_header(by_name[spec.name], spec)
    batched = {spec.name for spec in present if spec.batched}
    _check_batch({n: r for n, r in rows.items() if n in batched} if batched else rows, rules.max_batch_rows)
    columns: dict[str, np.ndarray] = {}
    for spec in present:
        column = _column(by_name[spec.name], spec)
        _check_values(spec, column, rules)
        columns[spec.name] = column
    if batched:
        n = rows[next(iter(batched))]
        for name in rows.keys() - batched:
            columns[name] = np.repeat(columns[name], n)
    return columns


def batch_rows(request: InferRequest) -> int:
    """The batch size a request claims (first dimension of its first input), 0 if unknown."""
    try:
        shape = request.inputs[0].shape
        return int(shape[0]) if shape else 1
    except (IndexError, TypeError, ValueError):
        return 0


def check_requested_outputs(request: InferRequest, outputs: Sequence[TensorSpec]) -> None:
    """Refuse requested output names the model does not produce (kserve would 400 later, uncounted)."""
    if not request.request_outputs:
        return
    known = {spec.name for spec in outputs}
    for requested in request.request_outputs:
        if requested.name not in known:
            raise RequestRejected(
                "unknown_output",
                f"requested output '{requested.name}' is not produced by this model; it produces "
                f"{sorted(known)}",
            )


def _check_names(inputs: Sequence[InferInput], specs: Sequence[TensorSpec]) -> dict[str, InferInput]:
    by_name: dict[str, InferInput] = {}
    for infer_input in inputs:
        if infer_input.name in by_name:
            raise RequestRejected("duplicate_input", f"input '{infer_input.name}' is given more than once")
        by_name[infer_input.name] = infer_input
    declared = {spec.name: spec for spec in specs}
    for name in by_name:
        if name not in declared:
            raise RequestRejected(
                "unexpected_input",
                f"unexpected input '{name}'; this model takes {sorted(declared)}",
            )
    for spec in specs:
        if spec.name not in by_name and not spec.optional:
            raise RequestRejected(
                "missing_input", f"missing input '{spec.name}' ({spec.datatype}, shape {list(spec.shape)})"
            )
    return by_name


def _check_header(infer_input: InferInput, spec: TensorSpec) -> int:
    """Datatype and shape against the declaration; returns the row count."""
    if infer_input.datatype != spec.datatype:
        raise RequestRejected(
            "wrong_datatype",
            f"input '{spec.name}' has datatype {infer_input.datatype}; expected {spec.datatype}",
        )
    shape = list(infer_input.shape or [])
    if not _shape_matches(shape, spec.shape):
        raise RequestRejected(
            "wrong_shape", f"input '{spec.name}' has shape {shape}; expected {_shape_text(spec.shape)}"
        )
    return int(shape[0])


def _shape_matches(shape: list[int], declared: tuple[int, ...]) -> bool:
    """Exact rank and fixed dims; a declared ``[-1]`` also admits ``[n, 1]`` (common in V2 clients)."""
    if any((not isinstance(d, int | np.integer)) or d < 0 for d in shape):
        return False
    candidates = [declared]
    if declared == (-1,):
        candidates.append((-1, 1))
    for candidate in candidates:
        if len(shape) == len(candidate) and all(c in (-1, d) for c, d in zip(candidate, shape, strict=True)):
            return True
    return False


def _shape_text(declared: tuple[int, ...]) -> str:
    text = str([("n" if d == -1 else d) for d in declared]).replace("'", "")
    return text + (" or [n, 1]" if declared == (-1,) else "")


def _check_batch(rows: Mapping[str, int], max_rows: int) -> None:
    counts = set(rows.values())
    if len(counts) > 1:
        detail = ", ".join(f"'{name}' has {n}" for name, n in rows.items())
        raise RequestRejected("wrong_shape", f"inputs disagree on the batch size: {detail}")
    n = counts.pop() if counts else 0
    if n == 0:
        raise RequestRejected("empty_batch", f"input '{next(iter(rows), '?')}' has no rows")
    if n > max_rows:
        raise RequestRejected(
            "batch_too_large", f"input '{next(iter(rows))}' has {n} rows; this server takes at most {max_rows}"
        )


def _column(infer_input: InferInput, spec: TensorSpec) -> np.ndarray:
    """Decode one input with kserve's ``as_numpy``, turning its decode failures into 400s."""
    try:
        array = infer_input.as_numpy()
    except (ValueError, TypeError, OverflowError, struct.error) as exc:
        raise RequestRejected(
            "wrong_shape" if "reshape" in str(exc) or isinstance(exc, struct.error) else "wrong_datatype",
            f"data of input '{spec.name}' does not fit {spec.datatype} shape {list(infer_input.shape)}: {exc}",
        ) from None
    column = array.reshape(array.shape[0], -1)[:, 0] if array.ndim > 1 else array.reshape(-1)
    if spec.datatype == "BYTES":
        return _text_column(column, spec.name)
    return column


def _text_column(column: np.ndarray, name: str) -> np.ndarray:
    """BYTES arrive as ``bytes`` (binary, gRPC) or ``str`` (JSON); anything else is a wrong datatype."""
    items = column.tolist()
    kinds = set(map(type, items))
    if column.dtype == object and kinds == {str}:
        return column  # JSON text: already what the models take (one pass instead of a copy per value)
    if kinds == {bytes}:  # gRPC and binary tensors: decoded in one map; a bad row is found below
        try:
            out = np.empty(len(items), dtype=object)
            out[:] = list(map(bytes.decode, items))
            return out
        except UnicodeDecodeError:
            pass
    out = np.empty(column.shape[0], dtype=object)
    for i, value in enumerate(column):
        if isinstance(value, str):
            out[i] = value
        elif isinstance(value, bytes):
            try:
                out[i] = value.decode("utf-8")
            except UnicodeDecodeError:
                raise RequestRejected("bad_value", f"input '{name}' row {i} is not UTF-8 text") from None
        else:
            raise RequestRejected(
                "wrong_datatype", f"input '{name}' row {i} is {type(value).__name__}, not BYTES text"
            )
    return out


def _check_values(spec: TensorSpec, column: np.ndarray, rules: InputRules) -> None:
    name = spec.name
    if spec.datatype == "BYTES" and len(column):
        lengths = np.fromiter(map(len, column.tolist()), dtype=np.int64, count=len(column))
        if lengths.max() > rules.max_text_chars:
            i = int(np.argmax(lengths > rules.max_text_chars))
            raise RequestRejected("value_too_long", f"input '{name}' row {i} is {int(lengths[i])} characters long; "
                                  f"at most {rules.max_text_chars} are accepted")
    if spec.datatype in ("FP16", "FP32", "FP64"):
        bad = ~np.isfinite(column)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise RequestRejected("non_finite", f"input '{name}' row {i} is {column[i]}; values must be finite")
    if name in rules.ranges:
        low, high = rules.ranges[name]
        bad = (column < low) | (column > high)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise RequestRejected(
                "bad_value", f"input '{name}' row {i} is {column[i]}; expected a value in [{low:g}, {high:g}]"
            )
    if name in rules.categories:
        allowed = rules.categories[name]
        seen = set(column.tolist())  # a closed vocabulary: a few distinct values per batch
        unknown = [] if seen <= allowed else [(i, v) for i, v in enumerate(column) if v not in allowed]
        if unknown:
            i, value = unknown[0]
            raise RequestRejected(
                "unknown_category",
                f"input '{name}' row {i} has unknown value {value!r}; expected one of {sorted(allowed)}",
            )
    if name in rules.dates:
        _check_dates(name, column)


def _check_dates(name: str, column: np.ndarray) -> None:
    """ISO 8601 dates (``YYYY-MM-DD``, optional time and UTC offset) in a plausible range.

    Why a pattern first and numpy second: the models parse dates with pandas, which also
    takes words ("today") and odd forms that would then fail inside the model (a 500); the
    pattern admits only forms every model parses alike, numpy then checks the calendar
    (2024-02-30, 25:00) for the whole batch at once. The offset is cut off before numpy sees
    it: numpy warns on offsets, and catching that warning per request reset Python's warning
    registry, which made every later library warning print again on every request.
    """
    values = column.tolist()
    try:
        # A batch holds few distinct dates: each is checked once; a refusal names the first bad row.
        uniques = list(dict.fromkeys(values))
    except TypeError:
        uniques = values  # unhashable values fail the pattern below, naming their row
    bases: list[str] = []
    for value in uniques:
        match = _ISO_DATE.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            i = next(i for i, v in enumerate(values) if v is value or v == value)
            raise RequestRejected(
                "bad_value", f"input '{name}' row {i} is {value!r}; expected an ISO 8601 date such as 2024-03-05"
            )
        bases.append(match.group("base"))
    try:
        days = np.array(bases, dtype="datetime64[s]")
    except ValueError:
        days = None
    if days is not None and bool(((days >= _FIRST_DAY) & (days < _END_DAY)).all()):
        return
    base_of = dict(zip(uniques, bases, strict=True))
    for i, value in enumerate(values):
        base = base_of[value]
        try:
            day = np.datetime64(base, "s")
        except ValueError as exc:
            raise RequestRejected("bad_value", f"input '{name}' row {i} is {value!r}: {exc}") from None
        if not _FIRST_DAY <= day < _END_DAY:
            raise RequestRejected(
                "bad_value", f"input '{name}' row {i} is {value!r}; expected a date from 1900 to 2199"
            )


def row_refusals(columns: Mapping[str, np.ndarray], specs: Sequence[TensorSpec], rules: InputRules) -> np.ndarray:
    """Per row, why a request holding it would be refused (None where it would not): ``titans score``'s check.

    The value rules of ``decode_inputs`` (finite numbers, ranges, closed vocabularies, ISO dates in
    range), row by row instead of first-failure-raises, so a batch quarantines the rows a server
    would refuse and scores the rest. Checked per distinct value: exports repeat theirs.
    """
    n = len(next(iter(columns.values()))) if columns else 0
    reasons = np.full(n, None, dtype=object)
    for spec in specs:
        if spec.name not in columns:
            continue
        column = np.asarray(columns[spec.name])
        bad: np.ndarray | None = None
        if spec.datatype == "BYTES" and len(column):
            bad = np.fromiter(map(len, column.tolist()), dtype=np.int64, count=len(column)) > rules.max_text_chars
            _first(reasons, bad, f"input '{spec.name}' is longer than {rules.max_text_chars} characters", column)
        if spec.datatype in ("FP16", "FP32", "FP64"):
            bad = ~np.isfinite(column.astype(np.float64))
            _first(reasons, bad, f"input '{spec.name}' is {{value}}; values must be finite", column)
        if spec.name in rules.ranges:
            low, high = rules.ranges[spec.name]
            bad = (column < low) | (column > high)
            _first(reasons, bad, f"input '{spec.name}' is {{value}}; expected a value in [{low:g}, {high:g}]", column)
        if spec.name in rules.categories:
            allowed = rules.categories[spec.name]
            uniques, codes = np.unique(column.astype(str), return_inverse=True)
            bad = ~np.isin(uniques, list(allowed))[codes]
            _first(reasons, bad, f"input '{spec.name}' has unknown value {{value!r}}; "
                   f"expected one of {sorted(allowed)}", column)
        if spec.name in rules.dates:
            uniques, codes = np.unique(column.astype(str), return_inverse=True)
            refused = np.array([_date_refusal(spec.name, str(value)) for value in uniques], dtype=object)
            per_row = refused[codes]
            _first(reasons, per_row != None, "", column, per_row)  # noqa: E711 - elementwise
    return reasons


def _first(reasons: np.ndarray, bad: np.ndarray, message: str, column: np.ndarray,
           texts: np.ndarray | None = None) -> None:
    """Set the reason of each row that fails this check and no earlier one.

    ``message`` is a template of ``{value}``, formatted once per distinct failing value; ``texts``, when
    given, are the reasons already written per row.
    """
    pick = np.asarray(bad, dtype=bool) & np.equal(reasons, None)
    if not pick.any():
        return
    if texts is not None:
        reasons[pick] = texts[pick]
        return
    cache: dict[object, str] = {}
    for i in np.flatnonzero(pick):
        value = column[i]
        key = value if not isinstance(value, float) or value == value else "nan"
        if key not in cache:
            cache[key] = message.format(value=value)
        reasons[i] = cache[key]


def _date_refusal(name: str, value: str) -> str | None:
    """Why ``_check_dates`` would refuse this one value, or None."""
    try:
        _check_dates(name, np.array([value], dtype=object))
    except RequestRejected as exc:
        return str(exc).replace(" row 0", "")
    return None
