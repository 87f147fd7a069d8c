"""The A/B test report: the method's ``ab_test`` template filled in from the prediction log, with the test of the
primary metric, the guardrails and the decision."""

import math
from datetime import datetime
from typing import TypedDict

import numpy as np
import polars as pl

from mlplatform.brief import TaskType
from mlplatform.core.metrics import higher_is_better
from mlplatform.core.rollout.ab_test import ABEvidence, ArmOutcomes, Decision, compare_arms, decide_ab
from mlplatform.core.rollout.canary import degradation_reasons, health_of
from mlplatform.core.rollout.policy import RolloutPolicy
from mlplatform.core.rollout.prediction_log import known_outcomes, outcome_metrics, served_rows
from mlplatform.core.rollout.registry import RolloutState


class ABTestPlan(TypedDict):
    """The method's ``ab_test`` template, filled in."""

    name: str
    hypothesis: str
    primary_metric: str
    guardrail_metrics: list[str]
    traffic_split: dict[str, float]  # control / treatment, percent
    minimum_sample_size: int | None
    minimum_sample_size_basis: str
    minimum_runtime_days: float
    decision_criteria: dict[str, str]  # ship / iterate / kill -> the rule


class ABTestResults(TypedDict):
    """What the prediction log shows for each arm, the primary metric's test and the decision."""

    control_version: str | None
    treatment_version: str | None
    predictions: dict[str, int]
    labelled: dict[str, int]
    primary_metric: dict[str, float | None]  # control / treatment value of the tested metric
    test: str
    sampling_unit: str  # what the test resampled and the minimum sample counts: entities (the key) or rows
    units: dict[str, int]  # control / treatment: distinct entities with a label (or labelled rows)
    metrics: dict[str, dict[str, float]]
    guardrail_breaches: list[str]
    runtime_days: float
    z: float | None
    p_value: float | None
    lift: float | None
    lift_ci: list[float] | None
    decision: Decision
    reason: str


class ABReport(TypedDict):
    """The A/B test report: the plan in the method's template and its results so far."""

    ab_test: ABTestPlan
    results: ABTestResults


def _runtime_days(rows: pl.DataFrame) -> float:
    """Days from the first to the last request of ``rows`` (which has at least one row)."""
    first, last = rows["request_time"].min(), rows["request_time"].max()
    assert isinstance(first, datetime) and isinstance(last, datetime), "request_time is a datetime column"
    return (last - first).total_seconds() / 86_400


def _arm_outcomes(known: pl.DataFrame, label: str, entity_key: str | None) -> ArmOutcomes:
    """One arm's labelled rows as the A/B test reads them; with ``entity_key``, each row's entity id (as text)."""
    if known.height == 0:
        return ArmOutcomes(np.zeros(0), np.zeros(0), np.zeros(0), None if entity_key is None else np.zeros(0, str))
    entity = None if entity_key is None else known[entity_key].cast(pl.String).fill_null("").to_numpy()
    return ArmOutcomes(known[label].to_numpy(), known["prediction"].to_numpy(),
                       known["probability"].fill_null(0.0).to_numpy(), entity)


