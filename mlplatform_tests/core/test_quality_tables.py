"""The quality stage's brief-driven scoring and its lake tables: what validation keeps for the score, the score
before relevance, the columns never tried for relevance, and the dimension, summary and signal tables."""

import math
from datetime import date, timedelta

import polars as pl
import pytest

from mlplatform.brief import DEMO_BRIEF, load_brief
from mlplatform.core.quality import (
    DimensionScore,
    FeatureSignal,
    QualityReport,
    combine,
    completeness_columns,
    data_as_of,
    freshness_need_days,
    label_of_source,
    never_relevance_candidates,
    not_applicable,
    relevance_points,
    report_of,
    score_before_relevance,
    score_columns,
    score_source,
)
from mlplatform.core.quality_tables import (
    RELEVANCE_SCHEMA,
    dimension_table,
    quality_summary,
    report_from_table,
    signal_table,
    top_signals,
)
from mlplatform.core.validation import validate_table


@pytest.fixture(scope="module")
def brief():
    return load_brief(DEMO_BRIEF)


def _labels(n: int = 400) -> pl.DataFrame:
    """Raw label rows (text, as ingested): a third churned, snapshots in the month before the demo's as-of."""
    start = date(2025, 11, 1)
    return pl.DataFrame({
        "customer_id": [str(i) for i in range(n)],
        "snapshot_date": [str(start + timedelta(days=i % 28)) for i in range(n)],
        "churned": [str(int(i % 3 == 0)) for i in range(n)],
    })


def test_validation_keeps_the_time_column_and_on_the_label_source_the_label(brief):
    assert label_of_source(brief, "labels") == "churned"
    assert label_of_source(brief, "events") is None
    assert score_columns(brief, "labels") == ["snapshot_date", "churned"]
    assert score_columns(brief, "events") == ["event_timestamp"]
    assert score_columns(brief, "customers") == []  # an entity table without time has nothing the score reads


def test_the_score_before_relevance_is_the_brief_s_score_of_the_source_with_relevance_left_out(brief):
    result = validate_table(_labels(), "labels", brief.sources["labels"], as_of=data_as_of(brief), label="churned")

    report = score_before_relevance(brief, "labels", result)

    expected = score_source(
        "labels", result.counts["raw"], result, timestamp="snapshot_date", as_of=data_as_of(brief),
        freshness_days=freshness_need_days(brief, "labels"), label=result.valid["churned"],
        features_for_relevance=None, min_score=brief.thresholds.quality_min_score, task_type="binary",
        input_columns=completeness_columns(brief, "labels"))
    assert dimension_table(report).equals(dimension_table(expected))
    by_name = {d.name: d for d in report.dimensions}
    assert not by_name["relevance"].applicable
    assert "samples per class" in by_name["volume"].detail  # the label counted per class, not rows
    assert report.min_score == brief.thresholds.quality_min_score


def test_keys_times_the_label_and_protected_attributes_are_never_relevance_candidates(brief):
    assert never_relevance_candidates(brief, "events") == {
        "customer_id", "churned", "snapshot_date", "age_band", "event_id", "event_timestamp"}
    assert never_relevance_candidates(brief, "customers") == {
        "customer_id", "churned", "snapshot_date", "age_band"}


DIMENSIONS = ["completeness", "accuracy", "consistency", "timeliness", "relevance", "volume"]


def _report(source: str, points: list[float | None], min_score: float = 18) -> QualityReport:
    """A report with these points per dimension (None: not applicable)."""
    dimensions = [not_applicable(name, "not measured here", "nothing") if p is None
                  else DimensionScore(name, p / 10, p, f"{name} measured", f"improve {name}")
                  for name, p in zip(DIMENSIONS, points, strict=True)]
    return report_of(source, dimensions, min_score)


def test_a_dimension_table_reads_back_as_the_report_it_was_written_from():
    report = _report("events", [5.0, 4.5, 3.0, None, 2.0, 5.0])

    frame = dimension_table(report)
    again = report_from_table(frame, "events", 18)

    assert frame["source"].to_list() == ["events"] * 6
    assert frame.schema["points"] == pl.Float64 and frame["points"][3] is None
    assert (again.total, again.passed, again.summary) == (report.total, report.passed, report.summary)
    assert [d.name for d in again.dimensions if not d.applicable] == ["timeliness"]
    assert math.isnan(again.dimensions[3].measurement)
    assert not report_from_table(frame, "events", 29.5).passed  # judged against the minimum given


def test_the_summary_has_a_row_per_source_and_overall_with_each_dimension_s_points_and_the_total():
    events = _report("events", [5.0, 4.5, 3.0, None, 2.0, 5.0])
    labels = _report("labels", [4.0, 5.0, 5.0, 4.0, None, 1.0])
    overall = combine([events, labels], 18)

    summary = quality_summary([events, labels, overall])

    assert summary.columns == ["source", *DIMENSIONS, "total"]
    assert summary["source"].to_list() == ["events", "labels", "overall"]
    assert all(summary.schema[c] == pl.Float64 for c in summary.columns[1:7])
    assert summary.row(0, named=True)["timeliness"] is None
    assert summary["total"].to_list() == [events.total, labels.total, overall.total]
    assert summary.row(2, named=True)["completeness"] == 4.0  # overall: the worst source's points


def test_a_signal_table_gives_each_feature_its_relevance_points_and_keeps_its_columns_when_empty():
    signals = [FeatureSignal("amount", 0.42, "|2·AUC − 1|", 300), FeatureSignal("plan", 0.05, "|2·AUC − 1|", 300)]

    frame = signal_table("events", signals)

    assert frame.schema == pl.Schema(RELEVANCE_SCHEMA)
    assert frame["feature"].to_list() == ["amount", "plan"]
    assert frame["points"].to_list() == [relevance_points(0.42), relevance_points(0.05)]
    assert signal_table("customers", []).schema == pl.Schema(RELEVANCE_SCHEMA)


def test_the_top_signals_are_the_strongest_of_each_source_sources_in_name_order():
    frame = pl.concat([
        signal_table("labels", [FeatureSignal("a", 0.1, "m", 1), FeatureSignal("b", 0.3, "m", 1)]),
        signal_table("events", [FeatureSignal(f, s, "m", 1) for f, s in (("x", 0.2), ("y", 0.5), ("z", 0.4))]),
    ])

    top = top_signals(frame, 2)

    assert top.select("source", "feature").rows() == [("events", "y"), ("events", "z"), ("labels", "b"),
                                                      ("labels", "a")]
