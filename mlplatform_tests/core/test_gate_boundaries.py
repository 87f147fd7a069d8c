"""Every blocking gate at its boundary: just below, at and just above each threshold, and each fail-closed path.

The numbers are chosen to be exact in binary floating point (0.5, 0.125, 2**-20...) wherever a test sits exactly
on a threshold, so "at" means at, not one rounding error either side.
"""

import math
from datetime import datetime, timedelta

import pytest

from mlplatform.brief import KillCriteria
from mlplatform.core.evaluation.fairness_assessment import AttributeFairness
from mlplatform.core.evaluation.kill_criteria import KillCriterion, QualityRecord, kill_criteria, quality_kill_criterion
from mlplatform.core.promotion import GUARDRAIL_TOLERANCE, GoldenScore, decide_promotion, golden_relative_drop
from mlplatform.core.quality import (
    EMPTY_SHARE,
    LEAKAGE_SIGNAL,
    NOTHING_TO_FIX,
    DimensionScore,
    FeatureSignal,
    not_applicable,
    relevance,
    report_of,
    timeliness,
)
from mlplatform.core.validation import CLOCK_SKEW

TINY = 2**-20  # exact in binary, far above float rounding at these magnitudes
NAMES = ["completeness", "accuracy", "consistency", "timeliness", "relevance", "volume"]


# --- quality gate (method phase 2: six dimensions, minimum 18/30) -------------------------------------------------

def _report(points: list[float | None], completeness_missing: float = 0.0, min_score: float = 18):
    dimensions = [not_applicable(name, "n/a", "") if p is None else
                  DimensionScore(name, completeness_missing if name == "completeness" else 0.0, p, "", "")
                  for name, p in zip(NAMES, points, strict=True)]
    return report_of("s", dimensions, min_score)


@pytest.mark.parametrize(("points", "total", "passed"), [
    ([3, 3, 3, 3, 3, 2.99], 17.99, False),
    ([3, 3, 3, 3, 3, 3], 18.0, True),      # the method's minimum is "at least 18"
    ([3, 3, 3, 3, 3, 3.01], 18.01, True),
    # one dimension not applicable: the rest scaled to 30 (x 30/25)
    ([3, 3, 3, None, 3, 2.99], 17.99, False),
    ([3, 3, 3, None, 3, 3], 18.0, True),
    ([None] * 6, 0.0, False),               # nothing measured is nothing passed
])
def test_the_quality_total_passes_from_eighteen_of_thirty(points, total, passed):
    report = _report(points)
    assert (report.total, report.passed) == (pytest.approx(total, abs=1e-9), passed)


@pytest.mark.parametrize(("missing", "passed"), [(EMPTY_SHARE - 0.001, True), (EMPTY_SHARE, False), (0.9, False)])
def test_half_the_cells_missing_fails_whatever_the_total(missing, passed):
    report = _report([5, 5, 5, 5, 5, 5], completeness_missing=missing)
    assert report.total == 30 and report.passed is passed
    assert ("fails whatever the total" in report.summary) is not passed
    assert EMPTY_SHARE == 0.5  # the method's "very poor" completeness: more than half missing


def test_a_not_applicable_completeness_is_no_veto():
    dimensions = [not_applicable("completeness", "n/a", ""),
                  *(DimensionScore(name, 0.9, 5.0, "", "") for name in NAMES[1:])]
    assert report_of("s", dimensions, 18).passed


def _signal(value: float) -> DimensionScore:
    return relevance([FeatureSignal("x", value, "|2·AUC−1|", 500)], "basis")


@pytest.mark.parametrize(("value", "suspicious"), [(LEAKAGE_SIGNAL - 0.0001, False), (LEAKAGE_SIGNAL, True),
                                                   (LEAKAGE_SIGNAL + 0.0001, True), (1.0, True)])
def test_a_single_feature_from_ninety_percent_signal_is_suspected_of_leakage(value, suspicious):
    dimension = _signal(value)
    assert dimension.points == 5 and dimension.measurement == value
    assert ("suspiciously strong" in dimension.detail) is suspicious
    assert ("target leakage" in dimension.fix) is suspicious
    assert (dimension.fix == NOTHING_TO_FIX) is not suspicious
    assert LEAKAGE_SIGNAL == 0.9


