"""Term counts per whitespace piece (``titans.models.text_pieces``) against scikit-learn's own analysis.

The models' vectorizers are fitted here on a small corpus, then asked about awkward text: unicode
whitespace and case, punctuation-only and empty text, pieces shorter than an n-gram, repeated
words, tokens outside the vocabulary between known ones, a text ending where the next begins a known
bigram (no bigram may be formed across either).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from titans.models import text_pieces
from titans.models.arrays import TfidfRows
from titans.models.text_pieces import PieceCounts, supports

CORPUS = ["Office365 Subscription", "Client Payment - Mobile App", "fuel for client visit", "POS Debit",
          "Business Phone Service", "AT&T wireless", "État du café", "x", "ΟΔΟΣ Σ", "pay-pal fees fees",
          "Daniel Howard - Web Development", "Neptune HX100G", "equipment calibration"]
AWKWARD = ["", "   ", "!!!", "x", "Office365\tSubscription\u00a0monthly", "CLIENT  payment\n-\rmobile APP",
           "fuel fuel fuel for client", "ΟΔΟΣ Σ ΟΔΟΣ", "état café", "pay-pal   fees", "unknownword client visit",
           "client unknownword visit", "Equipment Calibration", "EquipmentC alibration", "a b c d e f",
           "İstanbul office365", "paid by client", "Payment received",
           "POS Debit POS Debit", "\u2003em space\u2003separated", "Neptune HX100G x x"]

VECTORIZERS = {
    "word 1-2": lambda: TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
    "char_wb 2-5": lambda: TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
    "char_wb 2-4": lambda: TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True),
    "word 1-1": lambda: TfidfVectorizer(),
    "word 2-2, binary": lambda: TfidfVectorizer(ngram_range=(2, 2), binary=True),
    "char_wb 1-3, cased": lambda: TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), lowercase=False),
}


@pytest.mark.parametrize("name", sorted(VECTORIZERS))
def test_piece_counts_equal_the_analyzer(name: str) -> None:
    vectorizer = VECTORIZERS[name]().fit(CORPUS)
    assert supports(vectorizer)
    rows = TfidfRows(vectorizer, remember=False)
    texts = AWKWARD + CORPUS
    by_pieces = PieceCounts(vectorizer).counts(texts)
    columns, counts, pointer = rows._counted(texts)  # the text-by-text path through scikit-learn's analyzer
    np.testing.assert_array_equal(by_pieces.indptr, pointer)
    np.testing.assert_array_equal(by_pieces.indices, columns)
    np.testing.assert_array_equal(by_pieces.data, counts)
    got, want = rows.block(texts), vectorizer.transform(texts)
    assert got.shape == want.shape
    assert abs(got - want).max() < 1e-12
    np.testing.assert_array_equal(got.indptr, sp.csr_matrix(want).indptr)


def test_remembered_pieces_give_the_same_counts_twice() -> None:
    vectorizer = VECTORIZERS["word 1-2"]().fit(CORPUS)
    pieces = PieceCounts(vectorizer)
    first = pieces.counts(AWKWARD)
    again = pieces.counts(list(reversed(AWKWARD)))
    assert abs(first - again[::-1]).max() == 0


@pytest.mark.parametrize("options", [{"stop_words": "english"}, {"ngram_range": (1, 3)}, {"strip_accents": "unicode"},
                                     {"analyzer": "char"}, {"token_pattern": r"\S+"}, {"preprocessor": str.upper}])
def test_other_analyses_keep_the_text_by_text_path(options: dict) -> None:
    vectorizer = TfidfVectorizer(**options).fit(CORPUS)
    assert not supports(vectorizer)
    rows = TfidfRows(vectorizer, remember=False)
    assert rows.pieces is None
    assert abs(rows.block(AWKWARD) - vectorizer.transform(AWKWARD)).max() < 1e-12


def test_a_full_piece_cache_is_cleared_without_changing_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    vectorizer = VECTORIZERS["char_wb 2-5"]().fit(CORPUS)
    want = PieceCounts(vectorizer).counts(AWKWARD)
    monkeypatch.setattr(text_pieces, "PIECE_CACHE_SIZE", 3)
    small = PieceCounts(vectorizer)
    got = small.counts(AWKWARD)
    assert len(small._pieces) <= 3
    assert abs(got - want).max() == 0 and got.nnz == want.nnz


@pytest.mark.parametrize("name", ["word 1-2", "char_wb 2-5"])
def test_counts_in_groups_equal_counts_at_once(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    vectorizer = VECTORIZERS[name]().fit(CORPUS)
    texts = AWKWARD + CORPUS
    want = PieceCounts(vectorizer).counts(texts)
    monkeypatch.setattr(text_pieces, "CHARS_PER_GROUP", 12)  # a group per text or two; no bigram across groups
    got = PieceCounts(vectorizer).counts(texts)
    for part in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(got, part), getattr(want, part))


def test_memory_follows_the_group_not_the_batch() -> None:
    """A thousand texts at the serving edge's longest length: ~8M char n-grams, counted in ~40 MB groups."""
    vectorizer = VECTORIZERS["char_wb 2-5"]().fit(CORPUS)
    text = ("office supplies and shell fuel " * 70)[:2000]
    pieces = PieceCounts(vectorizer)
    tracemalloc.start()
    try:
        counted = pieces.counts([text] * 1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(counted[0].toarray(), PieceCounts(vectorizer).counts([text]).toarray())
    assert peak < 150 * 2**20, f"peak {peak / 2**20:.0f} MiB"
