"""Putting a model in front of traffic safely (method phases 5 and 8): the prediction log, the champion/challenger
split, the A/B test on the primary metric (power analysis, two-proportion test or bootstrap, ship / iterate /
kill), canary steps, the automatic rollback rule, and promotion / rollback in the MLflow registry with a history
of who was champion when.

Rollout state lives in the registry, so the serving app and the Dagster assets agree without talking to each
other: the ``champion`` and ``challenger`` aliases, the challenger's traffic share as a registered-model tag,
and each promotion and rollback as model-version tags.
"""

import fcntl
import hashlib
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, TypedDict

import numpy as np
import polars as pl

from mlplatform.brief import Brief, Monitoring, Rollout, TaskType
from mlplatform.core.metrics import compute_metrics, higher_is_better
from mlplatform.core.tracking import client_for  # MLflow configured before its import
from mlplatform.settings import Workspace

CHAMPION, CHALLENGER, PREVIOUS_CHAMPION = "champion", "challenger", "previous_champion"
# Registered-model tags: the share of entities the challenger answers (the canary step the rollout reached),
# and since when (epoch nanoseconds), so a step is judged on its own traffic.
TRAFFIC_TAG, TRAFFIC_SINCE_TAG = "challenger_traffic", "challenger_traffic_since_ns"
# When the running canary started (its first step): the A/B analysis compares the arms from then on.
CANARY_SINCE_TAG = "canary_since_ns"
# Model-version tags: when the version last became champion, and when it was rolled back (epoch nanoseconds).
PROMOTED_AT_TAG, ROLLED_BACK_AT_TAG = "promoted_at_ns", "rolled_back_at_ns"
PREDICTIONS_DIR = "predictions"
Arm = Literal["champion", "challenger"]
Decision = Literal["ship", "iterate", "kill"]
# The brief's defaults (the method's values) are the policy's, so a policy built without a brief agrees with one.
_ROLLOUT, _MONITORING = Rollout(), Monitoring()


@dataclass(frozen=True)
class RolloutPolicy:
    """How an A/B test, a canary and the automatic rollback judge a model: the brief's ``rollout`` section
    (:class:`~mlplatform.brief.Rollout`, which validates the values) plus ``monitoring.max_metric_drop``.

    Attributes:
        mde: minimum detectable effect of the A/B test: an absolute gain in the brief's primary metric.
        alpha: two-sided significance level of the A/B test.
        power: probability of detecting an effect of ``mde``.
        min_runtime_days: one full business cycle (the method: 7 days at least).
        canary_steps: the challenger's traffic shares in order; the last (1.0) means promote.
        degradation_factor: error rate or p99 latency above this multiple of the baseline's rolls back.
        max_metric_drop: relative drop of the primary metric (labelled predictions) that rolls back.
        min_rows: predictions an arm needs before its error rate and latency are judged.
        error_rate_floor: error rates below this count as this, so a baseline of zero errors does not make a
            single error a "2x" regression.
    """

    mde: float = _ROLLOUT.mde
    alpha: float = _ROLLOUT.alpha
    power: float = _ROLLOUT.power
    min_runtime_days: float = _ROLLOUT.min_runtime_days
    canary_steps: tuple[float, ...] = _ROLLOUT.canary_steps
    degradation_factor: float = _ROLLOUT.degradation_factor
    max_metric_drop: float = _MONITORING.max_metric_drop
    min_rows: int = _ROLLOUT.min_rows
    error_rate_floor: float = _ROLLOUT.error_rate_floor

    def __post_init__(self) -> None:
        """The brief's rules hold for a policy built in code too.

        Raises:
            pydantic.ValidationError: a value the brief's ``rollout`` section would reject (a ValueError).
        """
        Rollout(mde=self.mde, alpha=self.alpha, power=self.power, min_runtime_days=self.min_runtime_days,
                canary_steps=self.canary_steps, degradation_factor=self.degradation_factor, min_rows=self.min_rows,
                error_rate_floor=self.error_rate_floor)


def policy_for(brief: Brief) -> RolloutPolicy:
    """The rollout policy of ``brief``: its ``rollout`` section and ``monitoring.max_metric_drop``."""
    settings = brief.rollout
    return RolloutPolicy(mde=settings.mde, alpha=settings.alpha, power=settings.power,
                         min_runtime_days=settings.min_runtime_days, canary_steps=settings.canary_steps,
                         degradation_factor=settings.degradation_factor,
                         max_metric_drop=brief.monitoring.max_metric_drop, min_rows=settings.min_rows,
                         error_rate_floor=settings.error_rate_floor)