@pytest.mark.parametrize(("value", "points"), [(0.05, 0.0), (0.05 + 0.0035, 0.05), (0.225, 2.5), (0.3965, 4.95),
                                               (0.4, 5.0)])
def test_relevance_points_between_the_anchors(value, points):
    dimension = _signal(value)
    assert dimension.points == pytest.approx(points, abs=1e-9)
    assert (dimension.fix == NOTHING_TO_FIX) is (points == 5)


def test_no_signal_at_all_scores_zero_and_says_what_to_add():
    for dimension in (relevance([], "basis"), _signal(0.0)):
        assert (dimension.measurement, dimension.points) == (0.0, 0.0)
        assert dimension.fix == "Add features that are a direct basis for the prediction."


AS_OF = datetime(2025, 6, 30)


@pytest.mark.parametrize(("newest", "points"), [
    (AS_OF + CLOCK_SKEW, 5.0),                            # within the tolerated clock skew: fresh
    (AS_OF + CLOCK_SKEW + timedelta(seconds=1), 0.0),     # beyond it: future data is wrong, not fresh
    (AS_OF - timedelta(days=7), 5.0),                     # exactly the need
    (AS_OF - timedelta(days=90), 0.0),                    # exactly "months stale" (max(90, 3 x 7))
    (None, 0.0),                                          # no valid timestamp fails closed
])
def test_timeliness_boundaries(newest, points):
    dimension = timeliness(newest, "ts", AS_OF, 7)
    assert dimension.points == points
    assert ("future data is not fresh" in dimension.detail) is (newest is not None and newest > AS_OF + CLOCK_SKEW)


def test_timeliness_just_inside_the_anchors():
    assert 4.9 < timeliness(AS_OF - timedelta(days=7, hours=1), "ts", AS_OF, 7).points < 5
    assert 0 < timeliness(AS_OF - timedelta(days=89), "ts", AS_OF, 7).points < 0.1
    # A long need moves "months stale" to three times the need.
    assert timeliness(AS_OF - timedelta(days=119), "ts", AS_OF, 40).points > 0
    assert timeliness(AS_OF - timedelta(days=120), "ts", AS_OF, 40).points == 0


# --- kill criteria (method phase 1) -------------------------------------------------------------------------------

DYADIC = KillCriteria(baseline_max_share=0.75, min_lift_over_random=0.125)


def _passed(rows: list[KillCriterion]) -> list[bool]:
    return [row.passed for row in rows]


@pytest.mark.parametrize(("rules", "passed"), [(0.375 - TINY, True), (0.375, True), (0.375 + TINY, False)])
def test_the_rules_baseline_kills_above_its_share_of_the_model(rules, passed):
    # model 0.5: rules at 0.375 reach exactly 75%, "achieves > 75%" kills.
    assert kill_criteria(0.5, rules, 0.0, "f1", DYADIC)[0].passed is passed
    # An error metric: the baseline "reaches" the model when the model's error is that share of the rules' error.
    assert kill_criteria(rules, 0.5, 10.0, "mae", DYADIC)[0].passed is passed


def test_the_methods_default_ninety_percent_share():
    assert KillCriteria().baseline_max_share == 0.9
    assert kill_criteria(0.5, 0.45, 0.0, "f1", KillCriteria())[0].passed is True  # exactly 90%
    assert kill_criteria(0.5, 0.4501, 0.0, "f1", KillCriteria())[0].passed is False


def test_a_model_of_zero_or_a_perfect_error_baseline_fails_closed():
    zero = kill_criteria(0.0, 0.0, 0.0, "f1", KillCriteria())[0]
    assert zero.passed is False and "any baseline matches it" in zero.measured
    assert kill_criteria(3.0, 0.0, 10.0, "mae", KillCriteria())[0].passed is False


