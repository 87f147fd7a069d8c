"""The A/B test judges the brief's primary metric with a test that suits it, and sizes itself from the control
arm: never accuracy on a rare positive class, never a 0.5 guess."""

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mlplatform.core.rollout.ab_report import ab_report
from mlplatform.core.rollout.ab_test import ArmOutcomes, compare_arms, min_sample_size
from mlplatform.core.rollout.policy import RolloutPolicy
from mlplatform.core.rollout.registry import RolloutState

POLICY = RolloutPolicy(min_rows=100, mde=0.05)
STATE = RolloutState("1", "2", 0.5)


def arm_log(arm: str, version: str, label: np.ndarray, prediction: np.ndarray, probability: np.ndarray,
            days: float = 8) -> pl.DataFrame:
    rows = len(label)
    return pl.DataFrame({
        "request_time": [datetime(2025, 9, 1) + timedelta(days=days * i / rows) for i in range(rows)],
        "model_version": version, "arm": arm, "status": "ok", "latency_ms": 2.0,
        "prediction": prediction.astype(float), "probability": probability, "churned": label,
    }).with_columns(pl.col("request_time").dt.replace_time_zone("UTC"))


def rare_positive_logs(rows: int = 4000) -> pl.DataFrame:
    """A 7.6%-positive target: the champion finds most positives at some false alarms; the challenger predicts
    "no churn" for everyone, so its accuracy is higher and its F1 is zero."""
    rng = np.random.default_rng(0)
    frames = []
    for arm, version in (("champion", "1"), ("challenger", "2")):
        label = (rng.random(rows) < 0.076).astype(int)
        if arm == "champion":
            prediction = np.where(label == 1, rng.random(rows) < 0.7, rng.random(rows) < 0.12).astype(int)
        else:
            prediction = np.zeros(rows, dtype=int)
        probability = np.clip(0.6 * prediction + 0.3 * rng.random(rows), 0, 1)
        frames.append(arm_log(arm, version, label, prediction, probability))
    return pl.concat(frames)


def report(log: pl.DataFrame, primary: str, task: str = "binary") -> dict:
    return ab_report(log, STATE, task=task, label="churned", primary=primary, guardrails=[], hypothesis="",
                     name="churn", policy=POLICY)


def accuracy(log: pl.DataFrame, arm: str) -> float:
    rows = log.filter(pl.col("arm") == arm)
    return float((rows["prediction"] == rows["churned"]).mean())


def test_a_challenger_that_only_raises_accuracy_on_a_rare_class_is_not_shipped():
    log = rare_positive_logs()
    # The share of correct predictions (what the test compared before) rises well beyond the MDE...
    assert accuracy(log, "challenger") > accuracy(log, "champion") + POLICY.mde
    results = report(log, "f1")["results"]
    # ...but the brief's primary metric collapses, and that is what is tested.
    assert results["primary_metric"]["treatment"] == 0.0 and results["lift"] < -0.2
    assert results["decision"] != "ship" and "f1" in results["reason"]


def multiclass_logs(rows: int = 3000, accuracy: float = 0.85) -> pl.DataFrame:
    rng = np.random.default_rng(3)
    frames = []
    for arm, version in (("champion", "1"), ("challenger", "2")):
        label = rng.integers(0, 3, rows)
        prediction = np.where(rng.random(rows) < accuracy, label, (label + 1) % 3)
        frames.append(arm_log(arm, version, label, prediction, np.full(rows, 0.9)))
    return pl.concat(frames)


def test_a_rate_is_tested_with_the_z_test_sized_at_the_observed_control_rate():
    plan = report(multiclass_logs(), "accuracy", task="multiclass")
    control = plan["results"]["primary_metric"]["control"]
    assert 0.8 < control < 0.9  # far from the 0.5 a guess would use
    assert plan["results"]["test"] == "two-proportion z-test"
    assert plan["ab_test"]["minimum_sample_size"] == min_sample_size(control, POLICY.mde)
    assert plan["ab_test"]["minimum_sample_size"] != min_sample_size(0.5, POLICY.mde)
    assert f"control accuracy {control:.4f} (observed)" in plan["ab_test"]["minimum_sample_size_basis"]


def test_before_control_labels_arrive_the_sample_size_is_unknown_not_a_guess():
    log = multiclass_logs().filter(pl.col("arm") == "challenger")
    plan = report(log, "accuracy", task="multiclass")
    assert plan["ab_test"]["minimum_sample_size"] is None
    assert "unknown until control labels arrive" in plan["ab_test"]["minimum_sample_size_basis"]
    assert plan["results"]["decision"] == "iterate"
    assert report(rare_positive_logs().filter(pl.col("arm") == "challenger"), "f1")["ab_test"][
        "minimum_sample_size"] is None


