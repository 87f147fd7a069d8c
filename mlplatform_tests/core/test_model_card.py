import json
from dataclasses import asdict
from datetime import date

import numpy as np
import polars as pl
import pytest
import yaml

from mlplatform.brief import DEMO_BRIEF, Brief, load_brief
from mlplatform.core.drift import FeatureDrift
from mlplatform.core.evaluation.bias_evidence import BiasEvidence, proxy_features, representation
from mlplatform.core.evaluation.fairness_assessment import AttributeFairness, fairness_assessment, fairness_rule
from mlplatform.core.model_card import (
    BIAS_CHECKLIST,
    NOT_RECORDED,
    CardFacts,
    CheckOutcome,
    bias_checklist,
    build_model_card,
    card_extras,
    model_card_json,
    render_model_card,
)

# The method's phase-9 template: keys, nesting and order.
METHOD_KEYS = ["model_name", "version", "date", "owner", "description", "intended_use", "out_of_scope_uses",
             "training_data", "evaluation", "limitations", "ethical_considerations", "maintenance"]
METHOD_NESTED = {"training_data": ["source", "size", "date_range", "known_biases"],
               "evaluation": ["metrics", "datasets", "sliced_metrics"],
               "maintenance": ["retraining_schedule", "monitoring", "contact"]}


def _typed(fairness: dict) -> dict[str, AttributeFairness]:
    """Fairness rows (attribute → the gate's columns) as the card reads them."""
    return {a: AttributeFairness(a, **row) for a, row in fairness.items()}


def _facts(meta: dict) -> CardFacts:
    return CardFacts(**{**meta, **({"fairness": _typed(meta["fairness"])} if meta.get("fairness") else {})})


def _evidence(evidence: dict) -> BiasEvidence:
    return BiasEvidence(**{**evidence, "fairness": _typed(evidence.get("fairness") or {})})


@pytest.fixture(scope="module")
def brief():
    return load_brief(DEMO_BRIEF)


def _without_waivers(brief: Brief, **thresholds) -> Brief:
    """The brief with no fairness waivers and, optionally, thresholds changed."""
    return brief.model_copy(update={"fairness": brief.fairness.model_copy(update={"waivers": []}),
                                    "thresholds": brief.thresholds.model_copy(update=thresholds)})


def _with_waivers(brief: Brief) -> Brief:
    """The brief waiving both age_band fairness metrics, each with a reason of its own."""
    from mlplatform.brief import FairnessWaiver

    waivers = [FairnessWaiver(attribute="age_band", metric=metric, reason=f"the brief's measured reason for {metric}")
               for metric in ("disparate_impact", "equal_opportunity")]
    return brief.model_copy(update={"fairness": brief.fairness.model_copy(update={"waivers": waivers})})


@pytest.fixture
def meta(brief) -> dict:
    return {
        "brief": brief,
        "model_name": "churn_demo_lgbm",
        "model_version": 3,
        "model_type": "LightGBM",
        "date": date(2025, 9, 2),
        "training_rows": 41234,
        "date_range": (date(2025, 2, 1), date(2025, 6, 30)),
        "dataset_version": "sha256:ab12",
        "metrics": {"f1": {"value": 0.52123, "ci_low": 0.48, "ci_high": 0.56}, "pr_auc": 0.61},
        "sliced_metrics": [{"dimension": "plan", "value": "basic", "n": 5000, "metrics": {"f1": 0.5}},
                           {"dimension": "plan", "value": "premium", "n": 42, "metrics": {"f1": 0.7}}],
        "drift": [asdict(FeatureDrift("customer_login_7d_count", "numerical", 0.31, 0.2, 0.0, 0.05, "critical")),
                  asdict(FeatureDrift("customer_plan", "categorical", 0.12, None, None, 0.01, "warning")),
                  asdict(FeatureDrift("customer_monthly_fee", "numerical", 0.01, 0.01, 0.9, 0.0, "ok"))],
        "quality_total": 26,
        "features": ["customer_plan", "customer_monthly_fee", "customer_login_7d_count"],
        "fairness": {"age_band": {"disparate_impact": 0.86, "equal_opportunity_gap": 0.04, "passed": True}},
        "retraining_schedule": "monthly, and on critical drift",
    }


