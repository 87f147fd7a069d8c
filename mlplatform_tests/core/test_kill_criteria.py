"""The method's three kill criteria: the rules baseline's share, the lift over random, and data quality still too
poor after the brief's days of cleaning, judged on the data-quality history the Dagster instance recorded."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from mlplatform.brief import DEMO_BRIEF, KillCriteria
from mlplatform.core.evaluation.kill_criteria import KillCriterion, QualityRecord, kill_criteria, quality_kill_criterion
from mlplatform.defs.evaluation import quality_history
from mlplatform.resources.platform import PlatformResource

NOW = datetime(2026, 3, 1)


def _history(*rows: tuple[int, float]) -> list[QualityRecord]:
    """(days before NOW, total) per report; the gate's minimum is 18."""
    return [QualityRecord(NOW - timedelta(days=days), total, total >= 18) for days, total in rows]


def test_quality_below_the_gate_for_longer_than_the_cleaning_days_kills():
    verdict = quality_kill_criterion(_history((20, 12.0), (15, 14.5), (3, 16.0)), 18, 14, NOW)
    assert verdict.passed is False
    assert "since " + (NOW - timedelta(days=20)).strftime("%Y-%m-%d") in verdict.measured
    assert "20.0 days of cleaning; limit 14" in verdict.measured and "latest 16.0/30" in verdict.measured


def test_a_short_failing_streak_or_recovered_quality_does_not_kill():
    # Failing, but only since the report after the last passing one, 5 days ago.
    assert quality_kill_criterion(_history((30, 12.0), (10, 20.0), (5, 15.0)), 18, 14, NOW).passed is True
    recovered = quality_kill_criterion(_history((30, 12.0), (20, 13.0), (1, 22.0)), 18, 14, NOW)
    assert recovered.passed is True
    assert "22.0/30, meeting the gate's 18; below it in 2 earlier report(s)" in recovered.measured


def test_no_quality_history_fails_closed():
    verdict = quality_kill_criterion([], 18, 14, NOW)
    assert verdict.passed is False and "never measured" in verdict.measured


def test_the_three_criteria_are_judged_in_the_methods_order():
    quality = quality_kill_criterion(_history((1, 25.0)), 18, 14, NOW)
    rows = kill_criteria(0.6, 0.3, 0.1, "f1", KillCriteria(), quality)
    assert [r.criterion[:20] for r in rows] == ["Baseline heuristic a", "Data quality too poo",
                                                   "Model can't beat ran"]
    assert all(r.passed for r in rows)


def test_the_history_is_every_data_quality_report_the_instance_recorded(tmp_path):
    platform = PlatformResource(data_dir=str(tmp_path), brief_path=str(DEMO_BRIEF))
    with dg.instance_for_test() as instance:
        assert quality_history(instance, platform) == []  # nothing measured, no lake table: fails closed later
        for total, passed in ((12.0, False), (15.5, False)):
            instance.report_runless_asset_event(dg.AssetMaterialization(
                "data_quality_report", metadata={"total": total, "passed": passed, "min_score": 18.0}))
        history = quality_history(instance, platform)
    assert [(r.total, r.passed) for r in history] == [(12.0, False), (15.5, False)]
    # Every report since the first failed: with no days of cleaning allowed, the criterion kills.
    verdict = quality_kill_criterion(history, 18, 0, datetime.now(UTC).replace(tzinfo=None))
    assert verdict.passed is False and "in the 2 latest report(s)" in verdict.measured


def test_without_a_quality_history_there_are_two_criteria_each_with_its_measurement():
    rows = kill_criteria(0.6, 0.3, 0.1, "f1", KillCriteria())
    assert [r.criterion[:20] for r in rows] == ["Baseline heuristic a", "Model can't beat ran"]
    # rules 0.3 / model 0.6 = 50%; (0.6 - 0.1) / 0.1 = +500% over random
    assert rows[0].measured == "rules reach 50% of the model's f1 (0.3000 vs 0.6000)"
    assert rows[1].measured == "model f1 0.6000 vs random 0.1000: +500%"


def test_every_quality_verdict_names_the_criterion_with_its_days_of_cleaning():
    for history in ([], _history((20, 12.0)), _history((1, 25.0))):
        verdict = quality_kill_criterion(history, 18, 14, NOW)
        assert verdict.criterion == "Data quality too poor after 14 days of cleaning"
        assert isinstance(verdict, KillCriterion)


def test_quality_that_never_failed_says_only_that_it_meets_the_gate():
    verdict = quality_kill_criterion(_history((9, 19.0), (1, 25.0)), 18, 14, NOW)
    assert verdict.passed is True
    assert verdict.measured == ("the latest of 2 data-quality reports (2026-02-28) scores 25.0/30, "
                                   "meeting the gate's 18")
