"""A/B statistics, canary steps, the rollback rule and the registry's promotion history (real MLflow on SQLite)."""

import math
import multiprocessing
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from scipy.stats import chi2_contingency, norm

from mlplatform.brief import DEMO_BRIEF, BriefError, load_brief
from mlplatform.core.rollout.ab_report import ab_report
from mlplatform.core.rollout.ab_test import (
    ABEvidence,
    MetricComparison,
    decide_ab,
    min_sample_size,
    two_proportion_test,
)
from mlplatform.core.rollout.assignment import assign_arm
from mlplatform.core.rollout.canary import (
    ArmHealth,
    ServingJudge,
    canary_move,
    degradation_reasons,
    health_of,
    health_with_metric,
    next_canary_step,
    rollback_reasons,
)
from mlplatform.core.rollout.policy import RolloutPolicy, policy_for
from mlplatform.core.rollout.prediction_log import attach_labels, known_outcomes, model_answers
from mlplatform.core.rollout.registry import (
    RolloutState,
    champion_history,
    promote,
    rollback,
    rollout_state,
    set_challenger_share,
)
from mlplatform.core.tracking import client_for
from mlplatform_tests.core.model_registry import registry_with_versions

MODEL = "shop_model"
POLICY = RolloutPolicy(min_rows=100)
AB_POLICY = RolloutPolicy(min_rows=100, mde=0.05)  # detectable with a sample a test builds quickly


def power_at(n: int, p1: float, p2: float, alpha: float) -> float:
    """Power of the two-sided pooled z-test with n rows per arm (normal approximation, both tails)."""
    pooled = (p1 + p2) / 2
    se0 = math.sqrt(2 * pooled * (1 - pooled) / n)
    se1 = math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n)
    z = norm.ppf(1 - alpha / 2)
    delta = abs(p2 - p1)
    return norm.sf((z * se0 - delta) / se1) + norm.cdf((-z * se0 - delta) / se1)


@pytest.mark.parametrize(("p", "mde"), [(0.5, 0.1), (0.1, 0.02), (0.85, 0.03), (0.3, -0.05)])
def test_sample_size_is_the_smallest_with_the_wanted_power(p, mde):
    n = min_sample_size(p, mde, alpha=0.05, power=0.8)
    # The formula drops the far tail, so its n reaches the power and n - 2 no longer does.
    assert power_at(n, p, p + mde, 0.05) >= 0.8
    assert power_at(n - 2, p, p + mde, 0.05) < 0.8


def test_sample_size_matches_the_textbook_value():
    # By hand: (1.95996 * sqrt(2 * .55 * .45) + 0.84162 * sqrt(.25 + .24))^2 / 0.1^2 = 387.3, so 388 per arm.
    assert min_sample_size(0.5, 0.1) == 388


def test_sample_size_rejects_impossible_proportions():
    with pytest.raises(ValueError, match="p_control"):
        min_sample_size(0.99, 0.02)


@pytest.mark.parametrize(("p", "mde"), [
    (0.0, 0.05),    # a control that is never right: 0 is no proportion to test from
    (1.0, -0.05),   # a control that is always right
    (0.05, -0.05),  # the treatment's rate would be exactly 0
    (0.95, 0.05),   # ... or exactly 1
    (0.5, 0.0),     # no effect to detect
])
def test_sample_size_needs_both_rates_strictly_inside_zero_and_one_and_an_effect(p, mde):
    # The A/B test then has no sample size (unknown), so it cannot ship; never a number from a degenerate formula.
    with pytest.raises(ValueError, match="p_control"):
        min_sample_size(p, mde)


@pytest.mark.parametrize(("a", "n_a", "b", "n_b"), [(120, 1000, 150, 1000), (45, 300, 30, 280), (7, 50, 9, 61)])
def test_z_test_equals_the_chi_square_test_of_the_2x2_table(a, n_a, b, n_b):
    z, p = two_proportion_test(a, n_a, b, n_b)
    chi2, p_chi2, _, _ = chi2_contingency([[a, n_a - a], [b, n_b - b]], correction=False)
    assert z**2 == pytest.approx(chi2)
    assert p == pytest.approx(p_chi2)
    assert (z > 0) == (b / n_b > a / n_a)