def test_card_has_exactly_the_method_structure(meta):
    card = build_model_card(_facts(meta))
    template = card.as_dict()
    assert list(template) == METHOD_KEYS
    for section, keys in METHOD_NESTED.items():
        assert list(template[section]) == keys
    assert isinstance(card.limitations, list) and isinstance(card.ethical_considerations, list)
    assert isinstance(card.evaluation.metrics, dict) and isinstance(card.evaluation.datasets, list)


def test_card_is_filled_from_the_brief_and_metadata(meta, brief):
    card = build_model_card(_facts(meta))
    assert (card.model_name, card.version, card.date) == ("churn_demo_lgbm", "3", "2025-09-02")
    assert card.owner == card.maintenance.contact == brief.owner
    assert brief.problem.prediction_target in card.description and "LightGBM" in card.description
    assert brief.problem.business_objective in card.intended_use
    assert card.training_data.size == "41,234 rows"
    assert card.training_data.date_range == "2025-02-01..2025-06-30"
    assert "sha256:ab12" in card.training_data.source and "events (parquet" in card.training_data.source
    assert brief.problem.data_gaps in card.training_data.known_biases
    assert card.evaluation.metrics == {"f1": {"value": 0.5212, "ci_low": 0.48, "ci_high": 0.56},
                                             "pr_auc": 0.61}
    assert card.evaluation.sliced_metrics == {"plan": {"basic": {"n": 5000, "f1": 0.5},
                                                             "premium": {"n": 42, "f1": 0.7}}}
    assert "labels from 2025-05-01 to before 2025-09-01" in card.evaluation.datasets[1]
    assert "above 0.1 warns, above 0.25 is critical" in card.maintenance.monitoring
    assert card.maintenance.retraining_schedule == "monthly, and on critical drift"


def test_limitations_are_derived_from_what_was_measured(meta):
    limitations = build_model_card(_facts(meta)).limitations
    assert "Trained on 2025-02-01..2025-06-30 only; behaviour outside that period is unknown." in limitations
    assert any("plan=premium has only 42 hold-out rows" in item for item in limitations)
    assert not any("plan=basic" in item for item in limitations)
    assert "Drift (critical) between training and current data in: customer_login_7d_count (PSI 0.31)." \
        in limitations
    assert "Drift (warning) between training and current data in: customer_plan (PSI 0.12)." in limitations
    assert not any("customer_monthly_fee" in item for item in limitations)
    assert "Data quality scored 26/30 (the gate is 18/30)." in limitations
    assert any("Labels arrive 30 days after" in item for item in limitations)


def test_ethical_considerations_come_from_the_brief_and_fairness_results(meta, brief):
    ethics = build_model_card(_facts(meta)).ethical_considerations
    assert ethics[0] == brief.problem.ethical_considerations
    assert "Protected attribute age_band: not a model input." in ethics
    line = next(item for item in ethics if item.startswith("Fairness gate across age_band"))
    assert line.startswith("Fairness gate across age_band: PASS. Disparate impact: PASS: ratio 0.860, at least the "
                           "minimum 0.8") and "Equal opportunity: PASS: TPR gap 0.040, at most the maximum 0.1" in line

    meta["brief"] = _without_waivers(brief)
    meta["fairness"]["age_band"] = {"disparate_impact": 0.7, "equal_opportunity_gap": 0.2, "passed": False}
    meta["features"].append("customer_age_band_young")
    ethics = build_model_card(_facts(meta)).ethical_considerations
    assert any(item.startswith("Fairness gate across age_band: FAIL. Disparate impact: FAIL: ratio 0.700")
               for item in ethics)
    assert "Protected attribute age_band: model inputs derived from it: customer_age_band_young." in ethics


def test_missing_information_is_stated_as_missing_never_invented(brief):
    card = build_model_card(CardFacts(brief))
    assert card.model_name == card.version == card.date == NOT_RECORDED
    assert card.training_data.size == card.training_data.date_range == NOT_RECORDED
    assert card.maintenance.retraining_schedule == NOT_RECORDED
    assert card.evaluation.metrics == {} and card.evaluation.sliced_metrics == {}
    limitations = card.limitations
    for missing in ("Evaluation metrics were not recorded.", "Metrics by slice were not recorded.",
                    "Drift against current data was not measured.", "The data-quality score was not recorded."):
        assert missing in limitations
    assert "Fairness across age_band was not evaluated." in card.ethical_considerations
    assert "Protected attribute age_band: whether it is a model input was not recorded." \
        in card.ethical_considerations


