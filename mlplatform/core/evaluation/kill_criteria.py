"""The brief's kill criteria judged on hold-out results and the data-quality history (method phases 1 and 4)."""

from dataclasses import dataclass
from datetime import datetime

from mlplatform.brief import KillCriteria
from mlplatform.core.evaluation.hold_out_metrics import lift
from mlplatform.core.metrics import higher_is_better


@dataclass(frozen=True)
class KillCriterion:
    """One of the brief's kill criteria, judged; a row of the evaluation/kill_criteria table."""

    criterion: str
    """The criterion in the method's words, with the brief's numbers."""
    measured: str
    """What was measured, in words."""
    passed: bool
    """True when it gives no reason to kill the project."""


@dataclass(frozen=True)
class QualityRecord:
    """One data-quality report of the history: when, its total /30, and whether the gate passed it."""

    at: datetime
    total: float
    passed: bool


def quality_kill_criterion(history: list[QualityRecord], minimum: float, max_days: float,
                           now: datetime) -> KillCriterion:
    """The method's "data quality too poor after 2 weeks of cleaning", judged on the data-quality history.

    The data has been too poor for as long as the newest reports have failed the gate without a break: from the
    first of them to ``now``. It kills once that reaches ``max_days``. No history at all fails closed.
    """
    criterion = f"Data quality too poor after {max_days:g} days of cleaning"
    if not history:
        return KillCriterion(criterion, "no data-quality report recorded: quality was never measured", False)
    ordered = sorted(history, key=lambda r: r.at)
    latest = ordered[-1]
    failing: list[QualityRecord] = []
    for record in reversed(ordered):
        if record.passed:
            break
        failing.insert(0, record)
    if not failing:
        earlier = [r for r in ordered if not r.passed]
        since = f"; below it in {len(earlier)} earlier report(s)" if earlier else ""
        return KillCriterion(criterion, passed=True,
                             measured=f"the latest of {len(ordered)} data-quality reports ({latest.at:%Y-%m-%d}) "
                                      f"scores {latest.total:.1f}/30, meeting the gate's {minimum:g}{since}")
    days = (now - failing[0].at).total_seconds() / 86_400
    return KillCriterion(criterion, passed=bool(days < max_days),
                         measured=f"below the gate's {minimum:g}/30 in the {len(failing)} latest report(s) since "
                                  f"{failing[0].at:%Y-%m-%d} ({days:.1f} days of cleaning; limit {max_days:g}); "
                                  f"latest {latest.total:.1f}/30")


def kill_criteria(model: float, rules: float, random: float, metric: str,
                  criteria: KillCriteria, quality: KillCriterion | None = None) -> list[KillCriterion]:
    """The method's kill criteria judged on hold-out values of the primary metric and, given ``quality`` (from
    :func:`quality_kill_criterion`), on the data-quality history, in the method's order."""
    if higher_is_better(metric):
        share = rules / model if model else float("inf")
    else:  # for errors, the baseline "reaches" the model when its error is close to the model's
        share = model / rules if rules else float("inf")
    beat_random = lift(model, random, metric)
    measured = (f"the model's {metric} is {model:.4f}: any baseline matches it" if share == float("inf")
                else f"rules reach {share:.0%} of the model's {metric} ({rules:.4f} vs {model:.4f})")
    return [
        KillCriterion(
            criterion=f"Baseline heuristic achieves >{criteria.baseline_max_share:.0%} of ML performance",
            measured=measured,
            passed=bool(share <= criteria.baseline_max_share),
        ),
        *([quality] if quality is not None else []),
        KillCriterion(
            criterion=f"Model can't beat random by >{criteria.min_lift_over_random:.0%} on holdout set",
            measured=f"model {metric} {model:.4f} vs random {random:.4f}: {beat_random:+.0%}",
            passed=bool(beat_random > criteria.min_lift_over_random),
        ),
    ]