@pytest.mark.parametrize(("model", "passed"), [(0.5625 - TINY, False), (0.5625, False), (0.5625 + TINY, True)])
def test_the_model_must_beat_random_by_more_than_the_lift(model, passed):
    # random 0.5: 0.5625 is exactly +12.5%, "can't beat random by > 12.5%" kills at it.
    assert kill_criteria(model, 0.0, 0.5, "f1", DYADIC)[-1].passed is passed
    # An error metric: beating random means a lower error, 12.5% of random's.
    assert kill_criteria(1 - model, 10.0, 0.5, "mae", DYADIC)[-1].passed is passed


def test_the_methods_default_ten_percent_lift():
    assert KillCriteria().min_lift_over_random == 0.10
    assert kill_criteria(0.549, 0.0, 0.5, "f1", KillCriteria())[-1].passed is False
    assert kill_criteria(0.551, 0.0, 0.5, "f1", KillCriteria())[-1].passed is True


def test_a_random_reference_of_zero():
    assert kill_criteria(0.2, 0.0, 0.0, "f1", KillCriteria())[-1].passed is True  # any gain over nothing
    assert kill_criteria(0.0, 0.0, 0.0, "f1", KillCriteria())[-1].passed is False  # no gain at all


NOW = datetime(2026, 3, 1)


@pytest.mark.parametrize(("failing_for", "passed"), [
    (timedelta(days=14) - timedelta(seconds=1), True),
    (timedelta(days=14), False),  # "after 2 weeks of cleaning": reaching the limit kills
    (timedelta(days=14, seconds=1), False),
])
def test_poor_quality_kills_once_the_cleaning_days_are_reached(failing_for, passed):
    history = [QualityRecord(NOW - timedelta(days=30), 25.0, True), QualityRecord(NOW - failing_for, 12.0, False),
               QualityRecord(NOW - timedelta(days=1), 17.99, False)]
    assert quality_kill_criterion(history, 18, 14, NOW).passed is passed
    # The order the history arrives in does not matter.
    assert quality_kill_criterion(history[::-1], 18, 14, NOW).passed is passed


def test_a_passing_report_ends_the_streak_and_no_history_fails_closed():
    history = [QualityRecord(NOW - timedelta(days=40), 12.0, False), QualityRecord(NOW - timedelta(days=2), 18.0, True)]
    assert quality_kill_criterion(history, 18, 14, NOW).passed is True
    assert quality_kill_criterion([], 18, 14, NOW).passed is False
    quality = quality_kill_criterion([], 18, 14, NOW)
    assert _passed(kill_criteria(0.8, 0.1, 0.5, "f1", KillCriteria(), quality)) == [True, False, True]


# --- promotion gate (method phase 7: beat production, no guardrail regression, golden set, budgets) --------------

CHAMPION = {"f1": 0.5, "pr_auc": 0.5}


def _decide(challenger: dict, champion: dict | None = CHAMPION, **overrides):
    arguments = {"primary": "f1", "guardrails": [], "margin": 0.0, "challenger_ci": None,
                 "baselines": {"rules": {"f1": 0.25, "mae": 20.0}}, "size_mb": 1.0, "max_size_mb": 10.0,
                 "latency_ms": 1.0, "max_latency_ms": 10.0, "fairness": [], "disparate_impact_min": 0.8}
    return decide_promotion(challenger, champion, **{**arguments, **overrides})


def _checks(decision) -> dict[str, bool]:
    return decision.evidence["checks"]


@pytest.mark.parametrize(("f1", "passed"), [(0.625 - TINY, False), (0.625, False), (0.625 + TINY, True)])
def test_the_challenger_must_beat_the_champion_by_more_than_the_margin(f1, passed):
    decision = _decide({"f1": f1}, margin=0.125)
    assert _checks(decision)["beats_champion"] is passed and decision.promote is passed


@pytest.mark.parametrize(("mae", "passed"), [(9.875 + TINY, False), (9.875, False), (9.875 - TINY, True)])
def test_an_error_metric_must_fall_by_more_than_the_margin(mae, passed):
    decision = _decide({"mae": mae}, {"mae": 10.0}, primary="mae", margin=0.125)
    assert _checks(decision)["beats_champion"] is passed


