"""The blocking promotion gate: promote a challenger only on evidence, and say why either way."""

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import polars as pl

from mlplatform.brief import Brief, TaskType
from mlplatform.core.evaluation.fairness_assessment import AttributeFairness
from mlplatform.core.evaluation.hold_out_metrics import Candidate, paired_bootstrap_difference
from mlplatform.core.metrics import compute_metrics, higher_is_better

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

    @property
    def summary(self) -> str:
        """One line for the gate: ``promote``, or ``blocked:`` and the failed checks' reasons."""
        return "promote" if self.promote else "blocked: " + "; ".join(r for r in self.reasons if r.startswith("FAIL"))

    @property
    def reasons_markdown(self) -> str:
        """The reasons as a Markdown list (``-`` when there are none)."""
        return "\n".join(f"- {r}" for r in self.reasons) or "-"


@dataclass(frozen=True)
class GoldenScore:
    """Both models' primary metric on the golden test set: the fixed rows no model trains, validates or tunes on.

    ``champion`` is None before the first promotion; ``difference_ci`` is the paired 95% bootstrap interval of
    challenger minus champion on the same rows; ``not_judged`` says why the set is too small to judge on (the
    numbers are then only recorded); ``leaked_keys`` counts golden keys found in a split (which fails).
    """

    version: str
    rows: int
    challenger: float
    champion: float | None
    not_judged: str | None = None
    leaked_keys: int = 0  # golden keys found in train, validation or test: then the set proves nothing
    difference_ci: tuple[float, float] | None = None


def golden_shortfall(task: TaskType, y: np.ndarray, n_classes: int, min_class_rows: int) -> str | None:
    """Why the golden set is too small to judge a model on, or None when every class has ``min_class_rows``.

    Binary: positives and negatives; multiclass: each of the ``n_classes`` classes; regression: all rows. Below
    that, a few rows move the metric more than any tolerance, so a comparison would judge noise.
    """
    fix = "raise thresholds.golden_share or lower golden_min_class_rows"
    if task == "regression":
        return None if len(y) >= min_class_rows else f"only {len(y)} rows (needs {min_class_rows}: {fix})"
    counts = np.bincount(np.asarray(y, dtype=int), minlength=n_classes)
    names = ["negatives", "positives"] if task == "binary" else [f"rows of class {c}" for c in range(n_classes)]
    short = [(count, name) for count, name in zip(counts, names, strict=True) if count < min_class_rows]
    if not short:
        return None
    count, name = min(short)
    return f"only {count} {name} in {len(y)} rows (needs {min_class_rows}: {fix})"


class Scorer(Protocol):
    """A model as the gate sees it: scores for a frame and its decision threshold."""

    threshold: float

    def predict_score(self, frame: pl.DataFrame) -> np.ndarray: ...


