"""The fairness gate at its boundaries: the ratio and the TPR gap against the brief's limits, group size,
not-assessable handling and waivers (method phase 9)."""

import numpy as np
import polars as pl
import pytest
from scipy.stats import fisher_exact

from mlplatform.core.evaluation.fairness_assessment import (
    FairnessRule,
    GroupFairness,
    _attribute_verdict,
    fairness_assessment,
    group_fairness,
    metric_verdict,
)

MIN_GROUP = 50


def _frame(selected_b: int, n_b: int = 100, n_a: int = 100, selected_a: int = 50, positives: int = MIN_GROUP,
           tp_a: int = 10, tp_b: int = 10) -> tuple[pl.DataFrame, np.ndarray]:
    """Two groups: a (n_a rows, selected_a selected) and b; each has ``positives`` positives of which tp_* are
    selected. Scores are 1 for selected rows, 0 otherwise (threshold 0.5)."""
    rows = []
    for name, n, selected, tp in (("a", n_a, selected_a, tp_a), ("b", n_b, selected_b, tp_b)):
        y = np.r_[np.ones(positives), np.zeros(n - positives)]
        chosen = np.r_[np.ones(tp), np.zeros(positives - tp), np.ones(selected - tp), np.zeros(n - positives -
                                                                                             (selected - tp))]
        rows.append(pl.DataFrame({"g": [name] * n, "label": y.astype(int), "score": chosen}))
    frame = pl.concat(rows)
    return frame, frame["score"].to_numpy()


def _verdict(frame, scores, **rule):
    settings = {"disparate_impact_min": 0.8, "min_group_size": MIN_GROUP, "significance": 0.05} | rule
    [row], _ = fairness_assessment("binary", frame, "label", scores, 0.5, ["g"], "f1", FairnessRule(**settings))
    return row


@pytest.mark.parametrize(("selected_b", "status"), [(39, "FAIL"), (40, "PASS"), (41, "PASS")])
def test_disparate_impact_fails_below_the_minimum_whatever_the_p_value(selected_b, status):
    frame, scores = _frame(selected_b)  # ratio 0.78 / 0.80 / 0.82 against group a's 0.50
    row = _verdict(frame, scores)
    assert row.disparate_impact == pytest.approx(selected_b / 50)
    assert row.disparate_impact_status == status and row.passed is (status == "PASS")
    if status == "FAIL":  # Fisher's p is far from significant here; the ratio alone decides
        assert row.p_value > 0.05 and row.status == "FAIL" and "reported only" in row.reason


@pytest.mark.parametrize(("tp_b", "status"), [(21, "FAIL"), (24, "PASS"), (27, "PASS")])
def test_equal_opportunity_gap_is_gated_at_the_maximum(tp_b, status):
    # 60 positives per group; TPR 0.50 vs 0.35 / 0.40 / 0.45: gaps 0.15 / 0.10 / 0.05
    frame, scores = _frame(100, n_a=200, n_b=200, selected_a=100, positives=60, tp_a=30, tp_b=tp_b)
    row = _verdict(frame, scores, equal_opportunity_max_gap=0.1)
    assert row.equal_opportunity_gap == pytest.approx(0.5 - tp_b / 60)
    assert row.equal_opportunity_status == status and row.passed is (status == "PASS")
    assert row.disparate_impact_status == "PASS"


