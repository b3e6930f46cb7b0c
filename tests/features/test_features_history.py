"""Point-in-time snapshots: a hand-checked fixture and a naive reference on random data.

The lookup below is Feast's point-in-time rule (latest snapshot stamped <= t, no older than
the view's TTL); the history module promises that this lookup returns, for any day t, the
features of the rows on days strictly before t. Here that promise is checked without Feast;
``test_store.py`` checks that Feast's join gives the same answers.
"""

from __future__ import annotations

from datetime import date

import features_reference as reference
import numpy as np
import pandas as pd
import pytest
from features_fixtures import clean_frame, random_clean

from titans.errors import UserError
from titans.features import history, spec


class PitLookup:
    """Feast's rule on a snapshot table: latest row stamped <= t within the TTL, else defaults."""

    def __init__(self, table: pd.DataFrame, view: spec.View):
        self.view = view
        key = view.entity_keys[0]
        self.rows: dict[str, list[dict]] = {}
        for row in table.sort_values(spec.EVENT_TIMESTAMP).to_dict("records"):
            row["day"] = row[spec.EVENT_TIMESTAMP].date()
            self.rows.setdefault(row[key], []).append(row)

    def __call__(self, value: str, t: date | str) -> dict:
        t = pd.Timestamp(t).date()
        live = [r for r in self.rows.get(value, []) if t - spec.SNAPSHOT_HEARTBEAT <= r["day"] <= t]
        if not live:
            return {c.name: c.default for c in self.view.columns}
        return {name: live[-1][name] for name in self.view.column_names}


def assert_same(got: dict, want: dict, where: str) -> None:
    for name, value in want.items():
        if isinstance(value, str):
            assert got[name] == value, f"{name} at {where}: {got[name]!r} != {value!r}"
        else:
            assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-9), f"{name} at {where}"


def test_hand_fixture_merchant_windows(hand_clean: pd.DataFrame) -> None:
    """acme: 10 and 30 on Mar 1, 20 on Mar 3, 5 and a failed 99 on Mar 10."""
    tables, as_of = history.offline_tables(hand_clean)
    assert as_of == pd.Timestamp("2024-03-13")
    lookup = PitLookup(tables["merchant_history"], spec.MERCHANT_HISTORY)

    def at(day: str) -> dict:
        return lookup("acme", day)

    # Mar 1: its own day's rows are not "before" it.
    assert at("2024-03-01")["merchant_txn_count_90d"] == 0
    mar3 = at("2024-03-03")
    assert (mar3["merchant_txn_count_7d"], mar3["merchant_amount_mean_7d"], mar3["merchant_amount_max_7d"]) == (
        2,
        20.0,
        30.0,
    )
    assert mar3["merchant_amount_std_7d"] == pytest.approx(np.sqrt(200.0))
    # Mar 8: the 7-day window [Mar 1, Mar 8) still holds Mar 1; on Mar 9 it has dropped out.
    assert at("2024-03-08")["merchant_txn_count_7d"] == 3
    mar9 = at("2024-03-09")
    assert (mar9["merchant_txn_count_7d"], mar9["merchant_amount_mean_7d"]) == (1, 20.0)
    assert mar9["merchant_txn_count_30d"] == 3
    assert mar9["merchant_dominant_category_90d"] == "food"
    assert mar9["merchant_dominant_category_share_90d"] == pytest.approx(2 / 3)
    # Mar 10 does not see the two rows of Mar 10; Mar 11 sees both (a failed charge is behaviour).
    assert at("2024-03-10")["merchant_txn_count_30d"] == 3
    mar11 = at("2024-03-11")
    assert (mar11["merchant_txn_count_30d"], mar11["merchant_amount_max_30d"]) == (5, 99.0)
    assert mar11["merchant_last_seen_epoch_day"] == (pd.Timestamp("2024-03-10") - pd.Timestamp("1970-01-01")).days


