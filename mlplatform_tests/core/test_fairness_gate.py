"""The fairness gate at its boundaries: the ratio and the TPR gap against the brief's limits, group size,
not-assessable handling and waivers (method phase 9)."""

import numpy as np
import polars as pl
import pytest

from mlplatform.core.evaluation.fairness_assessment import FairnessRule, fairness_assessment

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
    assert row["disparate_impact"] == pytest.approx(selected_b / 50)
    assert row["disparate_impact_status"] == status and row["passed"] is (status == "PASS")
    if status == "FAIL":  # Fisher's p is far from significant here; the ratio alone decides
        assert row["p_value"] > 0.05 and row["status"] == "FAIL" and "reported only" in row["reason"]


@pytest.mark.parametrize(("tp_b", "status"), [(21, "FAIL"), (24, "PASS"), (27, "PASS")])
def test_equal_opportunity_gap_is_gated_at_the_maximum(tp_b, status):
    # 60 positives per group; TPR 0.50 vs 0.35 / 0.40 / 0.45: gaps 0.15 / 0.10 / 0.05
    frame, scores = _frame(100, n_a=200, n_b=200, selected_a=100, positives=60, tp_a=30, tp_b=tp_b)
    row = _verdict(frame, scores, equal_opportunity_max_gap=0.1)
    assert row["equal_opportunity_gap"] == pytest.approx(0.5 - tp_b / 60)
    assert row["equal_opportunity_status"] == status and row["passed"] is (status == "PASS")
    assert row["disparate_impact_status"] == "PASS"


@pytest.mark.parametrize(("n_b", "assessable"), [(MIN_GROUP - 1, False), (MIN_GROUP, True)])
def test_a_group_under_the_minimum_size_makes_the_check_not_assessable_and_fail_closed(n_b, assessable):
    frame, scores = _frame(selected_b=n_b // 2, n_b=n_b, positives=10, tp_a=5, tp_b=5)
    row = _verdict(frame, scores)
    assert row["status"] == "NOT_ASSESSABLE" and not row["passed"]  # 10 positives: no TPR gap either way
    if assessable:
        assert row["disparate_impact_status"] == "PASS"
    else:
        assert row["disparate_impact"] is None and row["disparate_impact_status"] == "NOT_ASSESSABLE"
        assert "not assessable" in row["reason"] and "fail" in row["reason"]


@pytest.mark.parametrize(("positives", "assessable"), [(MIN_GROUP - 1, False), (MIN_GROUP, True)])
def test_equal_opportunity_needs_the_minimum_number_of_positives_per_group_not_rows(positives, assessable):
    # 300 rows per group, far over the row minimum; the TPR's denominator is the group's positives.
    tp = positives // 2
    frame, scores = _frame(100, n_a=300, n_b=300, selected_a=100, positives=positives, tp_a=tp, tp_b=tp)
    row = _verdict(frame, scores)
    assert row["disparate_impact_status"] == "PASS"
    if assessable:
        assert row["equal_opportunity_gap"] == pytest.approx(0.0)
        assert row["equal_opportunity_status"] == "PASS" and row["passed"]
    else:
        assert row["equal_opportunity_gap"] is None and row["equal_opportunity_status"] == "NOT_ASSESSABLE"
        assert not row["passed"] and f"{MIN_GROUP}+ hold-out positives" in row["reason"]
        warned = _verdict(frame, scores, when_not_assessable="warn")
        assert warned["passed"] and warned["equal_opportunity_status"] == "NOT_ASSESSABLE"


def test_not_assessable_passes_with_a_warning_only_when_the_brief_says_so():
    frame, scores = _frame(selected_b=20, n_b=MIN_GROUP - 1, positives=10, tp_a=5, tp_b=5)
    row = _verdict(frame, scores, when_not_assessable="warn")
    assert row["status"] == "NOT_ASSESSABLE" and row["passed"]


def test_a_waiver_lets_a_failing_metric_through_as_waived_with_its_reason_never_as_pass():
    frame, scores = _frame(30)  # ratio 0.6
    reason = "hold-out too small to resolve the ratio; re-judged next quarter"
    row = _verdict(frame, scores, waivers={("g", "disparate_impact"): reason})
    assert row["passed"] and row["status"] == "WAIVED" and row["disparate_impact_status"] == "WAIVED"
    assert reason in row["reason"] and "PASS disparate" not in row["reason"]
    other = _verdict(frame, scores, waivers={("g", "equal_opportunity"): reason})  # waives the other metric only
    assert not other["passed"] and other["status"] == "FAIL"


def test_a_waiver_does_not_hide_a_second_failing_metric():
    frame, scores = _frame(30, tp_b=4)  # ratio 0.6 and TPR gap 0.12 (10 vs 4 of 50 positives)
    row = _verdict(frame, scores, waivers={("g", "disparate_impact"): "explicitly accepted for this test"})
    assert row["status"] == "FAIL" and not row["passed"] and row["equal_opportunity_status"] == "FAIL"
