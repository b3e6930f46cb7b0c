"""Tables written for people to open in a spreadsheet, with nothing in them that a spreadsheet would run.

Why its own module: ``titans score``'s CSV copy and the dashboard's downloads both write it, and the
dashboard must not import the scorer (kserve) to do so. The rule is OWASP's "CSV injection": a text
cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed with ``'``.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

FORMULA_START = r"^[=+\-@\t\r]"


def spreadsheet_safe(table: pa.Table) -> pa.Table:
    """Text cells that a spreadsheet would run as a formula prefixed with ``'``; dates as days.

    Numbers stay numbers (a negative amount is not text): only string columns are neutralized.
    """
    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            risky = pc.match_substring_regex(column, FORMULA_START)
            column = pc.if_else(risky, pc.binary_join_element_wise("'", column, ""), column)
        elif pa.types.is_timestamp(column.type):
            column = pc.cast(column, pa.date32())
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def safe_csv(frame: pd.DataFrame) -> bytes:
    """``frame`` as spreadsheet-safe CSV bytes (text columns as text, whatever their pandas dtype)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = pa.table([c.cast(pa.string()) if pa.types.is_null(c.type) else c for c in table.columns],
                     names=table.column_names)
    sink = pa.BufferOutputStream()
    pacsv.write_csv(spreadsheet_safe(table), sink)
    return sink.getvalue().to_pybytes()