def test_z_test_of_identical_degenerate_arms_is_no_difference():
    assert two_proportion_test(10, 10, 20, 20) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes"):
        two_proportion_test(11, 10, 1, 2)


def rate_evidence(correct_a: int, n_a: int, correct_b: int, n_b: int, runtime_days: float, policy=POLICY,
                  breaches: list[str] | None = None) -> ABEvidence:
    """Evidence of an accuracy A/B test: correct predictions per arm, tested with the two-proportion z-test."""
    z, p = two_proportion_test(correct_a, n_a, correct_b, n_b)
    level = correct_a / n_a
    comparison = MetricComparison("accuracy", "two-proportion z-test", level, correct_b / n_b,
                                  correct_b / n_b - level, z, p, None,
                                  min_sample_size(level, policy.mde, policy.alpha, policy.power), "")
    return ABEvidence(comparison, n_a, n_b, runtime_days, breaches or [])


def evidence(lift: float, *, p: float = 0.001, needed: int = 1000, n_control: int = 5000, n_treatment: int = 5000,
             runtime_days: float = 8) -> ABEvidence:
    return ABEvidence(MetricComparison("f1", "two-sample bootstrap", 0.4, 0.4 + lift, lift, None, p, None, needed, ""),
                      n_control, n_treatment, runtime_days)


def test_ab_ships_a_significant_win_after_the_sample_and_the_runtime():
    result = decide_ab(rate_evidence(7000, 10_000, 7400, 10_000, runtime_days=8), POLICY)
    assert result.decision == "ship", result.reason
    assert result.lift == pytest.approx(0.04) and result.p_value < 0.05
    # z = 0.04 / sqrt(0.72 * 0.28 * (1/10000 + 1/10000)) = 6.2994 (pooled rate 0.72)
    assert result.z == pytest.approx(6.2994, abs=1e-4)
    assert result.min_sample_size == min_sample_size(0.7, POLICY.mde)


def test_ab_iterates_while_the_runtime_or_sample_is_short():
    short = decide_ab(rate_evidence(7000, 10_000, 7400, 10_000, runtime_days=3), POLICY)
    assert short.decision == "iterate" and "runtime 3.0 of 7.0 days" in short.reason
    small = decide_ab(rate_evidence(70, 100, 80, 100, runtime_days=10), POLICY)
    assert small.decision == "iterate" and "sample 100 of" in small.reason


def test_ab_kills_after_twice_the_runtime_without_a_win_or_on_a_guardrail_breach():
    flat = decide_ab(rate_evidence(7000, 10_000, 7010, 10_000, runtime_days=14), POLICY)
    assert flat.decision == "kill" and "2x the minimum runtime" in flat.reason
    breach = decide_ab(rate_evidence(7000, 10_000, 7400, 10_000, 8, breaches=["p99 latency"]), POLICY)
    assert breach.decision == "kill" and "p99 latency" in breach.reason


def test_ship_needs_a_lift_above_the_mde_not_just_above_zero():
    mde = POLICY.mde
    assert decide_ab(evidence(mde / 2), POLICY).decision == "iterate"
    assert decide_ab(evidence(mde), POLICY).decision == "iterate", "a lift equal to the MDE is not more than it"
    assert decide_ab(evidence(mde + 1e-6), POLICY).decision == "ship"
    assert decide_ab(evidence(mde + 0.01, p=POLICY.alpha), POLICY).decision == "iterate", "p must be below alpha"


def test_ship_needs_the_minimum_sample_in_the_smaller_arm():
    # The larger arm alone reaching the sample is not enough, whichever arm it is.
    for control, treatment in ((5000, 999), (999, 5000)):
        short = decide_ab(evidence(0.05, n_control=control, n_treatment=treatment), POLICY)
        assert short.decision == "iterate" and "sample 999 of 1000 rows in the smaller arm" in short.reason
    assert decide_ab(evidence(0.05, n_control=1000, n_treatment=5000), POLICY).decision == "ship"


