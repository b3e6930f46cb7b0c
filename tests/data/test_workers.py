"""The chunk pool: results in input order, and workers that see the caller's environment of now.

Why the environment: workers start from a fork server, which keeps the environment of the moment it
started. A long-lived caller that later points TITANS_HOME elsewhere (a test session, a dashboard) got
workers reading the previous home's feature store, and scored rows with another store's features.
"""

from __future__ import annotations

import os

import pytest

from titans.workers import ordered_map


def _home_and_square(value: int) -> tuple[str | None, int]:
    return os.environ.get("TITANS_HOME"), value * value


def test_workers_answer_in_order_with_the_callers_current_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for home in ("/first-home", "/second-home"):
        monkeypatch.setenv("TITANS_HOME", home)
        results = list(ordered_map(_home_and_square, range(40), workers=2, in_flight=3))
        assert results == [(home, i * i) for i in range(40)]


def _argv_seen_by_a_module_imported_here(value: int) -> list[str]:
    import argv_on_import  # here, in the worker: the import itself is what is tested

    return argv_on_import.SEEN


def test_a_module_imported_in_a_worker_never_reads_the_callers_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """kserve parses sys.argv when first imported; a worker importing it under a dashboard's ``--work DIR`` died."""
    monkeypatch.setattr("sys.argv", ["app.py", "--work", "/tmp/somewhere"])
    seen = list(ordered_map(_argv_seen_by_a_module_imported_here, range(6), workers=2, in_flight=2))
    assert all("--work" not in argv for argv in seen), seen