@pytest.mark.parametrize(("low", "passed"), [(0.5 - TINY, False), (0.5, True), (0.5 + TINY, True)])
def test_the_lower_end_of_the_interval_must_not_be_below_the_champion(low, passed):
    decision = _decide({"f1": 0.625}, challenger_ci=(low, 0.75))
    assert _checks(decision)["ci_clears_champion"] is passed and decision.promote is passed


@pytest.mark.parametrize(("interval", "passed"), [((9.0, 10.0 - TINY), True), ((9.0, 10.0), True),
                                                  ((9.0, 10.0 + TINY), False), ((9.5, 10.5), False)])
def test_for_an_error_metric_the_upper_end_of_the_interval_counts(interval, passed):
    decision = _decide({"mae": 9.5}, {"mae": 10.0}, primary="mae", challenger_ci=interval)
    assert _checks(decision)["ci_clears_champion"] is passed


@pytest.mark.parametrize(("pr_auc", "passed"), [(0.375 + TINY, True), (0.375, True), (0.375 - TINY, False)])
def test_a_guardrail_may_fall_by_the_tolerance_and_no_more(pr_auc, passed):
    decision = _decide({"f1": 0.625, "pr_auc": pr_auc}, guardrails=["pr_auc"], guardrail_tolerance=0.125)
    assert _checks(decision)["guardrail_pr_auc"] is passed and decision.promote is passed
    assert decision.evidence["guardrails"]["pr_auc"]["gain"] == pytest.approx(pr_auc - 0.5, abs=0)


@pytest.mark.parametrize(("rmse", "passed"), [(14.125 - TINY, True), (14.125, True), (14.125 + TINY, False)])
def test_an_error_guardrail_may_rise_by_the_tolerance_and_no_more(rmse, passed):
    decision = _decide({"mae": 9.0, "rmse": rmse}, {"mae": 10.0, "rmse": 14.0}, primary="mae",
                       guardrails=["rmse"], guardrail_tolerance=0.125)
    assert _checks(decision)["guardrail_rmse"] is passed


@pytest.mark.parametrize(("pr_auc", "passed"), [(0.4901, True), (0.4899, False), (0.485, False)])
def test_the_default_guardrail_tolerance_is_one_point(pr_auc, passed):
    assert GUARDRAIL_TOLERANCE == 0.01
    decision = _decide({"f1": 0.625, "pr_auc": pr_auc}, guardrails=["pr_auc"])
    assert _checks(decision)["guardrail_pr_auc"] is passed


@pytest.mark.parametrize(("f1", "passed"), [(0.25 - TINY, False), (0.25, False), (0.25 + TINY, True)])
def test_a_first_model_must_beat_every_baseline_strictly(f1, passed):
    decision = _decide({"f1": f1}, None)
    assert _checks(decision)["beats_rules"] is passed and decision.promote is passed


def test_an_error_metric_must_be_below_the_baseline():
    assert _checks(_decide({"mae": 20.0}, None, primary="mae"))["beats_rules"] is False
    assert _checks(_decide({"mae": 20.0 - TINY}, None, primary="mae"))["beats_rules"] is True


def test_nothing_to_compare_with_or_an_undefined_metric_fails_closed():
    alone = _decide({"f1": 0.9}, None, baselines={})
    assert _checks(alone) == {"baselines": False, "size_budget": True, "latency_budget": True}
    assert not alone.promote
    undefined = _decide({"f1": math.nan})
    assert not undefined.promote and _checks(undefined)["primary_defined"] is False


@pytest.mark.parametrize(("budget", "value", "passed"), [
    ("size", 10.0 - TINY, True), ("size", 10.0, True), ("size", 10.0 + TINY, False),
    ("latency", 10.0 - TINY, True), ("latency", 10.0, True), ("latency", 10.0 + TINY, False)])
def test_size_and_latency_may_reach_their_budget_and_no_more(budget, value, passed):
    decision = _decide({"f1": 0.625}, **{"size_mb" if budget == "size" else "latency_ms": value})
    assert _checks(decision)[f"{budget}_budget"] is passed and decision.promote is passed


