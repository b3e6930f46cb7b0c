"""When a dashboard page is ready in a browser: the definition the browser tests and the page benchmark share.

Why one definition: "ready" is what a person sees, not the HTTP answer. A Streamlit page arrives over a
websocket after the first load, then its script runs, then its charts draw. A page counts as ready when
its title is shown, its script has finished (``data-test-script-state``), no element is still a loading
placeholder, and each of its charts has drawn its marks. Works on a Playwright ``Page`` (duck-typed, so
this module needs no browser library).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PageSpec:
    """One sidebar page: its URL path (``""`` is the default page), title and how many charts it draws."""

    path: str
    title: str
    charts: int = 0


PAGES = (
    PageSpec("", "Overview", 2),
    PageSpec("anomalies", "Anomalies"),
    PageSpec("cash-flow", "Cash flow", 1),
    PageSpec("categories", "Categories"),
    PageSpec("recommendations", "Recommendations"),
    PageSpec("model-health", "Model health"),
)

_READY = """(charts) => {
  const app = document.querySelector('[data-testid=stApp]');
  if (!app || app.dataset.testScriptState !== 'notRunning') return false;
  if (document.querySelector('[data-testid=stSkeleton], [data-stale=true]')) return false;
  return document.querySelectorAll('[data-testid=stVegaLiteChart] .marks').length >= charts;
}"""


def open_page(page: Any, base_url: str, spec: PageSpec, timeout_ms: float = 60_000) -> float:
    """Load ``spec`` and wait until it is ready; the seconds it took (navigation included)."""
    started = time.perf_counter()
    page.goto(f"{base_url}/{spec.path}")
    wait_ready(page, spec, timeout_ms)
    return time.perf_counter() - started


def wait_ready(page: Any, spec: PageSpec, timeout_ms: float = 60_000) -> None:
    """Wait until the page shows ``spec``'s title, its script finished and its charts drew."""
    page.get_by_role("heading", name=spec.title, exact=True).wait_for(timeout=timeout_ms)
    page.wait_for_function(_READY, arg=spec.charts, timeout=timeout_ms)


def upload(page: Any, base_url: str, path: str, timeout_ms: float = 120_000) -> None:
    """Upload ``path`` on the Overview page's sidebar and wait until the page shows the scored result."""
    wait = PAGES[0]
    page.goto(f"{base_url}/{wait.path}")
    wait_ready(page, PageSpec(wait.path, wait.title), timeout_ms)  # before any upload it may have no charts
    page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(path)
    page.wait_for_function("() => document.querySelector('[data-testid=stApp]').dataset.testScriptState "
                           "=== 'running'", timeout=30_000)
    wait_ready(page, wait, timeout_ms)


def navigate(page: Any, spec: PageSpec, timeout_ms: float = 60_000) -> None:
    """Open ``spec`` through its sidebar link (the session, and its upload, stay) and wait until it is ready."""
    page.locator("[data-testid=stSidebarNavLink]", has_text=spec.title).first.click()
    wait_ready(page, spec, timeout_ms)