def test_render_has_readable_sections_and_the_card_as_yaml(meta):
    card = build_model_card(_facts(meta))
    markdown = render_model_card(card)
    assert markdown.startswith("# Model card: churn_demo_lgbm version 3\n")
    for heading in ("## Training data", "## Evaluation", "## Limitations", "## Ethical considerations",
                    "## Maintenance"):
        assert heading in markdown
    assert "| F1 | 0.521 | [0.480, 0.560] |" in markdown and "| PR-AUC | 0.610 | — |" in markdown
    block = markdown.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block) == {"model_card": card.as_dict()}


def test_render_of_a_bare_card(brief):
    markdown = render_model_card(build_model_card(CardFacts(brief)))
    assert markdown.startswith("# Model card: not recorded\n")
    assert "Metrics: not recorded." in markdown


def test_a_row_without_metric_statuses_is_judged_by_the_gates_rule_not_by_significance(meta, brief):
    """A ratio under the minimum fails whatever Fisher's p (the gate's rule), even on a row that says passed."""
    meta["brief"] = _without_waivers(brief)
    meta["fairness"]["age_band"] = {"disparate_impact": 0.7, "p_value": 0.2, "equal_opportunity_gap": 0.05,
                                    "equal_opportunity_p_value": 0.5, "passed": True}
    ethics = build_model_card(_facts(meta)).ethical_considerations
    line = next(item for item in ethics if "Fairness gate" in item)
    assert line.startswith("Fairness gate across age_band: FAIL. Disparate impact: FAIL: ratio 0.700, under the "
                           "minimum 0.8 (Fisher p = 0.2, reported only).")
    assert "whatever Fisher's p" in line and "not significant" not in line and "watch it" not in line


def test_a_waived_fairness_result_shows_waived_with_its_reason_never_pass(meta, brief):
    brief = _with_waivers(brief)
    meta["brief"] = brief
    meta["fairness"]["age_band"] = {"disparate_impact": 0.7, "p_value": 0.2, "equal_opportunity_gap": 0.2,
                                    "passed": True, "applicable": True, "status": "WAIVED",
                                    "disparate_impact_status": "WAIVED", "equal_opportunity_status": "WAIVED",
                                    "reason": "the gate's long reason text"}
    ethics = [line for line in build_model_card(_facts(meta)).ethical_considerations if "Fairness" in line]
    assert ethics[0].startswith("Fairness gate across age_band: WAIVED. Disparate impact: WAIVED: ratio 0.700")
    for waiver in brief.fairness.waivers:
        assert ethics[0].count(waiver.reason) == 1
    assert "the gate's long reason text" not in ethics[0] and ".." not in ethics[0]
    assert "pass" not in ethics[0].lower()


# The bias checklist (method phase 9, 偏见检测检查清单).

LIMITS = {"representation_min_ratio": 0.8, "max_calibration_gap": 0.05, "proxy_max_auc": 0.8}


def _group(name, n=200, tpr=0.5, primary=0.4, observed=0.1, score=0.1, p=0.5) -> dict:
    return {"group": name, "n": n, "assessed": n >= 50, "primary_metric": "f1", "primary_value": primary,
            "tpr": tpr, "observed_rate": observed, "mean_score": score, "calibration_gap": score - observed,
            "calibration_p_value": p, "ece": abs(score - observed)}


@pytest.fixture
def evidence(brief) -> dict:
    """Evidence of a model that passes every item."""
    return {
        "brief": brief,
        "representation": {"age_band": [
            {"group": "18-24", "train_rows": 800, "train_share": 0.5, "reference_share": 0.5, "ratio": 1.0},
            {"group": "65+", "train_rows": 800, "train_share": 0.5, "reference_share": 0.5, "ratio": 1.0}]},
        "fairness": {"age_band": {"disparate_impact": 0.9, "p_value": 0.4, "equal_opportunity_gap": 0.05,
                                  "equal_opportunity_p_value": 0.6, "passed": True}},
        "fairness_groups": {"age_band": [_group("18-24"), _group("65+"), _group(None, n=10)]},
        "proxies": {"age_band": [{"feature": "customer_plan", "group": "65+", "auc": 0.58}]},
        "edge_cases": [{"case": "all features missing", "rows": 20, "passed": True, "detail": "scores 0.1 .. 0.1"}],
        "sliced_metrics": [{"dimension": "plan", "value": "premium", "n": 42, "metrics": {"f1": 0.7}}],
        **LIMITS,
    }