def _golden(challenger: float, champion: float | None, **fields) -> GoldenScore:
    return GoldenScore("v1", 400, challenger, champion, **fields)


@pytest.mark.parametrize(("challenger", "passed"), [(0.4375 + TINY, True), (0.4375, True), (0.4375 - TINY, False)])
def test_the_golden_set_may_fall_by_the_allowed_share_and_no_more(challenger, passed):
    # Champion 0.5 on the golden rows, at most 12.5% worse: 0.4375 is exactly the limit.
    decision = _decide({"f1": 0.625}, golden=_golden(challenger, 0.5), max_golden_regression=0.125)
    assert _checks(decision)["golden_set"] is passed and decision.promote is passed


@pytest.mark.parametrize(("challenger", "passed"), [(0.476, True), (0.474, False)])
def test_the_default_golden_regression_is_five_percent(challenger, passed):
    assert _checks(_decide({"f1": 0.625}, golden=_golden(challenger, 0.5)))["golden_set"] is passed


@pytest.mark.parametrize(("challenger", "passed"), [(10.125, True), (10.125 + TINY, False)])
def test_an_error_metric_may_rise_on_the_golden_set_by_the_allowed_share(challenger, passed):
    decision = _decide({"mae": 9.0}, {"mae": 10.0}, primary="mae", golden=_golden(challenger, 10.0),
                       max_golden_regression=0.0125)
    assert _checks(decision)["golden_set"] is passed


@pytest.mark.parametrize(("high", "passed"), [(-TINY, False), (0.0, True), (TINY, True)])
def test_a_golden_drop_passes_only_while_the_paired_interval_reaches_no_worse(high, passed):
    golden = _golden(0.4, 0.5, difference_ci=(-0.2, high))  # 20% worse, beyond the 5% allowed
    assert _checks(_decide({"f1": 0.625}, golden=golden))["golden_set"] is passed


@pytest.mark.parametrize(("low", "passed"), [(TINY, False), (0.0, True), (-TINY, True)])
def test_for_an_error_metric_the_lower_end_of_the_paired_interval_counts(low, passed):
    golden = _golden(12.0, 10.0, difference_ci=(low, 4.0))
    decision = _decide({"mae": 9.0}, {"mae": 10.0}, primary="mae", golden=golden)
    assert _checks(decision)["golden_set"] is passed


def test_an_undefined_or_leaked_golden_set_fails_closed_and_a_small_one_is_not_judged():
    for golden in (_golden(math.nan, 0.5), _golden(0.5, math.nan), _golden(0.6, 0.5, leaked_keys=1),
                   _golden(math.nan, 0.5, difference_ci=(-0.1, 0.1))):  # an interval never excuses NaN
        decision = _decide({"f1": 0.625}, golden=golden)
        assert _checks(decision)["golden_set"] is False and not decision.promote
    small = _decide({"f1": 0.625}, golden=_golden(0.1, 0.5, not_judged="only 3 positives"))
    assert "golden_set" not in _checks(small) and small.promote


def test_a_golden_drop_against_a_champion_of_zero():
    assert golden_relative_drop("f1", 0.1, 0.0) == 0.0
    assert golden_relative_drop("f1", 0.0, 0.0) == 0.0
    assert golden_relative_drop("mae", 0.1, 0.0) == math.inf  # any error against a perfect champion
    assert not _decide({"mae": 9.0}, {"mae": 10.0}, primary="mae", golden=_golden(0.1, 0.0)).promote


@pytest.mark.parametrize(("status", "passed", "verdict"), [
    ("PASS", True, "PASS"),
    ("FAIL", False, "FAIL"),
    ("NOT_ASSESSABLE", False, "FAIL"),           # the brief says fail: fails closed
    ("NOT_ASSESSABLE", True, "NOT_ASSESSABLE"),  # the brief says warn: let through, never called PASS
    ("WAIVED", True, "WAIVED"),
    ("WAIVED", False, "FAIL"),                   # a status never overrides the assessment's passed
])
def test_fairness_rows_pass_only_on_the_assessments_word(status, passed, verdict):
    row = AttributeFairness("sex", status=status, passed=passed, reason=f"{status} disparate impact ...")
    decision = _decide({"f1": 0.625}, fairness=[row])
    assert _checks(decision)["fairness_sex"] is passed and decision.promote is passed
    assert any(reason.startswith(f"{verdict} fairness_sex: ") for reason in decision.reasons)