def ab_report(labelled: pl.DataFrame, state: RolloutState, *, task: TaskType, label: str, primary: str,
              guardrails: list[str], hypothesis: str, name: str, policy: RolloutPolicy,
              entity_key: str | None = None) -> ABReport:
    """The method's A/B template filled from the prediction log (with labels where known), the test and the decision.

    Control is the champion arm as answered by the champion version, treatment the challenger arm as answered
    by the challenger version. The test compares the brief's primary metric (the offline evaluation's) on the
    labelled rows with :func:`compare_arms`; guardrails are the serving health (error rate, p99 latency) and the
    brief's guardrail metrics, each judged by the automatic-rollback rule.

    With ``entity_key`` (the brief's entity key, a column of the prediction log) an entity's repeated predictions
    (a customer scored every week) are one unit: the test resamples entities and the minimum sample counts them.

    Raises:
        ValueError: ``entity_key`` is no column of the logged rows.
    """
    if entity_key is not None and labelled.height and entity_key not in labelled.columns:
        raise ValueError(f"the prediction log has no column '{entity_key}' (the entity key the A/B test resamples "
                         f"by); log the entity id with each prediction, or pass entity_key=None to test rows")
    since = state.canary_since_ns  # the arms side by side: the champion's rows before the canary are no control
    control = served_rows(labelled, state.champion, "champion", since) if labelled.height else labelled
    treatment = served_rows(labelled, state.challenger, "challenger", since) if labelled.height else labelled
    arms = {"control": control, "treatment": treatment}
    metrics: dict[str, dict[str, float]] = {}
    outcomes: dict[str, ArmOutcomes] = {}
    for arm, rows in arms.items():
        known = known_outcomes(rows, label)
        outcomes[arm] = _arm_outcomes(known, label, entity_key)
        metrics[arm] = outcome_metrics(task, known, label)
    breaches = []
    if control.height and treatment.height:
        breaches += degradation_reasons(health_of(treatment, state.challenger), health_of(control, state.champion),
                                        policy, higher_better=True)
    for metric in guardrails:
        old, new = metrics["control"].get(metric), metrics["treatment"].get(metric)
        if old is not None and new is not None and not (math.isnan(old) or math.isnan(new)) and old:
            drop = (old - new) / abs(old) if higher_is_better(metric) else (new - old) / abs(old)
            if drop > policy.max_metric_drop:
                breaches.append(f"{metric} {old:.4f} -> {new:.4f} ({drop:.1%} worse)")
    runtime = _runtime_days(pl.concat([control, treatment])) if control.height and treatment.height else 0.0
    comparison = compare_arms(task, primary, outcomes["control"], outcomes["treatment"], policy)
    # The minimum sample counts the test's unit: entities when the log carries the entity key, else rows.
    units = {arm: outcome.units for arm, outcome in outcomes.items()}
    evidence = ABEvidence(comparison, units["control"], units["treatment"], runtime, breaches)
    result = decide_ab(evidence, policy)
    share = state.challenger_share
    direction = "higher" if higher_is_better(primary) else "lower"
    return {
        "ab_test": {
            "name": name,
            "hypothesis": hypothesis or f"version {state.challenger} beats version {state.champion} on {primary}",
            "primary_metric": f"{primary} (the brief's primary metric, {direction} is better; tested with "
                              f"{comparison.method})",
            "guardrail_metrics": [*guardrails, "serving error rate", "p99 latency"],
            "traffic_split": {"control": round(100 * (1 - share), 2), "treatment": round(100 * share, 2)},
            "minimum_sample_size": comparison.min_sample_size,
            "minimum_sample_size_basis": comparison.sample_size_basis,
            "minimum_runtime_days": policy.min_runtime_days,
            "decision_criteria": {
                "ship": f"Treatment > control on {primary} by >{policy.mde} (absolute) with p<{policy.alpha}, the "
                        f"minimum sample ({comparison.unit}) reached in the smaller arm, AND no guardrail "
                        "regression",
                "iterate": "Promising signal but not significant — extend test or refine model",
                "kill": "No improvement after 2x minimum runtime OR guardrail breach"},
        },
        "results": {
            "control_version": state.champion, "treatment_version": state.challenger,
            "predictions": {"control": control.height, "treatment": treatment.height},
            "labelled": {"control": outcomes["control"].rows, "treatment": outcomes["treatment"].rows},
            "primary_metric": {"control": comparison.control, "treatment": comparison.treatment},
            "test": comparison.method,
            "sampling_unit": (f"entities ({entity_key}): an entity's repeated predictions are one unit"
                              if comparison.unit == "entities" else "rows"),
            "units": units,
            "metrics": metrics, "guardrail_breaches": breaches, "runtime_days": round(runtime, 3),
            "z": result.z, "p_value": result.p_value, "lift": result.lift,
            "lift_ci": list(comparison.lift_ci) if comparison.lift_ci else None,
            "decision": result.decision, "reason": result.reason,
        },
    }