def _status(checklist) -> dict[str, str]:
    return {item.item: item.status for item in checklist}


def test_checklist_has_the_methods_eight_items_in_order_and_passes_a_clean_model(evidence):
    checklist = bias_checklist(_evidence(evidence))
    assert [item.seed for item in checklist] == [seed for _, _, seed in BIAS_CHECKLIST]
    assert len(checklist) == 8 and set(_status(checklist).values()) == {"pass"}
    assert all(item.evidence for item in checklist)
    by = {item.item: item.evidence for item in checklist}
    assert "F1 by age_band: 18-24 0.400 (n 200), 65+ 0.400 (n 200)" in by["sliced_metrics"]
    assert "disparate_impact_min 0.8" in by["thresholds_before_training"]
    assert "plan=premium (42)" in by["edge_cases"]


def test_a_planted_proxy_feature_is_flagged(evidence, brief):
    rng = np.random.default_rng(0)

    def people(n):
        band = rng.choice(["18-24", "65+"], n)
        return pl.DataFrame({"age_band": band, "noise": rng.normal(0, 1, n),
                             "years_since_school": np.where(band == "65+", 45.0, 3.0) + rng.normal(0, 2, n)})

    evidence["proxies"] = {"age_band": proxy_features(people(600), people(400), ["noise", "years_since_school"],
                                                      "age_band").to_dicts()}
    item = {i.item: i for i in bias_checklist(_evidence(evidence))}["proxy_features"]
    assert item.status == "fail"
    assert "years_since_school predicts age_band=" in item.evidence and "noise" not in item.evidence


def test_under_representation_measured_from_the_data_fails(evidence):
    train = pl.Series(["18-24"] * 950 + ["65+"] * 50)
    holdout = pl.Series(["18-24"] * 500 + ["65+"] * 500)
    evidence["representation"] = {"age_band": representation(train, holdout).to_dicts()}
    item = {i.item: i for i in bias_checklist(_evidence(evidence))}["representation"]
    assert item.status == "fail" and "age_band=65+ (50 training rows, share 5.0% vs 50.0%" in item.evidence


def test_calibration_fails_only_on_significant_differences_the_tpr_gap_on_its_limit(evidence, brief):
    evidence["brief"] = _without_waivers(brief)
    evidence["fairness"]["age_band"] |= {"equal_opportunity_gap": 0.3, "equal_opportunity_p_value": 0.2}
    evidence["fairness_groups"]["age_band"][1] = _group("65+", observed=0.1, score=0.2, p=0.3)
    status = _status(bias_checklist(_evidence(evidence)))
    assert status["calibration"] == "pass"
    assert status["equal_opportunity"] == "fail"  # over 0.1: fails whatever Fisher's p, as in the gate
    opportunity = {i.item: i for i in bias_checklist(_evidence(evidence))}["equal_opportunity"].evidence
    assert "TPR gap 0.300, over the maximum 0.1 (Fisher p = 0.2, reported only)" in opportunity
    assert "not significant" not in opportunity

    evidence["fairness"]["age_band"] |= {"equal_opportunity_p_value": 0.001, "disparate_impact": 0.5,
                                         "p_value": 0.001, "passed": False}
    evidence["fairness_groups"]["age_band"][1] = _group("65+", observed=0.1, score=0.2, p=0.001)
    status = _status(bias_checklist(_evidence(evidence)))
    assert status["equal_opportunity"] == status["calibration"] == status["disparate_impact"] == "fail"
    calibration = {i.item: i for i in bias_checklist(_evidence(evidence))}["calibration"].evidence
    assert "age_band=65+ predicted 0.200 vs observed 0.100" in calibration


def _gate(brief: Brief, sizes: dict[str, int], selected: dict[str, int], positives: dict[str, int]) -> tuple:
    """The real fairness gate on a hold-out of ``sizes`` rows per age band, ``selected`` of them predicted positive
    and ``positives`` of them labelled positive (the first rows of each band are both): the attribute's row, as
    the evaluation/fairness table holds it, and its per-group rows."""
    bands = [b for b, n in sizes.items() for _ in range(n)]
    label = [int(i < positives[b]) for b, n in sizes.items() for i in range(n)]
    scores = np.array([0.9 if i < selected[b] else 0.1 for b, n in sizes.items() for i in range(n)])
    frame = pl.DataFrame({"age_band": bands, "label": label})
    rows, groups = fairness_assessment("binary", frame, "label", scores, 0.5, ["age_band"], "f1", fairness_rule(brief))
    row = {k: v for k, v in rows[0].row().items() if k != "attribute"}
    return row, groups.to_dicts()


