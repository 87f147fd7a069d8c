"""Serving health from the prediction log, the method's automatic-rollback rule and the canary steps, and the
serving guard that applies both to the labelled log."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import polars as pl

from mlplatform.brief import Brief, TaskType
from mlplatform.core.metrics import higher_is_better
from mlplatform.core.rollout.ab_test import Decision
from mlplatform.core.rollout.policy import RolloutPolicy, policy_for
from mlplatform.core.rollout.prediction_log import outcome_metrics, served_rows

if TYPE_CHECKING:  # the registry module needs MLflow; the guard only reads its state
    from mlplatform.core.rollout.registry import RolloutState


@dataclass(frozen=True)
class ArmHealth:
    """How one model version served: rows answered, failed rows, p99 latency, and the primary metric on the
    rows whose labels are known (None while none are)."""

    rows: int
    errors: int
    p99_ms: float
    metric: float | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.rows if self.rows else 0.0


def _version_rows(log: pl.DataFrame, version: str | None) -> pl.DataFrame:
    return log.filter(pl.col("model_version").is_null() if version is None else pl.col("model_version") == version)


def health_of(log: pl.DataFrame, version: str | None) -> ArmHealth:
    """Serving health of ``version`` (the rules fallback when None) from prediction-log rows; batch predictions
    (``arm`` batch) are not served traffic and are left out."""
    rows = _version_rows(log, version)
    if "arm" in rows.columns:
        rows = rows.filter(pl.col("arm").fill_null("") != "batch")
    if rows.height == 0:
        return ArmHealth(0, 0, 0.0)
    errors = rows.filter(pl.col("status") != "ok").height
    p99 = rows["latency_ms"].quantile(0.99, "higher")
    assert p99 is not None, "the serving app records a latency for every logged prediction"
    return ArmHealth(rows.height, errors, p99)


# Rows an arm needs before its p99 latency is judged: ten requests in its slowest 1%. With fewer the "99th
# percentile" is one of the two or three slowest requests (of 100, the slowest), and a garbage-collection pause, a
# cold call or a moment of CPU contention on the host rolls a healthy model back: the live loop's canary was aborted
# at 25% on a loaded machine with 230 challenger requests, p99 49.7 ms against 23.3 ms, medians 4.6 and 5.1 ms.
P99_MIN_ROWS = 1000


def degradation_reasons(candidate: ArmHealth, baseline: ArmHealth, policy: RolloutPolicy,
                        higher_better: bool) -> list[str]:
    """The method's automatic-rollback rule: error rate or p99 latency above ``degradation_factor`` x the
    baseline's, or the primary metric worse by more than ``max_metric_drop`` (relative). Empty: healthy.

    Error rate is judged once both have ``min_rows``, p99 latency once both also have :data:`P99_MIN_ROWS`, the
    metric once both have one.
    """
    reasons = []
    factor = policy.degradation_factor
    if min(candidate.rows, baseline.rows) >= policy.min_rows:
        floor = policy.error_rate_floor
        if max(candidate.error_rate, floor) > factor * max(baseline.error_rate, floor):
            reasons.append(f"error rate {candidate.error_rate:.4f} > {factor}x baseline {baseline.error_rate:.4f}")
        if min(candidate.rows, baseline.rows) >= P99_MIN_ROWS and candidate.p99_ms > factor * baseline.p99_ms:
            reasons.append(f"p99 latency {candidate.p99_ms:.2f} ms > {factor}x baseline {baseline.p99_ms:.2f} ms")
    if candidate.metric is not None and baseline.metric is not None and baseline.metric != 0:
        change = (candidate.metric - baseline.metric) / abs(baseline.metric)
        drop = -change if higher_better else change
        if drop > policy.max_metric_drop:
            reasons.append(f"primary metric {baseline.metric:.4f} -> {candidate.metric:.4f}: a {drop:.1%} drop "
                           f"> {policy.max_metric_drop:.0%}")
    return reasons


@dataclass(frozen=True)
class CanaryStep:
    """The canary's next move: ``share`` is the challenger's traffic share after it."""

    action: Literal["hold", "advance", "promote", "abort"]
    share: float
    reason: str


def next_canary_step(share: float, candidate: ArmHealth, reasons: list[str], policy: RolloutPolicy) -> CanaryStep:
    """Advance the challenger one of ``policy.canary_steps`` (by default 5% -> 25% -> 50% -> 100%) when its
    guardrails hold on enough traffic.

    Args:
        share: the challenger's current traffic share (0: no canary running, which this never starts).
        candidate: the challenger's health at this share.
        reasons: :func:`degradation_reasons` of the challenger against the champion.
        policy: the steps and the evidence each step needs.

    Returns:
        abort (share 0) on any breach; hold while no canary runs or the step has fewer than ``min_rows``
        predictions; advance to the next step; promote when the next step is the last (all traffic).
    """
    steps = policy.canary_steps
    if share <= 0:  # a canary starts on purpose (a challenger that passed review), never by itself
        return CanaryStep("hold", 0.0, f"no canary running: give the challenger {steps[0]:.0%} of traffic to start")
    if reasons:
        return CanaryStep("abort", 0.0, "guardrail breached: " + "; ".join(reasons))
    if candidate.rows < policy.min_rows:
        return CanaryStep("hold", share, f"{candidate.rows} of {policy.min_rows} predictions at {share:.0%}")
    following = next((s for s in steps if s > share), steps[-1])
    held = f"guardrails held at {share:.0%} over {candidate.rows} predictions"
    if following == steps[-1]:
        return CanaryStep("promote", 1.0, held)
    return CanaryStep("advance", following, held)


def canary_with_ab(step: CanaryStep, share: float, decision: Decision, reason: str) -> CanaryStep:
    """The canary's move once the A/B analysis has spoken: ``kill`` aborts at any step (a guardrail breach, or
    no significant gain after twice the minimum runtime); the last step (all traffic, a promotion) needs
    ``ship``, so ``iterate`` holds the canary at its share while the test collects labelled predictions."""
    if step.action == "abort":
        return step
    if decision == "kill":
        return CanaryStep("abort", 0.0, f"A/B analysis: kill ({reason})")
    if step.action != "promote":
        return step
    if decision == "ship":
        return CanaryStep("promote", 1.0, f"{step.reason}; A/B analysis: ship ({reason})")
    return CanaryStep("hold", share, f"{step.reason}; A/B analysis: iterate ({reason})")


def health_with_metric(rows: pl.DataFrame, version: str | None, *, task: TaskType, label: str,
                       primary: str) -> ArmHealth:
    """:func:`health_of` ``version`` plus its primary metric on the rows whose labels are known."""
    health = health_of(rows, version)
    metrics = outcome_metrics(task, _version_rows(rows, version), label)
    return ArmHealth(health.rows, health.errors, health.p99_ms, metrics[primary]) if metrics else health


@dataclass(frozen=True)
class ServingJudge:
    """What the serving guard judges a version on: the brief's task, label and primary metric, and its policy."""

    task: TaskType
    label: str
    primary: str
    policy: RolloutPolicy

    @classmethod
    def of(cls, brief: Brief) -> "ServingJudge":
        return cls(brief.task_type, brief.label.column, brief.metrics.primary, policy_for(brief))

    def health(self, rows: pl.DataFrame, version: str | None) -> ArmHealth:
        return health_with_metric(rows, version, task=self.task, label=self.label, primary=self.primary)

    def reasons(self, candidate: ArmHealth, baseline: ArmHealth) -> list[str]:
        return degradation_reasons(candidate, baseline, self.policy, higher_is_better(self.primary))


