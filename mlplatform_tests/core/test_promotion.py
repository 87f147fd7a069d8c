import pytest

from mlplatform.core.promotion import decide_promotion

BASELINES = {"majority": {"f1": 0.0, "pr_auc": 0.2}, "rules": {"f1": 0.45, "pr_auc": 0.3}}
CHAMPION = {"f1": 0.60, "pr_auc": 0.50, "roc_auc": 0.80}
FAIR = {"attribute": "age_band", "disparate_impact": 0.91, "p_value": 0.4, "passed": True, "applicable": True}


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
    decision = decide({"f1": 0.65, "pr_auc": 0.51, "roc_auc": 0.80}, challenger_ci=(0.61, 0.69))
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
    unfair = {**FAIR, "attribute": "gender", "disparate_impact": 0.62, "p_value": 0.001, "passed": False}
    decision = decide(better, fairness=[FAIR, unfair])
    assert not decision.promote and failed(decision) == {"fairness_gender"}
    assert any("FAIL fairness_gender" in r and "0.620" in r and "significant" in r for r in decision.reasons)
    assert decision.evidence["fairness"][1]["disparate_impact"] == 0.62
    unassessable = {**FAIR, "disparate_impact": None, "p_value": None, "passed": False}
    assert any("fails closed" in r for r in decide(better, fairness=[unassessable]).reasons)
    assert decide(better, fairness=[]).promote  # no protected attributes: nothing to judge, said as a note
    assert any(r.startswith("NOTE fairness") for r in decide(better, fairness=[]).reasons)


def test_regression_promotion_with_decision_free_fairness():
    """A regression model makes no selection decision: the attribute passes and the reason says why."""
    fairness = [{"attribute": "region", "disparate_impact": None, "p_value": None, "passed": True,
                 "applicable": False, "note": "a regression model makes no decision"}]
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
