"""The golden test set: a fixed share of keys chosen by a stable hash, set aside from every split."""

from datetime import date

import numpy as np
import polars as pl
import pytest

from mlplatform.brief import DEMO_BRIEF, load_brief
from mlplatform.core.datasets import golden_members, golden_set, split_off_golden, split_training_set
from mlplatform_tests.defs.plain_table import write_plain_table_brief


def _monthly_labels(customers: int, months: list[date], seed: int = 0) -> pl.DataFrame:
    """One label row per customer and month, shaped like the demo's training set."""
    rng = np.random.default_rng(seed)
    rows = customers * len(months)
    return pl.DataFrame({
        "customer_id": np.repeat(np.arange(1, customers + 1), len(months)),
        "snapshot_date": np.tile(np.array(months, dtype="datetime64[us]"), customers),
        "churned": (rng.random(rows) < 0.2).astype(np.int64),
        "customer_tenure_days": rng.integers(0, 900, rows),
    })


MONTHS = [date(2025, m, 1) for m in range(3, 11)]  # March..October: train, validation (July), test (August), later


def test_membership_is_a_function_of_the_key_alone():
    keys = pl.Series("customer_id", np.arange(5_000))
    members = golden_members(keys, 0.05)
    assert members.equals(golden_members(keys, 0.05))
    # Shuffled, repeated or with other keys around it, a key keeps its membership.
    shuffled = keys.sample(fraction=1.0, shuffle=True, seed=3)
    chosen = set(keys.filter(members).to_list())
    assert set(shuffled.filter(golden_members(shuffled, 0.05)).to_list()) == chosen
    subset = keys.head(700).append(keys.head(700))
    assert set(subset.filter(golden_members(subset, 0.05)).to_list()) == {k for k in chosen if k < 700}
    # A larger share keeps every key of a smaller one (the hash threshold only moves up).
    assert chosen <= set(keys.filter(golden_members(keys, 0.10)).to_list())


def test_the_share_of_keys_is_respected():
    keys = pl.Series("customer_id", np.arange(40_000))
    share = golden_members(keys, 0.05).mean()
    # Binomial sd of the share at 40,000 keys is 0.0011: 4 sd either side.
    assert share == pytest.approx(0.05, abs=0.0044)
    assert not golden_members(keys, 0.0).any()


def test_a_share_outside_the_unit_interval_is_refused_with_the_field_to_fix():
    with pytest.raises(ValueError, match=r"thresholds.golden_share"):
        golden_members(pl.Series([1, 2]), 1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        golden_members(pl.Series([1, 2]), -0.1)


def test_every_row_of_a_golden_entity_is_golden():
    frame = _monthly_labels(2_000, MONTHS)
    rest, golden = split_off_golden(frame, "customer_id", 0.05)
    assert rest.height + golden.height == frame.height
    assert golden.group_by("customer_id").len()["len"].unique().to_list() == [len(MONTHS)]
    assert set(rest["customer_id"]).isdisjoint(set(golden["customer_id"]))


def test_golden_entities_are_in_no_split_of_a_temporal_brief():
    brief = load_brief(DEMO_BRIEF)
    frame = _monthly_labels(2_000, MONTHS)
    golden = golden_set(brief, frame)
    assert golden.height > 0
    split = split_training_set(brief, frame)
    golden_keys = set(golden["customer_id"])
    for part in (split.train, split.validation, split.test):
        assert golden_keys.isdisjoint(set(part["customer_id"]))
    # Nothing else is lost: every non-golden row of the split's months is in one part.
    in_window = frame.filter(pl.col("snapshot_date") < pl.datetime(2025, 9, 1))
    assert split.train.height + split.validation.height + split.test.height == in_window.height - golden.filter(
        pl.col("snapshot_date") < pl.datetime(2025, 9, 1)).height


def test_a_rolling_split_sets_the_same_entities_aside():
    brief = load_brief(DEMO_BRIEF)
    rolling = brief.model_copy(update={"split": brief.split.model_validate({"rolling": True, "train_months": 3})})
    frame = _monthly_labels(2_000, MONTHS)
    split = split_training_set(rolling, frame)
    assert split.test["snapshot_date"].dt.month().unique().to_list() == [10]
    assert split.validation["snapshot_date"].dt.month().unique().to_list() == [9]
    assert split.train["snapshot_date"].dt.month().unique().sort().to_list() == [6, 7, 8]
    golden_keys = set(golden_set(rolling, frame)["customer_id"])
    assert golden_keys == set(golden_set(brief, frame)["customer_id"])
    for part in (split.train, split.validation, split.test):
        assert golden_keys.isdisjoint(set(part["customer_id"]))


def test_golden_rows_are_in_no_split_of_a_plain_table_brief(tmp_path):
    brief = load_brief(write_plain_table_brief(tmp_path, rows=4_000))
    rng = np.random.default_rng(1)
    frame = pl.DataFrame({"row_id": np.arange(4_000), "observed_at": [date(2026, 1, 1)] * 4_000,
                          "bought": (rng.random(4_000) < 0.3).astype(np.int64)})
    golden = golden_set(brief, frame)
    split = split_training_set(brief, frame)
    parts = [split.train, split.validation, split.test]
    assert sum(p.height for p in parts) + golden.height == frame.height
    for part in parts:
        assert set(golden["row_id"]).isdisjoint(set(part["row_id"]))
    disabled = brief.model_copy(update={"thresholds": brief.thresholds.model_copy(update={"golden_share": 0.0})})
    assert golden_set(disabled, frame).height == 0
    whole = split_training_set(disabled, frame)
    assert whole.train.height + whole.validation.height + whole.test.height == frame.height


def test_the_golden_set_changes_only_by_new_labels_of_its_keys():
    brief = load_brief(DEMO_BRIEF)
    before = golden_set(brief, _monthly_labels(2_000, MONTHS[:-2]))
    after = golden_set(brief, _monthly_labels(2_000, MONTHS))
    assert set(before["customer_id"]) == set(after["customer_id"])
    assert after.height == before.height * len(MONTHS) // (len(MONTHS) - 2)


def test_hash_fraction_kept_per_key_is_the_keys_own_hash():
    """The per-process cache of key hashes returns each key's own blake2b fraction, for a key asked again too, and
    keeps keys that compare equal but render differently (1, 1.0, True) apart."""
    from mlplatform.core import datasets

    keys = [7, 7.0, True, "7", 123456789, "customer-1", 7, "7"]
    assert [datasets._hash_fraction(k) for k in keys] == [datasets._hash_fraction.__wrapped__(k) for k in keys]
    assert len({datasets._hash_fraction(k) for k in (7, 7.0, True)}) == 3
    keys = pl.Series("customer_id", np.arange(3_000))
    fresh = keys.is_in([k for k in keys.to_list() if datasets._hash_fraction.__wrapped__(k) < 0.05])
    assert golden_members(keys, 0.05).equals(fresh.alias("golden"))
    assert golden_members(keys, 0.05).equals(fresh.alias("golden"))
