"""The Streamlit app ``titans dashboard`` starts: six pages over one scored export (``dashboard.views``).

Why the export is scored on the server side and kept per session: the person uploads a file, reads its
pages in any order and may upload another; each upload is scored once (``dashboard.results``) and every
page reads the same scored folder. The export given on the command line (``--input``) is scored once per
server and is what a fresh browser session shows, so a page's link always opens on data.

Arguments come after ``--`` on Streamlit's command line (``dashboard.cli`` builds it); the endpoint's
bearer token comes in ``TITANS_ENDPOINT_TOKEN`` (or a file named by ``TITANS_ENDPOINT_TOKEN_FILE``, read at
every request), never as an argument.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import health, views
from dashboard.results import Results, Source, load_results, prune_uploads, score_file, score_upload
from serving.spreadsheet import safe_csv
from titans.errors import UserError
from titans.models.evaluation import FLAGGED_RISK_LEVELS
from titans.settings import load_settings

log = logging.getLogger("titans.dashboard")

# At most this many rows go into a page's HTML tables (the rest are downloadable): a table is for reading.
TABLE_ROWS = 200
# The most suspicious rows shown on the Anomalies page (all of them are in its CSV download).
FLAGGED_ROWS = 50
# Scored uploads kept on disk (the newest); an older one is scored again when uploaded again.
KEEP_UPLOADS = 20
# The ready-made layouts (docs/layouts in a checkout; the image sets TITANS_LAYOUTS_DIR).
LAYOUTS_DIR = Path(os.environ.get("TITANS_LAYOUTS_DIR") or Path(__file__).resolve().parent.parent / "docs" / "layouts")
AUTO_LAYOUT = "match headers by name"


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="titans dashboard (app)")
    parser.add_argument("--models", type=Path)
    parser.add_argument("--endpoint")
    parser.add_argument("--feature-repo", type=Path)
    parser.add_argument("--input", type=Path)
    parser.add_argument("--layout", type=Path)
    parser.add_argument("--work", type=Path, required=True)
    return parser.parse_args(sys.argv[1:])



@st.cache_resource(show_spinner="Scoring the export given at start ...")
def _initial_results(path: str | None, layout: str | None) -> Results | None:
    """The ``--input`` export, scored once per server (shared by every session).

    A failure raises (Streamlit caches no exception), so a server that was briefly unreachable at start
    is asked again by the next session.
    """
    if not path:
        return None
    text = Path(layout).read_text() if layout else None
    return score_file(Path(path), ARGS.work / "initial", SOURCE, text)


@st.cache_resource(max_entries=16)
def _read(folder: str, stamp: float) -> Results:
    """A scored folder read once (``stamp``: its summary's mtime, so a rescored folder is read again)."""
    return load_results(Path(folder))


def _results() -> Results | None:
    """This session's upload if there is one, else the export given at start."""
    folder = st.session_state.get("results_folder")
    if folder:
        try:
            return _read(folder, (Path(folder) / "summary.json").stat().st_mtime)
        except FileNotFoundError:  # pruned (KEEP_UPLOADS) while this session was away
            st.session_state.pop("results_folder", None)
            st.session_state["upload_error"] = "That upload's results were cleared to make room; upload it again."
    try:
        return _initial_results(str(ARGS.input) if ARGS.input else None, str(ARGS.layout) if ARGS.layout else None)
    except UserError as exc:
        st.error(f"The export given at start could not be scored: {exc}")
    except Exception as exc:  # noqa: BLE001 - one line here; the traceback goes to the server's log
        log.exception("scoring the export given at start failed")
        st.error(f"The export given at start could not be scored: {type(exc).__name__}: {exc}")
    return None


def _layout_choice() -> str | None:
    """The layout picked in the sidebar, as YAML text (None: headers matched by name)."""
    names = [AUTO_LAYOUT] + sorted(p.stem for p in LAYOUTS_DIR.glob("*.yaml")) + ["my own layout file"]
    chosen = st.sidebar.selectbox("Export layout", names, help="how the export's columns map to ours "
                                  "(docs/layouts); the reference layout is read without one")
    if chosen == AUTO_LAYOUT:
        return None
    if chosen == "my own layout file":
        own = st.sidebar.file_uploader("Layout YAML", type=["yaml", "yml"], key="layout_file")
        return own.getvalue().decode("utf-8", "replace") if own else None
    return (LAYOUTS_DIR / f"{chosen}.yaml").read_text()


def _sidebar_upload() -> None:
    """Upload an export; score it on the spot; a bad file shows ingest's one-line reason, never a traceback."""
    layout = _layout_choice()
    upload = st.sidebar.file_uploader("Upload an export", type=["csv", "parquet", "txt", "tsv"], key="export_file")
    if upload is None:
        return
    marker = (upload.file_id, layout)
    if st.session_state.get("scored_upload") == marker:
        return
    # The marker is set only once the upload is decided (scored or refused): a click during the scoring
    # reruns the script (Streamlit interrupts it), and the rerun must score the upload again, not skip it.
    # A refused upload leaves the results shown before in place.
    try:
        with st.spinner(f"Scoring {upload.name} ..."):
            scored = score_upload(upload.getvalue(), upload.name, ARGS.work / "uploads", SOURCE, layout)
    except UserError as exc:
        st.session_state["upload_error"] = f"{upload.name} could not be read: {exc}"
        st.session_state["scored_upload"] = marker
        return
    except Exception as exc:  # noqa: BLE001 - shown as one line; the traceback goes to the server's log
        log.exception("scoring %s failed", upload.name)
        st.session_state["upload_error"] = f"{upload.name} could not be scored: {type(exc).__name__}: {exc}"
        st.session_state["scored_upload"] = marker
        return
    st.session_state.pop("upload_error", None)
    st.session_state["results_folder"] = str(scored.folder)
    st.session_state["scored_upload"] = marker
    prune_uploads(ARGS.work / "uploads", keep=KEEP_UPLOADS, spare=scored.folder.parent)


def _sidebar_status(results: Results | None) -> list[str]:
    """What was scored, how much was quarantined (downloadable), and the account filter."""
    if error := st.session_state.get("upload_error"):
        st.sidebar.error(error)
    if results is None:
        return []
    summary = results.summary
    st.sidebar.caption(f"**{results.name}**: {summary.get('rows_in', 0)} rows in, "
                       f"{summary.get('rows_scored', 0)} scored, {summary.get('rows_quarantined', 0)} quarantined "
                       f"({SOURCE.describe()})")
    if results.quarantine is not None and len(results.quarantine):
        st.sidebar.download_button(f"Quarantined rows ({len(results.quarantine)})", safe_csv(results.quarantine),
                                   "quarantine.csv", "text/csv", key="quarantine-csv")
    choices = views.accounts(results.transactions)
    if len(choices) <= 1:
        return choices
    return st.sidebar.multiselect("Accounts", choices, default=[], placeholder="all accounts")


def _table(frame: pd.DataFrame, key: str, note: str = "", rows: int = TABLE_ROWS) -> None:
    """An HTML table of at most ``rows`` rows (readable, selectable text), and a CSV of all of them (``key``)."""
    if frame.empty:
        st.info(note or "Nothing to show.")
        return
    shown = frame.head(rows).reset_index(drop=True)
    for column in shown.columns:
        if pd.api.types.is_datetime64_any_dtype(shown[column]):
            shown[column] = shown[column].dt.strftime("%Y-%m-%d")
    st.table(shown)
    if len(frame) > rows:
        st.caption(f"{rows} of {len(frame)} rows shown")
        st.download_button("All rows as CSV", safe_csv(frame), f"{key}.csv", "text/csv", key=f"all-{key}")


def _has_rows(results: Results | None) -> bool:
    """Whether there is a scored row to show; says what to do where there is none."""
    if results is None:
        st.info("Upload an export in the sidebar (CSV or parquet; pick its layout if its headers are not ours).")
        return False
    if results.transactions.empty:
        st.warning(f"No row of {results.name} could be scored: {results.summary.get('rows_quarantined', 0)} "
                   "quarantined, each with its reason (the sidebar's download). A layout may map its columns.")
        return False
    return True


def overview() -> None:
    """Spend and income over time, category mix, top merchants."""
    st.title("Overview")
    results, chosen = PAGE_STATE["results"], PAGE_STATE["accounts"]
    if not _has_rows(results):
        return
    rows = views.for_accounts(results.transactions, chosen)
    flows = views.monthly_flows(rows)
    left, mid, right = st.columns(3)
    left.metric("Spend", f"{flows['spend'].sum():,.2f}")
    mid.metric("Income", f"{flows['income'].sum():,.2f}")
    right.metric("Flagged transactions", sum(c for r, c in views.risk_counts(rows).items()
                                             if r in FLAGGED_RISK_LEVELS))
    st.subheader("Spend and income per month")
    long = flows.melt(id_vars="month", value_vars=["spend", "income"], var_name="flow", value_name="money")
    st.altair_chart(alt.Chart(long).mark_bar().encode(
        x=alt.X("yearmonth(month):O", title=None), xOffset="flow:N", y=alt.Y("money:Q", title=None),
        color=alt.Color("flow:N", title=None), tooltip=["yearmonth(month):O", "flow:N", "money:Q"]), width="stretch")
    st.subheader("Category mix (expenses)")
    mix = views.category_mix(rows)
    st.altair_chart(alt.Chart(mix).mark_bar().encode(
        y=alt.Y("category:N", sort="-x", title=None), x=alt.X("spend:Q", title="spend"),
        tooltip=["category:N", "spend:Q", "rows:Q", alt.Tooltip("share:Q", format=".1%")]), width="stretch")
    st.subheader("Top merchants")
    _table(views.top_merchants(rows), "top-merchants")


def anomalies() -> None:
    """Flagged transactions by risk level with their factors; filters; one transaction in detail."""
    st.title("Anomalies")
    results, chosen = PAGE_STATE["results"], PAGE_STATE["accounts"]
    if not _has_rows(results):
        return
    tx = results.transactions
    if "risk_level" not in tx:
        st.warning("No anomaly model answered for this export: " +
                   str(results.summary.get("tasks_absent", {}).get("anomaly", "")))
        return
    counts = views.risk_counts(views.for_accounts(tx, chosen))
    st.caption(" · ".join(f"{level}: {n}" for level, n in counts.items()))
    left, right = st.columns(2)
    risks = left.multiselect("Risk levels", list(views.RISK_ORDER), default=list(FLAGGED_RISK_LEVELS))
    first, last = tx["date"].min().date(), tx["date"].max().date()
    period = right.date_input("Dates", (first, last), min_value=first, max_value=last)
    start, end = (period if isinstance(period, tuple) and len(period) == 2 else (first, last))
    table = views.flagged(tx, risks, chosen, start, end)
    _table(table, "flagged", "No transactions at these risk levels.", FLAGGED_ROWS)
    if table.empty:
        return
    st.subheader("One transaction")
    table = table.head(FLAGGED_ROWS)  # the ones shown above: a person picks from what they read
    labels = [f"{r.date:%Y-%m-%d} · {r.description} · {r.amount:,.2f} · {r.risk_level}" for r in table.itertuples()]
    pick = st.selectbox("Transaction", range(len(table)), format_func=lambda i: labels[i])
    row = tx[tx["transaction_id"] == table.loc[pick, "transaction_id"]].iloc[0]
    detail = st.columns(3)
    detail[0].metric("Amount", f"{row['amount']:,.2f}")
    if "amount_expected" in row and pd.notna(row["amount_expected"]):
        detail[1].metric("Expected", f"{row['amount_expected']:,.2f}",
                         help=f"interval {row['amount_lower']:,.2f} to {row['amount_upper']:,.2f}")
    detail[2].metric("Anomaly score", f"{row['anomaly_score']:.3f}", help=row["risk_level"])
    factors = pd.DataFrame(views.factor_list(row.get("risk_factors")))
    _table(factors, "factors", "No factors given for this transaction.")


def cash_flow() -> None:
    """The 30-day forecast with its 80% and 95% bands, against the last 90 days."""
    st.title("Cash flow")
    results, chosen = PAGE_STATE["results"], PAGE_STATE["accounts"]
    if not _has_rows(results):
        return
    forecast = views.forecast_for(results.forecast, chosen)
    if forecast.empty:
        why = results.summary.get("tasks_absent", {}).get("cashflow") or "; ".join(
            (results.summary.get("account_notes", {}).get("cashflow") or {}).values())
        st.warning(f"No forecast for this export. {why}")
        return
    history = views.daily_net(views.for_accounts(results.transactions, chosen))
    st.metric("Next 30 days, net", f"{forecast['net_amount'].sum():,.2f}",
              help=f"80% band of each day: {forecast['lower_80'].sum():,.2f} to {forecast['upper_80'].sum():,.2f} "
              "summed")
    base = alt.Chart(forecast).encode(x=alt.X("date:T", title="day"))
    chart = alt.layer(
        base.mark_area(opacity=0.2).encode(y=alt.Y("lower_95:Q", title="net money per day"), y2="upper_95:Q"),
        base.mark_area(opacity=0.35).encode(y="lower_80:Q", y2="upper_80:Q"),
        base.mark_line(strokeDash=[4, 3]).encode(y="net_amount:Q"),
        alt.Chart(history).mark_line().encode(x="date:T", y="net_amount:Q"),
    )
    st.altair_chart(chart, width="stretch")
    st.caption("Solid: the export's net money per day; dashed: the forecast; bands: 80% and 95% intervals.")
    _table(forecast.assign(date=forecast["date"].dt.strftime("%Y-%m-%d")), "forecast")


def categories() -> None:
    """Predicted against given, the least confident to review; corrections saved as delayed labels."""
    st.title("Categories")
    results, chosen = PAGE_STATE["results"], PAGE_STATE["accounts"]
    if not _has_rows(results):
        return
    rows = views.for_accounts(results.transactions, chosen)
    if "category_predicted" not in rows:
        st.warning("No category model answered for this export.")
        return
    st.subheader("Where the model and the books differ")
    pairs = views.predicted_vs_given(rows)
    _table(pairs[pairs["category_given"] != pairs["category_predicted"]], "category-pairs",
           "The model agrees with every given category.")
    st.subheader("To review")
    queue = views.review_queue(rows)
    known = sorted(set(rows["category_predicted"].dropna()) | set(rows["category_given"].dropna()))
    shown = queue.assign(date=queue["date"].dt.strftime("%Y-%m-%d"), corrected=None)
    # Keyed by the rows it holds: Streamlit keeps a fixed-key editor's picks by row position, so another
    # export or account filter would carry them onto other transactions.
    key = hashlib.sha256("|".join(queue["transaction_id"]).encode()).hexdigest()[:16]
    edited = st.data_editor(shown, key=f"review-{key}", hide_index=True, disabled=list(queue.columns),
                            column_order=["date", "description", "merchant", "amount", "category_given",
                                          "category_predicted", "category_confidence", "corrected"],
                            column_config={"corrected": st.column_config.SelectboxColumn(
                                "corrected category", options=known)})
    corrections = {t: c for t, c in zip(edited["transaction_id"], edited["corrected"], strict=True) if c}
    if corrections:
        data = views.corrections_export(results.transactions, corrections)
        st.download_button(f"Save {len(corrections)} corrections (for `titans monitor labels`)", data,
                           "category_corrections.csv", "text/csv")


def recommendations() -> None:
    """Likely next merchants per account, and regular suppliers that stopped appearing."""
    st.title("Recommendations")
    results, chosen = PAGE_STATE["results"], PAGE_STATE["accounts"]
    if not _has_rows(results):
        return
    st.subheader("Likely next merchants")
    ranked = views.next_merchants(results.recommendations, chosen)
    why = results.summary.get("tasks_absent", {}).get("recommend", "")
    _table(ranked, "next-merchants", f"No recommendations for this export. {why}")
    st.subheader("Regular suppliers that stopped appearing")
    _table(views.stopped_suppliers(views.for_accounts(results.transactions, chosen)), "stopped-suppliers",
           "Every regular supplier still appears.")


def model_health() -> None:
    """Served versions and their gate decisions, this export's drift, live performance where labels arrived."""
    st.title("Model health")
    results = PAGE_STATE["results"]
    if not _has_rows(results):
        return
    models_dir = SOURCE.models if not SOURCE.endpoint else None
    st.subheader("Served models")
    _table(health.served_models(models_dir, results.summary.get("models", {})), "served-models")
    for task, why in results.summary.get("tasks_absent", {}).items():
        st.caption(f"{task}: {why}")
    st.subheader("This export against the training data (PSI)")
    _table(health.export_drift(results.transactions, models_dir), "export-drift",
           "No training reference readable here (the models are served from an endpoint).")
    st.subheader("Estimated accuracy (no labels needed)")
    _table(health.estimated_accuracy(results.transactions, models_dir, results.summary.get("models", {})),
           "estimated-accuracy", "No category confidence in these results.")
    st.caption("The mean of the served (calibrated) confidence estimates accuracy while the data looks like "
               "training; new kinds of rows lower it. It cannot see a category whose meaning changed: the "
               "delayed labels below can.")
    st.subheader("Live performance (delayed labels)")
    _table(health.live_performance(load_settings().home), "live-performance",
           "No labels yet: `titans monitor labels EXPORT` grades the served versions once they arrive.")


PAGE_STATE: dict[str, object] = {}


def main() -> None:
    """Sidebar, then the chosen page."""
    st.set_page_config(page_title="Titans Finance", layout="wide")
    pages = [st.Page(overview, title="Overview", default=True),
             st.Page(anomalies, title="Anomalies", url_path="anomalies"),
             st.Page(cash_flow, title="Cash flow", url_path="cash-flow"),
             st.Page(categories, title="Categories", url_path="categories"),
             st.Page(recommendations, title="Recommendations", url_path="recommendations"),
             st.Page(model_health, title="Model health", url_path="model-health")]
    page = st.navigation(pages)
    _sidebar_upload()
    results = _results()
    PAGE_STATE["results"] = results
    PAGE_STATE["accounts"] = _sidebar_status(results)
    page.run()


# Streamlit runs this file as ``__main__``; the scoring workers' fork server imports it under another name
# and must not start a second app (or parse Streamlit's arguments) there.
if __name__ == "__main__":
    ARGS = _arguments()
    SOURCE = Source(models=ARGS.models, endpoint=ARGS.endpoint,
                    token=os.environ.get("TITANS_ENDPOINT_TOKEN") or None,
                    token_file=os.environ.get("TITANS_ENDPOINT_TOKEN_FILE") or None, feature_repo=ARGS.feature_repo)
    main()
