"""Fairness mitigation the brief asks for (method phase 9): reweighing before training, group thresholds after it.

Each method yields one more candidate model, trained, tracked and evaluated like the others; the fairness gate
(:func:`mlplatform.core.evaluation.fairness_assessment.fairness_assessment`) then judges it on the same hold-out.

* ``reweigh`` (pre-processing, Kamiran & Calders 2012): training rows are weighted so that the label is
  independent of the protected group in the weighted training set; LightGBM is trained with those weights.
  The model never sees the attribute, so serving needs nothing new.
* ``threshold_optimizer`` (post-processing, Hardt et al. 2016): fairlearn's ``ThresholdOptimizer`` chooses, on
  validation, per-group decision rules that meet the brief's constraint. Its rule is randomised; the saved model
  is its deterministic equivalent: per group the threshold at which the group's validation selection rate equals
  the rule's. Scoring needs the protected attribute, so serving must receive it (the brief serves it as an entity
  attribute, see :class:`mlplatform.brief.Brief`).
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import polars as pl

from mlplatform.core.io import write_text_atomic
from mlplatform.core.model_families import LIGHTGBM_THRESHOLD_OPTIMIZER

if TYPE_CHECKING:
    from mlplatform.core.training import TrainedModel

ThresholdConstraint = Literal["demographic_parity", "true_positive_rate_parity", "equalized_odds"]
GROUP_THRESHOLDS_FILE = "group_thresholds.json"
# Draws of fairlearn's randomised rule averaged to estimate each group's selection rate on validation.
_DRAWS = 25


def reweighing_weights(groups: pl.Series, y: np.ndarray) -> np.ndarray:
    """Kamiran-Calders weights: P(group) P(label) / P(group, label) per row, so that in the weighted rows the label
    is independent of the group (a group with a rare positive label gets its positives weighted up).

    Rows with an unknown group form a group of their own. Weights average 1 over the rows.
    """
    frame = pl.DataFrame({"group": groups.cast(pl.String).fill_null("\x00unknown"), "y": np.asarray(y).astype(int)})
    n = frame.height
    if n == 0:
        raise ValueError("reweighing needs training rows")
    weighted = frame.with_columns(
        p_group=pl.len().over("group") / n, p_label=pl.len().over("y") / n,
        p_joint=pl.len().over("group", "y") / n)
    return (weighted["p_group"] * weighted["p_label"] / weighted["p_joint"]).to_numpy()


def group_key(frame: pl.DataFrame, columns: list[str]) -> pl.Series:
    """One group label per row from the protected columns (joined with " | " when there are several)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"the group-threshold model needs the protected attribute column(s) {missing} to score; "
                         "serve them with the features (features.entity_attributes) so every request carries them")
    return frame.select(pl.concat_str([pl.col(c).cast(pl.String) for c in columns], separator=" | ")
                        .alias("group"))["group"]


def _scores_estimator():
    """The fitted model's scores as a fitted scikit-learn estimator: the single column of X holds them."""
    from sklearn.base import BaseEstimator

    class Scores(BaseEstimator):
        def __sklearn_is_fitted__(self) -> bool:  # check_is_fitted's protocol: the scores are a fitted model's
            return True

        def fit(self, X, y):
            return self

        def predict(self, X) -> np.ndarray:
            return np.asarray(X, dtype=float)[:, 0]

    return Scores()


@dataclass
class GroupThresholds:
    """Per-group decision thresholds on a base model's score; groups not listed use ``default``."""

    columns: list[str]
    thresholds: dict[str, float]
    default: float
    constraint: str

    def decide(self, scores: np.ndarray, groups: pl.Series) -> np.ndarray:
        """The positive decision per row (0/1)."""
        return (np.asarray(scores, dtype=float) >= self.threshold_per_row(groups)).astype(int)

    def threshold_per_row(self, groups: pl.Series) -> np.ndarray:
        return groups.replace_strict(self.thresholds, default=self.default, return_dtype=pl.Float64).to_numpy()


