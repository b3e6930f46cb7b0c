"""The transaction schema: how raw export fields become typed, normalized columns.

Why vectorized functions over a chunk rather than a per-row model: ingest must keep up with
millions of rows, and every decision (reject, repair, default) has to be counted for the
data-quality report. Each function returns the normalized values and, where rows fail,
a reason per row (``None`` when the row is fine). Numbers and dates, whose reading depends on
the whole column, are in ``titans.data.conventions``.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections import Counter
from collections.abc import Callable

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("date", "type", "description", "amount")
OPTIONAL_COLUMNS = ("category", "payment_method", "status", "reference", "receipt_url", "account_id", "is_fraud")
KNOWN_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

CLEAN_COLUMNS = (
    "transaction_id", "account_id", "date", "type", "description", "amount", "category", "payment_method",
    "status", "merchant", "reference", "receipt_url", "is_fraud",
)
PAYMENT_METHODS = ("credit_card", "debit_card", "bank_transfer", "cash", "check", "paypal", "other", "unknown")
STATUSES = ("paid", "received", "pending", "written_off", "refunded", "failed", "cancelled", "unknown")
PAYMENT_ALIASES = {
    "card": "credit_card", "credit": "credit_card", "visa": "credit_card", "mastercard": "credit_card",
    "amex": "credit_card", "debit": "debit_card", "transfer": "bank_transfer", "wire": "bank_transfer",
    "ach": "bank_transfer", "bank": "bank_transfer", "cheque": "check",
}
TYPE_ALIASES = {"income": "Income", "credit": "Income", "expense": "Expense", "debit": "Expense"}
DEFAULT_ACCOUNT = "acct_default"
MAX_FIELD_CHARS = 2000


def per_unique(values: pd.Series, fn: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """Apply a string transform once per distinct value, then broadcast.

    Why: export columns repeat a handful of values (types, categories, merchants) across
    millions of rows, and pandas string methods run in Python per element.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    mapped = fn(pd.Series(uniques, dtype=object)).to_numpy(dtype=object)
    return pd.Series(mapped[codes], index=values.index, dtype=object)


def snake_case(values: pd.Series) -> pd.Series:
    """``"Meals & Entertainment "`` -> ``"meals_entertainment"``: one spelling per label."""
    return per_unique(values, lambda u: u.str.strip().str.lower().str.replace(r"[^0-9a-z]+", "_", regex=True)
                      .str.strip("_"))


