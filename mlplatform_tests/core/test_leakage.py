"""Each leakage check passes on clean synthetic data and fails when its leak is planted."""

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mlplatform.core.leakage import (
    FittedTransform,
    category_levels,
    check_hold_out_untouched,
    check_no_duplicates_across_splits,
    check_no_future_information,
    check_no_target_derived_feature,
    check_scaler_train_only,
    check_split_before_fitting,
    check_target_encoding_train_only,
    check_temporal_split,
)
from mlplatform.core.training import SplitFrames, temporal_split

START = datetime(2025, 1, 1)


# Item 1: no future information ----------------------------------------------------------------------------


def _feature_table(entities: int = 4, days: int = 90) -> pl.DataFrame:
    """Daily feature rows whose values change every day, so a row from another day is recognisable."""
    return pl.DataFrame([
        {"id": e, "event_timestamp": START + timedelta(days=d), "f_count": e * 1000 + d,
         "f_mean": (e * 1000 + d) / 7, "f_plan": "gold" if (e + d // 30) % 2 else "basic"}
        for e in range(1, entities + 1) for d in range(days)
    ])


def _point_in_time(features: pl.DataFrame, shift_days: int = 0) -> pl.DataFrame:
    """Training rows at monthly label times, with the feature row ``shift_days`` after the label time."""
    labels = pl.DataFrame([{"id": e, "label_time": START + timedelta(days=d), "y": (e + d) % 2}
                           for e in range(1, 5) for d in (20, 45, 70)])
    rows = features.with_columns(pl.col("event_timestamp") - timedelta(days=shift_days))
    return labels.join(rows.rename({"event_timestamp": "label_time"}), on=["id", "label_time"], how="left")


FEATURES = ["f_count", "f_mean", "f_plan"]


def _future_check(training: pl.DataFrame, features: pl.DataFrame, **kwargs):
    return check_no_future_information(training, features, entity_key="id", label_time="label_time",
                                       features=FEATURES, **kwargs)


def test_point_in_time_features_pass():
    features = _feature_table()
    finding = _future_check(_point_in_time(features), features, ttl_days=30)
    assert finding.passed, finding.detail
    assert finding.evidence["rows_checked"] == 12
    assert finding.evidence["source_age_days_max"] == 0


def test_features_from_a_later_row_fail_as_future_information():
    features = _feature_table()
    training = _point_in_time(features, shift_days=7)
    finding = _future_check(training, features, ttl_days=30)
    assert not finding.passed
    assert finding.evidence["mismatched_rows"] == 12
    # The plan only changes every 30 days, so most of its values equal the point-in-time row's.
    assert finding.evidence["future_values_by_feature"]["f_count"] == 12
    assert "future information" in finding.detail


def test_a_lazy_feature_table_read_for_the_sampled_entities_gives_the_same_finding():
    features = _feature_table(entities=40)
    training = _point_in_time(features, shift_days=7)
    for sample in (None, 5):
        eager = _future_check(training, features, ttl_days=30, sample_rows=sample)
        lazy = _future_check(training, features.lazy(), ttl_days=30, sample_rows=sample)
        assert lazy == eager and not lazy.passed


def test_one_future_column_among_correct_ones_is_found():
    features = _feature_table()
    clean, future = _point_in_time(features), _point_in_time(features, shift_days=1)
    training = clean.with_columns(future["f_mean"])
    finding = _future_check(training, features, ttl_days=30)
    assert not finding.passed
    assert finding.evidence["mismatched_by_feature"] == {"f_mean": 12}
    assert finding.evidence["future_values_by_feature"] == {"f_mean": 12}
    assert finding.evidence["examples"][0]["differing_features"] == ["f_mean"]


def test_values_no_feature_row_explains_fail_without_being_called_future():
    features = _feature_table()
    training = _point_in_time(features).with_columns(pl.col("f_count") + 10_000)
    finding = _future_check(training, features)
    assert not finding.passed
    assert finding.evidence["future_values_by_feature"] == {}


def test_rows_beyond_the_ttl_must_carry_nulls():
    features = _feature_table().filter(pl.col("event_timestamp") < START + timedelta(days=30))
    training = _point_in_time(_feature_table(), shift_days=0)  # rows at day 45 and 70 keep values
    assert not _future_check(training, features, ttl_days=10).passed
    nulled = training.with_columns(
        pl.when(pl.col("label_time") > START + timedelta(days=39)).then(None).otherwise(pl.col(f)).alias(f)
        for f in FEATURES)
    finding = _future_check(nulled, features, ttl_days=10)
    assert finding.passed, finding.detail
    assert finding.evidence["rows_without_feature_row"] == 8


def test_sampling_checks_only_the_sample():
    features = _feature_table()
    finding = _future_check(_point_in_time(features), features, sample_rows=5)
    assert finding.passed and finding.evidence["rows_checked"] == 5


# Items 2, 3 and 8: fitted transforms -----------------------------------------------------------------------


@pytest.fixture
def frames() -> tuple[pl.DataFrame, pl.DataFrame]:
    """A train split and all rows, where later rows bring a new level and a different distribution."""
    rng = np.random.default_rng(0)
    train = pl.DataFrame({"plan": rng.choice(["a", "b"], 200), "fee": rng.normal(10, 2, 200),
                          "y": rng.integers(0, 2, 200)})
    later = pl.DataFrame({"plan": rng.choice(["b", "c"], 100), "fee": rng.normal(30, 5, 100),
                          "y": rng.integers(0, 2, 100)})
    return train, pl.concat([train, later])


def _levels(frame: pl.DataFrame) -> dict:
    return category_levels(frame, ["plan"])


def _target_encoding(frame: pl.DataFrame) -> dict:
    means = frame.group_by("plan").agg(pl.col("y").mean()).sort("plan")
    return dict(zip(means["plan"], means["y"], strict=True))


def _scaler(frame: pl.DataFrame) -> dict:
    return {"mean": frame["fee"].mean(), "std": frame["fee"].std()}


def test_category_levels_fitted_on_train_pass(frames):
    train, full = frames
    transform = FittedTransform("levels", "category_levels", _levels(train), _levels)
    finding = check_split_before_fitting([transform], train, full)
    assert finding.passed, finding.detail
    assert finding.evidence["levels"]["train_and_full_refits_differ"]


def test_category_levels_fitted_on_every_split_fail(frames):
    train, full = frames
    transform = FittedTransform("levels", "category_levels", _levels(full), _levels)
    finding = check_split_before_fitting([transform], train, full)
    assert not finding.passed
    assert finding.evidence["levels"]["matches_full_refit"]
    assert finding.evidence["levels"]["differs_from_train_refit"] == ["plan"]


def test_split_before_fitting_without_transforms_is_not_applicable(frames):
    finding = check_split_before_fitting([], *frames)
    assert finding.passed and not finding.evidence["applicable"]
    assert finding.detail.startswith("not applicable")


def test_target_encoding_on_train_passes_and_on_every_split_fails(frames):
    train, full = frames
    clean = FittedTransform("plan encoding", "target_encoding", _target_encoding(train), _target_encoding)
    assert check_target_encoding_train_only([clean], train, full).passed
    leaky = FittedTransform("plan encoding", "target_encoding", _target_encoding(full), _target_encoding)
    finding = check_target_encoding_train_only([leaky], train, full)
    assert not finding.passed
    assert finding.evidence["plan encoding"]["matches_full_refit"]
    # Item 2 covers every kind, so it sees the same leak.
    assert not check_split_before_fitting([leaky], train, full).passed


def test_target_encoding_is_not_applicable_when_only_other_transforms_exist(frames):
    train, full = frames
    levels = FittedTransform("levels", "category_levels", _levels(full), _levels)  # leaky, but not an encoder
    finding = check_target_encoding_train_only([levels], train, full)
    assert finding.passed and not finding.evidence["applicable"]
    assert finding.evidence["fitted_transforms_in_pipeline"] == ["levels (category_levels)"]


def test_scaler_on_train_passes_and_on_every_split_fails(frames):
    train, full = frames
    # Stored statistics round-trip through JSON in practice: tiny float differences must not matter.
    stored = {k: v * (1 + 1e-12) for k, v in _scaler(train).items()}
    assert check_scaler_train_only([FittedTransform("fee scaler", "scaler", stored, _scaler)], train, full).passed
    leaky = FittedTransform("fee scaler", "scaler", _scaler(full), _scaler)
    finding = check_scaler_train_only([leaky], train, full)
    assert not finding.passed
    assert sorted(finding.evidence["fee scaler"]["differs_from_train_refit"]) == ["mean", "std"]
    assert not check_scaler_train_only([], train, full).evidence["applicable"]


# Item 4: no target-derived feature -------------------------------------------------------------------------


def _labelled(n: int, seed: int, task: str = "binary") -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.normal(50, 10, n) if task == "regression" else rng.integers(0, 3 if task == "multiclass" else 2, n)
    signal = y + rng.normal(0, 3 if task == "regression" else 1.5, n)
    return pl.DataFrame({"y": y, "noise": rng.normal(0, 1, n), "signal": signal,
                         "plan": rng.choice(["a", "b", "c"], n)})


def _derived(task: str):
    train, hold_out = _labelled(1500, 1, task), _labelled(500, 2, task)
    return [f.with_columns(derived=pl.col("y") * 2 + 1) for f in (train, hold_out)]


@pytest.mark.parametrize("task", ["binary", "regression", "multiclass"])
def test_honest_features_pass(task):
    train, hold_out = _labelled(1500, 1, task), _labelled(500, 2, task)
    finding = check_no_target_derived_feature(train, hold_out, features=["noise", "signal", "plan"], label="y",
                                              task=task)
    assert finding.passed, finding.detail
    assert list(finding.evidence["top_features"])[0] == "signal"
    assert finding.evidence["top_features"]["signal"] < 0.95


@pytest.mark.parametrize("task", ["binary", "regression", "multiclass"])
def test_a_feature_computed_from_the_label_fails(task):
    train, hold_out = _derived(task)
    finding = check_no_target_derived_feature(train, hold_out, features=["noise", "derived", "plan"], label="y",
                                              task=task)
    assert not finding.passed
    assert finding.evidence["flagged"] == ["derived"]
    assert finding.evidence["metric"] == ("r2" if task == "regression" else "roc_auc")


def test_a_label_hidden_in_missingness_fails():
    train, hold_out = (f.with_columns(days_to_cancel=pl.when(pl.col("y") == 1).then(pl.col("noise").abs()))
                       for f in (_labelled(1500, 1), _labelled(500, 2)))
    finding = check_no_target_derived_feature(train, hold_out, features=["days_to_cancel"], label="y",
                                              task="binary")
    assert not finding.passed and finding.evidence["flagged"] == ["days_to_cancel"]


def test_the_threshold_decides():
    train, hold_out = _labelled(1500, 1), _labelled(500, 2)
    assert not check_no_target_derived_feature(train, hold_out, features=["signal"], label="y", task="binary",
                                               threshold=0.6).passed


# Items 5, 6 and 7: the split -------------------------------------------------------------------------------


def _snapshots() -> pl.DataFrame:
    """Monthly snapshots of 20 customers over 8 months."""
    return pl.DataFrame([{"id": c, "at": datetime(2025, m, 1), "y": (c * m) % 2, "x": float(c + m)}
                         for c in range(1, 21) for m in range(1, 9)])


def _split(frame: pl.DataFrame) -> SplitFrames:
    return temporal_split(frame, "at", date(2025, 5, 1), date(2025, 7, 1), date(2025, 9, 1))


def _shuffled(frame: pl.DataFrame) -> SplitFrames:
    order = frame.sample(fraction=1.0, shuffle=True, seed=0)
    return SplitFrames(order[:100], order[100:130], order[130:])


def test_a_temporal_split_passes():
    finding = check_temporal_split(_split(_snapshots()), "at")
    assert finding.passed, finding.detail
    assert finding.evidence["train_label_time"] == ["2025-01-01 00:00:00", "2025-04-01 00:00:00"]


def test_a_shuffled_split_fails_the_temporal_check():
    finding = check_temporal_split(_shuffled(_snapshots()), "at")
    assert not finding.passed
    assert "not temporal" in finding.detail


@pytest.mark.parametrize("moved", ["validation", "test"])
def test_a_later_row_moved_into_an_earlier_split_fails_the_temporal_check(moved):
    split = _split(_snapshots())
    later = getattr(split, moved).head(1)
    if moved == "validation":
        split = SplitFrames(pl.concat([split.train, later]), split.validation.slice(1), split.test)
    else:
        split = SplitFrames(split.train, pl.concat([split.validation, later]), split.test.slice(1))
    assert not check_temporal_split(split, "at").passed


def test_an_empty_split_fails_the_temporal_check():
    split = _split(_snapshots())
    assert not check_temporal_split(SplitFrames(split.train, split.validation.clear(), split.test), "at").passed


def test_an_untouched_hold_out_passes():
    finding = check_hold_out_untouched(_split(_snapshots()), entity_key="id", timestamp="at")
    assert finding.passed, finding.detail


def test_test_rows_reused_for_validation_fail_the_hold_out_check():
    split = _split(_snapshots())
    tuned_on_test = SplitFrames(split.train, pl.concat([split.validation, split.test.head(5)]), split.test)
    finding = check_hold_out_untouched(tuned_on_test, entity_key="id", timestamp="at")
    assert not finding.passed
    assert finding.evidence["test_rows_in_validation"] == 5


def test_a_test_period_inside_validation_fails_the_hold_out_check():
    frame = _snapshots()
    early = frame.filter(pl.col("at") < datetime(2025, 6, 1))
    june = frame.filter(pl.col("at") == datetime(2025, 6, 1))
    # Validation and test come from the same month: different customers, no shared rows, same period.
    split = SplitFrames(early, june.filter(pl.col("id") <= 10), june.filter(pl.col("id") > 10))
    finding = check_hold_out_untouched(split, entity_key="id", timestamp="at")
    assert not finding.passed
    assert finding.evidence["test_rows_in_validation"] == 0


def test_repeated_snapshots_of_an_entity_are_not_duplicates():
    finding = check_no_duplicates_across_splits(_split(_snapshots()), entity_key="id", timestamp="at")
    assert finding.passed, finding.detail
    assert finding.evidence["entities_in_train_and_test"] == 20


def test_a_row_in_two_splits_fails_the_duplicate_check():
    split = _split(_snapshots())
    copied = split.test.head(3).with_columns(pl.col("x") + 1)  # same (entity, time), other values
    finding = check_no_duplicates_across_splits(
        SplitFrames(pl.concat([split.train, copied]), split.validation, split.test), entity_key="id",
        timestamp="at")
    assert not finding.passed
    assert finding.evidence["keys_in_two_splits"] == {"train_validation": 0, "train_test": 3,
                                                      "validation_test": 0}
    assert finding.evidence["exact_duplicate_rows"] == 0


def test_an_exact_duplicate_row_fails_the_duplicate_check():
    split = _split(_snapshots())
    doubled = pl.concat([split.train, split.train.head(1)])
    finding = check_no_duplicates_across_splits(SplitFrames(doubled, split.validation, split.test),
                                                entity_key="id", timestamp="at")
    assert not finding.passed
    assert finding.evidence["exact_duplicate_rows"] == 2
    assert finding.evidence["duplicate_keys_within_splits"]["train"] == 2


# Boundaries and fail-closed branches the checks above leave open -------------------------------------------------


def test_only_the_statistics_that_differ_from_a_train_refit_are_named(frames):
    train, full = frames
    mean_from_every_split = {"mean": full["fee"].mean(), "std": train["fee"].std()}
    finding = check_scaler_train_only([FittedTransform("fee scaler", "scaler", mean_from_every_split, _scaler)],
                                      train, full)
    assert not finding.passed and finding.evidence["fee scaler"]["differs_from_train_refit"] == ["mean"]
    # A statistic the refit does not produce at all is named too (it cannot come from the training split).
    extra = {**_scaler(train), "median": 10.0}
    finding = check_scaler_train_only([FittedTransform("fee scaler", "scaler", extra, _scaler)], train, full)
    assert not finding.passed and finding.evidence["fee scaler"]["differs_from_train_refit"] == ["median"]


def test_every_transform_fitted_on_more_than_train_is_named_and_the_evidence_lists_the_pipeline(frames):
    train, full = frames
    transforms = [FittedTransform("levels", "category_levels", _levels(full), _levels),
                  FittedTransform("plan encoding", "target_encoding", _target_encoding(full), _target_encoding)]
    finding = check_split_before_fitting(transforms, train, full)
    assert not finding.passed
    assert finding.detail.endswith(": levels, plan encoding")
    assert finding.evidence["applicable"] is True
    assert finding.evidence["fitted_transforms_in_pipeline"] == ["levels (category_levels)",
                                                                 "plan encoding (target_encoding)"]
    clean = [FittedTransform("levels", "category_levels", _levels(train), _levels),
             FittedTransform("fee scaler", "scaler", _scaler(train), _scaler)]
    assert check_split_before_fitting(clean, train, full).detail.endswith("reproduces levels, fee scaler")


def test_a_check_that_cannot_tell_train_from_every_split_says_so(frames):
    train, _ = frames
    full = pl.concat([train, train.head(20)])  # the later rows bring no new level
    same = check_split_before_fitting([FittedTransform("levels", "category_levels", _levels(train), _levels)],
                                      train, full)
    assert same.passed and same.evidence["levels"]["train_and_full_refits_differ"] is False
    assert "reproduces levels" in same.detail and "cannot tell them apart" in same.detail
    differ = check_split_before_fitting([FittedTransform("levels", "category_levels", _levels(train), _levels)],
                                        *frames)
    assert differ.passed and "cannot tell them apart" not in differ.detail


def test_the_scaler_check_judges_scalers_only_and_names_the_missing_kind(frames):
    train, full = frames
    leaky_levels = FittedTransform("levels", "category_levels", _levels(full), _levels)
    honest_scaler = FittedTransform("fee scaler", "scaler", _scaler(train), _scaler)
    assert check_scaler_train_only([leaky_levels, honest_scaler], train, full).passed
    assert not check_split_before_fitting([leaky_levels, honest_scaler], train, full).passed
    assert check_scaler_train_only([leaky_levels], train, full).detail == \
        "not applicable: no fitted scaler in this pipeline"
    assert check_target_encoding_train_only([leaky_levels], train, full).detail == \
        "not applicable: no fitted target encoding in this pipeline"
    assert check_split_before_fitting([], train, full).detail == "not applicable: no fitted transform in this pipeline"


def test_a_split_of_data_without_time_is_not_judged_by_time():
    finding = check_temporal_split(_shuffled(_snapshots()), "at", timed=False)
    assert finding.passed and finding.detail.startswith("not applicable")
    assert finding.evidence == {"rows": {"train": 100, "validation": 30, "test": 30}}


def test_the_temporal_evidence_gives_each_splits_period_and_rows():
    finding = check_temporal_split(_split(_snapshots()), "at")
    assert finding.evidence == {
        "train_label_time": ["2025-01-01 00:00:00", "2025-04-01 00:00:00"],
        "validation_label_time": ["2025-05-01 00:00:00", "2025-06-01 00:00:00"],
        "test_label_time": ["2025-07-01 00:00:00", "2025-08-01 00:00:00"],
        "rows": {"train": 80, "validation": 40, "test": 40},
    }


def test_the_temporal_check_names_the_empty_splits():
    split = _split(_snapshots())
    finding = check_temporal_split(SplitFrames(split.train, split.validation.clear(), split.test.clear()), "at")
    assert not finding.passed and finding.detail == "empty split(s): validation, test"


def _overlapping_test_period() -> SplitFrames:
    """Train Jan-Apr; validation May-Jul (customers 1-10); test Jun-Aug (customers 11-20): no shared row, but the
    test period starts a month before validation ends."""
    frame = _snapshots()
    at = pl.col("at")
    return SplitFrames(frame.filter(at < datetime(2025, 5, 1)),
                       frame.filter(at.is_between(datetime(2025, 5, 1), datetime(2025, 7, 1)) & (pl.col("id") <= 10)),
                       frame.filter((at >= datetime(2025, 6, 1)) & (pl.col("id") > 10)))


def test_a_test_period_that_starts_before_validation_ends_fails_the_hold_out_check():
    finding = check_hold_out_untouched(_overlapping_test_period(), entity_key="id", timestamp="at")
    assert not finding.passed
    assert finding.evidence == {"test_rows_in_validation": 0, "test_rows_in_train": 0,
                                "test_start": "2025-06-01 00:00:00",
                                "train_and_validation_end": "2025-07-01 00:00:00", "test_rows": 30}
    assert "0 test rows in validation, 0 in train" in finding.detail


def test_without_time_the_hold_out_check_judges_shared_rows_only():
    shuffled = _shuffled(_snapshots())  # every (customer, month) row in one split only, periods interleaved
    assert not check_hold_out_untouched(shuffled, entity_key="id", timestamp="at").passed
    untimed = check_hold_out_untouched(shuffled, entity_key="id", timestamp="at", timed=False)
    assert untimed.passed and "data without time" in untimed.detail
    reused = SplitFrames(shuffled.train, pl.concat([shuffled.validation, shuffled.test.head(5)]), shuffled.test)
    finding = check_hold_out_untouched(reused, entity_key="id", timestamp="at", timed=False)
    assert not finding.passed and "5 test rows in validation, 0 in train" in finding.detail
    timed = check_hold_out_untouched(_split(_snapshots()), entity_key="id", timestamp="at")
    assert timed.passed and "data without time" not in timed.detail


def test_an_empty_test_split_fails_the_hold_out_check_as_no_hold_out():
    split = _split(_snapshots())
    finding = check_hold_out_untouched(SplitFrames(split.train, split.validation, split.test.clear()),
                                       entity_key="id", timestamp="at")
    assert not finding.passed and "no hold-out" in finding.detail and finding.evidence["test_rows"] == 0
    # Nothing before the test split: nothing can have seen it (the temporal check fails such a split instead).
    alone = check_hold_out_untouched(SplitFrames(split.train.clear(), split.validation.clear(), split.test),
                                     entity_key="id", timestamp="at")
    assert alone.passed and alone.evidence["train_and_validation_end"] == "None"


def _every_check(frames) -> list:
    """(expected item key, finding) for each check, once passing and once failing."""
    train, full = frames
    split, shuffled = _split(_snapshots()), _shuffled(_snapshots())
    leaky = [FittedTransform("levels", "category_levels", _levels(full), _levels),
             FittedTransform("plan encoding", "target_encoding", _target_encoding(full), _target_encoding),
             FittedTransform("fee scaler", "scaler", _scaler(full), _scaler)]
    features = _feature_table()
    hold_keys = {"entity_key": "id", "timestamp": "at"}
    derived_train, derived_hold_out = _derived("binary")
    return [
        ("no_future_information", _future_check(_point_in_time(features), features)),
        ("no_future_information", _future_check(_point_in_time(features, shift_days=7), features)),
        *[(item, check([], train, full)) for item, check in (
            ("split_before_fitting", check_split_before_fitting),
            ("target_encoding_train_only", check_target_encoding_train_only),
            ("scaler_train_only", check_scaler_train_only))],
        *[(item, check(leaky, train, full)) for item, check in (
            ("split_before_fitting", check_split_before_fitting),
            ("target_encoding_train_only", check_target_encoding_train_only),
            ("scaler_train_only", check_scaler_train_only))],
        ("no_target_derived_feature", check_no_target_derived_feature(
            derived_train, derived_hold_out, features=["noise", "derived"], label="y", task="binary")),
        ("temporal_split", check_temporal_split(split, "at")),
        ("temporal_split", check_temporal_split(shuffled, "at")),
        ("temporal_split", check_temporal_split(shuffled, "at", timed=False)),
        ("hold_out_untouched", check_hold_out_untouched(split, **hold_keys)),
        ("hold_out_untouched", check_hold_out_untouched(shuffled, **hold_keys)),
        ("hold_out_untouched", check_hold_out_untouched(shuffled, **hold_keys, timed=False)),
        ("hold_out_untouched", check_hold_out_untouched(SplitFrames(split.train, split.validation,
                                                                    split.test.clear()), **hold_keys)),
        ("no_duplicates_across_splits", check_no_duplicates_across_splits(split, **hold_keys)),
        ("no_duplicates_across_splits", check_no_duplicates_across_splits(
            SplitFrames(split.train, split.test, split.test), **hold_keys)),
    ]


def test_every_finding_names_its_checklist_item_and_states_the_verdict_in_a_sentence(frames):
    findings = _every_check(frames)
    assert {f.passed for _, f in findings} == {True, False}
    for item, finding in findings:
        assert finding.item == item
        assert isinstance(finding.passed, bool)
        assert isinstance(finding.detail, str) and len(finding.detail.split()) >= 4, (item, finding.detail)


def test_the_duplicate_check_reports_where_each_shared_row_sits():
    split = _split(_snapshots())
    copied = split.test.head(3).with_columns(pl.col("x") + 1)  # same (entity, time) as three test rows
    finding = check_no_duplicates_across_splits(
        SplitFrames(pl.concat([split.train, copied]), split.validation, split.test), entity_key="id", timestamp="at")
    assert finding.detail.endswith("shared across splits: train_validation 0, train_test 3, validation_test 0")
    assert finding.evidence["test_entities"] == 20 and finding.evidence["entities_in_train_and_test"] == 20
    # No rows at all hold no duplicate (the temporal and hold-out checks fail such a split).
    empty = check_no_duplicates_across_splits(SplitFrames(split.train.clear(), split.validation.clear(),
                                                          split.test.clear()), entity_key="id", timestamp="at")
    assert empty.evidence["exact_duplicate_rows"] == 0 and empty.evidence["test_entities"] == 0


def test_by_default_the_future_check_compares_a_sample_of_twenty_thousand_rows():
    days = 20_001
    features = pl.DataFrame({"id": [1] * days, "event_timestamp": [START + timedelta(days=d) for d in range(days)],
                             "f_count": list(range(days))})
    training = features.rename({"event_timestamp": "label_time"})
    finding = check_no_future_information(training, features, entity_key="id", label_time="label_time",
                                          features=["f_count"])
    assert finding.passed and finding.evidence["rows_checked"] == 20_000
    everything = check_no_future_information(training, features, entity_key="id", label_time="label_time",
                                             features=["f_count"], sample_rows=None)
    assert everything.evidence["rows_checked"] == days


def _weekly_training() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Feature rows every 7 days; training rows at days 20, 45 and 70 carry the rows of days 14, 42 and 70 (ages
    6, 3 and 0 days), written out by hand."""
    weekly = _feature_table().filter(pl.col("event_timestamp").dt.ordinal_day() % 7 == 1)  # days 0, 7, ... 84
    rows = []
    for e in range(1, 5):
        for day, source in ((20, 14), (45, 42), (70, 70)):
            rows.append({"id": e, "label_time": START + timedelta(days=day), "y": 0, "f_count": e * 1000 + source,
                         "f_mean": (e * 1000 + source) / 7, "f_plan": "gold" if (e + source // 30) % 2 else "basic"})
    return pl.DataFrame(rows), weekly


def test_the_future_check_reports_the_age_of_each_rows_source_and_counts_the_matches():
    training, weekly = _weekly_training()
    finding = _future_check(training, weekly)
    assert finding.passed, finding.detail
    assert finding.evidence["rows_matching_point_in_time_row"] == 12 and finding.evidence["mismatched_rows"] == 0
    assert (finding.evidence["source_age_days_min"], finding.evidence["source_age_days_max"]) == (0, 6)
    assert finding.detail.startswith("all 12 sampled rows")


def test_one_differing_row_fails_and_is_given_as_an_example():
    training, weekly = _weekly_training()
    one_off = training.with_columns(  # customer 1 at day 20: a value no feature row holds
        pl.when((pl.col("id") == 1) & (pl.col("f_count") == 1014)).then(pl.lit(1015)).otherwise("f_count")
        .alias("f_count"))
    finding = _future_check(one_off, weekly)
    assert not finding.passed
    assert finding.evidence["rows_matching_point_in_time_row"] == 11 and finding.evidence["mismatched_rows"] == 1
    assert finding.evidence["examples"] == [{"id": 1, "label_time": str(START + timedelta(days=20)) + ".000000",
                                             "differing_features": ["f_count"]}]
    assert finding.detail == "1 of 12 sampled rows differ from their point-in-time feature row"


def test_rows_before_any_feature_row_carry_nulls_and_have_no_source_age():
    training, weekly = _weekly_training()
    late = weekly.filter(pl.col("event_timestamp") >= START + timedelta(days=77))  # after every label time
    nulls = training.with_columns(pl.lit(None, pl.Int64).alias("f_count"), pl.lit(None, pl.Float64).alias("f_mean"),
                                  pl.lit(None, pl.String).alias("f_plan"))
    finding = _future_check(nulls, late)
    assert finding.passed, finding.detail
    assert finding.evidence["rows_without_feature_row"] == 12
    assert finding.evidence["source_age_days_min"] is None and finding.evidence["source_age_days_max"] is None


def _keyed(keys: str, labels: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"k": list(keys), "y": labels})


# Train: key a always positive, b never, m half; each hold-out below is scored by that per-key mean.
KEYED_TRAIN = _keyed("aaaaabbbbbmm", [1] * 5 + [0] * 5 + [1, 0])


def test_a_single_feature_scoring_exactly_the_threshold_passes_and_one_just_above_fails():
    # Positives a, a, a, b; negatives a, b, b, b: 9 of 16 pairs ranked right and 6 tied, AUC (9 + 3) / 16 = 0.75.
    hold_out = _keyed("aaabab" + "bb", [1, 1, 1, 1, 0, 0, 0, 0])
    at = check_no_target_derived_feature(KEYED_TRAIN, hold_out, features=["k"], label="y", task="binary",
                                         threshold=0.75)
    assert at.passed and at.evidence["top_features"] == {"k": 0.75} and at.evidence["scores_above_threshold"] == {}
    assert at.detail.endswith("roc_auc 0.750 (≤ 0.75)")
    below = check_no_target_derived_feature(KEYED_TRAIN, hold_out, features=["k"], label="y", task="binary",
                                            threshold=0.7499)
    assert not below.passed and below.evidence["flagged"] == ["k"]
    assert below.evidence["scores_above_threshold"] == {"k": 0.75}


def test_the_default_threshold_flags_a_score_over_ninety_five_percent_only():
    # Positives a, a; negatives a and nine b: 18 of 20 pairs right, 2 tied: AUC 19/20 = 0.95 (0.9500000000000001
    # in floating point, which must not count as above).
    at = check_no_target_derived_feature(KEYED_TRAIN, _keyed("aaa" + "b" * 9, [1, 1] + [0] * 10), features=["k"],
                                         label="y", task="binary")
    assert at.passed, at.detail
    # Positives a, m; negatives m and nine b: 19 of 20 right, 1 tied: AUC 19.5/20 = 0.975.
    above = check_no_target_derived_feature(KEYED_TRAIN, _keyed("amm" + "b" * 9, [1, 1] + [0] * 10),
                                            features=["k"], label="y", task="binary")
    assert not above.passed and above.evidence["scores_above_threshold"] == {"k": 0.975}


def test_features_are_ranked_by_their_score_not_their_name():
    train, hold_out = (f.rename({"signal": "a_signal", "plan": "b_plan", "noise": "z_noise"})
                       for f in (_labelled(1500, 1), _labelled(500, 2)))
    features = ["z_noise", "b_plan", "a_signal"]
    finding = check_no_target_derived_feature(train, hold_out, features=features, label="y", task="binary")
    top = finding.evidence["top_features"]
    assert list(top) == sorted(top, key=top.get, reverse=True) and list(top)[0] == "a_signal"
    assert finding.detail.startswith("best single feature a_signal reaches hold-out roc_auc")
    # Under a lower threshold the signal is flagged with the same four-digit score the ranking shows.
    low = check_no_target_derived_feature(train, hold_out, features=features, label="y", task="binary",
                                          threshold=0.6)
    score = low.evidence["scores_above_threshold"]["a_signal"]
    assert isinstance(score, float) and 0.6 < score < 1 and score == low.evidence["top_features"]["a_signal"]
    assert score == round(score, 4) and score != round(score, 3)


def test_a_hold_out_with_one_label_value_scores_no_feature_and_says_so():
    finding = check_no_target_derived_feature(KEYED_TRAIN, _keyed("ab", [0, 0]), features=["k"], label="y",
                                              task="binary", threshold=0.9)
    assert finding.evidence["not_scored"] == ["k"] and finding.evidence["top_features"] == {}
    assert (finding.evidence["threshold"], finding.evidence["hold_out_rows"]) == (0.9, 2)
    assert finding.detail == "no feature could be scored: the hold-out label has a single value"
