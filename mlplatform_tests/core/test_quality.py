"""The method's 30-point data-quality score: each dimension's anchors, and clean vs degraded data."""

import math
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mlplatform.brief import DEMO_BRIEF, Source, load_brief
from mlplatform.core.quality import (
    NOTHING_TO_FIX,
    DimensionScore,
    combine,
    completeness_columns,
    completeness_points,
    data_as_of,
    error_share_points,
    feature_signals,
    freshness_need_days,
    normalised_total,
    not_applicable,
    relevance,
    relevance_candidates,
    relevance_points,
    relevance_sample,
    report_of,
    score_source,
    time_column,
    timeliness_points,
    volume_points,
    with_relevance,
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


def score(raw: pl.DataFrame, **overrides):
    result = validate_table(raw, "table", SOURCE)
    label = result.valid["churned"]
    arguments = dict(timestamp="ts", as_of=AS_OF, freshness_days=1, label=label,
                     features_for_relevance=result.valid.select("amount", "plan"), min_score=18,
                     task_type="binary")
    return score_source("table", raw.height, result, **(arguments | overrides))


def points(report) -> dict[str, float | None]:
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
def test_volume_anchors_the_methods_hundred_and_ten_thousand_per_class(samples, expected):
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
    assert weak_relevance.points < 1 and weak_relevance.applicable
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


def test_a_source_without_a_timestamp_scores_timeliness_not_applicable_and_the_total_is_scaled():
    with_time = score(clean_table(1_000))
    without = score(clean_table(1_000), timestamp=None)
    timeliness = without.dimensions[3]

    assert not timeliness.applicable and timeliness.points is None and "no timestamp column" in timeliness.detail
    assert without.possible == 25 and without.points == with_time.points - 5
    assert without.total == pytest.approx(without.points * 30 / 25, abs=0.01)
    assert "not applicable: timeliness" in without.summary


def test_scaling_gives_no_points_to_a_dimension_that_is_not_applicable():
    # 15 points over five applicable dimensions is 60 %: exactly 18/30, whatever the sixth would have been.
    dims = [DimensionScore(n, 0.0, 3.0, "d", "f") for n in ("a", "b", "c", "d", "e")]
    report = report_of("t", [*dims, not_applicable("timeliness", "no time", "declare one")], 18)
    assert report.total == 18 and report.passed
    assert normalised_total([5.0, 5.0, None, 0.0, float("nan"), 5.0]) == 22.5
    assert report.fix_first.name == "a"


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


def test_combine_takes_the_worst_applicable_source_per_dimension_and_the_best_for_relevance():
    def report(name: str, completeness: float, timeliness: DimensionScore, signal: float):
        dims = [DimensionScore("completeness", 0.0, completeness, "d", "f"), timeliness,
                DimensionScore("relevance", signal, relevance_points(signal), "r", "add features")]
        return report_of(name, dims, 9)

    none = not_applicable("timeliness", "no time", "declare")
    measured = DimensionScore("timeliness", 2.0, 4.5, "2 days old", "refresh")
    overall = combine([report("a", 5, none, 0.1), report("b", 2, measured, 0.4)], min_score=9)

    assert [d.points for d in overall.dimensions] == [2, 4.5, 5]
    assert overall.dimensions[0].detail == "b: d" and overall.dimensions[1].fix == "b: refresh"
    assert overall.dimensions[2].detail == "b: r"
    assert overall.points == 11.5 and overall.total == 23 and overall.passed and overall.source == "overall"
    only_none = combine([report("a", 5, none, 0.1)], min_score=9)
    assert not only_none.dimensions[1].applicable and "a: no time" in only_none.dimensions[1].detail
    assert only_none.total == pytest.approx((5 + relevance_points(0.1)) * 30 / 10)
    with pytest.raises(ValueError, match="no quality reports"):
        combine([], 18)


def test_an_empty_table_scores_zero_on_the_ratio_dimensions():
    report = score(clean_table(10).clear(), label=None, features_for_relevance=None)

    assert points(report)["completeness"] == points(report)["accuracy"] == 0
    assert points(report)["consistency"] == points(report)["volume"] == 0


def test_dates_in_the_future_are_not_fresh_but_a_little_clock_skew_is_tolerated():
    # validate_table judges against the wall clock here (no as_of given), so these 2025 rows stay valid.
    future = score(clean_table(200).with_columns(ts=pl.lit(str(AS_OF + timedelta(days=3))))).dimensions[3]
    skewed = score(clean_table(200).with_columns(ts=pl.lit(str(AS_OF + timedelta(minutes=2))))).dimensions[3]

    assert future.points == 0 and "3.0 days after the as-of time 2025-06-01 00:00" in future.detail
    assert "Fix the producer's clock" in future.fix
    assert skewed.points == 5


# Relevance measured per source: labels joined to the label source's columns, entity attributes, events.
LABELS = pl.DataFrame({
    "customer_id": [1, 2, 3, 1],
    "snapshot": [datetime(2025, 3, 1), datetime(2025, 3, 1), datetime(2025, 3, 1), datetime(2025, 4, 1)],
    "churned": [1, 0, 0, 0],
    "score": [0.9, 0.1, 0.2, 0.3],
})
NOT_CANDIDATES = {"customer_id", "churned", "snapshot"}


def candidates(table: pl.DataFrame, **kwargs):
    arguments = dict(is_label_source=False, entity_key="customer_id", label_timestamp="snapshot", timestamp=None,
                     exclude=NOT_CANDIDATES)
    return relevance_candidates(LABELS, table, **(arguments | kwargs))


def test_relevance_candidates_of_the_label_source_are_its_own_columns():
    frame, basis = candidates(LABELS, is_label_source=True, timestamp="snapshot")
    assert frame.columns == ["score"] and frame["score"].to_list() == LABELS["score"].to_list()
    assert basis == "the label source's own columns"
    nothing, why = candidates(LABELS.drop("score"), is_label_source=True, timestamp="snapshot")
    assert nothing is None and "no columns besides keys" in why


def test_entity_attributes_are_joined_by_the_key_row_by_row():
    customers = pl.DataFrame({"customer_id": [3, 1, 1], "plan": ["basic", "premium", "basic"], "age": [30, 40, 50]})
    frame, basis = candidates(customers, exclude=NOT_CANDIDATES | {"age"})

    assert frame.to_dict(as_series=False) == {"plan": ["premium", None, "basic", "premium"]}  # first row per key
    assert basis == "attributes joined by customer_id"
    unjoinable, why = candidates(pl.DataFrame({"region": ["north"]}))
    assert unjoinable is None and "no customer_id column" in why


def test_event_aggregates_count_only_rows_before_each_label_time():
    events = pl.DataFrame({
        "customer_id": [1, 1, 1, 2, 2, 9],
        "ts": [datetime(2025, 2, 10), datetime(2025, 2, 28, 23), datetime(2025, 3, 1), datetime(2025, 2, 1),
               datetime(2025, 3, 20), datetime(2025, 1, 1)],
        "minutes": [10.0, 20.0, 1000.0, 5.0, 7.0, 1.0],
        "kind": ["login", "ticket", "login", "login", "ticket", "login"],
    })
    frame, basis = candidates(events, timestamp="ts")

    assert frame.columns == ["count", "mean(minutes)", "count(kind=login)", "count(kind=ticket)"]
    assert frame.rows() == [
        (2, 15.0, 1, 1),  # customer 1 at 2025-03-01: the event at exactly the label time is not before it
        (1, 5.0, 1, 0),  # customer 2: the later ticket is in the future
        (0, None, 0, 0),  # customer 3 has no history
        (3, 1030 / 3, 2, 1),  # customer 1 a month later sees all three
    ]
    assert basis == "per-customer_id aggregates of the rows before snapshot"


def test_future_events_carry_no_relevance_and_past_ones_do():
    rng = np.random.default_rng(4)
    n = 2_000
    labels = pl.DataFrame({"customer_id": np.arange(n), "snapshot": [datetime(2025, 6, 1)] * n,
                           "churned": (rng.random(n) < 0.3).astype(int)})
    # Churners have a ticket right before their snapshot; everyone has a ticket after it (the future).
    churners = labels.filter(pl.col("churned") == 1)["customer_id"]
    events = pl.DataFrame({
        "customer_id": np.concatenate([churners.to_numpy(), np.arange(n)]),
        "ts": [datetime(2025, 5, 30)] * churners.len() + [datetime(2025, 6, 2)] * n,
    })
    for planted, expected in ((events, 5.0), (events.filter(pl.col("ts") > datetime(2025, 6, 1)), 0.0)):
        frame, basis = relevance_candidates(labels, planted, is_label_source=False, entity_key="customer_id",
                                            label_timestamp="snapshot", timestamp="ts", exclude=NOT_CANDIDATES)
        dimension = relevance(feature_signals(frame, labels["churned"], "binary"), basis)
        assert dimension.points == expected


def test_feature_signals_are_per_feature_and_strongest_first():
    rng = np.random.default_rng(5)
    label = pl.Series(rng.random(3_000) < 0.4).cast(pl.Int64)
    features = pl.DataFrame({"noise": rng.normal(size=3_000), "strong": label + rng.normal(0, 0.5, 3_000),
                             "ids": [f"id{i}" for i in range(3_000)]})
    signals = feature_signals(features, label, "binary")

    assert [s.feature for s in signals] == ["strong", "noise"]  # 3,000 text levels look like ids: skipped
    assert signals[0].signal > 0.6 and signals[1].signal < 0.1 and signals[0].rows == 3_000
    dimension = relevance(signals, "given")
    assert dimension.points == 5 and "strong" in dimension.detail and "given" in dimension.detail


def test_the_relevance_sample_is_seeded_labelled_and_bounded():
    labels = pl.DataFrame({"id": range(100), "y": [None if i % 10 == 0 else i % 2 for i in range(100)]})
    sample = relevance_sample(labels, "y", seed=1, rows=50)

    assert sample.height == 50 and sample["y"].null_count() == 0
    assert sample.equals(relevance_sample(labels, "y", seed=1, rows=50))
    assert not sample.equals(relevance_sample(labels, "y", seed=2, rows=50))
    assert sample["id"].is_sorted()
    assert relevance_sample(labels, "y", seed=1).height == 90


def test_with_relevance_replaces_the_dimension_and_rescales():
    report = score(clean_table(1_000), label=None, features_for_relevance=None)
    assert not report.dimensions[4].applicable and report.possible == 25
    measured = with_relevance(report, DimensionScore("relevance", 0.4, 5.0, "d", NOTHING_TO_FIX))
    assert measured.possible == 30 and measured.total == measured.points == report.points + 5


def test_freshness_need_and_as_of_come_from_the_brief():
    brief = load_brief(DEMO_BRIEF)
    assert data_as_of(brief) == datetime(2025, 11, 1)
    assert freshness_need_days(brief, "events") == brief.thresholds.freshness_days
    assert freshness_need_days(brief, "labels") == brief.thresholds.freshness_days + brief.label.delay_days


def test_a_declared_observed_at_date_is_not_a_time_column():
    columns = {"x": {"dtype": "float"}, "day": {"dtype": "date"}}
    assert time_column(Source.model_validate({"path": "p", "format": "csv", "timestamp": "day",
                                              "columns": columns})) == "day"
    plain = Source.model_validate({"path": "p", "format": "csv", "observed_at": "2026-01-01", "columns": columns})
    assert plain.timestamp is not None and time_column(plain) is None


def test_a_nullable_model_input_counts_toward_completeness():
    """Nullable means a missing value is allowed, not free: 'note', half empty, scores once it is a model input."""
    as_optional = score(clean_table())
    as_input = score(clean_table(), input_columns=["amount", "plan", "note"])
    assert points(as_optional)["completeness"] == 5
    completeness = next(d for d in as_input.dimensions if d.name == "completeness")
    # 4 required columns + 'note' (≈50% missing) over 6 counted columns: ≈8% missing.
    assert completeness.measurement == pytest.approx(0.5 / 5, abs=0.02) and completeness.points < 3
    assert "model-input cells missing (most in note" in completeness.detail


def test_completeness_columns_are_the_model_inputs_a_source_holds(tmp_path):
    from mlplatform_tests.defs.plain_table import write_plain_table_brief

    plain = load_brief(write_plain_table_brief(tmp_path))
    assert completeness_columns(plain, "shop") == ["size", "colour"]
    demo = load_brief(DEMO_BRIEF)
    # age_band is served for the per-band decision thresholds (fairness.mitigation threshold_optimizer): a blank
    # band changes a decision as a blank input would, so it counts.
    assert completeness_columns(demo, "customers") == ["plan", "region", "monthly_fee", "age_band"]
    # Event values aggregated into features stay out: an amount only payments carry is blank by design.
    assert completeness_columns(demo, "events") == []


def test_a_real_table_mostly_of_blanks_fails_whatever_its_total(tmp_path):
    """scikit-learn's breast-cancer table with 58% of its measurements blanked: the other dimensions measure the
    cells that are there and score well, so the total alone passed it (24.98/30, completeness 5/5)."""
    from datetime import date

    from mlplatform.core.brief_draft import draft_brief
    from mlplatform_tests.own_datasets import blanked, breast_cancer

    data = blanked(breast_cancer(tmp_path), 0.58, keep=["benign"])
    (tmp_path / "brief.yaml").write_text(draft_brief(str(data), "benign", brief_dir=tmp_path,
                                                     today=date(2026, 1, 5)).text)
    brief = load_brief(tmp_path / "brief.yaml")
    name = "breast_cancer_blanked"
    raw = pl.read_csv(data, infer_schema=False).with_columns(row_id=pl.int_range(1, pl.len() + 1).cast(pl.String),
                                                              observed_at=pl.lit("2026-01-05"))
    result = validate_table(raw, name, brief.sources[name])
    report = score_source(name, raw.height, result, timestamp=None, as_of=AS_OF, freshness_days=1,
                          label=result.valid["benign"], features_for_relevance=None, min_score=18,
                          task_type="binary", input_columns=completeness_columns(brief, name))
    completeness = report.dimensions[0]
    assert completeness.points == 0 and completeness.measurement > 0.5
    assert "model-input cells missing" in completeness.detail
    assert not report.passed and "fails whatever the total" in report.summary
    assert report.fix_first.name == "completeness"
