from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from mlplatform.core.evaluation.fairness_assessment import AttributeFairness
from mlplatform.core.promotion import GoldenScore, decide_promotion, golden_shortfall, score_golden

BASELINES = {"majority": {"f1": 0.0, "pr_auc": 0.2}, "rules": {"f1": 0.45, "pr_auc": 0.3}}
CHAMPION = {"f1": 0.60, "pr_auc": 0.50, "roc_auc": 0.80}
FAIR = AttributeFairness("age_band", disparate_impact=0.91, p_value=0.4, passed=True, applicable=True)


def decide(challenger, champion=CHAMPION, **overrides):
    arguments = {
        "primary": "f1",
        "guardrails": ["pr_auc", "roc_auc"],
        "margin": 0.0,
        "challenger_ci": None,
        "baselines": BASELINES,
        "size_mb": 2.0,
        "max_size_mb": 50,
        "latency_ms": 3.0,
        "max_latency_ms": 100,
        "fairness": [FAIR],
        "disparate_impact_min": 0.8,
    }
    return decide_promotion(challenger, champion, **{**arguments, **overrides})


def failed(decision):
    return {name for name, passed in decision.evidence["checks"].items() if not passed}


def test_better_challenger_is_promoted_with_its_evidence():
    decision = decide({"f1": 0.65, "pr_auc": 0.51, "roc_auc": 0.80}, challenger_ci=(0.61, 0.69),
                      golden=golden(0.41, 0.40))
    assert decision.promote, decision.reasons
    assert all(reason.startswith("PASS") for reason in decision.reasons)
    assert decision.evidence["guardrails"]["pr_auc"]["gain"] == pytest.approx(0.01)
    assert decision.evidence["champion"] == CHAMPION


def test_worse_challenger_is_not_promoted():
    decision = decide({"f1": 0.58, "pr_auc": 0.50, "roc_auc": 0.80})
    assert not decision.promote
    assert failed(decision) == {"beats_champion"}
    assert any("FAIL beats_champion" in reason and "-0.0200" in reason for reason in decision.reasons)


def test_gain_must_exceed_the_margin():
    assert decide({"f1": 0.62, "pr_auc": 0.5, "roc_auc": 0.8}, margin=0.01).promote
    assert not decide({"f1": 0.605, "pr_auc": 0.5, "roc_auc": 0.8}, margin=0.01).promote
    assert not decide({"f1": 0.60, "pr_auc": 0.5, "roc_auc": 0.8}).promote  # a tie is not a win


def test_confidence_interval_below_the_champion_blocks():
    decision = decide({"f1": 0.65, "pr_auc": 0.5, "roc_auc": 0.8}, challenger_ci=(0.57, 0.72))
    assert failed(decision) == {"ci_clears_champion"}


def test_guardrail_regression_blocks_but_noise_does_not():
    assert decide({"f1": 0.65, "pr_auc": 0.492, "roc_auc": 0.80}).promote  # within the 0.01 tolerance
    decision = decide({"f1": 0.65, "pr_auc": 0.50, "roc_auc": 0.76})
    assert failed(decision) == {"guardrail_roc_auc"}


def test_over_budget_blocks_and_every_reason_is_listed():
    decision = decide({"f1": 0.70, "pr_auc": 0.6, "roc_auc": 0.9}, size_mb=80, latency_ms=250)
    assert not decision.promote
    assert failed(decision) == {"size_budget", "latency_budget"}


def test_without_champion_losing_to_rules_blocks():
    decision = decide({"f1": 0.40, "pr_auc": 0.35}, champion=None)
    assert not decision.promote
    assert failed(decision) == {"beats_rules"}
    assert decide({"f1": 0.50, "pr_auc": 0.35}, champion=None).promote


def test_without_champion_or_baselines_nothing_is_evidence():
    assert not decide({"f1": 0.9}, champion=None, baselines={}).promote


