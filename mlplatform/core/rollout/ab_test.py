"""The A/B statistics: the power analysis, the two-proportion z-test for a rate, a two-sample bootstrap for any
other metric, and the method's ship / iterate / kill decision. Pure functions of the arms' labelled outcomes."""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from mlplatform.brief import TaskType
from mlplatform.core.metrics import higher_is_better
from mlplatform.core.rollout.policy import RolloutPolicy

Decision = Literal["ship", "iterate", "kill"]


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


def two_proportion_test(successes_a: float, n_a: float, successes_b: float, n_b: float) -> tuple[float, float]:
    """Pooled two-proportion z-test of arm B against arm A: ``(z, two-sided p-value)``; z > 0 means B is higher.

    Counts may be fractional: the effective counts of clustered rows (:func:`design_effect`).

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
    """One arm's labelled predictions: the true label, the decision served, its reported probability and, when
    the rows carry it, the entity each row is about.

    An entity served again and again (a customer scored every week) gives rows that are no independent draws:
    with ``entity`` the tests resample and count entities (clusters), not rows.
    """

    y_true: np.ndarray
    prediction: np.ndarray
    probability: np.ndarray
    entity: np.ndarray | None = None

    @property
    def rows(self) -> int:
        return len(self.y_true)

    @property
    def unit(self) -> str:
        """What the tests resample and the minimum sample counts: ``entities`` or ``rows``."""
        return "rows" if self.entity is None else "entities"

    @property
    def units(self) -> int:
        """The arm's independent units: its distinct entities, or its rows without entity ids."""
        return self.rows if self.entity is None else len(self._clusters()[1])

    def _clusters(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(row order, first position, rows)`` of each entity in the order of first appearance: the rows of the
        k-th entity are ``order[start[k]:start[k] + rows[k]]``. Only for an arm with entity ids."""
        assert self.entity is not None
        _, first, inverse = np.unique(self.entity, return_index=True, return_inverse=True)
        code = np.argsort(np.argsort(first))[inverse.ravel()]  # entity numbers by first appearance
        sizes = np.bincount(code)
        return np.argsort(code, kind="stable"), np.cumsum(sizes) - sizes, sizes

    def resampler(self) -> Callable[[np.random.Generator], np.ndarray]:
        """Draws the row indices of one bootstrap resample: as many entities as the arm has, with replacement, each
        with all its rows. With one row per entity (or no entity ids) this is the plain row bootstrap, draw for
        draw."""
        if self.entity is None:  # each row its own entity: the same draws, without the cluster bookkeeping
            return lambda rng: rng.integers(0, self.rows, self.rows)
        order, starts, sizes = self._clusters()
        k = len(sizes)
        if k == self.rows:  # one row per entity: entity k is row order[k]
            return lambda rng: order[rng.integers(0, k, k)]

        def draw(rng: np.random.Generator) -> np.ndarray:
            picked = rng.integers(0, k, k)
            lengths = sizes[picked]
            ends = np.cumsum(lengths)
            within = np.arange(ends[-1] if k else 0) - np.repeat(ends - lengths, lengths)
            return order[np.repeat(starts[picked], lengths) + within]
        return draw

    def design_effect(self) -> float:
        """How much the variance of the arm's share of correct predictions exceeds that of independent rows:
        :func:`design_effect` of the correct (1) and wrong (0) rows clustered by entity."""
        if self.entity is None or self.rows == 0:
            return 1.0
        order, starts, sizes = self._clusters()
        correct = (self.prediction == self.y_true).astype(float)[order]
        return design_effect(np.add.reduceat(correct, starts), sizes)

    def scores(self, task: TaskType, metric: str) -> np.ndarray:
        """What ``metric`` is computed on: the probability for a binary ranking metric, else the decision."""
        return self.probability if task == "binary" and metric in _RANKING_METRICS else self.prediction


def design_effect(successes: np.ndarray, sizes: np.ndarray) -> float:
    """Rao and Scott's design effect of a proportion estimated from clusters (1992, "A simple method for the
    analysis of clustered binary data"): the variance of the ratio estimate across clusters over the binomial
    variance of as many independent rows, never below 1. One row per cluster gives exactly 1.

    d = k/(k-1) · Σ (s_j - p̂ m_j)² / (n p̂ (1 - p̂)), with k clusters, s_j successes of the m_j rows of cluster j,
    n = Σ m_j and p̂ = Σ s_j / n.
    """
    k, n = len(sizes), float(np.sum(sizes))
    if k < 2 or k == n:
        return 1.0
    rate = float(np.sum(successes)) / n
    if rate in (0.0, 1.0):
        return 1.0
    spread = k / (k - 1) * float(np.sum((successes - rate * sizes) ** 2))
    return max(1.0, spread / (n * rate * (1 - rate)))


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
    unit: str = "rows"


def _bootstrap_sample_size(spread: float, mde: float, alpha: float, power: float) -> int:
    """Units (entities or rows) per arm for a two-sided test of a difference of ``mde`` between two arms whose
    per-unit standard deviation is ``spread`` (normal approximation): 2 (z_{1-alpha/2} + z_power)² spread² / mde²."""
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
    on either side of zero) and a sample size from the per-unit spread of the metric that the control arm's
    bootstrap shows (standard error x sqrt(units)). Without control rows the sample size is unknown (None), never
    a guess.

    When the arms carry entity ids (:class:`ArmOutcomes`), an entity's repeated rows are one unit: the bootstrap
    resamples entities with all their rows, the z-test divides each arm's counts by its :func:`design_effect`,
    and the sample size counts entities. With one row per entity both equal the row tests.
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
    unit = control.unit if control.rows else treatment.unit
    spread, rng = None, np.random.default_rng(seed)
    per = "row" if unit == "rows" else "entity"
    if control.units > 1:
        resample = control.resampler()
        drawn = np.array([value(control, resample(rng)) for _ in range(resamples)])
        spread = float(np.nanstd(drawn)) * math.sqrt(control.units)
    needed = _bootstrap_sample_size(spread, policy.mde, policy.alpha, policy.power) if spread else None
    basis = (f"{unit} per arm; two-sample bootstrap of {metric} over {unit}, alpha {policy.alpha}, power "
             f"{policy.power}, MDE {policy.mde} (absolute {metric}), control {metric} "
             + (f"{level:.4f} with a per-{per} spread of {spread:.4f} from the control arm's bootstrap"
                if spread and level is not None else "unknown until control labels arrive"))
    method = "two-sample bootstrap" + ("" if unit == "rows" else " over entities")
    if level is None or treated is None or control.units < 2 or treatment.units < 2:
        return MetricComparison(metric, method, level, treated, None, None, None, None, needed, basis, unit)
    # Each arm resampled on its own (independent groups); the control draws above serve the difference too.
    resample = treatment.resampler()
    treated_draws = np.array([value(treatment, resample(rng)) for _ in range(resamples)])
    lifts = treated_draws - drawn if up else drawn - treated_draws
    lifts = lifts[np.isfinite(lifts)]
    lift = treated - level if up else level - treated
    if lifts.size == 0:
        return MetricComparison(metric, method, level, treated, lift, None, None, None, needed, basis, unit)
    share = min(float(np.mean(lifts <= 0)), float(np.mean(lifts >= 0)))
    p_value = min(1.0, 2 * (share * lifts.size + 1) / (lifts.size + 1))
    low, high = np.quantile(lifts, [policy.alpha / 2, 1 - policy.alpha / 2])
    return MetricComparison(metric, f"{method} ({lifts.size} resamples)", level, treated, lift, None,
                            p_value, (float(low), float(high)), needed, basis, unit)


def _rate_comparison(metric: str, control: ArmOutcomes, treatment: ArmOutcomes, level: float | None,
                     treated: float | None, policy: "RolloutPolicy") -> MetricComparison:
    """The two-proportion z-test of the share of correct predictions, sized at the control arm's rate.

    With entity ids, each arm's counts are divided by its design effect (Rao-Scott), and the sample size in rows
    becomes entities: the rows' size times the control arm's design effect over its rows per entity."""
    unit = control.unit if control.rows else treatment.unit
    effect = {name: arm.design_effect() for name, arm in (("control", control), ("treatment", treatment))}
    needed, clustered = None, unit == "entities"
    if level is not None:
        try:
            needed = min_sample_size(level, policy.mde, policy.alpha, policy.power)
        except ValueError:  # control at 0 or within mde of 1: no room for an improvement of mde
            needed = None
    if needed is not None and clustered:
        needed = math.ceil(needed * effect["control"] * control.units / control.rows)
    basis = (f"{unit} per arm; two-proportion z-test, alpha {policy.alpha}, power {policy.power}, MDE {policy.mde}, "
             + (f"control {metric} {level:.4f} (observed)" if level is not None
                else "control rate unknown until control labels arrive")
             + (f", design effect {effect['control']:.2f} over {control.rows / control.units:.2f} rows per entity"
                if clustered and level is not None else ""))
    method = "two-proportion z-test" + (" (Rao-Scott, clustered by entity)" if clustered else "")
    if level is None or treated is None:
        return MetricComparison(metric, method, level, treated, None, None, None, None, needed, basis, unit)
    correct = {name: float(np.sum(arm.prediction == arm.y_true)) for name, arm in
               (("control", control), ("treatment", treatment))}
    z, p = two_proportion_test(correct["control"] / effect["control"], control.rows / effect["control"],
                               correct["treatment"] / effect["treatment"], treatment.rows / effect["treatment"])
    return MetricComparison(metric, method, level, treated, treated - level, z, p, None, needed, basis, unit)


@dataclass(frozen=True)
class ABEvidence:
    """What the A/B decision is made from: the primary metric's comparison, the labelled units per arm (the
    comparison's ``unit``: distinct entities when the rows carry entity ids, else rows), how long the test ran
    and any guardrail breached."""

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
      The minimum sample counts the comparison's unit: entities when the rows carry entity ids (a customer
      scored every week is one unit, however many rows), else rows.
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
        missing.append(f"sample {smaller} of {needed or 'unknown'} {c.unit} in the smaller arm")
    if not ran:
        missing.append(f"runtime {e.runtime_days:.1f} of {policy.min_runtime_days} days")
    signal = "promising" if lift > 0 else "no positive"
    return ABResult("iterate", f"{signal} signal on {c.metric} (lift {lift:+.4f}, p = {p:.4g}); "
                               + ("; ".join(missing) or "not significant or not above the MDE: extend the test or "
                                  "refine the model"),
                    c.statistic, p, lift, needed)