def score_golden(task: TaskType, primary: str, golden: pl.DataFrame, label: str, challenger: Scorer,
                 champion: Scorer | None, *, version: str, min_class_rows: int, leaked_keys: int = 0,
                 seed: int = 0) -> GoldenScore:
    """Both models' ``primary`` metric on the golden rows, the paired bootstrap interval of their difference
    (with a champion), and whether the set is large enough to judge (:func:`golden_shortfall`)."""
    if golden.height == 0:
        return GoldenScore(version, 0, math.nan, None, "the golden set has no rows", leaked_keys)
    y = golden[label].to_numpy()
    new = Candidate("challenger", challenger.predict_score(golden), challenger.threshold)
    classes = new.scores.shape[1] if task == "multiclass" else 2
    shortfall = golden_shortfall(task, y, classes, min_class_rows)
    value = compute_metrics(task, y, new.scores, new.threshold)[primary]
    if champion is None:
        return GoldenScore(version, golden.height, value, None, shortfall, leaked_keys)
    old = Candidate("champion", champion.predict_score(golden), champion.threshold)
    _, low, high = paired_bootstrap_difference(task, primary, y, new, old, seed=seed)
    incumbent = compute_metrics(task, y, old.scores, old.threshold)[primary]
    return GoldenScore(version, golden.height, value, incumbent, shortfall, leaked_keys, (low, high))


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
    fairness: Sequence[AttributeFairness],
    disparate_impact_min: float,
    guardrail_tolerance: float = GUARDRAIL_TOLERANCE,
    golden: GoldenScore | None = None,
    max_golden_regression: float = 0.05,
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
    * golden set: the challenger's primary metric on the golden test set (``golden``) is no more than
      ``max_golden_regression`` (relative) worse than the champion's on the same rows, unless the paired
      interval of the difference (``golden.difference_ci``) still reaches "no worse": a golden set of a few
      dozen positives moves a metric by more than 5% between equally good models, and the gate must not refuse
      on noise. Without a champion, or with too few rows per class, it is recorded, not judged; ``golden`` None
      means the brief disabled it.
    * budgets: model size and latency within their maxima.
    * fairness: every protected attribute's verdict (``fairness``, as the evaluation/fairness table holds it)
      passes: PASS, WAIVED by the brief, NOT_APPLICABLE, or NOT_ASSESSABLE where the brief says
      warn; the reason quotes the status. ``disparate_impact_min`` is the brief's minimum, quoted for rows
      without a reason.

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

    _golden_check(golden, primary, max_golden_regression, check, reasons)
    check("size_budget", size_mb <= max_size_mb, f"{size_mb:.2f} MB, budget {max_size_mb} MB")
    check("latency_budget", latency_ms <= max_latency_ms, f"{latency_ms:.2f} ms, budget {max_latency_ms} ms")
    for row in fairness:
        name, reason = f"fairness_{row.attribute}", _fairness_reason(row, disparate_impact_min)
        if row.status in ("WAIVED", "NOT_ASSESSABLE") and row.passed:
            checks[name] = True  # let through by the brief's word, and said so: never "PASS"
            reasons.append(f"{row.status} {name}: {reason}")
        else:
            check(name, bool(row.passed), reason)
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
        "fairness": [row.row() for row in fairness],
        "disparate_impact_min": disparate_impact_min,
        "golden": _golden_evidence(golden, primary, max_golden_regression),
        "checks": checks,
    }
    return PromotionDecision(all(checks.values()), reasons, evidence)


def golden_relative_drop(metric: str, challenger: float, champion: float) -> float:
    """How much worse the challenger is than the champion, relative to the champion (negative = better)."""
    gain = _gain(metric, challenger, champion)
    if champion == 0:
        return 0.0 if gain >= 0 else math.inf
    return -gain / abs(champion)


def _golden_check(golden: GoldenScore | None, primary: str, max_regression: float,
                  check: Callable[[str, bool, str], None], reasons: list[str]) -> None:
    """The golden-set condition, or a note when there is nothing to judge."""
    if golden is None:
        reasons.append("NOTE golden set: disabled (thresholds.golden_share is 0)")
        return
    where = f"golden set {golden.version} ({golden.rows} rows)"
    if golden.leaked_keys:
        check("golden_set", False, f"{where}: {golden.leaked_keys} of its keys are also in train, validation or "
                                   "test, so models were fitted or chosen on it: the split must set the golden "
                                   "set aside (mlplatform.core.datasets.split_training_set)")
    elif golden.not_judged is not None:
        reasons.append(f"NOTE {where}: not judged: {golden.not_judged}")
    elif golden.champion is None:
        reasons.append(f"NOTE {where}: challenger {primary} {golden.challenger:.4f} recorded, no champion to "
                       "compare with")
    elif math.isnan(golden.challenger) or math.isnan(golden.champion):
        check("golden_set", False, f"{where}: {primary} is undefined (challenger {golden.challenger}, champion "
                                   f"{golden.champion}), so the models cannot be compared on it")
    else:
        drop = golden_relative_drop(primary, golden.challenger, golden.champion)
        message = (f"{where}: {primary} {golden.challenger:.4f} vs champion {golden.champion:.4f} "
                   f"({-drop:+.1%}, may fall at most {max_regression:.0%})")
        noise = golden.difference_ci is not None and _reaches_no_worse(primary, golden.difference_ci)
        if golden.difference_ci is not None:
            low, high = golden.difference_ci
            message += (f", paired 95% interval of the difference [{low:+.4f}, {high:+.4f}]"
                        + (": within noise" if noise and drop > max_regression else ""))
        check("golden_set", drop <= max_regression or noise, message)


