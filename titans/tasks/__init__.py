"""The task registry: every model task this build knows, found by declaration, not by a list.

Why discovery: a list of tasks typed out in one place is a place every new model must edit.
Here each module of this package that defines ``TASK`` (a ``titans.tasks.spec.Task``) is a
task, and ``TITANS_TASK_MODULES`` (comma-separated importable module names) adds tasks that
live elsewhere, e.g. a team's own model in its own package, or a test's toy task. Tasks are
ordered by their declared ``order``, then name.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from functools import cache

from titans.errors import UserError
from titans.tasks.spec import Task

EXTRA_MODULES_ENV = "TITANS_TASK_MODULES"
_NOT_TASKS = frozenset({"spec", "readiness"})  # the package's own machinery


def _declared(module_names: tuple[str, ...]) -> tuple[Task, ...]:
    found: dict[str, Task] = {}
    for module_name in module_names:
        task = getattr(importlib.import_module(module_name), "TASK", None)
        if not isinstance(task, Task):
            if module_name.startswith(f"{__name__}."):
                continue
            raise UserError(f"{EXTRA_MODULES_ENV}: module {module_name} declares no TASK")
        if task.name in found:
            raise UserError(f"task {task.name!r} is declared twice ({module_name})")
        found[task.name] = task
    return tuple(sorted(found.values(), key=lambda t: (t.order, t.name)))


@cache
def _tasks(extra: str) -> tuple[Task, ...]:
    own = tuple(f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__) if m.name not in _NOT_TASKS)
    more = tuple(m.strip() for m in extra.split(",") if m.strip())
    return _declared(own + more)


def all_tasks() -> tuple[Task, ...]:
    """Every declared task, in order."""
    return _tasks(os.environ.get(EXTRA_MODULES_ENV, ""))


def names() -> tuple[str, ...]:
    """The task names, in order (``titans train --task``, the pipeline's training steps)."""
    return tuple(t.name for t in all_tasks())


def get(name: str) -> Task:
    """The task called ``name``; a UserError naming the known ones otherwise."""
    task = by_name(name)
    if task is not None:
        return task
    raise UserError(f"unknown task {name!r}; expected one of {list(names())}")


def by_name(name: str) -> Task | None:
    """The task called ``name``, or None (a summary from a build that knew other tasks)."""
    return next((t for t in all_tasks() if t.name == name), None)


def by_registered_name(registered: str) -> Task | None:
    """The task whose model is registered (and served) as ``registered``, if any."""
    for task in all_tasks():
        if task.registered_name == registered:
            return task
    return None
