"""The blocking promotion gate: promote a challenger only on evidence, and say why either way."""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlplatform.core.metrics import higher_is_better

# How far a guardrail may move the wrong way before it counts as a regression. A bootstrap interval of
# ROC-AUC or PR-AUC on a hold-out of a few thousand rows is about +/-0.01 wide, so smaller moves are
# indistinguishable from resampling noise, while larger ones are real losses worth blocking for.
GUARDRAIL_TOLERANCE = 0.01


@dataclass
class PromotionDecision:
    """The gate's answer: ``reasons`` has one line per check, ``evidence`` the numbers behind them."""

    promote: bool
    reasons: list[str]
    evidence: dict[str, Any]


def _gain(metric: str, new: float, old: float) -> float:
    """Improvement of ``new`` over ``old`` in the metric's better direction (negative = worse)."""
    return new - old if higher_is_better(metric) else old - new


def _value(metrics: dict[str, float], metric: str, who: str) -> float:
    if metric not in metrics:
        raise ValueError(f"{who} metrics lack '{metric}'; have {sorted(metrics)}")
    return float(metrics[metric])


def decide_promotion(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    *,
    primary: str,
    guardrails: list[str],
    margin: float,
    challenger_ci: tuple[float, float] | None,
    baselines: dict[str, dict[str, float]],
    size_mb: float,
    max_size_mb: float,
    latency_ms: float,
    max_latency_ms: float,
    fairness: Sequence[Mapping[str, Any]],
    disparate_impact_min: float,
    guardrail_tolerance: float = GUARDRAIL_TOLERANCE,
) -> PromotionDecision:
    """Decide whether the challenger replaces the champion.

    Every check runs, so a blocked decision lists every reason at once:

    * baselines: the challenger beats every baseline (majority, rules) on the primary metric; without a
      champion this is the whole quality bar, and with one it still guards against a champion-beating
      model that a heuristic matches.
    * champion: the primary metric beats the champion's by more than ``margin``, and the worse end of the
      challenger's confidence interval (lower bound, or upper for lower-is-better metrics) is no worse
      than the champion's value.
    * guardrails: none is worse than the champion's by more than ``guardrail_tolerance`` (absolute).
    * budgets: model size and latency within their maxima.
    * fairness: every protected attribute's verdict (``fairness``: rows of
      :func:`~mlplatform.core.evaluation.fairness_assessment` with ``attribute``, ``passed`` and optionally
      ``disparate_impact``, ``p_value``, ``applicable``, ``note``) passes; ``disparate_impact_min`` is the
      brief's minimum, quoted in the reason. Attributes where the ratio does not apply pass with the reason.

    Metrics compared must be measured on the same hold-out: re-score the champion on the current test set.

    Raises:
        ValueError: a metric named by ``primary`` or ``guardrails`` is missing, or has no better direction.
    """
    up = higher_is_better(primary)
    value = _value(challenger, primary, "challenger")
    checks: dict[str, bool] = {}
    reasons: list[str] = []

    def check(name: str, passed: bool, message: str) -> None:
        checks[name] = passed
        reasons.append(f"{'PASS' if passed else 'FAIL'} {name}: {message}")

    if math.isnan(value):
        check("primary_defined", False, f"challenger {primary} is NaN; it cannot be compared")
    if not baselines and champion is None:
        check("baselines", False, "no baseline and no champion to compare with; the comparison is required")
    for name, metrics in sorted(baselines.items()):
        other = _value(metrics, primary, f"baseline '{name}'")
        gain = _gain(primary, value, other)
        check(f"beats_{name}", gain > 0, f"{primary} {value:.4f} vs {name} {other:.4f} (gain {gain:+.4f})")

    guardrail_evidence: dict[str, dict[str, float]] = {}
    if champion is not None:
        incumbent = _value(champion, primary, "champion")
        gain = _gain(primary, value, incumbent)
        check("beats_champion", gain > margin,
              f"{primary} {value:.4f} vs champion {incumbent:.4f}: gain {gain:+.4f}, needs > {margin:.4f}")
        if challenger_ci is not None:
            worst = challenger_ci[0] if up else challenger_ci[1]
            check("ci_clears_champion", _gain(primary, worst, incumbent) >= 0,
                  f"worse end of the {primary} interval {worst:.4f} vs champion {incumbent:.4f}")
        for metric in guardrails:
            new, old = _value(challenger, metric, "challenger"), _value(champion, metric, "champion")
            change = _gain(metric, new, old)
            guardrail_evidence[metric] = {"challenger": new, "champion": old, "gain": change}
            check(f"guardrail_{metric}", change >= -guardrail_tolerance,
                  f"{old:.4f} -> {new:.4f} (gain {change:+.4f}, tolerance {guardrail_tolerance})")
    else:
        reasons.append(f"NOTE no champion yet: guardrails {guardrails} have nothing to regress from")

    check("size_budget", size_mb <= max_size_mb, f"{size_mb:.2f} MB, budget {max_size_mb} MB")
    check("latency_budget", latency_ms <= max_latency_ms, f"{latency_ms:.2f} ms, budget {max_latency_ms} ms")
    for row in fairness:
        check(f"fairness_{row['attribute']}", bool(row["passed"]), _fairness_reason(row, disparate_impact_min))
    if not fairness:
        reasons.append("NOTE fairness: the brief names no protected attributes")

    evidence = {
        "primary": primary,
        "higher_is_better": up,
        "challenger": dict(challenger),
        "champion": dict(champion) if champion is not None else None,
        "challenger_ci": list(challenger_ci) if challenger_ci is not None else None,
        "margin": margin,
        "baselines": {name: dict(m) for name, m in baselines.items()},
        "guardrails": guardrail_evidence,
        "guardrail_tolerance": guardrail_tolerance,
        "size_mb": size_mb,
        "max_size_mb": max_size_mb,
        "latency_ms": latency_ms,
        "max_latency_ms": max_latency_ms,
        "fairness": [{k: v for k, v in row.items() if k != "groups"} for row in fairness],
        "disparate_impact_min": disparate_impact_min,
        "checks": checks,
    }
    return PromotionDecision(all(checks.values()), reasons, evidence)


def _fairness_reason(row: Mapping[str, Any], minimum: float) -> str:
    """One attribute's fairness verdict in words."""
    impact, p_value = row.get("disparate_impact"), row.get("p_value")
    if row.get("applicable") is False:
        return f"disparate impact does not apply ({row.get('note') or 'no selection decision'})"
    if impact is None:
        return "not assessable: fewer than two groups with enough hold-out rows (fails closed)"
    shown = f"disparate impact {impact:.3f} (minimum {minimum:g})"
    if impact >= minimum:
        return shown
    significance = f"Fisher p = {p_value:.3g}" if p_value is not None else "no significance test"
    return f"{shown}, {significance}: " + ("not significant" if row["passed"] else "significant")
