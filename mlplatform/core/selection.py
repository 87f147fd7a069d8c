"""Which trained candidate becomes the challenger: the method's model guide, simplest model first.

The guide (phase 3, "模型选择指南") starts tabular work with LightGBM, uses a neural network only on large data
and avoids deep learning below 10,000 samples. So the challenger is LightGBM unless a more complex candidate
beats it on validation by the brief's ``thresholds.complexity_margin``, and a deep candidate is not eligible
on a training split under 10,000 rows unless the brief sets ``training.allow_deep_below_10k``. The hold-out
never takes part: it judges the chosen model afterwards.
"""

import math
from dataclasses import dataclass

import polars as pl

from mlplatform.core.metrics import higher_is_better
from mlplatform.core.model_families import LIGHTGBM, MODEL_FAMILIES

SIMPLE_REFERENCE = LIGHTGBM.name  # the guide's starting point for tabular data; every other candidate is "more complex"
DEEP_CANDIDATES = frozenset(family.name for family in MODEL_FAMILIES if family.deep)
DEEP_MIN_TRAIN_ROWS = 10_000  # the guide: no deep learning below this many samples


@dataclass(frozen=True)
class Selection:
    """The challenger and the numbers that decided it.

    Attributes:
        challenger: the chosen candidate's name.
        metric: the primary metric compared, on validation.
        validation: every candidate's validation value.
        train_rows: rows of the training split (decides deep eligibility).
        margin: the gain over LightGBM a more complex candidate needs.
        excluded: candidate -> why it could not be chosen.
        decision: one paragraph stating the rule and the numbers.
    """

    challenger: str
    metric: str
    validation: dict[str, float]
    train_rows: int
    margin: float
    excluded: dict[str, str]
    decision: str

    def table(self) -> pl.DataFrame:
        """One row per candidate (evaluation/challenger): its validation value, its gain over LightGBM, whether
        it was eligible and chosen; the rule's inputs repeated on each row."""
        reference = self.validation.get(SIMPLE_REFERENCE)
        return pl.DataFrame([{
            "candidate": name, "validation_value": value,
            "gain_over_lightgbm": None if reference is None else _gain(value, reference, self.metric),
            "eligible": name not in self.excluded, "excluded_because": self.excluded.get(name),
            "chosen": name == self.challenger, "metric": self.metric, "train_rows": self.train_rows,
            "complexity_margin": self.margin} for name, value in self.validation.items()],
            schema={"candidate": pl.String, "validation_value": pl.Float64, "gain_over_lightgbm": pl.Float64,
                    "eligible": pl.Boolean, "excluded_because": pl.String, "chosen": pl.Boolean,
                    "metric": pl.String, "train_rows": pl.Int64, "complexity_margin": pl.Float64},
        ).sort("chosen", descending=True, maintain_order=True)

    def markdown(self) -> str:
        """The report's model-selection section."""
        from mlplatform.core.markdown import table

        shown = self.table().select("candidate", "validation_value", "gain_over_lightgbm", "eligible",
                                    "excluded_because", "chosen")
        return f"## Model selection\n\n{self.decision}\n\n{table(shown)}"


def _gain(value: float, reference: float, metric: str) -> float:
    """How much better ``value`` is than ``reference``, in the metric's better direction (absolute)."""
    return value - reference if higher_is_better(metric) else reference - value


def choose_challenger(validation: dict[str, float], metric: str, *, train_rows: int, margin: float,
                      allow_deep_below_10k: bool = False, unfair: dict[str, str] | None = None) -> Selection:
    """Choose the challenger by the method's model guide (see the module docstring).

    Args:
        validation: candidate -> its validation value of ``metric`` (never the hold-out).
        metric: the brief's primary metric.
        train_rows: rows of the training split.
        margin: ``thresholds.complexity_margin``: the absolute gain over LightGBM a more complex candidate needs.
        allow_deep_below_10k: ``training.allow_deep_below_10k``: deep candidates stay eligible on small data.
        unfair: candidate -> why it fails the fairness gate on the hold-out; such a candidate is not eligible
            while another eligible one passes (when none passes, the promotion gate refuses the choice with
            its numbers).

    Raises:
        ValueError: no candidate, or none eligible.
    """
    if not validation:
        raise ValueError("no trained candidate to choose a challenger from")
    excluded = {name: "no finite validation value" for name, value in validation.items() if not math.isfinite(value)}
    small = train_rows < DEEP_MIN_TRAIN_ROWS and not allow_deep_below_10k
    for name in validation:
        if small and name in DEEP_CANDIDATES and name not in excluded:
            excluded[name] = (f"deep model on {train_rows:,} training rows (< {DEEP_MIN_TRAIN_ROWS:,}); set "
                              "training.allow_deep_below_10k to allow it")
    fails_fairness = {name: f"fails the fairness gate: {why}" for name, why in (unfair or {}).items()
                      if name in validation and name not in excluded}
    if any(name not in excluded and name not in fails_fairness for name in validation):
        excluded.update(fails_fairness)
    eligible = [name for name in validation if name not in excluded]
    if not eligible:
        raise ValueError(f"no candidate can be the challenger: {excluded}; train LightGBM or fix the candidates")
    values = ", ".join(f"{name} {value:.4f}" for name, value in validation.items())
    rule = (f"Rule: LightGBM, the simplest candidate, is the challenger unless a more complex one beats its "
            f"validation {metric} by more than thresholds.complexity_margin ({margin:g}, absolute); deep models are "
            f"not eligible below {DEEP_MIN_TRAIN_ROWS:,} training rows"
            + (" (allowed here by training.allow_deep_below_10k)" if allow_deep_below_10k else "")
            + f". Training rows: {train_rows:,}. Validation {metric}: {values}.")
    if SIMPLE_REFERENCE not in eligible:
        pick = max if higher_is_better(metric) else min
        chosen = pick(eligible, key=validation.__getitem__)
        return Selection(chosen, metric, dict(validation), train_rows, margin, excluded,
                         f"{rule} No eligible LightGBM candidate"
                         + "".join(f"; {name} is not eligible: {why}" for name, why in excluded.items())
                         + f": {chosen}, the best eligible one, is the challenger.")
    base = validation[SIMPLE_REFERENCE]
    gains = {name: _gain(validation[name], base, metric) for name in eligible if name != SIMPLE_REFERENCE}
    winners = {name: gain for name, gain in gains.items() if gain > margin}
    chosen = max(winners, key=winners.__getitem__) if winners else SIMPLE_REFERENCE
    said = [f"{name} is {gain:+.4f} against LightGBM ({'more than' if gain > margin else 'not more than'} the "
            f"margin)" for name, gain in gains.items()]
    said += [f"{name} is not eligible: {why}" for name, why in excluded.items()]
    verdict = f"{chosen} is the challenger" + ("." if winners else ", as the simpler model.")
    return Selection(chosen, metric, dict(validation), train_rows, margin, excluded,
                     f"{rule} {'; '.join(said) or 'LightGBM is the only candidate'}: {verdict}")