def test_a_ratio_the_gate_fails_with_fishers_p_above_005_reads_fail(evidence, brief):
    """The gate fails a ratio under the minimum whatever Fisher's p: the checklist and the card say FAIL too."""
    evidence["brief"] = _without_waivers(brief)
    row, groups = _gate(evidence["brief"], {"18-24": 60, "65+": 60}, {"18-24": 10, "65+": 6},
                        {"18-24": 55, "65+": 55})
    assert row["disparate_impact_status"] == "FAIL" and row["p_value"] > 0.05  # the gate's own verdict
    evidence["fairness"]["age_band"] = row
    item = {i.item: i for i in bias_checklist(_evidence(evidence))}["disparate_impact"]
    assert item.status == "fail" and item.fails
    assert f"age_band: FAIL: ratio 0.600, under the minimum 0.8 (Fisher p = {row['p_value']:.3g}, reported only)." \
        in item.evidence
    assert "a selection-rate ratio under 0.8 (thresholds.disparate_impact_min) fails whatever Fisher's p" \
        in item.evidence
    assert "not significant" not in item.evidence and "p < 0.05" not in item.evidence
    line = next(x for x in build_model_card(CardFacts(evidence["brief"], fairness=_typed(evidence["fairness"])))
                .ethical_considerations if x.startswith("Fairness gate"))
    assert line.startswith("Fairness gate across age_band: FAIL. Disparate impact: FAIL: ratio 0.600")


def test_a_waived_row_shows_each_reason_once_and_the_gates_status(evidence, brief):
    """A brief waiving both age_band metrics: each row gives its own waiver's reason once, never the gate's whole
    reason text."""
    brief = evidence["brief"] = _with_waivers(brief)
    row, groups = _gate(brief, {"18-24": 300, "65+": 300}, {"18-24": 90, "65+": 45}, {"18-24": 20, "65+": 20})
    assert (row["disparate_impact_status"], row["equal_opportunity_status"]) == ("WAIVED", "WAIVED")
    evidence["fairness"]["age_band"] = row
    evidence["fairness_groups"]["age_band"] = [{**_group(g["group"], n=g["n"]), "positives": g["positives"]}
                                               for g in groups]
    by = {i.item: i for i in bias_checklist(_evidence(evidence))}
    reasons = {w.metric: w.reason for w in brief.fairness.waivers}
    for metric, other in (("disparate_impact", "equal_opportunity"), ("equal_opportunity", "disparate_impact")):
        assert by[metric].status == "waived" and not by[metric].fails
        assert by[metric].evidence.count(reasons[metric]) == 1 and reasons[other] not in by[metric].evidence
        assert ".." not in by[metric].evidence
    assert "age_band: WAIVED: ratio 0.500, under the minimum 0.8" in by["disparate_impact"].evidence
    assert "age_band: WAIVED: not assessable: fewer than two groups with 50+ hold-out positives (a TPR's " \
           "denominator) (hold-out positives per group: 18-24 20, 65+ 20)" in by["equal_opportunity"].evidence
    markdown = render_model_card(build_model_card(CardFacts(brief, fairness=_typed(evidence["fairness"]))),
                                 list(by.values()))
    assert "The methodology's bias checklist: 0 of 8 items fail, 2 waived." in markdown
    ethics = markdown.split("## Ethical considerations", 1)[1].split("## Maintenance", 1)[0]
    assert all(ethics.count(reason) == 1 for reason in reasons.values())


