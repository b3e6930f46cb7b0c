"""The generator: deterministic, export-shaped, labelled, and round-tripping through ingest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from titans.data import catalog
from titans.data.generate import GenerateConfig, generate, write_csv
from titans.data.ingest import ingest, read_clean


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = write_csv(GenerateConfig(rows=3000, accounts=2, seed=11), tmp_path / "a.csv")
    write_csv(GenerateConfig(rows=3000, accounts=2, seed=11), tmp_path / "b.csv")
    write_csv(GenerateConfig(rows=3000, accounts=2, seed=12), tmp_path / "c.csv")
    assert a["rows"] == 3000
    assert _sha(tmp_path / "a.csv") == _sha(tmp_path / "b.csv") != _sha(tmp_path / "c.csv")


def test_shape_follows_the_real_export() -> None:
    df = generate(rows=12_000, accounts=3, seed=3, fraud_rate=0.03)
    dates = pd.to_datetime(df["Date"])
    assert len(df) == 12_000 and df["Account ID"].nunique() == 3
    assert (dates.max() - dates.min()).days > 365  # more than a year of history
    assert abs(df["is_fraud"].mean() - 0.03) < 0.01
    normal = df[df["is_fraud"] == 0]
    # Monthly rent on the 1st, per account, every month.
    rent = normal[normal["Category"] == "rent"]
    assert (pd.to_datetime(rent["Date"]).dt.day == 1).all()
    assert rent.groupby("Account ID").size().min() >= 12
    # Quieter weekends than weekdays; busier month ends.
    expense_days = pd.to_datetime(normal.loc[normal["Type"] == "Expense", "Date"])
    per_weekday = expense_days.dt.dayofweek.value_counts()
    assert per_weekday[[5, 6]].mean() < 0.7 * per_weekday[[0, 1, 2, 3, 4]].mean()
    # Income arrives without a category, as in the real export.
    assert (df.loc[df["Type"] == "Income", "Category"].fillna("") == "").all()
    # Labelled anomalies of every kind are present.
    fraud = df[df["is_fraud"] == 1]
    assert fraud["Reference"].isin(catalog.CARD_TESTING_MERCHANTS).sum() >= 3
    assert fraud["Reference"].isin(catalog.UNFAMILIAR_MERCHANTS).any()
    key = ["Date", "Description", "Amount", "Reference", "Account ID", "Receipt URL"]
    assert df[df.duplicated(key, keep=False)]["is_fraud"].sum() >= 1  # duplicate charges
    assert (df.loc[df["Type"] == "Expense", "Amount"] < 0).all()


def test_generated_data_round_trips_through_ingest(tmp_path: Path) -> None:
    written = write_csv(GenerateConfig(rows=4000, accounts=2, seed=5), tmp_path / "gen.csv")
    summary = ingest([tmp_path / "gen.csv"], tmp_path / "out")
    assert summary["rows_in"] == 4000 and summary["rows_clean"] == 4000
    clean = read_clean(tmp_path / "out")
    raw = pd.read_csv(tmp_path / "gen.csv")
    assert int(clean["is_fraud"].sum()) == written["fraud_rows"] == int(raw["is_fraud"].sum())
    assert round(clean["amount"].sum(), 2) == round(raw["Amount"].sum(), 2)
    assert set(clean["account_id"]) == set(raw["Account ID"])
    assert summary["repairs"].get("payment_method:credit_car->credit_card", 0) == (
        raw["Payment Method"] == "credit_car").sum()


def test_generated_data_is_hard_in_the_ways_real_books_are(tmp_path: Path) -> None:
    """Multi-category merchants, description variants, merchants that come and go, label noise."""
    summary = write_csv(GenerateConfig(rows=12_000, accounts=2, seed=4), tmp_path / "gen.csv")
    df = pd.read_csv(tmp_path / "gen.csv", keep_default_na=False)
    exp = df[(df["Type"] == "Expense") & (df["is_fraud"] == 0)]
    # Big-box merchants sell in several categories.
    per_merchant = exp.groupby("Reference")["Category"].nunique()
    assert per_merchant[["Amazon", "Costco", "Walmart"]].min() >= 3
    # Descriptions: card descriptors, texts that name no category, typos.
    assert exp["Description"].str.match(r"^[A-Z' &]+ #\d{4} [A-Z]+ [A-Z]{2}$").mean() > 0.05
    assert exp["Description"].isin(catalog.GENERIC_DESCRIPTIONS).mean() > 0.04
    known = {d for c in catalog.EXPENSE_CATEGORIES for d in c.descriptions} | set(catalog.GENERIC_DESCRIPTIONS)
    known |= {s[2] for s in catalog.SUBSCRIPTIONS}
    odd = exp[~exp["Description"].isin(known) & ~exp["Description"].str.contains("#")]
    assert len(odd) > 0.03 * len(exp)  # typos and case changes
    # Merchants appear after the start and vanish before the end, per account.
    dates = pd.to_datetime(exp["Date"])
    first, last = dates.min(), dates.max()
    span = exp.assign(d=dates).groupby(["Account ID", "Reference"])["d"].agg(["min", "max"])
    assert (span["min"] > first + pd.Timedelta(days=120)).sum() >= 5
    assert (span["max"] < last - pd.Timedelta(days=120)).sum() >= 5
    # Documented label noise, and the ceiling it implies, in the summary and in the sidecar.
    assert summary["label_noise_rate"] == 0.03
    expenses = int((df["Type"] == "Expense").sum())
    assert 0.015 < summary["mislabelled_expense_rows"] / expenses < 0.04
    assert summary["category_accuracy_ceiling"] == round(1 - summary["mislabelled_expense_rows"] / expenses, 4)
    side = json.loads((tmp_path / "gen.csv.generator.json").read_text())
    assert side["category_accuracy_ceiling"] == summary["category_accuracy_ceiling"] < 1.0
    # Ingest passes the ceiling on to the data-quality report.
    quality = ingest([tmp_path / "gen.csv"], tmp_path / "out")
    assert quality["category_accuracy_ceiling"]["accuracy"] == summary["category_accuracy_ceiling"]
    assert "Category accuracy ceiling" in Path(quality["report_md"]).read_text()


def test_label_noise_zero_gives_consistent_labels(tmp_path: Path) -> None:
    summary = write_csv(GenerateConfig(rows=3000, accounts=1, seed=4, label_noise=0.0), tmp_path / "gen.csv")
    assert summary["mislabelled_expense_rows"] == 0 and summary["category_accuracy_ceiling"] == 1.0


def test_small_accounts_have_suppliers_and_leave_the_book_accounts_as_they_were() -> None:
    """Small businesses buy mostly from a few suppliers, take up new ones, and change no book row."""
    book = generate(rows=2000, accounts=2, seed=9)
    both = generate(rows=2000, accounts=2, seed=9, small_accounts=40)
    columns = [c for c in book.columns if c != "Receipt URL"]
    mine = both[both["Account ID"].isin(book["Account ID"].unique())][columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, book[columns].reset_index(drop=True))
    small = both[both["Account ID"].str.startswith("acct_s")]
    assert small["Account ID"].nunique() == 40 and (small["Type"] == "Expense").all()
    normal = small[small["is_fraud"] == 0]
    top3 = normal.groupby("Account ID")["Reference"].agg(lambda s: s.value_counts().head(3).sum() / len(s))
    assert top3.median() > 0.5  # regular suppliers carry most of a business's purchases
    first_day = pd.to_datetime(normal["Date"]).groupby(normal["Reference"]).min()
    news = [m for m, _ in catalog.NEW_SUPPLIERS if m in first_day.index]
    assert news and (first_day[news] > pd.to_datetime(normal["Date"]).min() + pd.Timedelta(days=30)).all()
