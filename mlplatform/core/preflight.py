"""What the data alone says about gates a run would otherwise meet only after training.

``mlplatform init`` and ``mlplatform validate`` call these before anything is trained:

* :func:`group_outlook`: how many hold-out rows each group of a protected attribute can be expected to have. A
  decision-making model (binary; multiclass with a favourable class) whose attribute has fewer than two groups
  reaching ``thresholds.fairness_min_group_size`` cannot be assessed, and the promotion gate fails closed.
* :func:`predictive_features`: each input's single-feature hold-out ROC-AUC / R² on a quick seeded split, the
  measure the leakage gate (checklist item 4) applies, so a genuine but very predictive measurement can be
  declared legitimate in the brief before the first run.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from mlplatform.brief import Brief, RandomSplit, Split, TaskType

# Share of rows the quick split of :func:`predictive_features` scores on.
QUICK_HOLD_OUT = 0.3


@dataclass(frozen=True)
class GroupOutlook:
    """A protected attribute's groups (as fairness bands them) and the hold-out rows and positives each can be
    expected to have.

    Attributes:
        attribute: the protected column.
        expected_rows: group -> expected hold-out rows (rows of the group × the hold-out share).
        min_group_size: the brief's ``thresholds.fairness_min_group_size``.
        expected_positives: group -> expected hold-out positives (a true-positive rate's denominator), or None
            where the label is not at hand or the task is not binary.
    """

    attribute: str
    expected_rows: dict[str, float]
    min_group_size: int
    expected_positives: dict[str, float] | None = None

    @property
    def assessable(self) -> bool:
        """At least two groups can be expected to reach the minimum size: the disparate-impact ratio can compare
        them."""
        return sum(n >= self.min_group_size for n in self.expected_rows.values()) >= 2

    @property
    def tpr_assessable(self) -> bool | None:
        """At least two groups can be expected to hold the minimum number of positives: the equal-opportunity
        (TPR) gap can compare them. None where the positives are not known."""
        if self.expected_positives is None:
            return None
        return sum(n >= self.min_group_size for n in self.expected_positives.values()) >= 2

    @property
    def fully_assessable(self) -> bool:
        """Neither fairness metric is expected to be NOT_ASSESSABLE."""
        return self.assessable and self.tpr_assessable is not False

    def describe(self) -> str:
        """The expected rows (and positives) per group in one line, and what follows when a fairness metric
        cannot be assessed."""
        groups = ", ".join(f"{group} ≈{rows:.0f}" for group, rows in self.expected_rows.items())
        line = f"protected attribute '{self.attribute}': expected hold-out rows per group: {groups}"
        if self.expected_positives is not None:
            line += "; positives: " + ", ".join(f"{g} ≈{n:.0f}" for g, n in self.expected_positives.items())
        problems = []
        if not self.assessable:
            problems.append(f"fewer than two groups reach thresholds.fairness_min_group_size ({self.min_group_size}) "
                            "rows, so the disparate-impact ratio cannot be assessed")
        if self.tpr_assessable is False:
            problems.append(f"fewer than two groups reach {self.min_group_size} positives, so the equal-opportunity "
                            "(TPR) gap cannot be assessed")
        if not problems:
            return line
        return (f"{line}; " + "; ".join(problems) + "; the promotion gate will fail closed after training (unless "
                "thresholds.fairness_when_not_assessable is warn). Collect more rows, lower the threshold with a "
                f"reason, or remove '{self.attribute}' from protected_attributes.")


def decides(task: TaskType, favourable_class: str | int | None) -> bool:
    """Whether the model makes the selection decision fairness compares (else fairness is not applicable)."""
    return task == "binary" or (task == "multiclass" and favourable_class is not None
                                and str(favourable_class).isdigit())


def group_outlook(values: pl.Series, hold_out_share: float, min_group_size: int,
                  positive: pl.Series | None = None) -> GroupOutlook:
    """The groups of a protected attribute (many-valued numbers in the bands fairness uses) and their expected
    hold-out rows: each group's rows times ``hold_out_share``; with ``positive`` (True where a row's label is the
    positive class, aligned with ``values``) also their expected positives. Missing values form no group."""
    from mlplatform.core.evaluation.fairness_assessment import protected_groups

    known = values.is_not_null()
    rows = pl.DataFrame({"group": protected_groups(values.filter(known)).cast(pl.String),
                         "positive": (positive.filter(known).fill_null(False).cast(pl.Boolean) if positive is not None
                                      else pl.repeat(False, int(known.sum()), eager=True))})
    counts = rows.group_by("group").agg(pl.len().alias("n"), pl.col("positive").sum().alias("positives")).sort(
        ["n", "group"], descending=[True, False])
    expected = {group: n * hold_out_share for group, n in zip(counts["group"], counts["n"], strict=True)}
    positives = ({group: p * hold_out_share for group, p in zip(counts["group"], counts["positives"], strict=True)}
                 if positive is not None else None)
    return GroupOutlook(values.name, expected, min_group_size, positives)


def hold_out_share(split: Split | RandomSplit, golden_share: float,
                   label_times: pl.Series | None = None) -> float | None:
    """The share of labelled rows that ends up in the hold-out (test) split, golden set excluded.

    A random split gives it directly; a split at fixed dates needs the label times; a rolling split depends on
    the latest labelled month, so it is not estimated (None).
    """
    kept = 1 - golden_share
    if isinstance(split, RandomSplit):
        return split.test_fraction * kept
    if split.rolling or split.test_start is None or label_times is None or label_times.drop_nulls().len() == 0:
        return None
    times = label_times.drop_nulls().cast(pl.Datetime("us"))
    in_test = times >= pl.lit(split.test_start).cast(pl.Datetime("us"))
    if split.test_end is not None:
        in_test &= times < pl.lit(split.test_end).cast(pl.Datetime("us"))
    flags = pl.select(in_test).to_series()
    return int(flags.sum()) / flags.len() * kept


@dataclass(frozen=True)
class PredictiveFeature:
    """An input that alone predicts the label about as well as the leakage gate's threshold allows or better."""

    feature: str
    score: float
    metric: str