@pytest.mark.parametrize(("n_b", "assessable"), [(MIN_GROUP - 1, False), (MIN_GROUP, True)])
def test_a_group_under_the_minimum_size_makes_the_check_not_assessable_and_fail_closed(n_b, assessable):
    frame, scores = _frame(selected_b=n_b // 2, n_b=n_b, positives=10, tp_a=5, tp_b=5)
    row = _verdict(frame, scores)
    assert row.status == "NOT_ASSESSABLE" and not row.passed  # 10 positives: no TPR gap either way
    if assessable:
        assert row.disparate_impact_status == "PASS"
    else:
        assert row.disparate_impact is None and row.disparate_impact_status == "NOT_ASSESSABLE"
        assert "not assessable" in row.reason and "fail" in row.reason


@pytest.mark.parametrize(("positives", "assessable"), [(MIN_GROUP - 1, False), (MIN_GROUP, True)])
def test_equal_opportunity_needs_the_minimum_number_of_positives_per_group_not_rows(positives, assessable):
    # 300 rows per group, far over the row minimum; the TPR's denominator is the group's positives.
    tp = positives // 2
    frame, scores = _frame(100, n_a=300, n_b=300, selected_a=100, positives=positives, tp_a=tp, tp_b=tp)
    row = _verdict(frame, scores)
    assert row.disparate_impact_status == "PASS"
    if assessable:
        assert row.equal_opportunity_gap == pytest.approx(0.0)
        assert row.equal_opportunity_status == "PASS" and row.passed
    else:
        assert row.equal_opportunity_gap is None and row.equal_opportunity_status == "NOT_ASSESSABLE"
        assert not row.passed and f"{MIN_GROUP}+ hold-out positives" in row.reason
        warned = _verdict(frame, scores, when_not_assessable="warn")
        assert warned.passed and warned.equal_opportunity_status == "NOT_ASSESSABLE"


def test_not_assessable_passes_with_a_warning_only_when_the_brief_says_so():
    frame, scores = _frame(selected_b=20, n_b=MIN_GROUP - 1, positives=10, tp_a=5, tp_b=5)
    row = _verdict(frame, scores, when_not_assessable="warn")
    assert row.status == "NOT_ASSESSABLE" and row.passed


def test_a_waiver_lets_a_failing_metric_through_as_waived_with_its_reason_never_as_pass():
    frame, scores = _frame(30)  # ratio 0.6
    reason = "hold-out too small to resolve the ratio; re-judged next quarter"
    row = _verdict(frame, scores, waivers={("g", "disparate_impact"): reason})
    assert row.passed and row.status == "WAIVED" and row.disparate_impact_status == "WAIVED"
    assert reason in row.reason and "PASS disparate" not in row.reason
    other = _verdict(frame, scores, waivers={("g", "equal_opportunity"): reason})  # waives the other metric only
    assert not other.passed and other.status == "FAIL"


def test_a_waiver_does_not_hide_a_second_failing_metric():
    frame, scores = _frame(30, tp_b=4)  # ratio 0.6 and TPR gap 0.12 (10 vs 4 of 50 positives)
    row = _verdict(frame, scores, waivers={("g", "disparate_impact"): "explicitly accepted for this test"})
    assert row.status == "FAIL" and not row.passed and row.equal_opportunity_status == "FAIL"


# metric_verdict and the attribute's worst status, directly at their limits ---------------------------------------

RULE = FairnessRule(disparate_impact_min=0.8, min_group_size=MIN_GROUP, significance=0.05,
                    equal_opportunity_max_gap=0.1)


@pytest.mark.parametrize(("value", "expected"), [(0.7999, ("FAIL", False)), (0.8, ("PASS", True)),
                                                 (0.8001, ("PASS", True))])
def test_a_ratio_passes_from_the_minimum_up(value, expected):
    assert metric_verdict("g", "disparate_impact", value, 0.8, higher_is_fair=True, rule=RULE) == expected


@pytest.mark.parametrize(("value", "expected"), [(0.0999, ("PASS", True)), (0.1, ("PASS", True)),
                                                 (0.1001, ("FAIL", False))])
def test_a_gap_passes_up_to_the_maximum(value, expected):
    assert metric_verdict("g", "equal_opportunity", value, 0.1, higher_is_fair=False, rule=RULE) == expected


def test_a_missing_value_fails_closed_unless_the_brief_says_warn():
    assert metric_verdict("g", "disparate_impact", None, 0.8, higher_is_fair=True, rule=RULE) == \
        ("NOT_ASSESSABLE", False)
    warn = FairnessRule(0.8, MIN_GROUP, 0.05, when_not_assessable="warn")
    assert metric_verdict("g", "disparate_impact", None, 0.8, higher_is_fair=True, rule=warn) == \
        ("NOT_ASSESSABLE", True)


def test_a_waiver_covers_only_its_attribute_and_metric_and_never_turns_a_pass_into_waived():
    waived = FairnessRule(0.8, MIN_GROUP, 0.05, waivers={("g", "disparate_impact"): "accepted for this test"})
    assert metric_verdict("g", "disparate_impact", 0.5, 0.8, higher_is_fair=True, rule=waived) == ("WAIVED", True)
    assert metric_verdict("g", "disparate_impact", None, 0.8, higher_is_fair=True, rule=waived) == ("WAIVED", True)
    assert metric_verdict("g", "disparate_impact", 0.9, 0.8, higher_is_fair=True, rule=waived) == ("PASS", True)
    assert metric_verdict("other", "disparate_impact", 0.5, 0.8, higher_is_fair=True, rule=waived) == \
        ("FAIL", False)
    assert metric_verdict("g", "equal_opportunity", 0.5, 0.1, higher_is_fair=False, rule=waived) == \
        ("FAIL", False)


def _result(impact: float | None, gap: float | None) -> GroupFairness:
    return GroupFairness(disparate_impact=impact, p_value=None if impact is None else 0.123,
                         equal_opportunity_gap=gap, equal_opportunity_p_value=None if gap is None else 0.0456,
                         rates=pl.DataFrame())


@pytest.mark.parametrize(("impact", "gap", "rule", "status", "passed"), [
    (0.85, 0.05, RULE, "PASS", True),
    (None, 0.15, RULE, "FAIL", False),  # FAIL outranks NOT_ASSESSABLE
    (None, 0.05, RULE, "NOT_ASSESSABLE", False),
    (0.5, 0.05, FairnessRule(0.8, MIN_GROUP, 0.05, waivers={("g", "disparate_impact"): "r"}), "WAIVED", True),
    (None, 0.5, FairnessRule(0.8, MIN_GROUP, 0.05, when_not_assessable="warn",
                             waivers={("g", "equal_opportunity"): "r"}), "NOT_ASSESSABLE", True),
])
def test_the_attribute_takes_its_worst_metrics_status_and_passes_only_if_both_do(impact, gap, rule, status, passed):
    verdict = _attribute_verdict("g", _result(impact, gap), rule)
    assert verdict.status == status and verdict.passed is passed
    assert verdict.applicable is True and verdict.note == ""


def test_the_verdict_reason_gives_each_value_against_its_limit():
    verdict = _attribute_verdict("g", _result(0.85, 0.15), RULE)
    assert (verdict.disparate_impact_status, verdict.equal_opportunity_status) == ("PASS", "FAIL")
    assert verdict.reason == (
        "PASS disparate impact 0.850, at least the minimum 0.8 (Fisher p = 0.123, reported only); "
        "FAIL equal-opportunity (TPR) gap 0.150, over the maximum 0.1 (Fisher p = 0.0456, reported only)")
    under = _attribute_verdict("g", _result(0.75, 0.1), RULE).reason
    assert "disparate impact 0.750, under the minimum 0.8" in under and "gap 0.100, at most the maximum 0.1" in under
    missing = _attribute_verdict("g", _result(None, None), RULE).reason
    assert missing.startswith(f"NOT_ASSESSABLE disparate impact not assessable: fewer than two groups with "
                              f"{MIN_GROUP}+ hold-out rows")


# group_fairness: which groups are compared, and Fisher's tables ------------------------------------------------


def test_small_and_unknown_groups_are_listed_but_left_out_of_the_ratio_and_the_gap():
    frame, _ = _frame(40)  # a: 50 of 100 selected, b: 40 of 100; 50 positives each, 10 of them selected
    groups = pl.Series([*frame["g"], *(["c"] * (MIN_GROUP - 1)), *([None] * 60)])
    y = np.r_[frame["label"].to_numpy(), np.ones(MIN_GROUP - 1), np.ones(60)]
    selected = np.r_[frame["score"].to_numpy(), np.ones(MIN_GROUP - 1), np.zeros(60)]  # c: all; unknown: none
    result = group_fairness(groups, y, selected, MIN_GROUP)
    assert result.disparate_impact == pytest.approx(0.4 / 0.5)
    assert result.p_value == pytest.approx(fisher_exact([[40, 60], [50, 50]]).pvalue)
    assert result.equal_opportunity_gap == pytest.approx(0.0)
    assert result.equal_opportunity_p_value == pytest.approx(1.0)
    rates = {r["group"]: r for r in result.rates.to_dicts()}
    assert set(rates) == {"a", "b", "c", None}
    assert [rates[g]["assessed"] for g in ("a", "b", "c", None)] == [True, True, False, False]
    assert (rates[None]["n"], rates[None]["selection_rate"]) == (60, 0.0)


def test_fishers_test_compares_the_lowest_and_highest_groups_selections_and_true_positives():
    # Three groups of 100 rows and 60 positives: selected 30 / 45 / 60, true positives 18 / 30 / 42.
    groups, y, selected = [], [], []
    for name, chosen, tp in (("a", 60, 42), ("b", 45, 30), ("c", 30, 18)):
        groups += [name] * 100
        y += [1] * 60 + [0] * 40
        selected += [1] * tp + [0] * (60 - tp) + [1] * (chosen - tp) + [0] * (40 - (chosen - tp))
    result = group_fairness(pl.Series(groups), np.array(y), np.array(selected), MIN_GROUP)
    assert result.disparate_impact == pytest.approx(30 / 60)
    assert result.p_value == pytest.approx(fisher_exact([[30, 70], [60, 40]]).pvalue)
    assert result.equal_opportunity_gap == pytest.approx(42 / 60 - 18 / 60)
    assert result.equal_opportunity_p_value == pytest.approx(fisher_exact([[18, 42], [42, 18]]).pvalue)


def test_with_one_assessable_group_nothing_is_compared():
    frame, _ = _frame(40, n_b=MIN_GROUP - 1, positives=10, tp_a=5, tp_b=5)
    result = group_fairness(frame["g"], frame["label"].to_numpy(), frame["score"].to_numpy(), MIN_GROUP)
    assert result.disparate_impact is None and result.p_value is None
    assert result.equal_opportunity_gap is None and result.equal_opportunity_p_value is None
