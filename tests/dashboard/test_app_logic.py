"""The app's page logic through Streamlit's ``AppTest`` (in process, no browser): the account filter.

Why this one: the sidebar's account filter reaches every page, and a wrong filter would show one
business another's money. AppTest runs the real script against the real model server; the figures
must equal those computed from ``titans score``'s output for the chosen account.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Dashboard
from streamlit.testing.v1 import AppTest

from dashboard import views
from dashboard.results import Results

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


def _money(text: str) -> float:
    return float(text.replace(",", ""))


def test_the_account_filter_narrows_the_overview_to_that_account(dashboard: Dashboard, scored: Results,
                                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    monkeypatch.setenv("TITANS_HOME", str(dashboard.home))
    monkeypatch.setattr("sys.argv", ["app.py", "--work", str(tmp_path), "--endpoint", dashboard.server.http_url,
                                     "--input", str(dashboard.export)])
    app = AppTest.from_file(str(APP), default_timeout=180)
    app.run()
    assert not app.exception and [t.value for t in app.title] == ["Overview"]
    everything = views.monthly_flows(scored.transactions)
    metrics = {m.label: m.value for m in app.metric}
    assert _money(metrics["Spend"]) == pytest.approx(everything["spend"].sum(), abs=0.01)
    account = views.accounts(scored.transactions)[1]
    app.sidebar.multiselect[0].set_value([account]).run()
    assert not app.exception
    one = views.monthly_flows(views.for_accounts(scored.transactions, [account]))
    metrics = {m.label: m.value for m in app.metric}
    assert _money(metrics["Spend"]) == pytest.approx(one["spend"].sum(), abs=0.01)
    assert _money(metrics["Income"]) == pytest.approx(one["income"].sum(), abs=0.01)
    assert one["spend"].sum() < everything["spend"].sum()
