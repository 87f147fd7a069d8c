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