def canonical_column(name: str) -> str:
    """Header text to the schema's column name (``"Payment Method"`` -> ``payment_method``)."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lstrip("\ufeff").lower()).strip("_")


def normalize_vocabulary(values: pd.Series, vocabulary: tuple[str, ...], aliases: dict[str, str],
                         repair_label: str, repairs: Counter) -> pd.Series:
    """Map to a known label: exact, alias, or a near miss (``credit_car``), counting repairs.

    Values that are none of these are kept in snake_case: an open vocabulary is better than
    a rejected row; the report shows them.
    """
    norm = snake_case(values)
    codes, uniques = pd.factorize(norm, use_na_sentinel=False)
    counts = np.bincount(codes, minlength=len(uniques))
    mapped = []
    for value, count in zip(uniques, counts, strict=True):
        value = aliases.get(value, value)
        if value and value not in vocabulary:
            match = difflib.get_close_matches(value, vocabulary, n=1, cutoff=0.85)
            if match:
                repairs[f"{repair_label}:{value}->{match[0]}"] += int(count)
                value = match[0]
        mapped.append(value)
    return pd.Series(np.array(mapped, dtype=object)[codes], index=values.index, dtype=object)


def merchant_key(reference: pd.Series) -> pd.Series:
    """The merchant entity key derived from the Reference column (``"Ruth's Chris"`` -> ``ruth_s_chris``)."""
    return per_unique(reference, lambda u: u.str.strip().str.lower().str.replace(r"[^0-9a-z]+", "_", regex=True)
                      .str.strip("_").replace("", "unknown"))


def content_ids(frame: pd.DataFrame, occurrence: np.ndarray) -> pd.Series:
    """A stable ``transaction_id``: sha256 of the normalized content plus the occurrence index.

    The occurrence index (how many identical rows came earlier in the same input) keeps two
    genuinely identical charges apart while re-ingesting the same file maps every row onto
    the id it had the first time.
    """
    parts = (
        frame["account_id"] + "|" + per_unique(frame["date"], lambda u: pd.to_datetime(u).dt.strftime("%Y-%m-%d"))
        + "|" + frame["type"] + "|"
        + frame["description"] + "|" + frame["amount"].map("{:.2f}".format) + "|" + frame["category"] + "|"
        + frame["payment_method"] + "|" + frame["status"] + "|" + frame["reference"] + "|"
        + frame["receipt_url"] + "|" + pd.Series(occurrence, index=frame.index).astype(str)
    )
    return parts.map(lambda s: hashlib.sha256(s.encode("utf-8")).hexdigest()[:16])


def content_keys(frame: pd.DataFrame) -> pd.Series:
    """A 64-bit key of the row content (no occurrence), used to count identical rows."""
    cols = ["account_id", "date", "type", "description", "amount", "category", "payment_method", "status",
            "reference", "receipt_url"]
    # The amount as the id hashes it (cents), so rows equal to the cent count as identical.
    return pd.util.hash_pandas_object(frame[cols].assign(amount=frame["amount"].round(2)), index=False)


# -- merchant from the description, when the Reference column holds identifiers ----------------
#
# Why: exports differ in what "Reference" means. In one it is the vendor ("Microsoft"), in
# another a transaction number ("TXN001"); taking the latter as the merchant makes every row its
# own merchant, and merchant history then means nothing. Bank and card exports name the vendor
# in the description instead, wrapped in processor prefixes, store numbers and locations.

ID_SHARE = 0.8  # share of non-empty references that must look like identifiers
UNIQUE_SHARE = 0.8  # share of non-empty references that must be distinct
_ID_LIKE = re.compile(r"^(?=.*\d)[#A-Za-z]{0,8}[-_#/.:]?[0-9A-Za-z][0-9A-Za-z\-_/.:]*$")
# Card-processor and marketplace prefixes: "SQ *BLUE BOTTLE", "PAYPAL *SPOTIFY", "TST* JOE'S".
_PROCESSOR = re.compile(
    r"^(?:(?:pos|debit card|dbt|checkcard|check card|card|visa|purchase|recurring|ach)"
    r"(?: purchase| debit| payment| card)?\s+)*"
    r"(?:(?:sq|sqc|tst|pp|paypal|sp|gg|google|ic|dd|doordash|ls|wpy|py|fs|bt|pos)\s*\*\s*)?"
)
_AMAZON = re.compile(r"^(?:amzn(?:\s+mktp)?|amazon(?:\.com|\s+mktplace|\s+marketplace|\s+mktp)?)\b.*")
_NOISE = (
    (re.compile(r"\b\d{1,2}/\d{1,2}(?:/\d{2,4})?\b"), " "),  # dates: "PURCHASE 12/03"
    (re.compile(r"\*\s*[0-9a-z]{4,}\b"), " "),  # order references after a star: "*2K4JL1RT2"
    (re.compile(r"(?:#|\bno\.?\s*|\bstore\s+|\bstr\s+)\s*\d+.*$"), " "),  # store number and what follows
    (re.compile(r"\s[a-z]{1,2}-\d{2,}\b.*$"), " "),  # a store code ("T-1234") and the location after it
    (re.compile(r"\s\d{3,}\b.*$"), " "),  # a long number (store id, phone) and the location after it
    (re.compile(r"^(?:\d+\s+)+"), ""),  # a leading card date or sequence number: "1203 HOME DEPOT"
    (re.compile(r"^(?:www\.)?([a-z0-9-]+)\.(?:com|net|org|co|io)\b(?:/\S*)?"), r"\1 "),  # "Netflix.com"
    (re.compile(r"\s(?:[a-z0-9-]+\.)+(?:com|net|org|co|io)\b(?:/\S*)?"), " "),  # "... HELP.UBER.COM"
)
US_STATES = frozenset(
    "al ak az ar ca co ct de fl ga hi id il in ia ks ky la me md ma mi mn ms mo mt ne nv nh nj nm ny nc nd oh ok "
    "or pa ri sc sd tn tx ut vt va wa wv wi wy dc".split()
)


def reference_looks_like_ids(reference: pd.Series) -> tuple[bool, str]:
    """Decide whether a Reference column holds transaction identifiers rather than vendors.

    Identifiers: at least ``ID_SHARE`` of the non-empty values look like ids (one token with a
    digit: ``TXN001``, ``INV-2024-7``, a UUID) and at least ``UNIQUE_SHARE`` are distinct. A
    vendor column repeats names, so both conditions together keep "7-Eleven" a merchant.
    Returns the decision and the reason the data-quality report prints.
    """
    values = reference[reference.astype(str).str.strip().ne("")].astype(str).str.strip()
    if values.empty:
        return True, "the Reference column is empty"
    id_share = float(values.map(lambda v: bool(_ID_LIKE.match(v))).mean())
    unique_share = float(values.nunique() / len(values))
    facts = f"{id_share:.0%} of {len(values)} non-empty references look like ids, {unique_share:.0%} are distinct"
    if id_share >= ID_SHARE and unique_share >= UNIQUE_SHARE:
        return True, f"{facts}: References are identifiers, not vendors"
    return False, f"{facts}: References name vendors"


def _merchant_text(text: str) -> str:
    """One description to its vendor words: prefixes, store numbers, locations, case removed."""
    t = " ".join(str(text).lower().replace("\u00a0", " ").split())
    t = t.split(" - ")[0]  # "Daniel Howard - Web Development": the counterparty comes first
    t = _PROCESSOR.sub("", t, count=1)
    if _AMAZON.match(t):
        return "amazon"
    for pattern, repl in _NOISE:
        t = pattern.sub(repl, t)
    words = re.sub(r"[^0-9a-z&' ]+", " ", t).split()
    if len(words) > 1 and words[0] == "the":  # "THE HOME DEPOT" and "HOME DEPOT" are one merchant
        words = words[1:]
    # A trailing US state code ("... seattle wa") and the city before it are location, not vendor.
    if len(words) >= 3 and words[-1] in US_STATES:
        words = words[:-2]
    elif len(words) >= 2 and words[-1] in US_STATES and len(words[-1]) == 2:
        words = words[:-1]
    return "_".join(w.replace("'", "_").replace("&", "and") for w in words[:4]).strip("_")


def merchant_from_description(description: pd.Series) -> pd.Series:
    """The merchant key derived from the description (``"SQ *BLUE BOTTLE #12 OAKLAND CA"`` ->
    ``blue_bottle``), in the same form as ``merchant_key``."""
    return per_unique(description, lambda u: u.map(_merchant_text).map(
        lambda k: re.sub(r"_+", "_", k).strip("_") or "unknown"))
