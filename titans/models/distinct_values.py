"""``distinct``: a batch's distinct values and each row's position among them.

Why a module of its own: the array paths (``titans.models.arrays``) and the per-piece text counts
(``titans.models.text_pieces``, which ``arrays`` imports) both need it, and neither may import the other's
importer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def distinct(values: Sequence[Any]) -> tuple[list[Any], np.ndarray]:
    """Distinct values in first-seen order and each row's position among them.

    ``dict.fromkeys`` and ``map`` keep both passes in C (a generator with ``setdefault`` took
    twice as long on a 1000-row batch); values must be hashable, as request text is.
    """
    items = values.tolist() if isinstance(values, np.ndarray) else values
    uniques = list(dict.fromkeys(items))
    if len(uniques) == len(items):
        return uniques, np.arange(len(items), dtype=np.intp)
    position = {value: i for i, value in enumerate(uniques)}
    return uniques, np.fromiter(map(position.__getitem__, items), dtype=np.intp, count=len(items))