def test_hand_fixture_cashflow_and_frequencies(hand_clean: pd.DataFrame) -> None:
    tables, _ = history.offline_tables(hand_clean)
    daily = tables[spec.ACCOUNT_DAILY_TABLE]
    acct_a = daily[daily["account_id"] == "acct_a"].set_index("date")
    # Zero-filled from the first day to the last day of the data; the failed charge moved no money.
    assert acct_a.index.min() == pd.Timestamp("2024-03-01") and acct_a.index.max() == pd.Timestamp("2024-03-12")
    assert acct_a.loc["2024-03-01", "outflow"] == 40.0 and acct_a.loc["2024-03-02", "net"] == 0.0
    assert acct_a.loc["2024-03-10", "outflow"] == 5.0 and acct_a.loc["2024-03-10", "n_transactions"] == 1
    cash = PitLookup(tables["account_cashflow"], spec.ACCOUNT_CASHFLOW)("acct_a", "2024-03-04")
    assert cash["account_outflow_1d"] == 20.0  # Mar 3
    assert cash["account_net_mean_7d"] == pytest.approx(-60.0 / 3)  # Mar 1..3 (the account's first days)
    food = PitLookup(tables["category_frequency"], spec.CATEGORY_FREQUENCY)("food", "2024-03-06")
    assert food["category_txn_count_all"] == 2 and food["category_txn_share_all"] == pytest.approx(2 / 4)
    freq = PitLookup(tables["merchant_frequency"], spec.MERCHANT_FREQUENCY)("acme", "2024-03-13")
    assert (freq["merchant_txn_count_all"], freq["merchant_distinct_categories_all"]) == (5, 2)
    assert freq["merchant_amount_mean_all"] == pytest.approx((10 + 30 + 20 + 5 + 99) / 5)


def test_snapshots_match_the_naive_reference_on_every_day() -> None:
    """For every entity and every day up to as_of, the PIT lookup equals the definition."""
    clean = random_clean()
    rows = reference.records(clean)
    tables, as_of = history.offline_tables(clean)
    lookups = {view.name: PitLookup(tables[view.name], view) for view in spec.STORED_VIEWS}
    days = [d.date() for d in pd.date_range(clean["date"].min() - pd.Timedelta(days=2), as_of, freq="D")]
    checks = 0
    for merchant in sorted(clean["merchant"].unique()):
        for t in days:
            got = lookups["merchant_history"](merchant, t) | lookups["merchant_frequency"](merchant, t)
            assert_same(got, reference.merchant_features(rows, merchant, t), f"{merchant} {t}")
            checks += 1
    for category in sorted(clean["category"].unique()):
        for t in days[::2]:
            got = lookups["category_frequency"](category, t)
            assert_same(got, reference.category_features(rows, category, t), f"{category} {t}")
            checks += 1
    for account in sorted(clean["account_id"].unique()):
        for t in days[::2]:
            got = lookups["account_cashflow"](account, t)
            assert_same(got, reference.account_features(rows, account, t), f"{account} {t}")
            checks += 1
    assert checks > 1000


def test_tables_have_the_catalogue_columns_and_unique_snapshots() -> None:
    tables, _ = history.offline_tables(random_clean(seed=5))
    for view in spec.STORED_VIEWS:
        table = tables[view.name]
        assert list(table.columns) == [*view.entity_keys, spec.EVENT_TIMESTAMP, *view.column_names]
        assert not table.duplicated([*view.entity_keys, spec.EVENT_TIMESTAMP]).any()
        assert str(table[spec.EVENT_TIMESTAMP].dt.tz) == "UTC"
        for col in view.columns:
            assert table[col.name].notna().all(), col.name


def test_empty_or_malformed_clean_table_is_a_user_error() -> None:
    with pytest.raises(UserError, match="empty"):
        history.offline_tables(random_clean().iloc[:0])
    with pytest.raises(UserError, match="merchant"):
        history.offline_tables(random_clean().drop(columns=["merchant"]))


def test_a_merchant_of_equal_amounts_has_no_spread() -> None:
    """Windows of one repeated amount, on many days and in two categories, after a different first amount:
    the standard deviation is exactly 0, not the rounding of large sums (merged from per-day deviations)."""
    rows = [("t000", "acct_a", "2024-01-01", -10.0, "software", "saas")]
    rows += [(f"t{i:03d}", "acct_a", str((pd.Timestamp("2024-01-02") + pd.Timedelta(days=i // 3)).date()), -42.37,
              "software" if i % 2 else "office", "saas") for i in range(1, 300)]
    table = history.merchant_history(history.prepare(clean_frame(rows)))
    after_first = table[table[spec.EVENT_TIMESTAMP] > pd.Timestamp("2024-01-02", tz="UTC")]
    for window in spec.MERCHANT_WINDOWS:
        alone = after_first[after_first[f"merchant_amount_max_{window}d"].eq(42.37)
                            & ~after_first[spec.EVENT_TIMESTAMP].le(pd.Timestamp("2024-01-02", tz="UTC")
                                                                    + pd.Timedelta(days=window))]
        assert len(alone) > 0 and (alone[f"merchant_amount_std_{window}d"] == 0.0).all(), window
        assert np.allclose(alone[f"merchant_amount_mean_{window}d"], 42.37, rtol=0, atol=1e-12), window
