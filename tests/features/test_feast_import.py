"""Feast without typeguard's import-time instrumentation (``titans.features.feast_import``), others untouched."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typeguard

import titans.features  # noqa: F401 - installs the decorator, as every process that opens the store does


def test_feast_imported_after_titans_features_skips_its_typechecks() -> None:
    """In a fresh process Feast's decorated classes are not instrumented (a wrong argument type gets through,
    which typeguard would refuse): that is the import-time work saved. With TITANS_FEAST_TYPECHECKS=1 it is."""
    probe = ("import titans.features, feast\nfrom feast import Field\nfrom feast.types import Float64\n"
             "print(type(Field(name=5, dtype=Float64).name).__name__)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "int"


def test_other_libraries_keep_their_typechecks() -> None:
    @typeguard.typechecked
    def half(value: int) -> float:
        return value / 2

    assert half(3) == 1.5
    with pytest.raises(typeguard.TypeCheckError):
        half("3")  # type: ignore[arg-type]
