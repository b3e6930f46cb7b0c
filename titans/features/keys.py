"""Merchant keys: the clean table's spelling of a merchant, for one value or a batch.

Why in the core: the served models, the fast path, the drift counters and the feature lookup all key
merchants the same way as ingest does (``titans.models.common.normalize_merchant``, the pandas version), so
the rule has one home that every layer may import.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["merchant_keys", "normalize_merchant_key"]

_NON_ALNUM = re.compile(r"[^a-z0-9]+")

# Merchant spelling (text only) -> key; cleared when full.
_MERCHANT_KEYS: dict[str, str] = {}
_MERCHANT_KEYS_SIZE = 100_000


def normalize_merchant_key(value: str) -> str:
    """The clean table's merchant key for one value (``titans.models.common.normalize_merchant``).

    Why a scalar copy of the rule: the pandas version costs ~0.3 ms per call, more than the
    whole online lookup of one row; a test holds the two equal on awkward spellings.
    """
    key = _NON_ALNUM.sub("_", value.lower()).strip("_")
    return key or "unknown"


def merchant_keys(values: Sequence[Any]) -> list[str]:
    """``normalize_merchant_key`` of each value (``str`` of non-text), memoised per spelling.

    Why memoised: merchants repeat heavily, and the regex costs ~1 us a value; the lookup,
    the design and the drift counters of every batch all need these keys. A batch of known
    spellings is one C-level pass over a dict.
    """
    items = values.tolist() if isinstance(values, np.ndarray) else values
    memo = _MERCHANT_KEYS
    try:
        return list(map(memo.__getitem__, items))
    except (KeyError, TypeError):
        pass
    if len(memo) > _MERCHANT_KEYS_SIZE:
        memo.clear()
    out = []
    for value in items:
        text = type(value) is str
        key = memo.get(value) if text else None
        if key is None:
            key = normalize_merchant_key(value if isinstance(value, str) else str(value))
            if text:
                memo[value] = key
        out.append(key)
    return out