def test_a_not_assessable_tpr_gap_reads_not_assessable_and_fails_the_summary_as_the_brief_says(evidence, brief):
    evidence["brief"] = _without_waivers(brief)
    row, groups = _gate(evidence["brief"], {"18-24": 300, "65+": 300}, {"18-24": 60, "65+": 60},
                        {"18-24": 20, "65+": 30})
    assert (row["disparate_impact_status"], row["equal_opportunity_status"]) == ("PASS", "NOT_ASSESSABLE")
    evidence["fairness"]["age_band"] = row
    evidence["fairness_groups"]["age_band"] = [{**_group(g["group"], n=g["n"]), "positives": g["positives"]}
                                               for g in groups]
    item = {i.item: i for i in bias_checklist(_evidence(evidence))}["equal_opportunity"]
    assert item.status == "not assessable" and item.fails
    assert item.evidence.startswith("age_band: NOT ASSESSABLE: fewer than two groups with 50+ "
                                       "hold-out positives (a TPR's denominator) (hold-out positives per group: "
                                       "18-24 20, 65+ 30), which fails (thresholds.fairness_when_not_assessable: "
                                       "fail).")
    markdown = render_model_card(build_model_card(CardFacts(evidence["brief"])),
                                 bias_checklist(_evidence(evidence)))
    assert "The methodology's bias checklist: 1 of 8 items fail (1 of them not assessable, which " \
           "thresholds.fairness_when_not_assessable: fail fails)." in markdown
    assert "| **NOT ASSESSABLE** |" in markdown

    evidence["brief"] = _without_waivers(brief, fairness_when_not_assessable="warn")
    item = {i.item: i for i in bias_checklist(_evidence(evidence))}["equal_opportunity"]
    assert item.status == "not assessable" and not item.fails and "which only warns" in item.evidence
    markdown = render_model_card(build_model_card(CardFacts(evidence["brief"])),
                                 bias_checklist(_evidence(evidence)))
    assert "0 of 8 items fail, 1 not assessable (a warning under thresholds.fairness_when_not_assessable: warn)." \
        in markdown


def test_broken_edge_cases_and_missing_evidence_fail(evidence):
    evidence["edge_cases"].append({"case": "unseen categories", "rows": 20, "passed": False,
                                   "detail": "raised KeyError: 'x'"})
    del evidence["proxies"]["age_band"]
    status = _status(bias_checklist(_evidence(evidence)))
    assert status["edge_cases"] == status["proxy_features"] == "fail"
    evidence["fairness_groups"]["age_band"] = [_group("18-24"), _group("65+", n=20)]
    assert _status(bias_checklist(_evidence(evidence)))["sliced_metrics"] == "fail"


def test_thresholds_left_to_platform_defaults_fail(evidence):
    raw = yaml.safe_load(DEMO_BRIEF.read_text())
    del raw["thresholds"]["disparate_impact_min"]
    evidence["brief"] = Brief.model_validate(raw)
    item = {i.item: i for i in bias_checklist(_evidence(evidence))}["thresholds_before_training"]
    assert item.status == "fail" and "does not set thresholds.disparate_impact_min" in item.evidence


def test_without_protected_attributes_the_group_items_do_not_apply(evidence, brief):
    evidence["brief"] = brief.model_copy(update={"protected_attributes": []})
    status = _status(bias_checklist(_evidence(evidence)))
    assert status.pop("edge_cases") == "pass"
    assert set(status.values()) == {"not applicable"}


def test_group_calibration_does_not_apply_to_regression(evidence, brief):
    problem = brief.problem.model_copy(update={"ml_task_type": "regression"})
    evidence["brief"] = brief.model_copy(update={"problem": problem})
    assert _status(bias_checklist(_evidence(evidence)))["calibration"] == "not applicable"


def test_card_renders_the_checklist_and_writes_json(meta, evidence):
    card = build_model_card(_facts(meta))
    evidence["edge_cases"][0]["case"] = "a | b"
    checklist = bias_checklist(_evidence(evidence))
    markdown = render_model_card(card, checklist)
    assert "## Bias checklist" in markdown and "0 of 8 items fail." in markdown
    assert "| Edge cases tested: behaviour on uncommon inputs | pass |" in markdown
    assert "a \\| b" in markdown  # evidence cannot break the table
    assert markdown.index("## Bias checklist") < markdown.index("## Card (the methodology's template)")
    assert "seed" not in markdown.lower()
    block = markdown.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block) == {"model_card": card.as_dict()}
    assert json.loads(model_card_json(card, checklist)) == {
        "model_card": card.as_dict(), "bias_checklist": [asdict(i) for i in checklist], "platform": {}}
    assert "## Bias checklist" not in render_model_card(card)


