"""In-vocabulary term counts of many texts, analysed once per whitespace-separated piece, counted in numpy.

Why: scoring an export meets tens of thousands of new descriptions per chunk (typos, references,
merchant names), but they are made of far fewer words. Profiled on 200k generated rows, the
amount prior's and the category model's TF-IDF rows spent ~12 s of a 21 s chunk loop running
scikit-learn's analyzer and ``Counter`` text by text. Both analyzers the models use break
into pieces of ``text.lower().split()``:

- ``char_wb``: scikit-learn pads each ``split()`` piece with spaces and takes its n-grams
  inside it, so a text's n-grams are its pieces' n-grams, concatenated;
- ``word`` with the default token pattern ``\\b\\w\\w+\\b``: a match holds no whitespace, and a
  piece's edges are word boundaries in the piece exactly when they are in the text, so a
  text's tokens are its pieces' tokens in order; its bigrams join consecutive tokens, across
  pieces too, which the flat token array below keeps.

So each distinct piece is analysed once (and remembered), and a batch's counts are one sparse
COO-to-CSR conversion: integer counts, exact in float64, in sorted column order, the values
``TfidfRows.block`` computed text by text (``tests/models/test_text_pieces.py`` compares them
with ``TfidfVectorizer.transform`` on awkward text). A vectorizer this does not cover (other
analyzers, preprocessors, tokenizers, stop words, accents, longer word n-grams) keeps the
text-by-text path.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from titans.models.distinct_values import distinct

DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
# Distinct pieces remembered per vectorizer; a full cache is cleared and refilled (words repeat heavily, and
# the ones that do not, typos and references, are worth nothing remembered). At ~40 terms a piece, ~10 MB.
PIECE_CACHE_SIZE = 20_000
# Characters counted at once. A batch's arrays hold every term occurrence of its texts (char_wb (2, 5): ~4 a
# character, ~10 int64 arrays of that length alive at once), so a batch is counted in groups of about this many
# characters: ~40 MB of arrays per group, whatever the batch. Without the bound, the serving edge's largest
# category request (10k rows of 2,000 characters) made ~80M entries and the pod was killed at its 1 GiB limit.
CHARS_PER_GROUP = 131_072
_ITEM = array("i").itemsize  # bytes per remembered term


def supports(vectorizer: Any) -> bool:
    """Whether a fitted ``TfidfVectorizer``'s analysis breaks into whitespace pieces (module docstring)."""
    plain = (vectorizer.input == "content" and vectorizer.preprocessor is None and vectorizer.strip_accents is None
             and not callable(vectorizer.analyzer))
    if not plain:
        return False
    low, high = vectorizer.ngram_range
    if vectorizer.analyzer == "char_wb":
        return 1 <= low <= high
    return (vectorizer.analyzer == "word" and vectorizer.tokenizer is None and vectorizer.stop_words is None
            and vectorizer.token_pattern == DEFAULT_TOKEN_PATTERN and 1 <= low <= high <= 2)