def predictive_features(frame: pl.DataFrame, inputs: Sequence[str], label: pl.Series, task: TaskType,
                        threshold: float, seed: int = 0) -> list[PredictiveFeature]:
    """Inputs whose single-feature hold-out score exceeds ``threshold`` on a quick seeded split, strongest first.

    The score is the leakage gate's (:func:`mlplatform.core.leakage.check_no_target_derived_feature`): the
    mean label per feature value (numbers in quantile bins) fitted on 70% of the labelled rows, scored on the
    rest by ROC-AUC (classification) or R² (regression).

    Args:
        frame: the table, inputs typed.
        inputs: the model input columns.
        label: the label as numbers (class indices for classification), row-aligned with ``frame``.
        task: the task type.
        threshold: the brief's ``thresholds.leakage_max_single_feature_score``.
        seed: the quick split's seed.
    """
    from mlplatform.core.leakage import check_no_target_derived_feature

    labelled = frame.select(inputs).with_columns(label.alias("__label")).filter(pl.col("__label").is_not_null())
    if labelled.height < 20:
        return []
    in_hold_out = pl.Series(np.random.default_rng(seed).random(labelled.height) < QUICK_HOLD_OUT)
    finding = check_no_target_derived_feature(labelled.filter(~in_hold_out), labelled.filter(in_hold_out),
                                              features=list(inputs), label="__label", task=task,
                                              threshold=threshold)
    scores = finding.evidence["scores_above_threshold"]
    return [PredictiveFeature(name, score, finding.evidence["metric"]) for name, score in scores.items()]


def fairness_outlooks(brief: Brief, label_rows: pl.DataFrame) -> list[GroupOutlook]:
    """The group outlook of each protected attribute the label's source holds, for a model that decides.

    Args:
        brief: the brief.
        label_rows: the label source's rows as read (text), at least its protected and label-time columns.

    Returns:
        One outlook per such attribute; none where fairness does not judge a ratio (regression; multiclass
        without a favourable class) or the hold-out share cannot be estimated before the run (rolling split).
    """
    if not decides(brief.task_type, brief.label.positive_class):
        return []
    source = brief.sources[brief.label.source]
    timestamp = brief.label.timestamp if brief.label.timestamp in label_rows.columns else None
    times = label_rows[timestamp].str.to_datetime(strict=False, time_unit="us") if timestamp else None
    share = hold_out_share(brief.split, brief.thresholds.golden_share, times)
    attributes = [a for a in brief.protected_attributes if a in label_rows.columns]
    if share is None:
        return []
    outlooks = []
    positive = _positive_rows(brief, label_rows)
    for attribute in attributes:
        values = label_rows[attribute].str.strip_chars()
        if source.columns[attribute].dtype in ("int", "float"):
            values = values.cast(pl.Float64, strict=False)
        outlooks.append(group_outlook(values, share, brief.thresholds.fairness_min_group_size, positive))
    return outlooks


def _positive_rows(brief: Brief, label_rows: pl.DataFrame) -> pl.Series | None:
    """True where a row's label (as read, text) is a binary brief's positive class (index 1 of label.classes, or
    1); None where the label is not among the rows or the task is not binary."""
    column = brief.label.column
    if brief.task_type != "binary" or column not in label_rows.columns:
        return None
    label = label_rows[column].cast(pl.String).str.strip_chars()
    if brief.label.classes:
        return label == brief.label.classes[1]
    return label.cast(pl.Float64, strict=False) == 1
