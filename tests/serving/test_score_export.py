"""``titans score`` on the session's trained home: every row accounted for, and the server's answers.

Why against the running server: the batch scorer claims to be the server's implementation on whole
exports. So whole days of the scored export (a few hundred expense rows) are sent to the session's
V2 server, model by model, and every answer must equal the batch's: same classes and risk levels,
same factors, scores equal to 1e-9. Whole days, because the anomaly model counts a request's rows
of the same account, merchant and day; the batch scores each day together.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from serving_harness import ServerProcess

from serving.score_export import score_export
from serving.score_remote import RemoteError, RemoteModelSet
from serving.score_rows import request_columns
from titans.errors import UserError

SAMPLE_ROWS = 300
FORMULA = '=HYPERLINK("http://example.invalid","x")'


@pytest.fixture(scope="module")
def scored(serving_home: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, Path]:
    """The session's raw export plus bad rows, scored in small chunks by two worker processes."""
    root = tmp_path_factory.mktemp("score")
    export = root / "export.csv"
    raw = (serving_home.home / "raw" / "transactions.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(raw)))
    first = rows[0]
    # One expense charged four times on its day: the anomaly model sees the repeats only if the day is scored whole.
    repeated = next(r for r in rows[len(rows) // 2:] if r["Type"] == "Expense")
    extra = io.StringIO()
    writer = csv.writer(extra, lineterminator="\n")
    extra.write("not,enough,fields\n")  # ingest's quarantine: wrong field count
    for change in ({"Date": "2024-02-30"},  # ingest's quarantine: no such day
                   {"Payment Method": "crypto wallet"},  # ingest keeps it; a model server refuses it
                   {"Description": FORMULA}):  # scored; neutralized in the CSV copy
        writer.writerow(list({**first, **change}.values()))
    for _ in range(3):
        writer.writerow(list(repeated.values()))
    export.write_text(raw.rstrip("\n") + "\n" + extra.getvalue())
    models = root / "models"
    models.mkdir()
    for task in ("category", "amount", "anomaly", "cashflow"):
        (models / task).symlink_to(serving_home.models / task)
    out = root / "out"
    with serving_home.activated():
        # The server's semantics (the store's latest values), so its answers can be compared with the batch's.
        summary = score_export([export], out, models_dir=models, n_workers=2, chunk_rows=400, features="online",
                               explain=True)
    return summary, out, export


def test_every_row_is_scored_or_quarantined_with_its_reason(scored: tuple[dict, Path, Path]) -> None:
    summary, out, export = scored
    data_lines = len(export.read_text().splitlines()) - 1
    assert summary["rows_in"] == data_lines == summary["rows_scored"] + summary["rows_quarantined"]
    transactions = pd.read_parquet(out / "transactions.parquet")
    assert len(transactions) == summary["rows_scored"] and transactions["transaction_id"].is_unique
    quarantine = pd.read_parquet(out / "quarantine.parquet")
    assert len(quarantine) == summary["rows_quarantined"] == 3  # the three repeated charges are scored
    reasons = " | ".join(quarantine["reason"])
    assert "wrong field count" in reasons and "2024-02-30" in reasons
    assert "refused by titans-" in reasons and "crypto_wallet" in reasons and "payment_method" in reasons
    assert summary["rows_refused_by_models"] == 1
    # Expenses carry every row model's answer; income rows none; the export's categories beside the model's.
    expense = transactions["type"] == "Expense"
    for column in ("category_predicted", "category_confidence", "amount_expected", "anomaly_score", "risk_level"):
        assert transactions.loc[expense, column].notna().all(), column
        assert transactions.loc[~expense, column].isna().all(), column
    lower, upper = transactions.loc[expense, "amount_lower"], transactions.loc[expense, "amount_upper"]
    assert (lower <= transactions.loc[expense, "amount_expected"]).all()
    assert (transactions.loc[expense, "amount_expected"] <= upper).all()
    disagree = transactions.loc[expense, "category_disagrees"].astype(bool)
    assert (disagree == (transactions.loc[expense, "category_given"]
                         != transactions.loc[expense, "category_predicted"])).all()
    assert summary["tasks_scored"] == ["category", "amount", "anomaly", "cashflow"]
    assert "recommend" in summary["tasks_absent"] and not (out / "recommendations.parquet").exists()
    text = (out / "summary.md").read_text()
    assert "**recommend**: no model folder" in text and f"rows in: {summary['rows_in']}" in text


def test_forecast_has_thirty_days_per_account_with_nested_intervals(scored: tuple[dict, Path, Path]) -> None:
    summary, out, _ = scored
    forecast = pd.read_parquet(out / "forecast.parquet")
    assert sorted(forecast["account_id"].unique()) == summary["accounts"]
    assert (forecast.groupby("account_id").size() == 30).all()
    bands = ["lower_95", "lower_80", "net_amount", "upper_80", "upper_95"]
    for low, high in zip(bands, bands[1:], strict=False):
        assert (forecast[low] <= forecast[high]).all(), (low, high)


def test_the_csv_copy_cannot_run_formulas_and_keeps_numbers(scored: tuple[dict, Path, Path]) -> None:
    _, out, _ = scored
    parquet = pd.read_parquet(out / "transactions.parquet")
    assert (parquet["description"] == FORMULA).sum() == 1  # the parquet keeps the export's text
    with (out / "transactions.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(parquet)
    cells = [value for row in rows for key, value in row.items() if key not in ("amount",) and value]
    text_cells = [c for c in cells if not _is_number(c)]
    assert not [c for c in text_cells if c[0] in "=+-@\t\r"], "a text cell starts with a formula trigger"
    assert sum(row["description"] == "'" + FORMULA for row in rows) == 1
    amounts = [float(row["amount"]) for row in rows]  # negative amounts stay numbers, not neutralized text
    assert min(amounts) < 0
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["date"]) for row in rows)  # days, not timestamps


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _repeats(transactions: pd.DataFrame) -> pd.DataFrame:
    """The rows of the charge the fixture repeated four times on one day."""
    keys = ["account_id", "date", "description", "amount", "merchant"]
    counts = transactions.groupby(keys)["transaction_id"].transform("size")
    return transactions[counts >= 4]


def _whole_days(transactions: pd.DataFrame, rows: int, seed: int = 3) -> pd.DataFrame:
    """Expense rows of randomly chosen days, the repeated charge's day first, until at least ``rows`` of them."""
    expense = transactions[transactions["type"] == "Expense"]
    days = expense["date"].drop_duplicates().sample(frac=1.0, random_state=seed)
    days = pd.concat([_repeats(transactions)["date"].drop_duplicates(), days]).drop_duplicates()
    chosen, total = [], 0
    counts = expense.groupby("date").size()
    for day in days:
        chosen.append(day)
        total += int(counts[day])
        if total >= rows:
            break
    return expense[expense["date"].isin(chosen)]


def _v2_body(rows: pd.DataFrame, inputs: list[tuple[str, str]]) -> dict[str, Any]:
    body = []
    for name, datatype in inputs:
        values = rows[name].tolist()
        body.append({"name": name, "shape": [len(values)], "datatype": datatype, "data": values})
    return {"inputs": body}


def test_batch_answers_equal_the_v2_server_on_whole_days(scored: tuple[dict, Path, Path], server: ServerProcess
                                                          ) -> None:
    _, out, _ = scored
    transactions = pd.read_parquet(out / "transactions.parquet")
    sample = _whole_days(transactions, SAMPLE_ROWS)
    assert len(sample) >= SAMPLE_ROWS
    repeats = _repeats(sample)
    assert len(repeats) == 4 and repeats["anomaly_score"].nunique() == 1
    request = sample.assign(
        date=sample["date"].dt.strftime("%Y-%m-%d"),
        # What the batch gave the amount and anomaly models: the export's category, else the predicted one.
        category=sample["category_given"].fillna(sample["category_predicted"]),
    )
    text = [("description", "BYTES"), ("merchant", "BYTES"), ("payment_method", "BYTES"), ("date", "BYTES"),
            ("account_id", "BYTES")]
    checks = {
        "titans-category": (text + [("amount", "FP64")], {"category": "category_predicted"},
                            {"probability": "category_confidence"}),
        "titans-amount": (text + [("category", "BYTES")], {},
                          {"amount": "amount_expected", "amount_lower": "amount_lower",
                           "amount_upper": "amount_upper"}),
        "titans-anomaly": (text + [("category", "BYTES"), ("amount", "FP64")],
                           {"risk_level": "risk_level", "top_factors": "risk_factors"},
                           {"anomaly_score": "anomaly_score"}),
    }
    for model, (inputs, equal, close) in checks.items():
        body = {**_v2_body(request, inputs), "parameters": {"explain": True}}
        response = httpx.post(f"{server.http_url}/v2/models/{model}/infer", json=body, timeout=120)
        assert response.status_code == 200, response.text
        outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
        # `titans score --explain` wrote each row's explanation: the server's, for the same rows.
        column = f"{model.removeprefix('titans-')}_explanation"
        for mine, theirs in zip(map(json.loads, sample[column]), map(json.loads, outputs["explanation"]),
                                strict=True):
            if model == "titans-anomaly":  # its reported factors, rounded as served
                assert mine == theirs
            else:
                assert [f["factor"] for f in mine["factors"]] == [f["factor"] for f in theirs["factors"]], model
                assert mine["score"] == pytest.approx(theirs["score"], abs=1e-9), model
        for output, column in equal.items():
            got, want = outputs[output], sample[column].tolist()
            if output == "top_factors":
                got, want = [json.loads(v) for v in got], [json.loads(v) for v in want]
            assert got == want, f"{model} {output}"
        for output, column in close.items():
            np.testing.assert_allclose(np.asarray(outputs[output], dtype=float), sample[column].to_numpy(float),
                                       rtol=0, atol=1e-9, err_msg=f"{model} {output}")
    # The batch scored the repeated charge's day whole: one of the four sent alone scores lower (no repeats seen).
    alone = request[request["transaction_id"] == repeats["transaction_id"].iloc[0]]
    response = httpx.post(f"{server.http_url}/v2/models/titans-anomaly/infer",
                          json=_v2_body(alone, checks["titans-anomaly"][0]), timeout=60)
    single = {o["name"]: o["data"] for o in response.json()["outputs"]}["anomaly_score"][0]
    assert single < repeats["anomaly_score"].iloc[0] - 0.05, (single, repeats["anomaly_score"].iloc[0])


def test_an_unreadable_export_is_a_clear_error_and_leaves_earlier_results(
        scored: tuple[dict, Path, Path], serving_home: Any, tmp_path: Path) -> None:
    _, out, _ = scored
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with serving_home.activated(), pytest.raises(UserError, match="missing.csv"):
        score_export([tmp_path / "missing.csv"], out, models_dir=serving_home.models, n_workers=1)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_scoring_through_the_v2_endpoint_gives_the_same_outputs(scored: tuple[dict, Path, Path], server: ServerProcess,
                                                                tmp_path: Path) -> None:
    """``titans score --endpoint``: the served models answer every row as the in-process batch does.

    The same export (a row the server refuses included), scored over V2 REST by the session's server
    in whole-day requests: every output table equal cell by cell, the refused row quarantined with the
    server's own reason, and the versions that answered named in the summary.
    """
    summary, out, export = scored
    # Chunks of 2000 rows sent in whole-day requests of at most 300: many requests per chunk, no day split.
    remote = score_export([export], tmp_path / "remote", endpoint=server.http_url, n_workers=2, chunk_rows=2000,
                          max_batch_rows=300)
    assert remote["features"] == "online" and remote["rows_refused_by_models"] == 1
    assert {t: m["version"] for t, m in remote["models"].items()} == {
        t: m["version"] for t, m in summary["models"].items()}
    for table in ("transactions", "forecast"):
        local = pd.read_parquet(out / f"{table}.parquet")
        local = local.drop(columns=[c for c in local if c.endswith("_explanation")])  # scored with --explain
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "remote" / f"{table}.parquet"), local,
                                      check_exact=False, rtol=0, atol=1e-9)
    refused = pd.read_parquet(tmp_path / "remote" / "quarantine.parquet")
    reason = " ".join(refused["reason"])
    assert "crypto_wallet" in reason and "payment_method" in reason
    # Requests larger than the server takes (its --max-batch-rows is 2000) are an error naming the limit,
    # never split at random rows (that would split days).
    rows = pd.read_parquet(out / "transactions.parquet")
    rows = pd.concat([rows] * 2).head(2100)
    columns = request_columns(rows.assign(category=rows["category_given"].fillna(rows["category_predicted"])))
    category = RemoteModelSet(server.http_url, max_rows=5000).load("row")["category"]
    with pytest.raises(RemoteError, match="takes at most 2000"):
        category.refusals(columns)
    with pytest.raises(UserError, match="no models to score with"):
        score_export([export], tmp_path / "nowhere", endpoint=f"http://127.0.0.1:{server.http_port}/no-such-prefix")
