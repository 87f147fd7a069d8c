"""Whether predicted probabilities mean what they say: expected calibration error, Brier score, and a
calibrator (isotonic, or Platt scaling on small data) fitted on validation scores (method phases 4 and 9).

Binary tasks only: a score is the positive-class probability. A fitted calibrator is saved as plain JSON
(``calibrator.json``) in the model's folder, so it is registered and served with the model; it maps the raw
score to the probability a response reports, while the decision threshold stays on the raw score.
"""

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

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
# The calibrator's file in a model folder, and the version of its JSON layout.
CALIBRATOR_FILE = "calibrator.json"
_FORMAT_VERSION = 1


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


@dataclass(frozen=True)
class Calibrator:
    """A monotone map from raw scores to calibrated probabilities, fitted on validation rows.

    Plain numbers only, so it round-trips through JSON: ``isotonic`` keeps the step function's knots
    (``x``, ``y``: scores between knots are interpolated linearly, scores outside clipped to the end knots,
    as sklearn's ``IsotonicRegression(out_of_bounds="clip")`` predicts); ``platt`` keeps ``slope`` and
    ``intercept`` of a logistic regression on the score's logit.
    """

    method: Literal["isotonic", "platt"]
    fitted_rows: int
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    slope: float = 1.0
    intercept: float = 0.0

    def transform(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of raw positive-class ``scores`` (any shape), in [0, 1]."""
        scores = np.asarray(scores, dtype=float)
        if self.method == "isotonic":
            return np.interp(scores, self.x, self.y)
        return 1.0 / (1.0 + np.exp(-(self.slope * _logit(scores) + self.intercept)))

    def to_json(self) -> str:
        """The calibrator as a JSON document (see :func:`load_calibrator`)."""
        fields = ({"x": list(self.x), "y": list(self.y)} if self.method == "isotonic"
                  else {"slope": self.slope, "intercept": self.intercept})
        return json.dumps({"format_version": _FORMAT_VERSION, "method": self.method,
                           "fitted_rows": self.fitted_rows, **fields,
                           "applies_to": "the positive-class probability reported; decide on the raw score "
                                         "against the model's threshold"}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Calibrator":
        """Parse :meth:`to_json` output.

        Raises:
            ValueError: not a calibrator document of a known version, or its numbers are unusable.
        """
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"not a version-{_FORMAT_VERSION} calibrator document; re-run the evaluation to "
                             "write it again")
        method, rows = doc.get("method"), int(doc.get("fitted_rows", 0))
        if method == "isotonic":
            x, y = np.asarray(doc["x"], dtype=float), np.asarray(doc["y"], dtype=float)
            if x.size == 0 or x.shape != y.shape or np.any(np.diff(x) < 0) or not np.isfinite([*x, *y]).all():
                raise ValueError("isotonic calibrator needs equally long, finite knots with x ascending")
            return cls("isotonic", rows, tuple(x.tolist()), tuple(y.tolist()))
        if method == "platt":
            slope, intercept = float(doc["slope"]), float(doc["intercept"])
            if not np.isfinite([slope, intercept]).all():
                raise ValueError("Platt calibrator needs a finite slope and intercept")
            return cls("platt", rows, slope=slope, intercept=intercept)
        raise ValueError(f"unknown calibration method {method!r}; expected isotonic or platt")


def _logit(y_prob: np.ndarray) -> np.ndarray:
    p = np.clip(y_prob, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def save_calibrator(calibrator: Calibrator | None, model_dir: Path) -> Path | None:
    """Write ``calibrator.json`` into ``model_dir`` (atomically), or remove a stale one when ``calibrator`` is
    None, so the folder never carries a calibrator fitted for another model. Returns the file written."""
    from mlplatform.core.io import write_text_atomic

    path = Path(model_dir) / CALIBRATOR_FILE
    if calibrator is None:
        path.unlink(missing_ok=True)
        return None
    return write_text_atomic(calibrator.to_json(), path)


def load_calibrator(model_dir: Path) -> Calibrator | None:
    """The calibrator saved with a model (``calibrator.json`` in its folder), or None when it has none.

    Raises:
        ValueError: the file exists but is not a valid calibrator document.
    """
    path = Path(model_dir) / CALIBRATOR_FILE
    if not path.is_file():
        return None
    try:
        return Calibrator.from_json(path.read_text())
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a usable calibrator ({exc}); re-run the evaluation_report asset to "
                         "write it again, or delete the file to serve raw scores") from exc


def fit_calibrator(y_true: np.ndarray, y_prob: np.ndarray, isotonic_min_rows: int = ISOTONIC_MIN_ROWS) -> Calibrator:
    """Fit a calibrator on validation labels and scores (never the hold-out).

    Isotonic regression when there are at least ``isotonic_min_rows`` rows, else Platt scaling: an
    unpenalised logistic regression on the score's logit, so a calibrated model maps to itself.

    Raises:
        ValueError: bad inputs (see :func:`expected_calibration_error`) or only one class present.
    """
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    y_true, y_prob = _checked(y_true, y_prob)
    if np.unique(y_true).size < 2:
        raise ValueError("a calibrator needs both classes in the validation labels")
    rows = int(y_true.size)
    if rows >= isotonic_min_rows:
        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(y_prob, y_true)
        return Calibrator("isotonic", rows, tuple(model.X_thresholds_.tolist()), tuple(model.y_thresholds_.tolist()))
    model = LogisticRegression(C=np.inf).fit(_logit(y_prob).reshape(-1, 1), y_true.astype(int))
    return Calibrator("platt", rows, slope=float(model.coef_[0, 0]), intercept=float(model.intercept_[0]))


@dataclass(frozen=True)
class CalibrationSummary:
    """How well calibrated the challenger's scores are, and what a calibrator fitted on validation changed."""

    validation_ece: float
    """Expected calibration error on validation, which decides whether to calibrate."""
    ece: float
    """Hold-out ECE of the raw scores."""
    brier: float
    """Hold-out Brier score of the raw scores."""
    max_ece: float
    """The validation ECE above which a calibrator is fitted."""
    calibrated: bool = False
    method: str | None = None
    """``isotonic`` or ``platt`` when calibrated."""
    fitted_rows: int | None = None
    """Validation rows the calibrator was fitted on."""
    ece_after: float | None = None
    """Hold-out ECE of the calibrated scores."""
    brier_after: float | None = None
    """Hold-out Brier score of the calibrated scores."""

    def row(self) -> dict[str, object]:
        """The summary as a row of :data:`CALIBRATION_SCHEMA`."""
        return asdict(self)


def calibration_summary(
    y_valid: np.ndarray,
    p_valid: np.ndarray,
    y_test: np.ndarray,
    p_test: np.ndarray,
    max_ece: float = ECE_THRESHOLD,
) -> tuple[CalibrationSummary, Calibrator | None]:
    """ECE and Brier of the scores; when the validation ECE exceeds ``max_ece``, a calibrator fitted on
    validation and its effect on the hold-out.

    The decision to calibrate looks at validation only, as a deployed calibrator would have to; the
    hold-out shows whether it helped.

    Returns:
        The summary (the calibrated fields None when no calibrator was fitted) and the fitted calibrator, or None.
    """
    validation_ece = expected_calibration_error(y_valid, p_valid)
    summary = CalibrationSummary(validation_ece=validation_ece, ece=expected_calibration_error(y_test, p_test),
                                 brier=brier_score(y_test, p_test), max_ece=max_ece)
    if validation_ece <= max_ece:
        return summary, None
    calibrator = fit_calibrator(y_valid, p_valid)
    after = calibrator.transform(p_test)
    return replace(summary, calibrated=True, method=calibrator.method, fitted_rows=calibrator.fitted_rows,
                   ece_after=expected_calibration_error(y_test, after),
                   brier_after=brier_score(y_test, after)), calibrator
