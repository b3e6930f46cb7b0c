"""Merchants from other people's exports: Reference as vendor, Reference as transaction id, no Reference.

Each case is a small export in a style seen in the wild, ingested for real; the assertions are
on the clean table's merchant column and on what the data-quality report says about it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from titans.data.ingest import ingest, read_clean
from titans.data.schema import merchant_from_description, reference_looks_like_ids

HEADER = "Date,Type,Description,Amount,Category,Payment Method,Status,Reference,Receipt URL"

# A card export: References are transaction numbers, the vendor hides in processor descriptors.
CARD_EXPORT = [
    ("2024-03-01", "debit", "SQ *BLUE BOTTLE COFFEE #12 OAKLAND CA", "4.50", "meals", "TXN001"),
    ("2024-03-02", "debit", "SQ *BLUE BOTTLE COFFEE #7 SAN FRANCISCO CA", "5.25", "meals", "TXN002"),
    ("2024-03-02", "debit", "PAYPAL *SPOTIFY", "9.99", "software", "TXN003"),
    ("2024-03-03", "debit", "AMZN Mktp US*2K4JL1RT2", "23.10", "office_supplies", "TXN004"),
    ("2024-03-05", "debit", "AMAZON.COM*MK1234 AMZN.COM/BILL WA", "54.00", "office_supplies", "TXN005"),
    ("2024-03-06", "debit", "STARBUCKS STORE 01234 SEATTLE WA", "6.10", "meals", "TXN006"),
    ("2024-03-07", "debit", "Starbucks #4521 Seattle, WA", "3.95", "meals", "TXN007"),
    ("2024-03-08", "debit", "SHELL OIL 57442 HOUSTON TX", "61.00", "fuel", "TXN008"),
    ("2024-03-09", "debit", "Shell Oil 12001 Austin TX", "48.20", "fuel", "TXN009"),
    ("2024-03-10", "credit", "ACME CORP - Invoice 1042", "2500.00", "", "TXN010"),
]


def _csv(tmp_path: Path, name: str, header: str, rows: list[str]) -> Path:
    path = tmp_path / name
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def _merchants(out: Path) -> dict[str, str]:
    clean = read_clean(out)
    return dict(zip(clean["description"], clean["merchant"], strict=True))


def test_transaction_numbers_in_reference_give_merchants_from_descriptions(tmp_path: Path) -> None:
    rows = [f'{d},{t},"{desc}",{amt},{cat},card,paid,{ref},' for d, t, desc, amt, cat, ref in CARD_EXPORT]
    summary = ingest([_csv(tmp_path, "card.csv", HEADER, rows)], tmp_path / "data")
    assert summary["rows_clean"] == len(CARD_EXPORT)
    merchants = _merchants(tmp_path / "data")
    assert merchants["SQ *BLUE BOTTLE COFFEE #12 OAKLAND CA"] == "blue_bottle_coffee"
    assert merchants["SQ *BLUE BOTTLE COFFEE #7 SAN FRANCISCO CA"] == "blue_bottle_coffee"
    assert merchants["PAYPAL *SPOTIFY"] == "spotify"
    assert merchants["AMZN Mktp US*2K4JL1RT2"] == merchants["AMAZON.COM*MK1234 AMZN.COM/BILL WA"] == "amazon"
    assert merchants["STARBUCKS STORE 01234 SEATTLE WA"] == merchants["Starbucks #4521 Seattle, WA"] == "starbucks"
    assert merchants["SHELL OIL 57442 HOUSTON TX"] == merchants["Shell Oil 12001 Austin TX"] == "shell_oil"
    assert merchants["ACME CORP - Invoice 1042"] == "acme_corp"
    # Ten rows, six merchants: history per merchant now means something.
    assert len(set(merchants.values())) == 6
    (source,) = summary["merchant_source"].values()
    assert source["source"] == "description" and "identifiers" in source["reason"]
    report = Path(summary["report_md"]).read_text()
    assert "merchants from the description (normalized)" in report and "100% are distinct" in report
    assert json.loads(Path(summary["report_json"]).read_text())["merchant_source"] == summary["merchant_source"]


def test_vendor_references_are_kept(real_export: Path, tmp_path: Path) -> None:
    """The real export names vendors in Reference ("Microsoft" again and again): used as is."""
    summary = ingest([real_export], tmp_path / "data")
    (source,) = summary["merchant_source"].values()
    assert source["source"] == "reference" and "name vendors" in source["reason"]
    clean = read_clean(tmp_path / "data")
    assert clean.loc[clean["reference"] == "Microsoft", "merchant"].unique().tolist() == ["microsoft"]


def test_uuid_references_with_lower_case_types(tmp_path: Path) -> None:
    """A bookkeeping app: lower-case debit/credit, a UUID per row, plain vendor descriptions."""
    rows = [
        "2024-05-01,debit,Office365 Subscription,15.99,software,card,paid,6f1c2a9e-0b1d-4a8e-9c3e-1f2a3b4c5d6e,",
        "2024-05-02,debit,Uber Trip help.uber.com CA,18.40,travel,card,paid,0e2d4c6b-8a9f-4b1c-a2d3-e4f5a6b7c8d9,",
        "2024-05-04,debit,UBER TRIP HELP.UBER.COM CA,22.00,travel,card,paid,9a8b7c6d-5e4f-4a3b-b2c1-d0e9f8a7b6c5,",
        "2024-05-06,debit,Office365 subscription,15.99,software,card,paid,1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e,",
    ]
    summary = ingest([_csv(tmp_path, "app.csv", HEADER, rows)], tmp_path / "data")
    clean = read_clean(tmp_path / "data")
    assert (clean["type"] == "Expense").all() and (clean["amount"] < 0).all()
    assert set(clean["merchant"]) == {"office365_subscription", "uber"}
    assert next(iter(summary["merchant_source"].values()))["source"] == "description"


def test_export_without_reference_column(tmp_path: Path) -> None:
    rows = ["2024-06-01,Expense,CHECKCARD 1203 HOME DEPOT #6543 DENVER CO,-120.00",
            "2024-06-03,Expense,THE HOME DEPOT #0412 BOULDER CO,-35.10"]
    summary = ingest([_csv(tmp_path, "bank.csv", "Date,Type,Description,Amount", rows)], tmp_path / "data")
    clean = read_clean(tmp_path / "data")
    assert clean["merchant"].tolist() == ["home_depot", "home_depot"]
    source = next(iter(summary["merchant_source"].values()))
    assert source == {"source": "description", "reason": "the export has no Reference column"}


@pytest.mark.parametrize(("values", "ids"), [
    ([f"TXN{i:03d}" for i in range(1, 30)], True),
    (["INV-2024-001", "INV-2024-002", "INV-2024-003", "#4521", "a1b2c3d4"], True),
    (["Microsoft", "Minisforum", "Microsoft", "Shell", "Microsoft", "7-Eleven"], False),
    # Distinct vendors with digits in their names, but repeated: not identifiers.
    (["7-Eleven", "3M", "7-Eleven", "3M", "1Password", "1Password"], False),
    # Ids, but the same few reused across rows: not per-row identifiers (an account code, say).
    (["ACC01", "ACC02", "ACC01", "ACC02", "ACC01", "ACC02"], False),
])
def test_reference_id_detection(values: list[str], ids: bool) -> None:
    assert reference_looks_like_ids(pd.Series(values + ["", ""]))[0] is ids


def test_description_normalization_is_case_and_punctuation_blind() -> None:
    out = merchant_from_description(pd.Series(["Blue Bottle Coffee", "BLUE BOTTLE COFFEE.", "blue  bottle coffee"]))
    assert out.tolist() == ["blue_bottle_coffee"] * 3