def test_ship_from_the_minimum_runtime_on_and_kill_from_twice_it_on():
    # The policy's minimum runtime is 7 days (the method's default): a clear win ships on day 7, not on 6.9.
    assert decide_ab(evidence(0.05, runtime_days=7), POLICY).decision == "ship"
    early = decide_ab(evidence(0.05, runtime_days=6.9), POLICY)
    assert early.decision == "iterate" and "runtime 6.9 of 7.0 days" in early.reason
    # Without a win the test is killed on day 14 (2 x 7), not on 13.9.
    assert decide_ab(evidence(0.0, p=0.9, runtime_days=14), POLICY).decision == "kill"
    assert decide_ab(evidence(0.0, p=0.9, runtime_days=13.9), POLICY).decision == "iterate"


@pytest.mark.parametrize(("runtime_days", "decision"), [(14, "kill"), (8, "iterate")])
def test_a_kill_or_iterate_reports_the_comparisons_statistic_p_value_lift_and_sample(runtime_days, decision):
    # The A/B report prints these numbers whatever the decision; they are the comparison's, unchanged.
    flat = MetricComparison("accuracy", "two-proportion z-test", 0.70, 0.701, 0.001, 0.3, 0.76, None, 1200, "")
    result = decide_ab(ABEvidence(flat, 5000, 5000, runtime_days), POLICY)
    assert (result.decision, result.z, result.p_value, result.lift, result.min_sample_size) == (
        decision, 0.3, 0.76, 0.001, 1200)


@pytest.mark.parametrize(("n_control", "n_treatment"), [(0, 5000), (5000, 0)])
def test_an_arm_without_labelled_rows_is_not_judged_even_after_twice_the_runtime(n_control, n_treatment):
    # With both arms labelled, 14 days (2x the 7-day minimum) of a flat lift is a kill; one empty arm means the
    # test has not run, so it keeps collecting, and still says which sample it needs.
    assert decide_ab(evidence(0.0, p=0.9, runtime_days=14), POLICY).decision == "kill"
    waiting = decide_ab(evidence(0.0, p=0.9, n_control=n_control, n_treatment=n_treatment, runtime_days=14), POLICY)
    assert (waiting.decision, waiting.min_sample_size) == ("iterate", 1000)
    assert (waiting.z, waiting.p_value, waiting.lift) == (None, None, None)


@pytest.mark.parametrize(("lift", "p"), [(0.1, None), (None, 0.001)])
def test_a_comparison_without_a_lift_or_a_p_value_iterates(lift, p):
    # A bootstrap whose resampled lifts were all undefined has a lift but no p-value: nothing to ship or kill on.
    result = decide_ab(ABEvidence(MetricComparison("f1", "two-sample bootstrap", 0.4, None, lift, None, p, None,
                                                   1000, ""), 5000, 5000, 14), POLICY)
    assert (result.decision, result.min_sample_size) == ("iterate", 1000)


def test_arm_assignment_is_stable_nested_and_close_to_the_share():
    ids = range(20_000)
    at_5 = {i for i in ids if assign_arm(i, 0.05, MODEL) == "challenger"}
    at_25 = {i for i in ids if assign_arm(i, 0.25, MODEL) == "challenger"}
    assert at_5 <= at_25, "raising the share keeps the canary's entities on the challenger"
    assert len(at_5) / 20_000 == pytest.approx(0.05, abs=0.01)
    assert len(at_25) / 20_000 == pytest.approx(0.25, abs=0.015)
    assert at_5 == {i for i in ids if assign_arm(i, 0.05, MODEL) == "challenger"}
    assert {i for i in ids if assign_arm(i, 0.05, "other_model") == "challenger"} != at_5