def rollback_reasons(judge: ServingJudge, log: pl.DataFrame, state: "RolloutState",
                     baseline_version: str | None) -> list[str] | None:
    """The automatic-rollback rule for the champion against the champion before it (each on the rows it answered
    on the champion arm): the reasons to roll back, empty when healthy; None when there is nothing to judge (no
    logged predictions, no champion, or no earlier champion to compare with and return to)."""
    if not (log.height and state.champion and baseline_version):
        return None
    current = judge.health(served_rows(log, state.champion, "champion"), state.champion)
    baseline = judge.health(served_rows(log, baseline_version, "champion"), baseline_version)
    return judge.reasons(current, baseline)


def canary_move(judge: ServingJudge, log: pl.DataFrame, state: "RolloutState", decision: Decision,
                reason: str) -> CanaryStep:
    """The running canary's next step: :func:`next_canary_step` on the challenger's health against the
    champion's since the current share was set, then :func:`canary_with_ab` with the A/B ``decision``."""
    since = state.share_since_ns
    candidate = judge.health(served_rows(log, state.challenger, "challenger", since), state.challenger)
    champion = judge.health(served_rows(log, state.champion, "champion", since), state.champion)
    step = next_canary_step(state.challenger_share, candidate, judge.reasons(candidate, champion), judge.policy)
    return canary_with_ab(step, state.challenger_share, decision, reason)