class PieceCounts:
    """``counts(texts)``: the CSR matrix of in-vocabulary term counts that the vectorizer's analyzer gives."""

    def __init__(self, vectorizer: Any):
        if not supports(vectorizer):
            raise ValueError("vectorizer's analysis does not break into whitespace pieces")
        self.vocabulary: dict[str, int] = vectorizer.vocabulary_
        self.width = len(self.vocabulary)
        self.lowercase = bool(vectorizer.lowercase)
        self.low, self.high = vectorizer.ngram_range
        self.chars = vectorizer.analyzer == "char_wb"
        self._pieces: dict[str, bytes] = {}
        if not self.chars:
            self._token_pattern = re.compile(vectorizer.token_pattern)
            self._word_space()

    def _word_space(self) -> None:
        """Ids for the tokens the vocabulary's terms are made of; term index by unigram id and by bigram key."""
        tokens: dict[str, int] = {}
        unigrams: list[tuple[int, int]] = []
        bigrams: list[tuple[int, int, int]] = []
        for term, index in self.vocabulary.items():
            parts = term.split(" ")
            ids = [tokens.setdefault(p, len(tokens)) for p in parts]
            if len(ids) == 1:
                unigrams.append((ids[0], index))
            else:
                bigrams.append((ids[0], ids[1], index))
        self._tokens = tokens
        self._n_tokens = len(tokens)
        self._unigram = np.full(len(tokens) + 1, -1, dtype=np.int64)  # the last slot: tokens not in any term
        for token, index in unigrams:
            self._unigram[token] = index
        pairs = np.array([a * self._n_tokens + b for a, b, _ in bigrams], dtype=np.int64)
        order = np.argsort(pairs, kind="stable")
        self._bigram_keys = pairs[order]
        self._bigram_index = np.array([i for _, _, i in bigrams], dtype=np.int64)[order]

    def counts(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Term counts per text (float64, sorted column indices), as the vectorizer's ``_count_vocab`` counts.

        Counted in groups of consecutive texts of about ``CHARS_PER_GROUP`` characters (a text longer than
        that is a group of its own), so memory follows the group, not the batch.
        """
        texts = list(texts)
        ends = _group_ends(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)), CHARS_PER_GROUP)
        if len(ends) <= 1:
            return self._group_counts(texts)
        starts = [0, *ends[:-1]]
        return sp.vstack([self._group_counts(texts[a:b]) for a, b in zip(starts, ends, strict=True)],
                         format="csr")

    def _group_counts(self, texts: Sequence[str]) -> sp.csr_matrix:
        """``counts`` of one group of texts, all at once."""
        pieces: list[str] = []
        per_text = np.empty(len(texts), dtype=np.int64)
        for i, text in enumerate(texts):
            split = (text.lower() if self.lowercase else text).split()
            per_text[i] = len(split)
            pieces.extend(split)
        uniques, codes = distinct(pieces)
        found = list(map(self._pieces.get, uniques))
        if None in found:
            found = [self._analysed(p) if f is None else f for p, f in zip(uniques, found, strict=True)]
        lengths = np.fromiter(map(len, found), dtype=np.int64, count=len(found)) // _ITEM
        flat = np.frombuffer(b"".join(found), dtype=np.intc).astype(np.int64)  # array("i") is a C int
        # Each piece occurrence's terms, in order: the flat array's slices, gathered without a Python loop.
        taken = lengths[codes]
        total = int(taken.sum())
        starts = (np.cumsum(lengths) - lengths)[codes]
        step = np.repeat(starts - (np.cumsum(taken) - taken), taken)
        terms = flat[step + np.arange(total, dtype=np.int64)] if total else np.zeros(0, dtype=np.int64)
        row_of_piece = np.repeat(np.arange(len(texts), dtype=np.int64), per_text)
        rows = np.repeat(row_of_piece, taken)
        if self.chars:
            keep = terms >= 0
            return _csr(rows[keep], terms[keep], len(texts), self.width)
        return self._word_counts(rows, terms, len(texts))

    def _word_counts(self, rows: np.ndarray, tokens: np.ndarray, n_texts: int) -> sp.csr_matrix:
        """Unigram and bigram counts from each text's token ids in order (rows sorted, as ``counts`` builds them)."""
        parts_rows, parts_cols = [], []
        if self.low == 1:
            unigram = self._unigram[tokens]
            keep = unigram >= 0
            parts_rows.append(rows[keep])
            parts_cols.append(unigram[keep])
        if self.high == 2 and len(tokens) > 1 and len(self._bigram_keys):
            first, second = tokens[:-1], tokens[1:]
            known = (rows[:-1] == rows[1:]) & (first < self._n_tokens) & (second < self._n_tokens)
            keys = first[known] * self._n_tokens + second[known]
            at = np.minimum(np.searchsorted(self._bigram_keys, keys), len(self._bigram_keys) - 1)
            found = self._bigram_keys[at] == keys
            parts_rows.append(rows[:-1][known][found])
            parts_cols.append(self._bigram_index[at[found]])
        if not parts_rows:
            return _csr(np.zeros(0, np.int64), np.zeros(0, np.int64), n_texts, self.width)
        return _csr(np.concatenate(parts_rows), np.concatenate(parts_cols), n_texts, self.width)

    def _analysed(self, piece: str) -> bytes:
        """A piece's term indices (char n-grams, -1 outside the vocabulary) or token ids, in order; remembered.

        Kept as the bytes of C int values: a batch joins them and reads them with one ``np.frombuffer`` (an
        array per piece cost more to make), and a remembered piece holds 4 bytes a term, where a list of
        Python ints held ~36 (a worker remembers up to ``PIECE_CACHE_SIZE`` pieces per vectorizer).
        """
        if self.chars:
            vocabulary = self.vocabulary
            found = array("i", [vocabulary.get(g, -1) for g in _char_ngrams(piece, self.low, self.high)]).tobytes()
        else:
            tokens, unknown = self._tokens, self._n_tokens  # ``unknown``: the last slot of ``_unigram``, in no term
            found = array("i", [tokens.get(t, unknown) for t in self._token_pattern.findall(piece)]).tobytes()
        if len(self._pieces) >= PIECE_CACHE_SIZE:
            self._pieces.clear()
        self._pieces[piece] = found
        return found


def _char_ngrams(piece: str, low: int, high: int) -> list[str]:
    """scikit-learn's ``char_wb`` n-grams of one whitespace-free piece: padded with a space each side."""
    word = f" {piece} "
    size = len(word)
    grams: list[str] = []
    for n in range(low, high + 1):
        if n >= size:
            grams.append(word)  # a short piece counts once, whole, then no longer n-grams
            break
        grams.extend(word[i:i + n] for i in range(size - n + 1))
    return grams


def _group_ends(lengths: np.ndarray, budget: int) -> list[int]:
    """End indices of consecutive groups of texts, each ending at the first text that takes it to ``budget``."""
    ends: list[int] = []
    start, total = 0, np.cumsum(lengths)
    while start < len(lengths):
        before = int(total[start - 1]) if start else 0
        end = int(np.searchsorted(total, before + budget, side="left")) + 1
        ends.append(min(max(end, start + 1), len(lengths)))
        start = ends[-1]
    return ends


def _csr(rows: np.ndarray, columns: np.ndarray, n_rows: int, width: int) -> sp.csr_matrix:
    """Counts of (row, column) pairs as CSR: duplicates summed, column indices sorted within rows."""
    matrix = sp.csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(n_rows, width))
    matrix.sum_duplicates()
    matrix.sort_indices()
    return matrix
