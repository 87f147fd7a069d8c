"""The seed's 30-point data-quality score: each dimension's anchors, and clean vs degraded data."""

import math
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mlplatform.brief import Source
from mlplatform.core.quality import (
    NEUTRAL,
    NOTHING_TO_FIX,
    DimensionScore,
    QualityReport,
    combine,
    completeness_points,
    error_share_points,
    relevance_points,
    score_source,
    timeliness_points,
    volume_points,
)
from mlplatform.core.validation import validate_table

AS_OF = datetime(2025, 6, 1)
SOURCE = Source.model_validate({
    "path": "unused", "format": "csv", "timestamp": "ts", "unique": ["id"],
    "columns": {
        "id": {"dtype": "int"},
        "ts": {"dtype": "datetime"},
        "amount": {"dtype": "float", "min": 0, "max": 1000},
        "plan": {"dtype": "str", "allowed": ["basic", "premium"]},
        "note": {"dtype": "str", "nullable": True},
        "churned": {"dtype": "int", "min": 0, "max": 1},
    },
})


def clean_table(n: int = 4_000, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    churned = rng.random(n) < 0.3
    return pl.DataFrame({
        "id": np.arange(1, n + 1),
        "ts": [AS_OF - timedelta(hours=int(h)) for h in rng.integers(1, 24 * 60, n)],
        "amount": np.round(np.where(churned, rng.uniform(0, 600, n), rng.uniform(200, 1000, n)), 2),
        "plan": rng.choice(["basic", "premium"], n),
        "note": pl.Series(np.where(rng.random(n) < 0.5, "", "ok")).replace("", None),
        "churned": churned.astype(int),
    }).with_columns(pl.all().cast(pl.String))


def score(raw: pl.DataFrame, **overrides) -> QualityReport:
    result = validate_table(raw, "table", SOURCE)
    label = result.valid["churned"]
    arguments = dict(timestamp="ts", as_of=AS_OF, freshness_days=1, label=label,
                     features_for_relevance=result.valid.select("amount", "plan"), min_score=18,
                     task_type="binary")
    return score_source("table", raw.height, result, **(arguments | overrides))


def points(report: QualityReport) -> dict[str, float]:
    return {d.name: d.points for d in report.dimensions}


def test_a_clean_table_passes_and_every_dimension_says_what_to_fix():
    report = score(clean_table())

    assert report.passed and report.total >= 18
    assert [d.name for d in report.dimensions] == [
        "completeness", "accuracy", "consistency", "timeliness", "relevance", "volume"]
    assert points(report)["completeness"] == 5  # the nullable note column is half empty by design
    assert points(report)["accuracy"] == points(report)["consistency"] == points(report)["timeliness"] == 5
    assert points(report)["relevance"] == 5
    assert report.total == pytest.approx(sum(points(report).values()))
    assert all(d.fix and d.detail for d in report.dimensions)


def test_a_degraded_copy_fails_the_gate():
    rng = np.random.default_rng(1)
    tiny = clean_table(60)
    n = tiny.height
    def some(share: float) -> pl.Series:
        return pl.Series(rng.random(n) < share)

    # 40% of every non-key cell missing, a third of amounts out of range, some unreadable timestamps.
    degraded = tiny.with_columns(
        pl.when(some(0.4)).then(None).otherwise(pl.col(c)).alias(c) for c in ["ts", "amount", "plan", "churned"]
    ).with_columns(
        amount=pl.when(some(0.3)).then(pl.lit("-5")).otherwise(pl.col("amount")),
        ts=pl.when(some(0.2)).then(pl.lit("last week")).otherwise(pl.col("ts")),
    )
    degraded = pl.concat([degraded, degraded.head(10)])  # redelivered rows
    report = score(degraded, as_of=AS_OF + timedelta(days=200))

    assert not report.passed and report.total < 18
    by_name = points(report)
    assert by_name["completeness"] < 1 and by_name["accuracy"] == 0 and by_name["consistency"] == 0
    assert by_name["timeliness"] == 0 and by_name["volume"] == 0
    assert all(d.fix != NOTHING_TO_FIX for d in report.dimensions if d.points < 5)


@pytest.mark.parametrize(("share", "expected"), [
    (0.0, 5), (0.005, 5), (0.01, 5), (math.sqrt(0.01 * 0.5), 2.5), (0.5, 0), (0.9, 0), (1.0, 0)])
def test_completeness_anchors_one_and_fifty_percent_on_a_log_scale(share, expected):
    assert completeness_points(share) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize(("share", "expected"), [
    (0.0, 5), (0.001, 5), (0.01, 2.5), (0.1, 0), (0.3, 0)])
def test_error_share_anchors_a_tenth_of_a_percent_and_ten_percent(share, expected):
    assert error_share_points(share) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize(("age", "need", "expected"), [
    (-1, 1, 5), (0.5, 1, 5), (1, 1, 5), (math.sqrt(90), 1, 2.5), (90, 1, 0), (400, 1, 0),
    (30, 30, 5), (90, 30, 0), (200, 100, 5 * math.log(200 / 300) / math.log(100 / 300)), (300, 100, 0)])
def test_timeliness_is_full_within_the_need_and_zero_when_months_stale(age, need, expected):
    assert timeliness_points(age, need) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize(("signal", "expected"), [
    (0.0, 0), (0.05, 0), (0.225, 2.5), (0.4, 5), (0.9, 5)])
def test_relevance_is_linear_between_five_and_forty_percent_signal(signal, expected):
    assert relevance_points(signal) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize(("samples", "expected"), [
    (0, 0), (99, 0), (100, 0), (1_000, 2.5), (10_000, 5), (1_000_000, 5)])
def test_volume_anchors_the_seeds_hundred_and_ten_thousand_per_class(samples, expected):
    assert volume_points(samples) == pytest.approx(expected, abs=0.01)


def test_volume_counts_the_smallest_class_or_rows_without_a_label():
    raw = clean_table(2_000)
    with_label = next(d for d in score(raw).dimensions if d.name == "volume")
    without = next(d for d in score(raw, label=None, features_for_relevance=None).dimensions
                   if d.name == "volume")

    assert with_label.measurement == validate_table(raw, "t", SOURCE).valid["churned"].sum()
    assert without.measurement == 2_000
    assert "class 1" in with_label.fix


def test_a_single_class_label_scores_no_volume():
    raw = clean_table(500).with_columns(churned=pl.lit("0"))
    volume = next(d for d in score(raw).dimensions if d.name == "volume")

    assert volume.points == 0 and "two" in volume.fix


def test_relevance_reflects_the_best_feature_and_flags_leakage():
    raw = clean_table(3_000)
    result = validate_table(raw, "t", SOURCE)
    rng = np.random.default_rng(2)
    noise = pl.DataFrame({"noise": rng.normal(size=result.valid.height),
                          "coin": rng.choice(["a", "b"], result.valid.height)})
    weak = score(raw, features_for_relevance=noise)
    leaky = score(raw, features_for_relevance=result.valid.select("churned"))
    regression = score(raw, features_for_relevance=result.valid.select("amount"), task_type="regression")

    weak_relevance = next(d for d in weak.dimensions if d.name == "relevance")
    assert weak_relevance.points < 1 and weak_relevance.measured
    leaky_relevance = next(d for d in leaky.dimensions if d.name == "relevance")
    assert leaky_relevance.measurement == pytest.approx(1.0) and "leakage" in leaky_relevance.fix
    assert next(d for d in regression.dimensions if d.name == "relevance").points == 5


def test_relevance_for_a_multiclass_label_uses_one_class_against_the_rest():
    rng = np.random.default_rng(3)
    label = pl.Series(rng.choice(["a", "b", "c"], 3_000))
    feature = pl.DataFrame({"x": (label == "c").cast(pl.Float64) + rng.normal(0, 0.3, 3_000)})
    report = score(clean_table(3_000), label=label, features_for_relevance=feature, task_type=None)
    relevance = next(d for d in report.dimensions if d.name == "relevance")

    assert relevance.points == 5 and "class c" in relevance.detail


def test_unmeasured_dimensions_get_the_neutral_score_and_say_so():
    report = score(clean_table(1_000), timestamp=None, label=None, features_for_relevance=None)
    unmeasured = {d.name: d for d in report.dimensions if not d.measured}

    assert set(unmeasured) == {"timeliness", "relevance"}
    assert all(d.points == NEUTRAL and "not measured" in d.detail for d in unmeasured.values())


def test_timeliness_of_a_date_column_and_of_stale_data():
    source = Source.model_validate({"path": "x", "format": "csv", "timestamp": "day",
                                    "columns": {"day": {"dtype": "date"}}})
    result = validate_table(pl.DataFrame({"day": ["2025-05-01", "2025-05-31"]}), "t", source)
    fresh = score_source("t", 2, result, timestamp="day", as_of=AS_OF, freshness_days=1, label=None,
                         features_for_relevance=None, min_score=18)
    stale = score_source("t", 2, result, timestamp="day", as_of=AS_OF + timedelta(days=120),
                         freshness_days=1, label=None, features_for_relevance=None, min_score=18)

    assert fresh.dimensions[3].measurement == 1 and fresh.dimensions[3].points == 5
    assert stale.dimensions[3].points == 0 and "Refresh" in stale.dimensions[3].fix


def test_misaligned_features_are_rejected():
    with pytest.raises(ValueError, match="aligned"):
        score(clean_table(100), features_for_relevance=pl.DataFrame({"x": [1.0, 2.0]}))


def test_combine_takes_the_worst_measured_source_per_dimension():
    def report(name: str, completeness: float, timeliness: DimensionScore) -> QualityReport:
        dims = [DimensionScore("completeness", 0.0, completeness, "d", "f"), timeliness]
        return QualityReport(name, dims, completeness + timeliness.points, True, 6)

    neutral = DimensionScore("timeliness", float("nan"), NEUTRAL, "not measured", "declare", measured=False)
    measured = DimensionScore("timeliness", 2.0, 4.5, "2 days old", "refresh")
    overall = combine([report("a", 5, neutral), report("b", 2, measured)], min_score=6)

    assert [d.points for d in overall.dimensions] == [2, 4.5]
    assert overall.dimensions[0].detail == "b: d" and overall.dimensions[1].fix == "b: refresh"
    assert overall.total == 6.5 and overall.passed and overall.source == "overall"
    only_neutral = combine([report("a", 5, neutral)], min_score=9)
    assert only_neutral.dimensions[1].points == NEUTRAL and not only_neutral.passed
    with pytest.raises(ValueError, match="no quality reports"):
        combine([], 18)


def test_an_empty_table_scores_zero_on_the_ratio_dimensions():
    report = score(clean_table(10).clear(), label=None, features_for_relevance=None)

    assert points(report)["completeness"] == points(report)["accuracy"] == 0
    assert points(report)["consistency"] == points(report)["volume"] == 0


def test_dates_in_the_future_are_fresh_but_noted():
    raw = clean_table(200).with_columns(ts=pl.lit(str(AS_OF + timedelta(days=3))))
    timeliness = score(raw).dimensions[3]

    assert timeliness.points == 5 and "after as_of" in timeliness.detail