def test_rollback_rule_fires_on_2x_errors_or_latency_or_a_5_percent_metric_drop():
    base = ArmHealth(rows=1000, errors=10, p99_ms=5.0, metric=0.60)
    assert degradation_reasons(ArmHealth(1000, 19, 9.9, 0.58), base, POLICY, higher_better=True) == []
    reasons = degradation_reasons(ArmHealth(1000, 21, 10.1, 0.56), base, POLICY, higher_better=True)
    assert [r.split()[0] for r in reasons] == ["error", "p99", "primary"]
    # p99 of fewer than 1,000 rows is one of a handful of slowest requests: not judged, however slow, on either arm.
    few = RolloutPolicy(min_rows=50)
    assert degradation_reasons(ArmHealth(999, 0, 30.0), ArmHealth(1000, 0, 5.0), few, higher_better=True) == []
    assert degradation_reasons(ArmHealth(1000, 0, 30.0), ArmHealth(999, 0, 5.0), few, higher_better=True) == []
    assert degradation_reasons(ArmHealth(1000, 0, 30.0), ArmHealth(1000, 0, 5.0), few, True)[0].startswith("p99")
    # Lower-is-better metrics drop when they rise.
    assert degradation_reasons(ArmHealth(1000, 0, 5, 0.64), ArmHealth(1000, 0, 5, 0.60), POLICY, False)
    # Too few rows: error rate and latency are not judged yet; zero baseline errors use the floor.
    assert degradation_reasons(ArmHealth(50, 50, 100.0), base, POLICY, True) == []
    assert degradation_reasons(ArmHealth(1000, 1, 5.0), ArmHealth(1000, 0, 5.0), POLICY, True) == []


def test_the_rollback_rule_at_its_boundaries():
    policy = RolloutPolicy(min_rows=100, degradation_factor=2.0, error_rate_floor=0.01, max_metric_drop=0.05)
    # Both arms at exactly min_rows are judged: 100 errors in 100 rows against none.
    assert [r.split()[0] for r in degradation_reasons(ArmHealth(100, 100, 5.0), ArmHealth(100, 0, 5.0), policy,
                                                      True)] == ["error"]
    # Exactly twice the baseline's error rate (0.10 vs 0.05) or p99 latency (10 ms vs 5 ms) is not above it.
    assert degradation_reasons(ArmHealth(1000, 100, 10.0), ArmHealth(1000, 50, 5.0), policy, True) == []
    assert [r.split()[0] for r in degradation_reasons(ArmHealth(1000, 101, 10.01), ArmHealth(1000, 50, 5.0),
                                                      policy, True)] == ["error", "p99"]
    # A perfect baseline metric (1.0) still counts a drop: 1.0 -> 0.90 is 10% > 5%.
    assert [r.split()[0] for r in degradation_reasons(ArmHealth(1000, 0, 5.0, 0.90), ArmHealth(1000, 0, 5.0, 1.0),
                                                      policy, True)] == ["primary"]
    # A drop of exactly the allowed share is no breach: 1.0 -> 0.75 against 25% (all exact in binary).
    quarter = RolloutPolicy(min_rows=100, max_metric_drop=0.25)
    assert degradation_reasons(ArmHealth(1000, 0, 5.0, 0.75), ArmHealth(1000, 0, 5.0, 1.0), quarter, True) == []
    assert degradation_reasons(ArmHealth(1000, 0, 5.0, 0.74), ArmHealth(1000, 0, 5.0, 1.0), quarter, True)