def test_a_fairness_row_without_a_ratio_fails_closed():
    decision = _decide({"f1": 0.625}, fairness=[AttributeFairness("sex", passed=False)])
    assert not decision.promote
    assert any("not assessable" in r and "fails closed" in r for r in decision.reasons)


def test_the_evidence_records_every_input_the_decision_was_made_on():
    fair = AttributeFairness("sex", status="PASS", passed=True, reason="PASS ...", groups=({"group": "f"},))
    decision = _decide({"f1": 0.625, "pr_auc": 0.5}, guardrails=["pr_auc"], challenger_ci=(0.55, 0.7),
                       fairness=[fair])
    assert decision.evidence == {
        "primary": "f1", "higher_is_better": True, "challenger": {"f1": 0.625, "pr_auc": 0.5}, "champion": CHAMPION,
        "challenger_ci": [0.55, 0.7], "margin": 0.0, "baselines": {"rules": {"f1": 0.25, "mae": 20.0}},
        "guardrails": {"pr_auc": {"challenger": 0.5, "champion": 0.5, "gain": 0.0}},
        "guardrail_tolerance": GUARDRAIL_TOLERANCE, "size_mb": 1.0, "max_size_mb": 10.0, "latency_ms": 1.0,
        "max_latency_ms": 10.0, "fairness": [fair.row()],
        "disparate_impact_min": 0.8, "golden": None, "checks": _checks(decision)}
    assert "groups" not in decision.evidence["fairness"][0] and decision.evidence["fairness"][0]["reason"] == "PASS ..."
    assert all(_checks(decision).values()) and decision.promote
    golden = _decide({"f1": 0.625}, golden=_golden(0.45, 0.5), max_golden_regression=0.125).evidence["golden"]
    assert (golden["relative_drop"], golden["max_regression"], golden["metric"]) == (pytest.approx(0.1), 0.125, "f1")


@pytest.mark.parametrize(("challenger", "champion", "who"), [
    ({"pr_auc": 0.5}, CHAMPION, "challenger metrics lack 'f1'"),
    ({"f1": 0.6}, {"pr_auc": 0.5}, "champion metrics lack 'f1'"),
    ({"f1": 0.6, "roc_auc": 0.7}, CHAMPION, "champion metrics lack 'roc_auc'"),
])
def test_a_missing_metric_names_whose_metrics_lack_it(challenger, champion, who):
    with pytest.raises(ValueError, match=who):
        _decide(challenger, champion, guardrails=["roc_auc"])
    with pytest.raises(ValueError, match="baseline 'rules' metrics lack 'pr_auc'"):
        _decide({"pr_auc": 0.6}, None, primary="pr_auc")


def test_a_dimension_no_source_could_measure_is_not_applicable_overall_with_each_sources_reason():
    from mlplatform.core.quality import combine

    def source(name: str) -> object:
        dimensions = [DimensionScore(n, 0.0, 4.0, "", "") for n in NAMES]
        dimensions[3] = not_applicable("timeliness", f"{name} has no timestamp", "Declare a timestamp.")
        return report_of(name, dimensions, 18)

    overall = combine([source("a"), source("b")], 18)
    timeliness_overall = overall.dimensions[3]
    assert (timeliness_overall.name, timeliness_overall.applicable, timeliness_overall.points) == ("timeliness", False,
                                                                                                   None)
    assert timeliness_overall.detail == "not applicable: a: a has no timestamp; b: b has no timestamp"
    assert timeliness_overall.fix == "Declare a timestamp."
    assert (overall.total, overall.passed) == (24.0, True)
    with pytest.raises(ValueError, match="no quality reports to combine: score at least one source first"):
        combine([], 18)
