import json

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss

from mlplatform.core.calibration import (
    ECE_THRESHOLD,
    brier_score,
    calibration_summary,
    expected_calibration_error,
    fit_calibrator,
    load_calibrator,
    save_calibrator,
)


def calibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from the scores themselves: calibrated by construction."""
    rng = np.random.default_rng(seed)
    p = rng.beta(1.5, 4, n)
    return (rng.random(n) < p).astype(int), p


def overconfident(p: np.ndarray) -> np.ndarray:
    """A planted miscalibration: scores pushed towards 0 and 1 (a too-sharp model), order kept."""
    return p**3 / (p**3 + (1 - p) ** 3)


def test_ece_and_brier_equal_sklearn():
    y, p = calibrated(5000, 0)
    p = overconfident(p)  # too low in some bins, too high in others: the bins must not cancel out
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="uniform")
    counts, _ = np.histogram(p, bins=np.linspace(0, 1, 11))
    expected = np.sum(counts[counts > 0] / len(y) * np.abs(observed - predicted))
    assert expected_calibration_error(y, p) == pytest.approx(expected, abs=1e-12)
    assert expected > 0.05
    assert brier_score(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)


def test_a_calibrated_model_has_a_small_ece_and_a_planted_miscalibration_a_large_one():
    y, p = calibrated(20_000, 1)
    assert expected_calibration_error(y, p) < 0.015
    assert expected_calibration_error(y, overconfident(p)) > 0.05


@pytest.mark.parametrize(("rows", "method"), [(5000, "isotonic"), (600, "platt")])
def test_the_calibrator_repairs_a_planted_miscalibration_on_new_rows(rows, method):
    y_valid, p_valid = calibrated(rows, 2)
    y_test, p_test = calibrated(20_000, 3)
    calibrator = fit_calibrator(y_valid, overconfident(p_valid))
    assert calibrator.method == method and calibrator.fitted_rows == rows
    raw, repaired = overconfident(p_test), calibrator.transform(overconfident(p_test))
    assert expected_calibration_error(y_test, raw) > 0.05
    assert expected_calibration_error(y_test, repaired) < 0.025
    assert brier_score(y_test, repaired) < brier_score(y_test, raw)
    assert ((repaired >= 0) & (repaired <= 1)).all()


def test_platt_scaling_leaves_calibrated_scores_nearly_unchanged():
    y, p = calibrated(900, 4)
    calibrator = fit_calibrator(y, p)
    assert calibrator.method == "platt"
    assert np.abs(calibrator.transform(p) - p).mean() < 0.03


def test_summary_fits_a_calibrator_only_when_validation_is_miscalibrated():
    y_valid, p_valid = calibrated(3000, 5)
    y_test, p_test = calibrated(3000, 6)
    fine, none = calibration_summary(y_valid, p_valid, y_test, p_test)
    assert none is None
    assert not fine.calibrated and fine.ece_after is None and fine.method is None
    assert fine.max_ece == ECE_THRESHOLD and fine.validation_ece <= ECE_THRESHOLD

    bad, calibrator = calibration_summary(y_valid, overconfident(p_valid), y_test, overconfident(p_test))
    assert calibrator.method == "isotonic"
    assert bad.calibrated and bad.method == "isotonic" and bad.fitted_rows == 3000
    assert bad.ece > ECE_THRESHOLD > bad.ece_after
    assert bad.brier_after < bad.brier


def test_bad_inputs_are_refused():
    y, p = calibrated(100, 7)
    with pytest.raises(ValueError, match="probabilities"):
        expected_calibration_error(y, p * 3)
    with pytest.raises(ValueError, match="0/1"):
        brier_score(y * 2, p)
    with pytest.raises(ValueError, match="one length"):
        expected_calibration_error(y, p[:-1])
    with pytest.raises(ValueError, match="both classes"):
        fit_calibrator(np.zeros(50), p[:50])


@pytest.mark.parametrize("rows", [5000, 600])
def test_a_saved_calibrator_loads_as_plain_json_and_maps_scores_like_sklearn(tmp_path, rows):
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    y, p = calibrated(rows, 8)
    raw = overconfident(p)
    calibrator = fit_calibrator(y, raw)
    assert load_calibrator(tmp_path) is None
    path = save_calibrator(calibrator, tmp_path)
    assert json.loads(path.read_text())["method"] == calibrator.method  # plain JSON, no pickle
    loaded = load_calibrator(tmp_path)
    assert loaded == calibrator
    probe = np.r_[0.0, 1.0, raw[:200]]
    if calibrator.method == "isotonic":
        expected = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(raw, y).predict(probe)
    else:
        logit = np.log(np.clip(raw, 1e-6, 1 - 1e-6) / (1 - np.clip(raw, 1e-6, 1 - 1e-6))).reshape(-1, 1)
        probe_logit = np.log(np.clip(probe, 1e-6, 1 - 1e-6) / (1 - np.clip(probe, 1e-6, 1 - 1e-6))).reshape(-1, 1)
        expected = LogisticRegression(C=np.inf).fit(logit, y).predict_proba(probe_logit)[:, 1]
    np.testing.assert_allclose(loaded.transform(probe), expected, atol=1e-9)
    save_calibrator(None, tmp_path)  # a model that needs none must not keep a stale one
    assert load_calibrator(tmp_path) is None


def test_a_broken_calibrator_file_is_refused_with_the_fix(tmp_path):
    (tmp_path / "calibrator.json").write_text(json.dumps({"format_version": 1, "method": "isotonic",
                                                          "x": [0.5, 0.1], "y": [0.2, 0.3]}))
    with pytest.raises(ValueError, match="re-run the evaluation_report"):
        load_calibrator(tmp_path)
    (tmp_path / "calibrator.json").write_text("not json")
    with pytest.raises(ValueError, match="not a usable calibrator"):
        load_calibrator(tmp_path)