def test_canary_walks_5_25_50_then_promotes_and_aborts_on_a_breach():
    healthy = ArmHealth(rows=500, errors=0, p99_ms=4.0)
    idle = next_canary_step(0.0, healthy, [], POLICY)
    assert (idle.action, idle.share) == ("hold", 0.0), "a canary never starts by itself"
    share, path = 0.05, []
    for _ in range(3):
        step = next_canary_step(share, healthy, [], POLICY)
        path.append((step.action, step.share))
        share = step.share
    assert path == [("advance", 0.25), ("advance", 0.5), ("promote", 1.0)]
    short = next_canary_step(0.25, ArmHealth(20, 0, 4.0), [], POLICY)
    assert (short.action, short.share) == ("hold", 0.25), "too few predictions: stay at the current share"
    # A challenger already on all traffic (no step above 100%) is promoted there, never sent back down a step.
    assert (next_canary_step(1.0, healthy, [], POLICY).action, next_canary_step(1.0, healthy, [], POLICY).share) == (
        "promote", 1.0)
    abort = next_canary_step(0.25, healthy, ["p99 latency 9 ms > 2x"], POLICY)
    assert (abort.action, abort.share) == ("abort", 0.0) and "p99" in abort.reason


def test_policy_rejects_steps_that_do_not_end_at_full_traffic():
    with pytest.raises(ValueError, match="canary_steps"):
        RolloutPolicy(canary_steps=(0.05, 0.5))


def test_health_and_labels_from_a_prediction_log():
    t0 = datetime(2025, 9, 1, 12)
    log = pl.DataFrame({
        "request_time": [t0 + timedelta(minutes=i) for i in range(6)],
        "customer_id": [1, 2, 3, 1, 2, 3],
        "model_version": ["1", "1", "1", "2", "2", None],
        "status": ["ok", "ok", "error", "ok", "timeout", "ok"],
        "latency_ms": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "prediction": [1.0, 0.0, None, 1.0, None, 0.0],
    })
    v1 = health_of(log, "1")
    assert (v1.rows, v1.errors, v1.p99_ms) == (3, 1, 3.0)
    assert health_of(log, None).rows == 1 and health_of(log, "9").rows == 0
    # Batch predictions (arm batch) are not served traffic: they never count toward a version's health.
    batch = log.with_columns(arm=pl.lit("champion")).vstack(pl.DataFrame({
        "request_time": [t0] * 50, "customer_id": list(range(50)), "model_version": ["1"] * 50,
        "status": ["ok"] * 50, "latency_ms": [0.1] * 50, "prediction": [0.0] * 50, "arm": ["batch"] * 50}))
    assert health_of(batch, "1") == v1
    labels = pl.DataFrame({"customer_id": [1, 2, 3, 1], "snapshot_date": [datetime(2025, 9, 1).date()] * 3 +
                           [datetime(2025, 6, 1).date()], "churned": [1, 1, 0, 0]})
    labelled = attach_labels(log, labels, "customer_id", "snapshot_date", "churned", window_days=30)
    assert labelled.sort("request_time")["churned"].to_list() == [1, 1, 0, 1, 1, 0]
    stale = attach_labels(log.with_columns(pl.col("request_time") + timedelta(days=40)), labels, "customer_id",
                          "snapshot_date", "churned", window_days=30)
    assert stale["churned"].null_count() == 6


def test_model_answers_and_known_outcomes_keep_only_what_a_model_scored_and_a_label_judges():
    log = pl.DataFrame({
        "model_version": ["1", "1", "1", None, "1", "1"],
        "status": ["ok", "ok", "error", "ok", "ok", "timeout"],
        "fallback": [False, False, False, True, False, False],
        "latency_ms": [1.0, 2.0, 3.0, 1.0, 2.0, 9.0],
        "prediction": [1, 0, None, 1, 1, None],
        "probability": [0.9, 0.2, None, 0.6, None, None],
        "churned": [1, 1, None, 1, None, 0],
    })
    assert model_answers(log, "probability")["latency_ms"].to_list() == [1.0, 2.0]
    assert known_outcomes(log, "churned")["latency_ms"].to_list() == [1.0, 2.0, 1.0]
    health = health_with_metric(log, "1", task="binary", label="churned", primary="recall")
    # Version 1: five rows, two failed; its two labelled answers are one hit of two positives.
    assert (health.rows, health.errors, health.metric) == (5, 2, 0.5)
    unlabelled = health_with_metric(log.with_columns(pl.lit(None, pl.Int64).alias("churned")), "1", task="binary",
                                    label="churned", primary="recall")
    assert unlabelled.metric is None and unlabelled.rows == 5


