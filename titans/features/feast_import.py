"""Feast imported without typeguard's import-time instrumentation: ~6 s less for every process that opens the store.

Why: Feast 0.67 decorates its definition classes (``FeatureView``, ``Entity``, ``Field``, ...) with typeguard's
``@typechecked``. In typeguard 4 that decorator parses and compiles the whole module's source again for every
method it instruments, when the module is imported (agronholm/typeguard#468): measured here, importing Feast and
the serving code took 10.9-11.1 s in a fresh process, 4.8-4.9 s without it. Every scorer worker, pipeline step,
model server and test process that opens the store paid it.

typeguard makes the decorator a no-op under ``python -O`` ("checks aren't meant to be run in production"); this
does the same for Feast's modules only, before Feast is first imported: Feast never relies on the checks (it
catches no ``TypeCheckError``), our definitions are generated from one tested catalogue, and other libraries'
decorators are left to typeguard. ``TITANS_FEAST_TYPECHECKS=1`` keeps Feast's checks (a custom feature repo being
debugged). In a process that imported Feast before this module (the ``feast`` CLI loading our definitions) it
changes nothing.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

try:
    import typeguard
except ImportError:  # an image without Feast (and so without typeguard): nothing to skip
    typeguard = None

KEEP_CHECKS_ENV = "TITANS_FEAST_TYPECHECKS"
_ORIGINAL: Callable[..., Any] | None = typeguard.typechecked if typeguard is not None else None


def _feast_module(target: Any) -> bool:
    module = getattr(target, "__module__", None) or getattr(getattr(target, "__func__", None), "__module__", "")
    return module == "feast" or str(module).startswith("feast.")


def typechecked(target: Any = None, **options: Any) -> Any:
    """typeguard's ``typechecked``, except that targets defined in Feast's modules are returned unchanged."""
    if target is None:
        return functools.partial(typechecked, **options)
    if _feast_module(target):
        return target
    assert _ORIGINAL is not None  # installed only where typeguard is
    return _ORIGINAL(target, **options)


def skip_feast_typechecks() -> bool:
    """Install the decorator above before Feast's first import; whether Feast will import without the checks."""
    if typeguard is None or os.environ.get(KEEP_CHECKS_ENV, "") not in ("", "0"):
        return False
    if "feast" in sys.modules:
        return typeguard.typechecked is typechecked
    typeguard.typechecked = typechecked
    return True