# --- traffic split ---------------------------------------------------------------------------------------------

def bucket(entity_id: object, salt: str) -> float:
    """A stable pseudo-random number in [0, 1) for an entity: the same id always lands in the same place."""
    digest = hashlib.blake2b(f"{salt}:{entity_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def assign_arm(entity_id: object, challenger_share: float, salt: str) -> Arm:
    """``challenger`` for the ``challenger_share`` of entities whose bucket is lowest, else ``champion``.

    Raising the share keeps every entity already on the challenger there (buckets below 5% are below 25%).
    """
    return "challenger" if bucket(entity_id, salt) < challenger_share else "champion"


# --- A/B statistics ---------------------------------------------------------------------------------------------

def min_sample_size(p_control: float, mde: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Rows per arm for a two-sided two-proportion z-test to detect ``p_control`` -> ``p_control + mde``.

    n = (z_{1-alpha/2} * sqrt(2 p̄ q̄) + z_{power} * sqrt(p1 q1 + p2 q2))² / mde², p̄ the mean of p1 and p2.

    Raises:
        ValueError: ``p_control + mde`` is not a proportion.
    """
    from scipy.stats import norm

    p1, p2 = p_control, p_control + mde
    if not (0 < p1 < 1 and 0 < p2 < 1) or mde == 0:
        raise ValueError(f"need 0 < p_control, p_control + mde < 1 and mde != 0; got {p_control} and {mde}")
    pooled = (p1 + p2) / 2
    z_alpha, z_power = norm.ppf(1 - alpha / 2), norm.ppf(power)
    root = z_alpha * math.sqrt(2 * pooled * (1 - pooled)) + z_power * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(root**2 / mde**2)


def two_proportion_test(successes_a: int, n_a: int, successes_b: int, n_b: int) -> tuple[float, float]:
    """Pooled two-proportion z-test of arm B against arm A: ``(z, two-sided p-value)``; z > 0 means B is higher.

    Raises:
        ValueError: an arm has no rows, or more successes than rows.
    """
    from scipy.stats import norm

    if n_a <= 0 or n_b <= 0 or not (0 <= successes_a <= n_a and 0 <= successes_b <= n_b):
        raise ValueError(f"need rows in both arms and 0 <= successes <= rows; got {successes_a}/{n_a}, "
                         f"{successes_b}/{n_b}")
    pooled = (successes_a + successes_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:  # both arms all-success or all-failure: no difference to test
        return 0.0, 1.0
    z = (successes_b / n_b - successes_a / n_a) / se
    return z, float(2 * norm.sf(abs(z)))


# Primary metrics that are a per-prediction proportion: the A/B test compares them with the two-proportion z-test.
# Every other metric (F1, PR-AUC, ROC-AUC, precision, recall, MAE...) is no mean of independent 0/1 outcomes, so
# it is compared with a two-sample bootstrap of its difference between the arms.
RATE_METRICS = frozenset({"accuracy"})
# Binary metrics of the probabilities the model reported; the others are of the decisions it made.
_RANKING_METRICS = frozenset({"pr_auc", "roc_auc", "log_loss", "brier"})
AB_BOOTSTRAP_RESAMPLES = 1000


@dataclass(frozen=True)
class ArmOutcomes:
    """One arm's labelled predictions: the true label, the decision served and its reported probability."""

    y_true: np.ndarray
    prediction: np.ndarray
    probability: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.y_true)

    def scores(self, task: TaskType, metric: str) -> np.ndarray:
        """What ``metric`` is computed on: the probability for a binary ranking metric, else the decision."""
        return self.probability if task == "binary" and metric in _RANKING_METRICS else self.prediction


@dataclass(frozen=True)
class MetricComparison:
    """The A/B test of one metric: each arm's value, the lift (treatment over control in the metric's better
    direction, absolute), its test and the sample size its power analysis asks for per arm."""

    metric: str
    method: str
    control: float | None
    treatment: float | None
    lift: float | None
    statistic: float | None
    p_value: float | None
    lift_ci: tuple[float, float] | None
    min_sample_size: int | None
    sample_size_basis: str


def _bootstrap_sample_size(spread: float, mde: float, alpha: float, power: float) -> int:
    """Rows per arm for a two-sided test of a difference of ``mde`` between two arms whose per-row standard
    deviation is ``spread`` (normal approximation): 2 (z_{1-alpha/2} + z_power)² spread² / mde²."""
    from scipy.stats import norm

    z = norm.ppf(1 - alpha / 2) + norm.ppf(power)
    return max(2, math.ceil(2 * (z * spread / mde) ** 2))


def compare_arms(task: TaskType, metric: str, control: ArmOutcomes, treatment: ArmOutcomes,
                 policy: "RolloutPolicy", *, resamples: int = AB_BOOTSTRAP_RESAMPLES,
                 seed: int = 0) -> MetricComparison:
    """Test ``metric`` between the arms with a test that suits it, and size the test from the control arm.

    A rate (:data:`RATE_METRICS`: the share of correct predictions) gets the pooled two-proportion z-test and a
    sample size from :func:`min_sample_size` at the control arm's observed rate. Any other metric gets a two-sample
    bootstrap (each arm resampled on its own; the two-sided p-value is twice the smaller share of resampled lifts
    on either side of zero) and a sample size from the per-row spread of the metric that the control arm's
    bootstrap shows (standard error x sqrt(rows)). Without control rows the sample size is unknown (None), never
    a guess.
    """
    from mlplatform.core.metrics import metric_function

    up = higher_is_better(metric)
    one = metric_function(task, metric, 0.5)

    def value(arm: ArmOutcomes, rows: np.ndarray | slice = slice(None)) -> float:
        return float(one(arm.y_true[rows], arm.scores(task, metric)[rows]))

    level = value(control) if control.rows else None
    treated = value(treatment) if treatment.rows else None
    if metric in RATE_METRICS and task in ("binary", "multiclass"):
        return _rate_comparison(metric, control, treatment, level, treated, policy)
    spread, rng = None, np.random.default_rng(seed)
    if control.rows > 1:
        drawn = np.array([value(control, rng.integers(0, control.rows, control.rows)) for _ in range(resamples)])
        spread = float(np.nanstd(drawn)) * math.sqrt(control.rows)
    needed = _bootstrap_sample_size(spread, policy.mde, policy.alpha, policy.power) if spread else None
    basis = (f"per arm; two-sample bootstrap of {metric}, alpha {policy.alpha}, power {policy.power}, MDE "
             f"{policy.mde} (absolute {metric}), control {metric} "
             + (f"{level:.4f} with a per-row spread of {spread:.4f} from the control arm's bootstrap"
                if spread and level is not None else "unknown until control labels arrive"))
    if level is None or treated is None or control.rows < 2 or treatment.rows < 2:
        return MetricComparison(metric, "two-sample bootstrap", level, treated, None, None, None, None, needed, basis)
    # Each arm resampled on its own (independent groups); the control draws above serve the difference too.
    treated_draws = np.array([value(treatment, rng.integers(0, treatment.rows, treatment.rows))
                              for _ in range(resamples)])
    lifts = treated_draws - drawn if up else drawn - treated_draws
    lifts = lifts[np.isfinite(lifts)]
    lift = treated - level if up else level - treated
    if lifts.size == 0:
        return MetricComparison(metric, "two-sample bootstrap", level, treated, lift, None, None, None, needed, basis)
    share = min(float(np.mean(lifts <= 0)), float(np.mean(lifts >= 0)))
    p_value = min(1.0, 2 * (share * lifts.size + 1) / (lifts.size + 1))
    low, high = np.quantile(lifts, [policy.alpha / 2, 1 - policy.alpha / 2])
    return MetricComparison(metric, f"two-sample bootstrap ({lifts.size} resamples)", level, treated, lift, None,
                            p_value, (float(low), float(high)), needed, basis)


def _rate_comparison(metric: str, control: ArmOutcomes, treatment: ArmOutcomes, level: float | None,
                     treated: float | None, policy: "RolloutPolicy") -> MetricComparison:
    """The two-proportion z-test of the share of correct predictions, sized at the control arm's rate."""
    correct = {name: int(np.sum(arm.prediction == arm.y_true)) for name, arm in
               (("control", control), ("treatment", treatment))}
    needed = None
    if level is not None:
        try:
            needed = min_sample_size(level, policy.mde, policy.alpha, policy.power)
        except ValueError:  # control at 0 or within mde of 1: no room for an improvement of mde
            needed = None
    basis = (f"per arm; two-proportion z-test, alpha {policy.alpha}, power {policy.power}, MDE {policy.mde}, "
             + (f"control {metric} {level:.4f} (observed)" if level is not None
                else "control rate unknown until control labels arrive"))
    if level is None or treated is None:
        return MetricComparison(metric, "two-proportion z-test", level, treated, None, None, None, None, needed,
                                basis)
    z, p = two_proportion_test(correct["control"], control.rows, correct["treatment"], treatment.rows)
    return MetricComparison(metric, "two-proportion z-test", level, treated, treated - level, z, p, None, needed,
                            basis)


@dataclass(frozen=True)
class ABEvidence:
    """What the A/B decision is made from: the primary metric's comparison, the labelled rows per arm, how long
    the test ran and any guardrail breached."""

    comparison: MetricComparison
    n_control: int
    n_treatment: int
    runtime_days: float
    guardrail_breaches: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ABResult:
    """The test statistic, the sample the test needs, and the method's decision with its reason."""

    decision: Decision
    reason: str
    z: float | None
    p_value: float | None
    lift: float | None
    min_sample_size: int | None


def decide_ab(evidence: ABEvidence, policy: RolloutPolicy) -> ABResult:
    """The method's decision criteria.

    * ship: the treatment's lift on the primary metric is more than ``mde`` (absolute) with p < ``alpha``, no
      guardrail breached, the SMALLER arm holds the minimum sample size, and the minimum runtime has passed.
    * kill: a guardrail breached, or no significant improvement after twice the minimum runtime.
    * iterate: anything else: a promising but unproven signal, or a test still collecting its sample.
    """
    e, c = evidence, evidence.comparison
    if e.guardrail_breaches:
        return ABResult("kill", "guardrail breach: " + "; ".join(e.guardrail_breaches), None, None, None, None)
    if e.n_control == 0 or e.n_treatment == 0 or c.lift is None or c.p_value is None:
        return ABResult("iterate", "no labelled predictions in one of the arms yet", None, None, None,
                        c.min_sample_size)
    needed, lift, p = c.min_sample_size, c.lift, c.p_value
    smaller = min(e.n_control, e.n_treatment)
    sampled = needed is not None and smaller >= needed
    ran = e.runtime_days >= policy.min_runtime_days
    won = lift > policy.mde and p < policy.alpha
    if won and sampled and ran:
        return ABResult("ship", f"treatment beats control on {c.metric} by {lift:+.4f} (> {policy.mde}) with "
                                f"p = {p:.4g} < {policy.alpha} ({c.method}), no guardrail regression",
                        c.statistic, p, lift, needed)
    if e.runtime_days >= 2 * policy.min_runtime_days and not won:
        return ABResult("kill", f"no significant improvement of {c.metric} by more than {policy.mde} after "
                                f"{e.runtime_days:.1f} days (2x the minimum runtime)", c.statistic, p, lift, needed)
    missing = []
    if not sampled:
        missing.append(f"sample {smaller} of {needed or 'unknown'} in the smaller arm")
    if not ran:
        missing.append(f"runtime {e.runtime_days:.1f} of {policy.min_runtime_days} days")
    signal = "promising" if lift > 0 else "no positive"
    return ABResult("iterate", f"{signal} signal on {c.metric} (lift {lift:+.4f}, p = {p:.4g}); "
                               + ("; ".join(missing) or "not significant or not above the MDE: extend the test or "
                                  "refine the model"),
                    c.statistic, p, lift, needed)


# --- serving health, the rollback rule and canary steps ---------------------------------------------------------

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


# Rows an arm needs before its p99 latency is judged: with fewer, the "99th percentile" is the slowest single
# request, and one garbage-collection pause or cold call would roll a healthy model back.
P99_MIN_ROWS = 100


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


# --- the prediction log -----------------------------------------------------------------------------------------

def prediction_log_dir(workspace: Workspace) -> Path:
    """Where the serving app writes its prediction log (``part-*.parquet``, one file per flush)."""
    return workspace.root / PREDICTIONS_DIR


def read_prediction_log(workspace: Workspace) -> pl.DataFrame:
    """Every logged prediction of the brief, oldest first; an empty frame before the first flush.

    The same files are plain Parquet for DuckDB: ``SELECT * FROM '<root>/predictions/part-*.parquet'``.
    """
    parts = sorted(prediction_log_dir(workspace).glob("part-*.parquet"))
    if not parts:
        return pl.DataFrame()
    return pl.concat([pl.read_parquet(p) for p in parts], how="diagonal_relaxed").sort("request_time")


def attach_labels(log: pl.DataFrame, labels: pl.DataFrame, key: str, label_time: str, label: str,
                  window_days: int) -> pl.DataFrame:
    """Each prediction with the label of its entity's latest snapshot at or before the request, when that
    snapshot is at most ``window_days`` old (the label's delay: the outcome window it describes); else null."""
    # Sorted by time within each entity, as an as-of join by entity needs (polars cannot verify it per group).
    right = (labels.select(key, pl.col(label_time).cast(pl.Datetime("us")).alias("_label_time"), label)
             .sort(key, "_label_time"))
    left = log.with_columns(pl.col("request_time").cast(pl.Datetime("us")).alias("_request_time"),
                            pl.col(key).cast(right.schema[key])).sort(key, "_request_time")
    joined = left.join_asof(right, left_on="_request_time", right_on="_label_time", by=key, strategy="backward",
                            tolerance=timedelta(days=max(window_days, 1)), check_sortedness=False)
    return joined.drop("_request_time", "_label_time")


# --- the registry: promotion history, rollback, traffic ---------------------------------------------------------

@dataclass(frozen=True)
class RolloutState:
    """What the registry says the serving app should do."""

    champion: str | None
    challenger: str | None
    challenger_share: float
    share_since_ns: int = 0
    canary_since_ns: int = 0

    @property
    def canary_running(self) -> bool:
        """A challenger other than the champion answers a share of the traffic."""
        return self.challenger_share > 0 and self.challenger not in (None, self.champion)


def rollout_state(tracking_uri: str, model_name: str) -> RolloutState:
    """The champion, the challenger and the challenger's traffic share in one registry read.

    Raises:
        LookupError: the registry has no model of that name.
    """
    from mlflow.exceptions import MlflowException

    try:
        model = client_for(tracking_uri).get_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise LookupError(f"the registry at {tracking_uri} has no model '{model_name}'; run the graph so a "
                              "model is registered") from None
        raise
    aliases = {alias: str(version) for alias, version in model.aliases.items()}
    share, since = float(model.tags.get(TRAFFIC_TAG, 0.0)), int(model.tags.get(TRAFFIC_SINCE_TAG, 0))
    return RolloutState(aliases.get(CHAMPION), aliases.get(CHALLENGER), share, since,
                        int(model.tags.get(CANARY_SINCE_TAG, 0)))


def set_challenger_share(tracking_uri: str, model_name: str, share: float, since_ns: int | None = None,
                         *, new_canary: bool = False) -> None:
    """Record the challenger's traffic share; serving apps pick it up on their next registry poll.

    Args:
        since_ns: from when the share's traffic counts (epoch ns): :func:`log_clock_ns`, so replayed traffic
            is judged on its own clock; the wall clock when None.
        new_canary: this share starts a canary: the A/B analysis compares the arms from ``since_ns`` on.
    """
    if not 0 <= share <= 1:
        raise ValueError(f"a traffic share lies in [0, 1]; got {share}")
    since = str(time.time_ns() if since_ns is None else since_ns)
    client = client_for(tracking_uri)
    client.set_registered_model_tag(model_name, TRAFFIC_SINCE_TAG, since)
    if new_canary:
        client.set_registered_model_tag(model_name, CANARY_SINCE_TAG, since)
    client.set_registered_model_tag(model_name, TRAFFIC_TAG, str(share))


def log_clock_ns(log: pl.DataFrame) -> int | None:
    """Now as the prediction log tells time: just after its newest request (epoch ns); None for an empty log.

    Steps and canaries start from here, not from the wall clock: every row logged after the decision counts for
    the new step, and traffic replayed with its historical times (``X-Replay-Time``) is judged on its own clock.
    """
    if log.height == 0:
        return None
    newest = log["request_time"].max()
    assert isinstance(newest, datetime), "request_time is a datetime column"
    return int(newest.timestamp() * 1_000_000_000) + 1


@contextmanager
def _promotion_lock(tracking_uri: str) -> Iterator[None]:
    """Serialise promotions on this host: a file lock beside a SQLite registry (servers serialise their own
    alias writes; the history tags and the alias move must not interleave with another promotion's)."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    lock = Path(tracking_uri.removeprefix("sqlite:///")).with_suffix(".promotion.lock")
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def promote(tracking_uri: str, model_name: str, version: str) -> str | None:
    """Make ``version`` the champion and record it in the history; returns the previous champion.

    The alias is single-valued in MLflow, so concurrent promotions leave exactly one champion; the lock keeps
    the history tag and the alias move of one promotion together.
    """
    client = client_for(tracking_uri)
    with _promotion_lock(tracking_uri):
        previous = client.get_registered_model(model_name).aliases.get(CHAMPION)
        now = time.time_ns()
        if previous is not None and PROMOTED_AT_TAG not in client.get_model_version(model_name, previous).tags:
            # A champion set without this function enters the history just before its successor.
            client.set_model_version_tag(model_name, str(previous), PROMOTED_AT_TAG, str(now - 1))
        client.set_model_version_tag(model_name, version, PROMOTED_AT_TAG, str(now))
        if previous is not None and str(previous) != version:
            client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, str(previous))
        client.set_registered_model_alias(model_name, CHAMPION, version)
    return None if previous is None else str(previous)


class ChampionRecord(TypedDict):
    """One promotion in the history: the version and when it became champion and was rolled back (epoch ns,
    0 when never)."""

    version: str
    promoted_at_ns: int
    rolled_back_at_ns: int


def champion_history(tracking_uri: str, model_name: str) -> list[ChampionRecord]:
    """Every version ever promoted, newest promotion first."""
    client = client_for(tracking_uri)
    history: list[ChampionRecord] = []
    for mv in client.search_model_versions(f"name = '{model_name}'"):
        if PROMOTED_AT_TAG in mv.tags:
            history.append({"version": str(mv.version), "promoted_at_ns": int(mv.tags[PROMOTED_AT_TAG]),
                            "rolled_back_at_ns": int(mv.tags.get(ROLLED_BACK_AT_TAG, 0))})
    return sorted(history, key=lambda row: row["promoted_at_ns"], reverse=True)


def previous_champion(tracking_uri: str, model_name: str) -> str | None:
    """The version that was champion before the current one and has not been rolled back since its promotion;
    without recorded history, the ``previous_champion`` alias."""
    current = rollout_state(tracking_uri, model_name).champion
    history = champion_history(tracking_uri, model_name)
    for row in history:
        if row["version"] != current and row["rolled_back_at_ns"] < row["promoted_at_ns"]:
            return row["version"]
    if history:
        return None
    alias = client_for(tracking_uri).get_registered_model(model_name).aliases.get(PREVIOUS_CHAMPION)
    return None if alias is None or str(alias) == current else str(alias)


def rollback(tracking_uri: str, model_name: str) -> tuple[str, str]:
    """Restore the previous champion; returns ``(rolled back version, restored version)``.

    The rolled-back version is tagged so a later rollback never returns to it, and the challenger's traffic
    share goes to 0.

    Raises:
        LookupError: no champion, or no earlier champion to return to.
    """
    client = client_for(tracking_uri)
    with _promotion_lock(tracking_uri):
        current = rollout_state(tracking_uri, model_name).champion
        if current is None:
            raise LookupError(f"{model_name} has no champion to roll back")
        target = previous_champion(tracking_uri, model_name)
        if target is None:
            raise LookupError(f"{model_name} has no earlier champion than version {current} to roll back to; "
                              "promote a version instead")
        client.set_model_version_tag(model_name, current, ROLLED_BACK_AT_TAG, str(time.time_ns()))
        client.set_registered_model_alias(model_name, CHAMPION, target)
    set_challenger_share(tracking_uri, model_name, 0.0)
    return current, target


def known_outcomes(rows: pl.DataFrame, label: str) -> pl.DataFrame:
    """Answered rows (status ok) whose label is known by now."""
    return rows.filter(pl.col(label).is_not_null() & (pl.col("status") == "ok")) if rows.height else rows


def outcome_metrics(task: TaskType, rows: pl.DataFrame, label: str) -> dict[str, float]:
    """:func:`arm_metrics` of the rows whose outcome is known; empty while none is."""
    known = known_outcomes(rows, label)
    if known.height == 0:
        return {}
    return arm_metrics(task, known[label].to_numpy(), known["prediction"].to_numpy(),
                       known["probability"].fill_null(0.0).to_numpy())


def health_with_metric(rows: pl.DataFrame, version: str | None, *, task: TaskType, label: str,
                       primary: str) -> ArmHealth:
    """:func:`health_of` ``version`` plus its primary metric on the rows whose labels are known."""
    health = health_of(rows, version)
    metrics = outcome_metrics(task, _version_rows(rows, version), label)
    return ArmHealth(health.rows, health.errors, health.p99_ms, metrics[primary]) if metrics else health


def model_answers(log: pl.DataFrame, score: str) -> pl.DataFrame:
    """Log rows a registered model answered with a ``score``: not the rules fallback, errors or timeouts."""
    return log.filter((pl.col("status") == "ok") & ~pl.col("fallback") & pl.col("model_version").is_not_null()
                      & pl.col(score).is_not_null())


def served_rows(log: pl.DataFrame, version: str | None, arm: Arm, since_ns: int = 0) -> pl.DataFrame:
    """Log rows one version answered on one arm, from ``since_ns`` (epoch nanoseconds) on."""
    if log.height == 0:
        return log
    since = pl.lit(since_ns).cast(pl.Datetime("ns", "UTC"))
    return log.filter((pl.col("model_version") == version) & (pl.col("arm") == arm)
                      & (pl.col("request_time") >= since))


def arm_metrics(task: TaskType, y_true: np.ndarray, prediction: np.ndarray,
                probability: np.ndarray) -> dict[str, float]:
    """Metrics of one arm's labelled predictions: threshold metrics from the decisions the model made, ranking
    metrics (binary) from the probabilities it reported."""
    metrics = compute_metrics(task, y_true, prediction, 0.5)
    if task == "binary":
        ranked = compute_metrics(task, y_true, probability, 0.5)
        metrics.update({name: ranked[name] for name in ("pr_auc", "roc_auc", "log_loss", "brier")})
    return metrics


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


def _arm_outcomes(known: pl.DataFrame, label: str) -> ArmOutcomes:
    return ArmOutcomes(known[label].to_numpy(), known["prediction"].to_numpy(),
                       known["probability"].fill_null(0.0).to_numpy())


def ab_report(labelled: pl.DataFrame, state: RolloutState, *, task: TaskType, label: str, primary: str,
              guardrails: list[str], hypothesis: str, name: str, policy: RolloutPolicy) -> ABReport:
    """The method's A/B template filled from the prediction log (with labels where known), the test and the decision.

    Control is the champion arm as answered by the champion version, treatment the challenger arm as answered
    by the challenger version. The test compares the brief's primary metric (the offline evaluation's) on the
    labelled rows with :func:`compare_arms`; guardrails are the serving health (error rate, p99 latency) and the
    brief's guardrail metrics, each judged by the automatic-rollback rule.
    """
    since = state.canary_since_ns  # the arms side by side: the champion's rows before the canary are no control
    control = served_rows(labelled, state.champion, "champion", since) if labelled.height else labelled
    treatment = served_rows(labelled, state.challenger, "challenger", since) if labelled.height else labelled
    arms = {"control": control, "treatment": treatment}
    metrics: dict[str, dict[str, float]] = {}
    outcomes: dict[str, ArmOutcomes] = {}
    for arm, rows in arms.items():
        known = known_outcomes(rows, label)
        outcomes[arm] = (_arm_outcomes(known, label) if known.height else
                         ArmOutcomes(np.zeros(0), np.zeros(0), np.zeros(0)))
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
    evidence = ABEvidence(comparison, outcomes["control"].rows, outcomes["treatment"].rows, runtime, breaches)
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
                        "minimum sample reached in the smaller arm, AND no guardrail regression",
                "iterate": "Promising signal but not significant — extend test or refine model",
                "kill": "No improvement after 2x minimum runtime OR guardrail breach"},
        },
        "results": {
            "control_version": state.champion, "treatment_version": state.challenger,
            "predictions": {"control": control.height, "treatment": treatment.height},
            "labelled": {"control": outcomes["control"].rows, "treatment": outcomes["treatment"].rows},
            "primary_metric": {"control": comparison.control, "treatment": comparison.treatment},
            "test": comparison.method,
            "metrics": metrics, "guardrail_breaches": breaches, "runtime_days": round(runtime, 3),
            "z": result.z, "p_value": result.p_value, "lift": result.lift,
            "lift_ci": list(comparison.lift_ci) if comparison.lift_ci else None,
            "decision": result.decision, "reason": result.reason,
        },
    }
