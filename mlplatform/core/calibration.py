"""Whether predicted probabilities mean what they say: expected calibration error, Brier score, and a
calibrator (isotonic, or Platt scaling on small data) fitted on validation scores (seed phases 4 and 9).

Binary tasks only: a score is the positive-class probability. The calibrator is reported, not deployed.
"""

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

# Above this expected calibration error, scores are treated as miscalibrated and a calibrator is fitted.
# Proposed brief field: thresholds.max_calibration_error.
ECE_THRESHOLD = 0.05
# Isotonic regression is a step function with as many steps as the data allows; on fewer validation rows
# than this it overfits, and Platt's two parameters are the safer fit.
ISOTONIC_MIN_ROWS = 1000
# The columns of one calibration_summary as a table row.
CALIBRATION_SCHEMA = {"validation_ece": pl.Float64, "ece": pl.Float64, "brier": pl.Float64, "max_ece": pl.Float64,
                      "calibrated": pl.Boolean, "method": pl.String, "fitted_rows": pl.Int64, "ece_after": pl.Float64,
                      "brier_after": pl.Float64}
# Logits of scores of exactly 0 or 1 are infinite; clipping keeps Platt scaling finite.
_EPS = 1e-6


def _checked(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_prob = np.asarray(y_true, dtype=float), np.asarray(y_prob, dtype=float)
    if y_true.shape != y_prob.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_prob must be 1-D and of one length; got {y_true.shape} and {y_prob.shape}")
    if y_true.size == 0:
        raise ValueError("calibration needs at least one row")
    if not np.isin(y_true, (0.0, 1.0)).all():
        raise ValueError("calibration needs 0/1 labels")
    if np.isnan(y_prob).any() or y_prob.min() < 0 or y_prob.max() > 1:
        raise ValueError("calibration needs probabilities in [0, 1] without NaN")
    return y_true, y_prob


def expected_calibration_error(y_true: np.ndarray, y_prob: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the row-weighted mean gap between observed positive rate and mean score
    over ``bins`` equal-width score bins (the bins of sklearn's ``calibration_curve(strategy="uniform")``).

    Raises:
        ValueError: labels are not 0/1, scores are not probabilities, or the arrays differ in length.
    """
    y_true, y_prob = _checked(y_true, y_prob)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ids = np.searchsorted(edges[1:-1], y_prob)
    total = np.bincount(ids, minlength=bins)
    gap = np.abs(np.bincount(ids, weights=y_true, minlength=bins) - np.bincount(ids, weights=y_prob, minlength=bins))
    # Per bin |sum(y) - sum(p)| / n_bin * n_bin / n: the bin counts cancel.
    return float(gap[total > 0].sum() / y_true.size)


def brier_score(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """Mean squared difference between the 0/1 label and the probability."""
    y_true, y_prob = _checked(y_true, y_prob)
    return float(np.mean((y_prob - y_true) ** 2))


@dataclass
class Calibrator:
    """A monotone map from raw scores to calibrated probabilities, fitted on validation rows."""

    method: Literal["isotonic", "platt"]
    model: IsotonicRegression | LogisticRegression
    fitted_rows: int

    def predict(self, y_prob: np.ndarray) -> np.ndarray:
        y_prob = np.asarray(y_prob, dtype=float)
        if self.method == "isotonic":
            return np.asarray(self.model.predict(y_prob), dtype=float)
        return self.model.predict_proba(_logit(y_prob))[:, 1]


def _logit(y_prob: np.ndarray) -> np.ndarray:
    p = np.clip(y_prob, _EPS, 1 - _EPS)
    return np.log(p / (1 - p)).reshape(-1, 1)


def fit_calibrator(y_true: np.ndarray, y_prob: np.ndarray, isotonic_min_rows: int = ISOTONIC_MIN_ROWS) -> Calibrator:
    """Fit a calibrator on validation labels and scores (never the hold-out).

    Isotonic regression when there are at least ``isotonic_min_rows`` rows, else Platt scaling: an
    unpenalised logistic regression on the score's logit, so a calibrated model maps to itself.

    Raises:
        ValueError: bad inputs (see :func:`expected_calibration_error`) or only one class present.
    """
    y_true, y_prob = _checked(y_true, y_prob)
    if np.unique(y_true).size < 2:
        raise ValueError("a calibrator needs both classes in the validation labels")
    if y_true.size >= isotonic_min_rows:
        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(y_prob, y_true)
        return Calibrator("isotonic", model, int(y_true.size))
    model = LogisticRegression(C=np.inf).fit(_logit(y_prob), y_true.astype(int))
    return Calibrator("platt", model, int(y_true.size))


def calibration_summary(
    y_valid: np.ndarray,
    p_valid: np.ndarray,
    y_test: np.ndarray,
    p_test: np.ndarray,
    max_ece: float = ECE_THRESHOLD,
) -> dict:
    """ECE and Brier of the scores; when the validation ECE exceeds ``max_ece``, a calibrator fitted on
    validation and its effect on the hold-out.

    The decision to calibrate looks at validation only, as a deployed calibrator would have to; the
    hold-out shows whether it helped.

    Returns:
        ``validation_ece``, ``ece``, ``brier`` (hold-out, raw scores), ``max_ece``, ``calibrated`` (bool),
        and when calibrated ``method``, ``fitted_rows``, ``ece_after``, ``brier_after`` (hold-out); those
        are None otherwise.
    """
    validation_ece = expected_calibration_error(y_valid, p_valid)
    summary = {"validation_ece": validation_ece, "ece": expected_calibration_error(y_test, p_test),
               "brier": brier_score(y_test, p_test), "max_ece": max_ece, "calibrated": False, "method": None,
               "fitted_rows": None, "ece_after": None, "brier_after": None}
    if validation_ece <= max_ece:
        return summary
    calibrator = fit_calibrator(y_valid, p_valid)
    after = calibrator.predict(p_test)
    return summary | {"calibrated": True, "method": calibrator.method, "fitted_rows": calibrator.fitted_rows,
                      "ece_after": expected_calibration_error(y_test, after), "brier_after": brier_score(y_test, after)}
