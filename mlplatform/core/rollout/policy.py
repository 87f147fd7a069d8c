"""How an A/B test, a canary and the automatic rollback judge a model: the brief's ``rollout`` section."""

from dataclasses import dataclass

from mlplatform.brief import Brief, Monitoring, Rollout

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