@pytest.fixture()
def registry(tmp_path) -> tuple[str, list[str]]:
    """A SQLite registry holding four versions of one model (registered from runs, like the graph does)."""
    uri, versions = registry_with_versions(tmp_path, MODEL, 4)
    return uri, [version for version, _ in versions]


def test_rollback_walks_back_through_the_promotion_history(registry):
    uri, (v1, v2, v3, _) = registry
    assert promote(uri, MODEL, v1) is None
    assert promote(uri, MODEL, v2) == v1
    assert promote(uri, MODEL, v3) == v2
    set_challenger_share(uri, MODEL, 0.25)
    assert [row["version"] for row in champion_history(uri, MODEL)] == [v3, v2, v1]
    assert rollback(uri, MODEL) == (v3, v2)
    state = rollout_state(uri, MODEL)
    assert (state.champion, state.challenger_share) == (v2, 0.0)
    assert rollback(uri, MODEL) == (v2, v1), "never back to the rolled-back version"
    with pytest.raises(LookupError, match="no earlier champion"):
        rollback(uri, MODEL)
    promote(uri, MODEL, v3)  # a rolled-back version promoted again is a champion again
    assert rollback(uri, MODEL) == (v3, v1)


def test_rollback_without_a_champion_or_model_says_so(registry, tmp_path):
    uri, _ = registry
    with pytest.raises(LookupError, match="no champion"):
        rollback(uri, MODEL)
    with pytest.raises(LookupError, match="no model 'missing'"):
        rollout_state(uri, "missing")


def _promote_many(uri: str, version: str, rounds: int, start: multiprocessing.Barrier) -> None:
    start.wait()
    for _ in range(rounds):
        promote(uri, MODEL, version)