def test_a_regression_model_gets_not_applicable_decision_items_and_a_card(evidence, meta, brief):
    """A regression model makes no selection decision: disparate impact, equal opportunity and calibration are
    not applicable (said why), and the card's ethics say the same instead of "not recorded"."""
    regression = brief.model_copy(update={"problem": brief.problem.model_copy(update={"ml_task_type": "regression"})})
    note = "disparate impact and equal opportunity compare decisions; a regression model makes none"
    fairness = {"age_band": {"disparate_impact": None, "p_value": None, "equal_opportunity_gap": None,
                             "equal_opportunity_p_value": None, "passed": True, "applicable": False, "note": note}}
    groups = [{"group": g, "n": 200, "assessed": True, "primary_metric": "mae", "primary_value": v}
              for g, v in (("18-24", 9.0), ("65+", 11.0))]
    regression_evidence = _evidence({**evidence, "brief": regression, "fairness": fairness,
                                          "fairness_groups": {"age_band": groups}})
    checklist = {i.item: i for i in bias_checklist(regression_evidence)}
    for item in ("disparate_impact", "equal_opportunity", "calibration"):
        assert checklist[item].status == "not applicable", checklist[item]
    assert "regression model makes none" in checklist["disparate_impact"].evidence
    assert checklist["sliced_metrics"].status == "pass"
    card = build_model_card(_facts({**meta, "brief": regression, "fairness": fairness,
                                         "metrics": {"mae": {"value": 9.5, "ci_low": 9.0, "ci_high": 10.1}}}))
    assert any("NOT APPLICABLE" in line for line in card.ethical_considerations)


def test_a_metric_the_gate_waived_is_a_waived_checklist_item_never_a_pass(evidence):
    evidence["brief"] = _with_waivers(evidence["brief"])
    evidence["fairness"]["age_band"].update(
        disparate_impact=0.7, status="WAIVED", disparate_impact_status="WAIVED", equal_opportunity_status="PASS",
        reason="WAIVED disparate impact: the gate's own wording of the waiver")
    checklist = bias_checklist(_evidence(evidence))
    assert _status(checklist)["disparate_impact"] == "waived"
    assert _status(checklist)["equal_opportunity"] == "pass"
    # Not assessable by the numbers, waived by the brief: the item shows the waiver, not a failure or a pass.
    evidence["fairness"]["age_band"].update(equal_opportunity_gap=None, equal_opportunity_status="WAIVED")
    assert _status(bias_checklist(_evidence(evidence)))["equal_opportunity"] == "waived"
    by = {item.item: item.evidence for item in checklist}
    assert by["disparate_impact"].startswith("age_band: WAIVED: ratio 0.700, under the minimum 0.8")
    assert by["disparate_impact"].count("the brief's measured reason for disparate_impact") == 1  # once
    assert "the gate's own wording" not in by["disparate_impact"]
    markdown = render_model_card(build_model_card(CardFacts(evidence["brief"])), checklist)
    assert "1 waived" in markdown and "| **WAIVED** |" in markdown


def test_the_card_records_one_verdict_retraining_concept_drift_leakage_waivers_and_a_draft(meta):
    meta.update(
        promotion_verdict="promoted (the run's MLflow tag and its experiment record agree)",
        retraining_schedule="scheduled_retrain: cron '0 3 * * 1' UTC (stopped); drift_sensor (running)",
        concept_drift=CheckOutcome("FAIL", "f1 0.3235 -> 0.2100 (-35.1%)"),
        leakage_waivers={"customer_fee": "set by contract before the month starts"},
        placeholders=["owner", "problem.success_metric"])
    card = build_model_card(_facts(meta))
    assert card.maintenance.retraining_schedule.startswith("scheduled_retrain: cron '0 3 * * 1'")
    assert card.maintenance.monitoring.endswith(
        "Concept drift (the concept_drift check's latest result): FAIL: f1 0.3235 -> 0.2100 (-35.1%).")
    assert any(line.startswith("Leakage check WAIVED for customer_fee") for line in card.limitations)
    extras = card_extras(_facts(meta))
    markdown = render_model_card(card, None, extras)
    assert markdown.splitlines()[0].endswith("(DRAFT)")
    assert "owner, problem.success_metric" in markdown
    assert "- **Promotion verdict:** promoted (the run's MLflow tag and its experiment record agree)" in markdown
    assert "- customer_fee: WAIVED: set by contract before the month starts" in markdown
    assert json.loads(model_card_json(card, [], extras))["platform"]["promotion_verdict"].startswith("promoted")