def test_the_bootstrap_sample_size_detects_the_mde_about_as_often_as_the_power_says():
    # Control F1 about 0.5 on balanced labels; the size from the control arm's spread, checked by simulation.
    rng = np.random.default_rng(1)

    def arm(n: int, accuracy: float) -> ArmOutcomes:
        y = rng.integers(0, 2, n)
        prediction = np.where(rng.random(n) < accuracy, y, 1 - y)
        return ArmOutcomes(y, prediction, prediction.astype(float))

    needed = compare_arms("binary", "f1", arm(4000, 0.6), arm(4000, 0.6), POLICY, resamples=300).min_sample_size
    assert needed is not None and 100 < needed < 4000
    detected = [compare_arms("binary", "f1", arm(needed, 0.6), arm(needed, 0.6 + POLICY.mde), POLICY,
                             resamples=200, seed=i).p_value < POLICY.alpha for i in range(40)]
    assert 0.55 <= np.mean(detected) <= 1.0  # power 0.8, within simulation noise


def test_a_lower_is_better_metric_counts_a_smaller_error_as_lift():
    rng = np.random.default_rng(2)
    y = rng.normal(size=3000)
    control = ArmOutcomes(y, y + rng.normal(0, 1.0, 3000), np.zeros(3000))
    treatment = ArmOutcomes(y, y + rng.normal(0, 0.5, 3000), np.zeros(3000))
    comparison = compare_arms("regression", "mae", control, treatment, RolloutPolicy(mde=0.1), resamples=300)
    assert comparison.lift == pytest.approx(comparison.control - comparison.treatment) and comparison.lift > 0.3
    assert comparison.p_value < 0.01 and comparison.lift_ci[0] > 0


def weekly(rng: np.random.Generator, entities: int, weeks: int, accuracy: float, first_id: int = 0) -> ArmOutcomes:
    """One arm whose entities are each scored every week for ``weeks`` weeks with the same label and the same
    decision each time: ``weeks`` rows per entity that carry one entity's worth of evidence."""
    y = rng.integers(0, 2, entities)
    prediction = np.where(rng.random(entities) < accuracy, y, 1 - y)
    ids = np.arange(first_id, first_id + entities)
    return ArmOutcomes(np.tile(y, weeks), np.tile(prediction, weeks), np.tile(prediction, weeks).astype(float),
                       np.tile(ids, weeks))


def without_ids(arm: ArmOutcomes) -> ArmOutcomes:
    return ArmOutcomes(arm.y_true, arm.prediction, arm.probability)


def first_week(arm: ArmOutcomes) -> ArmOutcomes:
    """The same entities served once: the evidence the ten weekly copies really hold."""
    once = len(np.unique(arm.entity))
    return ArmOutcomes(arm.y_true[:once], arm.prediction[:once], arm.probability[:once], arm.entity[:once])


def test_with_no_true_difference_the_entity_bootstrap_keeps_its_false_positive_rate():
    # Both arms as good as each other; each of 300 entities per arm is scored 10 times with the same outcome.
    rng = np.random.default_rng(5)
    by_entity, by_row = [], []
    for seed in range(40):
        control, treatment = weekly(rng, 300, 10, 0.7), weekly(rng, 300, 10, 0.7, first_id=300)
        by_entity.append(compare_arms("binary", "f1", control, treatment, POLICY, resamples=200,
                                      seed=seed).p_value < 0.05)
        by_row.append(compare_arms("binary", "f1", without_ids(control), without_ids(treatment), POLICY,
                                   resamples=200, seed=seed).p_value < 0.05)
    assert np.mean(by_row) > 0.3, "ten copies of each entity read as ten independent rows: significance overstated"
    assert np.mean(by_entity) <= 0.15, f"{np.mean(by_entity):.0%} false positives at alpha 0.05"


def test_ten_weekly_copies_of_each_entity_hold_the_evidence_of_one_week():
    rng = np.random.default_rng(6)
    control, treatment = weekly(rng, 2000, 10, 0.65), weekly(rng, 2000, 10, 0.68, first_id=2000)
    ten = compare_arms("binary", "f1", control, treatment, POLICY, resamples=300)
    once = compare_arms("binary", "f1", first_week(control), first_week(treatment), POLICY, resamples=300)
    assert ten.unit == "entities" and ten.method.startswith("two-sample bootstrap over entities")
    assert ten.lift_ci == pytest.approx(once.lift_ci) and ten.p_value == pytest.approx(once.p_value)
    assert ten.min_sample_size == once.min_sample_size, "the minimum sample counts entities, not rows"
    rows = compare_arms("binary", "f1", without_ids(control), without_ids(treatment), POLICY, resamples=300)
    width = {name: c.lift_ci[1] - c.lift_ci[0] for name, c in (("ten", ten), ("rows", rows))}
    assert width["rows"] < 0.5 * width["ten"], "the row bootstrap's interval is about sqrt(10) too narrow"