def test_racing_promotions_leave_exactly_one_champion_and_a_consistent_history(registry):
    uri, (v1, v2, v3, v4) = registry
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(3)
    workers = [ctx.Process(target=_promote_many, args=(uri, version, 15, start)) for version in (v2, v3, v4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    aliases = client_for(uri).get_registered_model(MODEL).aliases
    assert list(aliases).count("champion") == 1
    champion = str(aliases["champion"])
    assert champion in (v2, v3, v4)
    # Each promotion's history tag and alias move happened together: the newest promotion is the champion.
    assert champion_history(uri, MODEL)[0]["version"] == champion
    assert np.isin([row["version"] for row in champion_history(uri, MODEL)], [v2, v3, v4]).all()
    assert v1 not in aliases.values()


def labelled_log(correct: dict[str, float], rows: int, days: float, latency: dict[str, float]) -> pl.DataFrame:
    """A labelled prediction log of a champion (v1) and challenger (v2) with the given success rates."""
    rng = np.random.default_rng(0)
    frames = []
    for arm, version in (("champion", "1"), ("challenger", "2")):
        label = rng.integers(0, 2, rows)
        right = rng.random(rows) < correct[arm]
        prediction = np.where(right, label, 1 - label).astype(float)
        frames.append(pl.DataFrame({
            "request_time": [datetime(2025, 9, 1) + timedelta(days=days * i / rows) for i in range(rows)],
            "model_version": version, "arm": arm, "status": "ok", "latency_ms": latency[arm],
            "prediction": prediction, "probability": np.clip(prediction * 0.8 + rng.random(rows) * 0.2, 0, 1),
            "churned": label}))
    return pl.concat(frames).with_columns(pl.col("request_time").dt.replace_time_zone("UTC"))


def ab(log: pl.DataFrame, state: RolloutState) -> dict:
    return ab_report(log, state, task="binary", label="churned", primary="f1", guardrails=["roc_auc"],
                     hypothesis="v2 converts better", name="churn v2", policy=AB_POLICY)


def test_ab_report_fills_the_method_template_and_ships_a_clear_win():
    state = RolloutState("1", "2", 0.5)
    report = ab(labelled_log({"champion": 0.70, "challenger": 0.80}, 3000, 8, {"champion": 2, "challenger": 2}),
                state)
    template, results = report["ab_test"], report["results"]
    assert set(template) >= {"name", "hypothesis", "primary_metric", "guardrail_metrics", "traffic_split",
                             "minimum_sample_size", "minimum_runtime_days", "decision_criteria"}
    assert template["traffic_split"] == {"control": 50.0, "treatment": 50.0}
    assert template["primary_metric"].startswith("f1 (the brief's primary metric")
    assert results["test"] == "two-sample bootstrap (1000 resamples)"
    assert template["minimum_sample_size"] < 3000 and "control f1" in template["minimum_sample_size_basis"]
    values = results["primary_metric"]
    assert values["control"] == pytest.approx(results["metrics"]["control"]["f1"])
    assert results["lift"] == pytest.approx(values["treatment"] - values["control"]) and results["p_value"] < 0.01
    assert results["lift_ci"][0] > AB_POLICY.mde
    assert results["decision"] == "ship", results["reason"]


def test_ab_report_kills_a_treatment_that_breaches_the_latency_guardrail():
    report = ab(labelled_log({"champion": 0.70, "challenger": 0.80}, 3000, 8, {"champion": 2, "challenger": 9}),
                RolloutState("1", "2", 0.5))
    assert report["results"]["decision"] == "kill"
    assert "p99 latency" in report["results"]["reason"]


# --- the brief's rollout section ----------------------------------------------------------------------------------

def demo_brief_with(tmp_path, rollout: dict | None, **monitoring) -> Path:
    """The demo brief with its ``rollout`` section replaced (None: removed) and ``monitoring`` fields set."""
    raw = yaml.safe_load(DEMO_BRIEF.read_text())
    raw.pop("rollout", None)
    if rollout is not None:
        raw["rollout"] = rollout
    raw["monitoring"].update(monitoring)
    path = tmp_path / "brief.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_the_briefs_canary_steps_and_min_rows_set_the_canary_progression(tmp_path):
    policy = policy_for(load_brief(demo_brief_with(tmp_path, {"canary_steps": [0.1, 0.6, 1.0], "min_rows": 50})))
    healthy = ArmHealth(rows=50, errors=0, p99_ms=4.0)
    share, path = policy.canary_steps[0], []
    while share < 1.0:
        step = next_canary_step(share, healthy, [], policy)
        path.append((step.action, step.share))
        share = step.share
    assert (policy.canary_steps[0], path) == (0.1, [("advance", 0.6), ("promote", 1.0)])
    assert next_canary_step(0.1, ArmHealth(49, 0, 4.0), [], policy).action == "hold"


def test_the_briefs_ab_settings_and_metric_drop_reach_the_decisions(tmp_path):
    section = {"mde": 0.03, "alpha": 0.01, "power": 0.9, "min_runtime_days": 3, "degradation_factor": 3.0}
    policy = policy_for(load_brief(demo_brief_with(tmp_path, section, max_metric_drop=0.2)))
    found = rate_evidence(7000, 10_000, 7400, 10_000, runtime_days=4, policy=policy)
    assert decide_ab(found, policy).decision == "ship", "4 days pass the brief's 3-day minimum runtime"
    assert decide_ab(found, POLICY).decision == "iterate", "the method's 7 days do not"
    assert decide_ab(found, policy).min_sample_size == min_sample_size(0.7, 0.03, alpha=0.01, power=0.9)
    base = ArmHealth(rows=1000, errors=10, p99_ms=5.0, metric=0.60)
    within_the_briefs_limits = ArmHealth(1000, 25, 12.0, 0.50)
    assert degradation_reasons(within_the_briefs_limits, base, policy, higher_better=True) == []
    assert len(degradation_reasons(within_the_briefs_limits, base, POLICY, higher_better=True)) == 3
    assert len(degradation_reasons(ArmHealth(1000, 31, 16.0, 0.47), base, policy, higher_better=True)) == 3


def test_a_brief_without_a_rollout_section_gets_the_methods_values_which_the_demo_spells_out(tmp_path):
    without = load_brief(demo_brief_with(tmp_path, None))
    defaults = (0.02, 0.05, 0.8, 7.0, (0.05, 0.25, 0.5, 1.0), 2.0, 200, 0.001)
    policy = policy_for(without)
    assert (policy.mde, policy.alpha, policy.power, policy.min_runtime_days, policy.canary_steps,
            policy.degradation_factor, policy.min_rows, policy.error_rate_floor) == defaults
    assert policy == RolloutPolicy(max_metric_drop=without.monitoring.max_metric_drop)
    assert policy_for(load_brief(DEMO_BRIEF)) == policy


@pytest.mark.parametrize(("section", "error"), [
    ({"canary_steps": [0.05, 0.5, 0.25, 1.0]}, "rollout.canary_steps: canary_steps must rise strictly"),
    ({"canary_steps": [0.05, 0.25, 0.5]}, "and end at 1.0 (all traffic); got [0.05, 0.25, 0.5]"),
    ({"canary_steps": [0, 0.5, 1.0]}, "rollout.canary_steps: canary_steps must rise strictly within (0, 1]"),
    ({"canary_steps": []}, "rollout.canary_steps: "),
    ({"alpha": 1.5}, "rollout.alpha: Input should be less than 1"),
    ({"degradation_factor": 1.0}, "rollout.degradation_factor: Input should be greater than 1"),
    ({"canary_step": [0.5, 1.0]}, "rollout.canary_step: is not a known field"),
])
def test_a_bad_rollout_section_is_one_error_naming_the_field(tmp_path, section, error):
    with pytest.raises(BriefError) as raised:
        load_brief(demo_brief_with(tmp_path, section))
    problems = str(raised.value).splitlines()[1:]
    assert len(problems) == 1 and error in problems[0], problems


JUDGE = ServingJudge(task="binary", label="churned", primary="f1", policy=POLICY)


def test_the_rollback_rule_judges_the_champion_against_the_champion_before_it():
    # Both versions answered on the champion arm: v1 before, v2 (the current champion) after its promotion.
    log = labelled_log({"champion": 0.80, "challenger": 0.80}, 1000, 8,  # p99 is judged from 1,000 rows an arm
                       {"champion": 2, "challenger": 9}).with_columns(arm=pl.lit("champion"))
    state = RolloutState("2", None, 0.0)
    assert rollback_reasons(JUDGE, log, state, "1")[0].startswith("p99 latency 9.00 ms > 2.0x baseline 2.00 ms")
    assert rollback_reasons(JUDGE, log.with_columns(latency_ms=pl.lit(2.0)), state, "1") == []
    assert rollback_reasons(JUDGE, log, state, None) is None, "no earlier champion: nothing to judge"
    assert rollback_reasons(JUDGE, log.clear(), state, "1") is None, "no predictions: nothing to judge"


def test_the_canary_moves_on_the_challengers_health_since_its_share_and_the_ab_decision():
    log = labelled_log({"champion": 0.70, "challenger": 0.80}, 1000, 8, {"champion": 2, "challenger": 2})
    at_50 = RolloutState("1", "2", 0.5)
    assert canary_move(JUDGE, log, at_50, "ship", "wins").action == "promote"
    assert canary_move(JUDGE, log, at_50, "iterate", "collecting").action == "hold"
    assert canary_move(JUDGE, log, RolloutState("1", "2", 0.05), "iterate", "collecting").share == 0.25
    slow = log.with_columns(latency_ms=pl.when(pl.col("arm") == "challenger").then(9.0).otherwise(2.0))
    assert canary_move(JUDGE, slow, at_50, "ship", "wins").action == "abort"
    # Rows from before the share was set do not count for the step: none left, so the step holds.
    later = RolloutState("1", "2", 0.5, share_since_ns=int(datetime(2026, 1, 1).timestamp() * 1e9))
    assert canary_move(JUDGE, log, later, "ship", "wins").action == "hold"