def test_lower_is_better_metrics_are_respected():
    champion = {"mae": 10.0, "rmse": 14.0}
    baselines = {"mean": {"mae": 15.0}}
    better = decide({"mae": 9.0, "rmse": 14.005}, champion, primary="mae", guardrails=["rmse"],
                    baselines=baselines, challenger_ci=(8.5, 9.8))
    assert better.promote, better.reasons
    assert not decide({"mae": 11.0, "rmse": 14.0}, champion, primary="mae", guardrails=["rmse"],
                      baselines=baselines).promote
    wide = decide({"mae": 9.0, "rmse": 14.0}, champion, primary="mae", guardrails=["rmse"],
                  baselines=baselines, challenger_ci=(8.0, 10.5))
    assert failed(wide) == {"ci_clears_champion"}
    worse_rmse = decide({"mae": 9.0, "rmse": 14.5}, champion, primary="mae", guardrails=["rmse"],
                        baselines=baselines)
    assert failed(worse_rmse) == {"guardrail_rmse"}


def test_nan_primary_is_never_promoted():
    assert not decide({"f1": float("nan"), "pr_auc": 0.6, "roc_auc": 0.9}).promote


def test_missing_metric_is_a_clear_error():
    with pytest.raises(ValueError, match="challenger metrics lack 'roc_auc'"):
        decide({"f1": 0.7, "pr_auc": 0.6})
    with pytest.raises(ValueError, match="no better direction"):
        decide({"positive_rate": 0.7}, primary="positive_rate")


def test_fairness_is_part_of_the_decision():
    better = {"f1": 0.65, "pr_auc": 0.51, "roc_auc": 0.80}
    unfair = replace(FAIR, attribute="gender", disparate_impact=0.62, p_value=0.001, passed=False)
    decision = decide(better, fairness=[FAIR, unfair])
    assert not decision.promote and failed(decision) == {"fairness_gender"}
    assert any("FAIL fairness_gender" in r and "0.620" in r for r in decision.reasons)
    assert decision.evidence["fairness"][1]["disparate_impact"] == 0.62
    unassessable = replace(FAIR, disparate_impact=None, p_value=None, passed=False)
    assert any("fails closed" in r for r in decide(better, fairness=[unassessable]).reasons)
    assert decide(better, fairness=[]).promote  # no protected attributes: nothing to judge, said as a note
    assert any(r.startswith("NOTE fairness") for r in decide(better, fairness=[]).reasons)


def test_a_waived_fairness_item_is_let_through_as_waived_with_its_reason_never_as_pass():
    better = {"f1": 0.65, "pr_auc": 0.51, "roc_auc": 0.80}
    waived = replace(FAIR, disparate_impact=0.6, passed=True, status="WAIVED",
                     reason="WAIVED disparate impact 0.600, under the minimum 0.8; WAIVED by the brief: tiny hold-out")
    decision = decide(better, fairness=[waived])
    assert decision.promote
    [line] = [r for r in decision.reasons if "fairness_age_band" in r]
    assert line.startswith("WAIVED fairness_age_band") and "tiny hold-out" in line and "PASS" not in line
    failing = replace(waived, passed=False, status="FAIL", reason="FAIL disparate impact 0.600")
    assert not decide(better, fairness=[failing]).promote


def test_regression_promotion_with_decision_free_fairness():
    """A regression model makes no selection decision: the attribute passes and the reason says why."""
    fairness = [AttributeFairness("region", passed=True, applicable=False, note="a regression model makes no decision")]
    decision = decide({"mae": 9.0, "rmse": 13.0}, {"mae": 10.0, "rmse": 14.0}, primary="mae", guardrails=["rmse"],
                      baselines={"majority": {"mae": 15.0}, "rules": {"mae": 12.0}}, fairness=fairness)
    assert decision.promote, decision.reasons
    assert any("PASS fairness_region: disparate impact does not apply" in r for r in decision.reasons)


