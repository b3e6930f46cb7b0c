"""A SparkApplication's driver: run ``titans <argv>`` under spark-submit (``images/spark-main.py`` calls ``main``).

Why beyond calling the CLI: the step that created the application needs the command's ``--json`` summary,
and a driver's log may be gone with its pod by the time the step reads it (the operator deletes pods with the
application). So the CLI's stdout is also written to the file ``$TITANS_DRIVER_OUTPUT`` names (on the shared
data claim), and only when the command succeeded: its presence is the proof of a finished driver that the
step falls back on when the operator lost the driver pod (``titans.spark_app.succeeded``).
The chart's feature-store configuration is selected as a step selects it (``use_mounted_store``): the driver
must write where the predictors read.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from titans.features.paths import use_mounted_store

OUTPUT_ENV = "TITANS_DRIVER_OUTPUT"


class _Tee(io.TextIOBase):
    """Write to the log (the real stdout) and keep a copy for the output file."""

    def __init__(self, stream: io.TextIOBase) -> None:
        self.stream, self.copy = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.copy.write(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def main(argv: Sequence[str]) -> int:
    """Run the command line with ``argv``; on success write its stdout to ``$TITANS_DRIVER_OUTPUT`` (if set)."""
    from titans.cli import main as cli_main  # here: the CLI's parsers load only in a driver

    use_mounted_store()
    tee = _Tee(sys.stdout)  # type: ignore[arg-type]
    with contextlib.redirect_stdout(tee):
        code = cli_main(list(argv))
    output = os.environ.get(OUTPUT_ENV, "")
    if output and code == 0:
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(tee.copy.getvalue())
        partial.replace(path)  # whole or absent: a reader never sees half a summary
    return code
