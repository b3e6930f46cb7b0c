"""The scorer's chunks: the clean table in date and id order, cut between days, at most the chunk size."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from serving.score_export import day_chunks
from titans.data.generate import GenerateConfig, write_csv
from titans.data.ingest import ingest, read_clean


@pytest.mark.parametrize("chunk_rows", [1, 40, 5000])
def test_chunks_are_whole_days_of_the_clean_table_in_order(tmp_path: Path, chunk_rows: int) -> None:
    write_csv(GenerateConfig(rows=2000, accounts=2, seed=5, days=120), tmp_path / "raw.csv")
    ingest([tmp_path / "raw.csv"], tmp_path / "data", hold_home=False)
    chunks = list(day_chunks(tmp_path / "data" / "clean", chunk_rows))
    table = read_clean(tmp_path / "data")
    joined = pd.concat(chunks, ignore_index=True)
    columns = [c for c in table.columns if c != "is_fraud"]  # its dtype follows a chunk's nulls
    pd.testing.assert_frame_equal(joined[columns], table[columns])
    for before, chunk in zip(chunks, chunks[1:], strict=False):
        assert before["date"].iloc[-1] < chunk["date"].iloc[0]  # no day split across two chunks
    for chunk in chunks:
        assert len(chunk) <= chunk_rows or chunk["date"].nunique() == 1  # a larger day stays whole
        assert chunk["date"].dt.to_period("M").nunique() == 1
        assert list(chunk.index) == list(range(chunk.index[0], chunk.index[0] + len(chunk)))  # positions in its month