def test_multiclass_promotion_on_macro_f1():
    champion = {"macro_f1": 0.55, "accuracy": 0.70, "log_loss": 0.80}
    baselines = {"majority": {"macro_f1": 0.20}, "rules": {"macro_f1": 0.40}}
    better = decide({"macro_f1": 0.60, "accuracy": 0.71, "log_loss": 0.78}, champion, primary="macro_f1",
                    guardrails=["accuracy", "log_loss"], baselines=baselines, challenger_ci=(0.56, 0.64))
    assert better.promote, better.reasons
    worse_loss = decide({"macro_f1": 0.60, "accuracy": 0.71, "log_loss": 0.90}, champion, primary="macro_f1",
                        guardrails=["accuracy", "log_loss"], baselines=baselines)
    assert failed(worse_loss) == {"guardrail_log_loss"}


BETTER = {"f1": 0.65, "pr_auc": 0.51, "roc_auc": 0.80}


def golden(challenger, champion, **fields):
    return GoldenScore(**{"version": "ab12cd34ef56ab78", "rows": 480, "challenger": challenger,
                          "champion": champion, **fields})


def test_a_challenger_that_regresses_on_the_golden_set_is_refused_with_both_numbers():
    # Better on the (moving) hold-out, but 10% worse than the champion on the fixed golden rows, beyond noise.
    decision = decide(BETTER, golden=golden(0.36, 0.40, difference_ci=(-0.07, -0.01)), max_golden_regression=0.05)
    assert not decision.promote and failed(decision) == {"golden_set"}
    [reason] = [r for r in decision.reasons if "golden_set" in r]
    assert reason == ("FAIL golden_set: golden set ab12cd34ef56ab78 (480 rows): f1 0.3600 vs champion 0.4000 "
                      "(-10.0%, may fall at most 5%), paired 95% interval of the difference [-0.0700, -0.0100]")
    evidence = decision.evidence["golden"]
    assert (evidence["challenger"], evidence["champion"]) == (0.36, 0.40)
    assert evidence["relative_drop"] == pytest.approx(0.10)
    assert evidence["difference_ci"] == [-0.07, -0.01]
    # Without an interval the point estimate alone decides.
    assert failed(decide(BETTER, golden=golden(0.36, 0.40))) == {"golden_set"}


def test_a_golden_drop_the_paired_interval_cannot_tell_from_noise_passes_and_says_so():
    decision = decide(BETTER, golden=golden(0.32, 0.40, difference_ci=(-0.19, 0.02)))
    assert decision.promote, decision.reasons
    assert any(r.startswith("PASS golden_set") and "(-20.0%, may fall at most 5%)" in r
               and r.endswith("[-0.1900, +0.0200]: within noise") for r in decision.reasons)


def test_a_small_golden_drop_within_the_tolerance_or_a_gain_passes():
    assert decide(BETTER, golden=golden(0.385, 0.40), max_golden_regression=0.05).promote  # -3.75%
    gain = decide(BETTER, golden=golden(0.44, 0.40), max_golden_regression=0.05)
    assert gain.promote and any(r.startswith("PASS golden_set") and "+10.0%" in r for r in gain.reasons)
    assert not decide(BETTER, golden=golden(0.385, 0.40), max_golden_regression=0.0).promote


def test_lower_is_better_metrics_regress_upwards_on_the_golden_set():
    champion, baselines = {"mae": 10.0, "rmse": 14.0}, {"mean": {"mae": 15.0}}
    arguments = {"primary": "mae", "guardrails": ["rmse"], "baselines": baselines}
    worse = decide({"mae": 9.0, "rmse": 14.0}, champion, golden=golden(11.0, 10.0, difference_ci=(0.4, 1.6)),
                   **arguments)
    assert failed(worse) == {"golden_set"}
    noisy = golden(11.0, 10.0, difference_ci=(-0.2, 2.1))  # challenger mae minus champion's may still be <= 0
    assert decide({"mae": 9.0, "rmse": 14.0}, champion, golden=noisy, **arguments).promote
    assert decide({"mae": 9.0, "rmse": 14.0}, champion, golden=golden(9.5, 10.0), **arguments).promote


