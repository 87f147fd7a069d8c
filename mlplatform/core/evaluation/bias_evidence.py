"""The bias checklist's evidence besides the gate's fairness: how well each protected group is represented in the
training rows, and which model inputs are proxies for a protected attribute; :func:`bias_evidence` gathers them
for the model card."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from mlplatform.brief import Brief
from mlplatform.core.datasets import model_features
from mlplatform.core.evaluation.fairness_assessment import AttributeFairness
from mlplatform.core.training import SplitFrames

# A bias-checklist limit the brief does not carry yet (proposed: thresholds.representation_min_ratio): a group
# whose share of the training rows is under this times its share of the reference is under-represented (4/5 rule).
REPRESENTATION_MIN_RATIO = 0.8

# One recorded row of a table, as ``DataFrame.to_dicts`` gives it.
Row = Mapping[str, Any]


@dataclass(frozen=True)
class BiasEvidence:
    """What the model card's bias checklist judges, per protected attribute, with the checklist's limits.

    Attributes:
        brief: the problem brief (its protected attributes and fairness thresholds).
        representation_min_ratio: a group whose training share is under this times its hold-out share is
            under-represented.
        max_calibration_gap: the largest |predicted − observed| rate a group may show.
        proxy_max_auc: a single model input predicting a group with this AUC or more is a proxy.
        fairness: attribute → the fairness gate's verdict.
        fairness_groups: attribute → per-group rows (``group, n, assessed, primary_metric, primary_value,
            positives`` and, binary, ``observed_rate, mean_score, calibration_gap, calibration_p_value, ece``).
        representation: attribute → rows of :func:`representation`.
        proxies: attribute → rows of :func:`proxy_features`.
        edge_cases: rows of :func:`~mlplatform.core.evaluation.edge_cases.edge_case_probe`.
        sliced_metrics: slice records ``{dimension, value, n, metrics}``.
    """

    brief: Brief
    representation_min_ratio: float
    max_calibration_gap: float
    proxy_max_auc: float
    fairness: Mapping[str, AttributeFairness] = field(default_factory=dict)
    fairness_groups: Mapping[str, Sequence[Row]] = field(default_factory=dict)
    representation: Mapping[str, Sequence[Row]] = field(default_factory=dict)
    proxies: Mapping[str, Sequence[Row]] = field(default_factory=dict)
    edge_cases: Sequence[Row] = ()
    sliced_metrics: Sequence[Row] = ()


def representation(train_groups: pl.Series, reference_groups: pl.Series) -> pl.DataFrame:
    """Each group's share of the training rows against its share of a reference population (e.g. the
    hold-out the model is judged on). Unknown values count as a group of their own.

    Returns:
        ``group``, ``train_rows``, ``train_share``, ``reference_share``, ``ratio`` (train over reference
        share; null when the group is absent from the reference).
    """
    def shares(values: pl.Series, name: str) -> pl.DataFrame:
        counts = values.cast(pl.String).rename("group").value_counts(name="rows")
        return counts.with_columns((pl.col("rows") / values.len()).alias(name))

    train = shares(train_groups, "train_share").rename({"rows": "train_rows"})
    reference = shares(reference_groups, "reference_share").drop("rows")
    return (train.join(reference, on="group", how="full", coalesce=True, nulls_equal=True)
            .with_columns(pl.col("train_rows").fill_null(0).cast(pl.Int64), pl.col("train_share").fill_null(0.0))
            .with_columns(ratio=pl.col("train_share") / pl.col("reference_share"))
            .select("group", "train_rows", "train_share", "reference_share", "ratio")
            .sort("group", nulls_last=True))


def _binned(fit: pl.Series, other: pl.Series, bins: int) -> tuple[pl.Series, pl.Series]:
    """Both series as bin labels: numeric by the fit series' quantiles (each bin's index, -1 for missing: integers
    group and join several times faster than their text), text as is with missing a bin."""
    if fit.dtype.is_numeric():
        fit, other = fit.cast(pl.Float64).fill_nan(None), other.cast(pl.Float64).fill_nan(None)
        edges = np.unique(np.nanquantile(fit.drop_nulls().to_numpy(), np.linspace(0, 1, bins + 1)[1:-1])) \
            if fit.drop_nulls().len() else np.array([])

        def label(values: pl.Series) -> pl.Series:
            codes = np.searchsorted(edges, values.fill_null(np.nan).to_numpy(), side="right")
            return pl.Series(np.where(values.is_null().to_numpy(), -1, codes))

        return label(fit), label(other)
    return fit.cast(pl.String).fill_null("missing"), other.cast(pl.String).fill_null("missing")


# A model input that separates a protected group from the rest with at least this ROC-AUC on rows it was not
# fitted on is a proxy for the attribute. Proposed brief field: thresholds.proxy_max_auc.
PROXY_MAX_AUC = 0.8


def proxy_features(fit: pl.DataFrame, evaluate: pl.DataFrame, features: list[str], attribute: str,
                   bins: int = 10) -> pl.DataFrame:
    """How well each feature alone predicts membership of each value of a protected attribute.

    Each feature is binned (numeric: ``bins`` quantiles of ``fit``; text: its values; missing: a bin), each
    bin gets the group's share among ``fit`` rows in it, and that share scores the ``evaluate`` rows, whose
    one-vs-rest ROC-AUC is measured. Bins catch non-monotone proxies; measuring on rows not used for the
    shares keeps high-cardinality features from looking predictive by memorising.

    Returns:
        One row per feature: ``feature``, ``group`` (the value it predicts best), ``auc``; best first.
        Rows whose attribute is unknown are left out; groups absent from either frame are skipped.
    """
    from sklearn.metrics import roc_auc_score

    fit, evaluate = fit.filter(pl.col(attribute).is_not_null()), evaluate.filter(pl.col(attribute).is_not_null())
    fit_groups, eval_groups = fit[attribute].cast(pl.String), evaluate[attribute].cast(pl.String)
    values = sorted(set(fit_groups.unique()) & set(eval_groups.unique()))
    rows = []
    for name in features:
        fit_bins, eval_bins = _binned(fit[name], evaluate[name], bins)
        best_group, best_auc = None, float("nan")
        for value in values:
            member = (fit_groups == value).cast(pl.Float64)
            share = pl.DataFrame({"bin": fit_bins, "m": member}).group_by("bin").agg(pl.col("m").mean())
            # A bin unseen in fit gets the group's overall share: no information, as it should.
            scored = (pl.DataFrame({"bin": eval_bins}).join(share, on="bin", how="left", maintain_order="left")
                      ["m"].fill_null(member.mean()).to_numpy())
            target = (eval_groups == value).to_numpy()
            if target.all() or not target.any():
                continue
            auc = float(roc_auc_score(target, scored))
            if best_group is None or auc > best_auc:
                best_group, best_auc = value, auc
        rows.append({"feature": name, "group": best_group, "auc": best_auc})
    frame = pl.DataFrame(rows, schema={"feature": pl.String, "group": pl.String, "auc": pl.Float64})
    return frame.sort("auc", descending=True, nulls_last=True)


def bias_evidence(brief: Brief, split: SplitFrames, fairness_groups: pl.DataFrame, edge_cases: pl.DataFrame, *,
                  fairness: Mapping[str, AttributeFairness], sliced_metrics: Sequence[Row]) -> BiasEvidence:
    """The bias checklist's evidence: the fairness gate's rows and the slices (as the card records them), and per
    protected attribute the representation in the training rows against the hold-out, the per-group fairness
    rows (evaluation's fairness_groups table), proxies among the model inputs, the edge-case probes, and the
    checklist's limits."""
    attributes = brief.protected_attributes
    later = pl.concat([split.validation, split.test])
    by_attribute = ({a: fairness_groups.filter(pl.col("attribute") == a).to_dicts() for a in attributes}
                    if fairness_groups.width else {})
    return BiasEvidence(
        brief=brief,
        fairness=fairness,
        sliced_metrics=sliced_metrics,
        # Proportional to whom: the hold-out is the population the model is judged on.
        representation={a: representation(split.train[a], split.test[a]).to_dicts() for a in attributes},
        fairness_groups=by_attribute,
        # Fitted on train, measured on later rows: a proxy must carry over to data it has not seen.
        proxies={a: proxy_features(split.train, later, model_features(brief), a).to_dicts() for a in attributes},
        edge_cases=edge_cases.to_dicts(),
        representation_min_ratio=REPRESENTATION_MIN_RATIO,
        max_calibration_gap=brief.thresholds.max_calibration_error,
        proxy_max_auc=PROXY_MAX_AUC,
    )
