"""The dashboard in a real browser, on a real model server: every page, the flagged rows, uploads good and bad.

Screenshots of each page are written by ``test_every_page_renders``: into ``docs/screenshots/`` when
``TITANS_UPDATE_SCREENSHOTS=1`` (``make screenshots``), else into the test's temporary folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import Dashboard

from dashboard import views
from dashboard.app import FLAGGED_ROWS
from dashboard.page_ready import PAGES, PageSpec, open_page, upload, wait_ready
from dashboard.results import Results
from titans.data.ingest import ingest
from titans.errors import UserError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        yield context.new_page()
    finally:
        context.close()


def _table_rows(page: Any, index: int = 0) -> list[dict[str, str]]:
    """The cells of the page's ``index``-th HTML table, by header."""
    table = page.locator("[data-testid=stTable] table").nth(index)
    headers = [h.strip() for h in table.locator("thead th").all_inner_texts()]
    rows = []
    for row in table.locator("tbody tr").all():
        cells = [c.strip() for c in row.locator("th, td").all_inner_texts()]
        rows.append(dict(zip(headers[-len(cells):], cells, strict=False)))
    return rows


def _no_errors(page: Any) -> None:
    assert page.locator("[data-testid=stException]").count() == 0, page.content()[-3000:]
    assert "Traceback" not in page.content()


def test_every_page_renders(dashboard: Dashboard, page: Any, scored: Results, tmp_path: Path) -> None:
    """Each sidebar page loads with its charts and tables, no exception; a screenshot of each."""
    shots = REPO / "docs" / "screenshots" if os.environ.get("TITANS_UPDATE_SCREENSHOTS") == "1" else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    page.goto(dashboard.url)
    wait_ready(page, PAGES[0])
    names = [n.strip() for n in page.locator("[data-testid=stSidebarNavLink]").all_inner_texts()]
    assert names == [spec.title for spec in PAGES]
    for spec in PAGES:
        seconds = open_page(page, dashboard.url, spec)
        _no_errors(page)
        assert page.locator("[data-testid=stAlertContentError]").count() == 0, spec.title
        page.screenshot(path=str(shots / f"{spec.path or 'overview'}.png"), full_page=True)
        print(f"{spec.title}: ready in {seconds:.2f} s")
    # What each page is for, on data that has it: every model answered this three-account export.
    page.goto(f"{dashboard.url}/recommendations")
    wait_ready(page, PageSpec("recommendations", "Recommendations"))
    ranked = _table_rows(page, 0)
    assert {r["account_id"] for r in ranked} == set(views.accounts(scored.transactions))
    assert [r["merchant"] for r in ranked] == views.next_merchants(scored.recommendations, None)["merchant"].tolist()


def test_anomalies_page_shows_what_titans_score_flags(dashboard: Dashboard, page: Any, scored: Results) -> None:
    """The flagged rows, their risk levels and factors on the page are those `titans score` gives the export."""
    expected = views.flagged(scored.transactions)
    assert len(expected) > 0, "the generated export has injected anomalies; some must be flagged"
    open_page(page, dashboard.url, PAGES[1])
    _no_errors(page)
    shown = _table_rows(page, 0)
    assert [r["transaction_id"] for r in shown] == expected["transaction_id"].head(len(shown)).tolist()
    assert len(shown) == min(len(expected), FLAGGED_ROWS)
    assert [r["risk_level"] for r in shown] == expected["risk_level"].head(len(shown)).tolist()
    assert [r["factors"] for r in shown] == expected["factors"].head(len(shown)).tolist()


def test_a_bad_file_shows_ingest_reason_on_the_page(dashboard: Dashboard, page: Any, tmp_path: Path) -> None:
    """An upload ingest refuses shows ingest's one-line reason, no traceback; the earlier results stay."""
    bad = tmp_path / "statement.csv"
    bad.write_text("Foo,Bar\n1,2\n")
    with pytest.raises(UserError) as refused:
        ingest([bad], tmp_path / "direct")
    upload(page, dashboard.url, str(bad))
    errors = page.locator("[data-testid=stSidebar] [data-testid=stAlertContentError]").all_inner_texts()
    assert len(errors) == 1 and "missing required columns" in errors[0]
    assert str(refused.value).split(": ", 1)[1] in errors[0].replace("\n", " ")
    _no_errors(page)
    caption = page.locator("[data-testid=stSidebar] [data-testid=stCaptionContainer]").first.inner_text()
    assert caption.startswith(dashboard.export.name), caption  # what was shown before stays


def test_an_upload_is_scored_and_its_quarantine_offered(dashboard: Dashboard, page: Any, tmp_path: Path) -> None:
    """A good upload with bad rows: scored on the spot, its quarantined rows counted and downloadable."""
    rows = pd.read_csv(dashboard.export, dtype=str).head(400)
    rows.loc[3, "Amount"] = "twelve"
    rows.loc[7, "Date"] = "not a date"
    export = tmp_path / "mine.csv"
    rows.to_csv(export, index=False)
    upload(page, dashboard.url, str(export))
    _no_errors(page)
    caption = page.locator("[data-testid=stSidebar] [data-testid=stCaptionContainer]").first.inner_text()
    assert "mine.csv" in caption and "400 rows in" in caption and "2 quarantined" in caption
    with page.expect_download() as download:
        page.get_by_role("button", name="Quarantined rows (2)").click()
    quarantined = pd.read_csv(download.value.path())
    assert len(quarantined) == 2 and quarantined["reason"].str.len().gt(0).all()