def test_too_few_positives_in_the_golden_set_is_noted_not_judged():
    y = np.array([1] * 12 + [0] * 400)
    reason = golden_shortfall("binary", y, 2, 30)
    assert reason == ("only 12 positives in 412 rows (needs 30: raise thresholds.golden_share or lower "
                      "golden_min_class_rows)")
    decision = decide(BETTER, golden=golden(0.10, 0.40, not_judged=reason))
    assert decision.promote, decision.reasons
    assert "golden_set" not in decision.evidence["checks"]
    assert any(r.startswith("NOTE golden set ab12cd34ef56ab78 (480 rows): not judged: only 12 positives")
               for r in decision.reasons)
    assert golden_shortfall("binary", np.array([1] * 30 + [0] * 30), 2, 30) is None


def test_golden_shortfall_per_task():
    assert golden_shortfall("regression", np.arange(29.0), 1, 30) == (
        "only 29 rows (needs 30: raise thresholds.golden_share or lower golden_min_class_rows)")
    assert golden_shortfall("regression", np.arange(30.0), 1, 30) is None
    # Multiclass: each class needs the minimum, one never seen included; the smallest is named.
    y = np.array([0] * 50 + [1] * 40)
    assert golden_shortfall("multiclass", y, 3, 30).startswith("only 0 rows of class 2 in 90 rows")
    assert golden_shortfall("multiclass", np.array([0] * 50 + [1] * 40 + [2] * 31), 3, 30) is None
    assert golden_shortfall("binary", np.array([1] * 40 + [0] * 3), 2, 30).startswith("only 3 negatives")


def test_without_a_champion_the_golden_metric_is_recorded():
    decision = decide(BETTER, champion=None, golden=golden(0.37, None))
    assert decision.promote, decision.reasons
    assert any("NOTE golden set" in r and "challenger f1 0.3700 recorded, no champion" in r
               for r in decision.reasons)
    assert decision.evidence["golden"]["champion"] is None


def test_a_golden_set_that_leaked_into_a_split_fails_closed():
    decision = decide(BETTER, golden=golden(0.45, 0.40, leaked_keys=3))
    assert failed(decision) == {"golden_set"}
    assert any("3 of its keys are also in train, validation or test" in r for r in decision.reasons)


def test_a_disabled_golden_set_is_said_so():
    assert any(r == "NOTE golden set: disabled (thresholds.golden_share is 0)" for r in decide(BETTER).reasons)
    assert decide(BETTER).evidence["golden"] is None


class _ColumnScorer:
    """A model whose score is one column of the frame."""

    def __init__(self, column: str, threshold: float = 0.5) -> None:
        self.column, self.threshold = column, threshold

    def predict_score(self, frame: pl.DataFrame) -> np.ndarray:
        return frame[self.column].to_numpy()


def test_score_golden_scores_both_models_on_the_same_rows_with_a_paired_interval():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    golden = pl.DataFrame({"y": y, "good": np.where(y == 1, 0.8, 0.2) + rng.normal(0, 0.25, 400),
                           "coin": rng.random(400)})
    score = score_golden("binary", "f1", golden, "y", _ColumnScorer("coin"), _ColumnScorer("good"), version="v1",
                         min_class_rows=30, leaked_keys=2, seed=0)
    assert (score.version, score.rows, score.leaked_keys, score.not_judged) == ("v1", 400, 2, None)
    assert score.champion > 0.8 and score.challenger < 0.6
    low, high = score.difference_ci
    assert low < score.challenger - score.champion < high < 0
    alone = score_golden("binary", "f1", golden, "y", _ColumnScorer("good"), None, version="v1", min_class_rows=300)
    assert alone.champion is None and alone.difference_ci is None and alone.not_judged.startswith("only ")
    empty = score_golden("binary", "f1", golden.head(0), "y", _ColumnScorer("good"), None, version="v0",
                         min_class_rows=30)
    assert empty.rows == 0 and empty.not_judged == "the golden set has no rows"