def test_the_z_test_divides_repeated_rows_by_their_design_effect():
    rng = np.random.default_rng(7)
    control, treatment = weekly(rng, 3000, 10, 0.70), weekly(rng, 3000, 10, 0.72, first_id=3000)
    ten = compare_arms("multiclass", "accuracy", control, treatment, POLICY)
    once = compare_arms("multiclass", "accuracy", first_week(control), first_week(treatment), POLICY)
    rows = compare_arms("multiclass", "accuracy", without_ids(control), without_ids(treatment), POLICY)
    assert ten.method == "two-proportion z-test (Rao-Scott, clustered by entity)" and ten.unit == "entities"
    # Identical copies: the design effect is 10 k/(k-1), leaving k-1 effective rows of k entities.
    assert ten.statistic == pytest.approx(once.statistic, rel=1e-3) and ten.p_value == pytest.approx(once.p_value,
                                                                                                       rel=0.01)
    assert ten.min_sample_size == pytest.approx(once.min_sample_size, abs=1)
    assert abs(rows.statistic) == pytest.approx(abs(once.statistic) * np.sqrt(10), rel=1e-3)
    assert "design effect 10.00 over 10.00 rows per entity" in ten.sample_size_basis


@pytest.mark.parametrize(("task", "metric"), [("binary", "f1"), ("multiclass", "accuracy"), ("binary", "pr_auc")])
def test_with_one_row_per_entity_the_entity_tests_are_the_row_tests(task: str, metric: str):
    rng = np.random.default_rng(8)
    control, treatment = weekly(rng, 1500, 1, 0.7), weekly(rng, 1500, 1, 0.74, first_id=1500)
    shuffled = ArmOutcomes(control.y_true, control.prediction, control.probability,
                           rng.permutation(control.entity).astype(str))
    for arms in ((control, treatment), (shuffled, treatment)):
        by_entity = compare_arms(task, metric, *arms, POLICY, resamples=200)
        by_row = compare_arms(task, metric, *map(without_ids, arms), POLICY, resamples=200)
        assert (by_entity.p_value, by_entity.lift_ci, by_entity.statistic, by_entity.min_sample_size) == (
            by_row.p_value, by_row.lift_ci, by_row.statistic, by_row.min_sample_size)
        assert by_entity.unit == "entities" and by_row.unit == "rows"


def weekly_log(entities: int = 400, weeks: int = 10) -> pl.DataFrame:
    """A prediction log in which each customer is scored once a week on the arm its id hashes to."""
    rng = np.random.default_rng(9)
    frames = []
    for arm, version, first in (("champion", "1", 0), ("challenger", "2", entities)):
        outcomes = weekly(rng, entities, weeks, 0.7, first_id=first)
        frames.append(arm_log(arm, version, outcomes.y_true, outcomes.prediction, outcomes.probability)
                      .with_columns(customer_id=pl.Series(outcomes.entity).cast(pl.String)))
    return pl.concat(frames)


def test_the_report_says_it_resampled_entities_and_counts_them_against_the_minimum_sample():
    log = weekly_log()
    results = ab_report(log, STATE, task="binary", label="churned", primary="f1", guardrails=[], hypothesis="",
                        name="churn", policy=POLICY, entity_key="customer_id")
    assert results["results"]["sampling_unit"].startswith("entities (customer_id)")
    assert results["results"]["units"] == {"control": 400, "treatment": 400}
    assert results["results"]["labelled"] == {"control": 4000, "treatment": 4000}
    assert results["ab_test"]["minimum_sample_size_basis"].startswith("entities per arm")
    needed = results["ab_test"]["minimum_sample_size"]
    assert needed > 400 and f"sample 400 of {needed} entities in the smaller arm" in results["results"]["reason"]
    assert report(log, "f1")["results"]["sampling_unit"] == "rows"  # without the key: rows, as before


def test_an_entity_key_the_log_lacks_is_named_with_the_fix():
    with pytest.raises(ValueError, match="no column 'customer_id'.*log the entity id"):
        ab_report(multiclass_logs(), STATE, task="multiclass", label="churned", primary="accuracy", guardrails=[],
                  hypothesis="", name="churn", policy=POLICY, entity_key="customer_id")