def _reaches_no_worse(metric: str, interval: tuple[float, float]) -> bool:
    """Whether a challenger-minus-champion interval still holds "no worse" (its better end is on the good side)."""
    low, high = interval
    return high >= 0 if higher_is_better(metric) else low <= 0


def _golden_evidence(golden: GoldenScore | None, primary: str, max_regression: float) -> dict[str, Any] | None:
    if golden is None:
        return None
    drop = (golden_relative_drop(primary, golden.challenger, golden.champion)
            if golden.champion is not None else None)
    return {**asdict(golden), "metric": primary, "relative_drop": drop, "max_regression": max_regression,
            "difference_ci": list(golden.difference_ci) if golden.difference_ci is not None else None}


def _fairness_reason(row: AttributeFairness, minimum: float) -> str:
    """One attribute's fairness verdict in words: its status and the assessment's reason (see
    :func:`~mlplatform.core.evaluation.fairness_assessment.fairness_assessment`), or, for rows without them, the
    ratio."""
    if row.reason:
        return str(row.reason)  # each metric's status, value, limit and any waiver's reason
    if row.applicable is False:
        return f"disparate impact does not apply ({row.note or 'no selection decision'})"
    impact = row.disparate_impact
    if impact is None:
        return "not assessable: fewer than two groups with enough hold-out rows (fails closed)"
    return f"disparate impact {impact:.3f} (minimum {minimum:g})"


def judge_challenger(brief: Brief, metrics: pl.DataFrame, challenger: str, champion: dict[str, float] | None, *,
                     size_mb: float, latency_ms: float, fairness: Sequence[AttributeFairness],
                     golden: GoldenScore | None) -> PromotionDecision:
    """:func:`decide_promotion` under the brief's metrics and thresholds, for the candidate ``challenger`` of the
    evaluation's metric table (``candidate``, ``metric``, ``value``, ``ci_low``, ``ci_high``; the baselines' rows
    are the ``rules`` and ``majority`` candidates'), against the champion's hold-out ``champion`` metrics (None
    before the first promotion)."""
    primary, t = brief.metrics.primary, brief.thresholds
    by_candidate = {name: dict(zip(group["metric"], group["value"], strict=True))
                    for (name,), group in metrics.group_by("candidate")}
    row = metrics.filter((pl.col("candidate") == challenger) & (pl.col("metric") == primary))
    return decide_promotion(
        by_candidate[challenger], champion, primary=primary, guardrails=brief.metrics.guardrails,
        margin=t.promotion_margin, challenger_ci=(row["ci_low"][0], row["ci_high"][0]),
        baselines={k: v for k, v in by_candidate.items() if k in ("rules", "majority")},
        size_mb=size_mb, max_size_mb=t.max_model_size_mb, latency_ms=latency_ms, max_latency_ms=t.max_latency_ms,
        fairness=fairness, disparate_impact_min=t.disparate_impact_min,
        golden=golden, max_golden_regression=t.max_golden_regression)


def decision_table(challenger_version: str, champion_version: str | None, decision: PromotionDecision) -> pl.DataFrame:
    """The gate's answer as the lake's registry/promotion row, which ``champion_model`` acts on."""
    return pl.DataFrame({"challenger_version": [challenger_version], "champion_version": [champion_version],
                         "promote": [decision.promote], "reasons": ["; ".join(decision.reasons)]})