def fit_group_thresholds(scores: np.ndarray, y: np.ndarray, groups: pl.Series, *, columns: list[str],
                         default: float, constraint: ThresholdConstraint, seed: int = 0) -> GroupThresholds:
    """Fit fairlearn's ``ThresholdOptimizer`` (balanced accuracy under ``constraint``) on validation scores and
    return its deterministic equivalent: per group, the score threshold that selects the share of the group's
    validation rows that the randomised rule selects on average.

    Args:
        scores: the base model's validation scores (positive-class probability).
        y: validation labels (0/1).
        groups: the protected group per row (see :func:`group_key`); rows with an unknown group are left out.
        columns: the protected columns the groups come from, saved so scoring can rebuild them.
        default: the threshold for groups validation did not see (the base model's).
        constraint: the parity the rule meets on validation.
        seed: seeds the draws of the randomised rule.
    """
    from fairlearn.postprocessing import ThresholdOptimizer  # heavy (pandas, scikit-learn): import on use

    known = groups.is_not_null().to_numpy()
    x, labels, names = np.asarray(scores, float)[known, None], np.asarray(y).astype(int)[known], \
        groups.filter(groups.is_not_null()).to_numpy().astype(object)
    optimizer = ThresholdOptimizer(estimator=_scores_estimator(), constraints=constraint,
                                   objective="balanced_accuracy_score", prefit=True, predict_method="predict")
    optimizer.fit(x, labels, sensitive_features=names)
    draws = np.mean([optimizer.predict(x, sensitive_features=names, random_state=seed + i) for i in range(_DRAWS)],
                    axis=0)
    thresholds = {}
    for name in np.unique(names):
        in_group = names == name
        thresholds[str(name)] = _threshold_for_rate(x[in_group, 0], float(draws[in_group].mean()))
    return GroupThresholds(list(columns), thresholds, float(default), constraint)


def _threshold_for_rate(scores: np.ndarray, rate: float) -> float:
    """The lowest score threshold that selects about ``rate`` of ``scores`` (``>=``)."""
    ordered = np.sort(scores)[::-1]
    selected = int(round(rate * ordered.size))
    if selected == 0:
        return float(np.nextafter(ordered[0], np.inf))  # above every score: the group's rule selects no one
    return float(ordered[selected - 1])


@dataclass
class GroupThresholdModel:
    """A base model whose decisions use per-group thresholds. ``predict_score`` shifts each row's score by its
    group's threshold onto the base model's, so one threshold (``threshold``) decides for every group and the
    score still ranks rows within a group; scores are clipped to [0, 1]."""

    base: "TrainedModel"
    groups: GroupThresholds
    name: str = LIGHTGBM_THRESHOLD_OPTIMIZER.name

    @property
    def threshold(self) -> float:
        return self.groups.default

    @property
    def task(self) -> str:
        return self.base.task

    @property
    def features(self) -> list[str]:
        return self.base.features

    @property
    def feature_importance(self) -> dict[str, float]:
        return self.base.feature_importance

    @property
    def params(self) -> dict:
        return {**self.base.params, "group_thresholds": self.groups.thresholds, "constraint": self.groups.constraint}

    def predict_score(self, frame: pl.DataFrame) -> np.ndarray:
        scores = self.base.predict_score(frame)
        shift = self.groups.threshold_per_row(group_key(frame, self.groups.columns)) - self.groups.default
        return np.clip(scores - shift, 0.0, 1.0)


def scoring_columns(model: object, features: list[str]) -> list[str]:
    """The columns ``model`` reads to score: its features, plus the protected attributes a group-threshold model
    decides by."""
    extra = model.groups.columns if isinstance(model, GroupThresholdModel) else []
    return [*features, *(c for c in extra if c not in features)]


def save_group_threshold_model(model: GroupThresholdModel, directory: Path) -> Path:
    """The base LightGBM files plus ``group_thresholds.json`` (plain text, no pickle)."""
    from mlplatform.core.training import save_model

    save_model(model.base, directory)
    g = model.groups
    write_text_atomic(json.dumps({"columns": g.columns, "thresholds": g.thresholds, "default": g.default,
                                  "constraint": g.constraint, "name": model.name}, indent=2),
                      directory / GROUP_THRESHOLDS_FILE)
    return directory


def load_group_threshold_model(directory: Path) -> GroupThresholdModel:
    """Read a folder written by :func:`save_group_threshold_model`."""
    from mlplatform.core.training import load_model

    meta = json.loads((directory / GROUP_THRESHOLDS_FILE).read_text())
    groups = GroupThresholds(meta["columns"], {k: float(v) for k, v in meta["thresholds"].items()},
                             float(meta["default"]), meta["constraint"])
    return GroupThresholdModel(load_model(directory), groups, meta["name"])
