from dataclasses import asdict
from datetime import date

import pytest
import yaml

from mlplatform.brief import DEMO_BRIEF, load_brief
from mlplatform.core.drift import FeatureDrift
from mlplatform.core.model_card import NOT_RECORDED, build_model_card, render_model_card

# The seed's phase-9 template: keys, nesting and order.
SEED_KEYS = ["model_name", "version", "date", "owner", "description", "intended_use", "out_of_scope_uses",
             "training_data", "evaluation", "limitations", "ethical_considerations", "maintenance"]
SEED_NESTED = {"training_data": ["source", "size", "date_range", "known_biases"],
               "evaluation": ["metrics", "datasets", "sliced_metrics"],
               "maintenance": ["retraining_schedule", "monitoring", "contact"]}


@pytest.fixture(scope="module")
def brief():
    return load_brief(DEMO_BRIEF)


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


def test_card_has_exactly_the_seed_structure(meta):
    card = build_model_card(meta)
    assert list(card) == SEED_KEYS
    for section, keys in SEED_NESTED.items():
        assert list(card[section]) == keys
    assert isinstance(card["limitations"], list) and isinstance(card["ethical_considerations"], list)
    assert isinstance(card["evaluation"]["metrics"], dict) and isinstance(card["evaluation"]["datasets"], list)


def test_card_is_filled_from_the_brief_and_metadata(meta, brief):
    card = build_model_card(meta)
    assert (card["model_name"], card["version"], card["date"]) == ("churn_demo_lgbm", "3", "2025-09-02")
    assert card["owner"] == card["maintenance"]["contact"] == brief.owner
    assert brief.problem.prediction_target in card["description"] and "LightGBM" in card["description"]
    assert brief.problem.business_objective in card["intended_use"]
    assert card["training_data"]["size"] == "41,234 rows"
    assert card["training_data"]["date_range"] == "2025-02-01..2025-06-30"
    assert "sha256:ab12" in card["training_data"]["source"] and "events (parquet" in card["training_data"]["source"]
    assert brief.problem.data_gaps in card["training_data"]["known_biases"]
    assert card["evaluation"]["metrics"] == {"f1": {"value": 0.5212, "ci_low": 0.48, "ci_high": 0.56},
                                             "pr_auc": 0.61}
    assert card["evaluation"]["sliced_metrics"] == {"plan": {"basic": {"n": 5000, "f1": 0.5},
                                                             "premium": {"n": 42, "f1": 0.7}}}
    assert "labels from 2025-08-01 to before 2025-09-01" in card["evaluation"]["datasets"][1]
    assert "above 0.1 warns, above 0.25 is critical" in card["maintenance"]["monitoring"]
    assert card["maintenance"]["retraining_schedule"] == "monthly, and on critical drift"


def test_limitations_are_derived_from_what_was_measured(meta):
    limitations = build_model_card(meta)["limitations"]
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
    ethics = build_model_card(meta)["ethical_considerations"]
    assert ethics[0] == brief.problem.ethical_considerations
    assert "Protected attribute age_band: not a model input." in ethics
    assert "Fairness across age_band passes: disparate-impact ratio 0.860 (minimum 0.8), " \
           "equal-opportunity gap 0.040." in ethics

    meta["fairness"]["age_band"] = {"disparate_impact": 0.7, "equal_opportunity_gap": 0.2, "passed": False}
    meta["features"].append("customer_age_band_young")
    ethics = build_model_card(meta)["ethical_considerations"]
    assert any(item.startswith("Fairness across age_band FAILS: disparate-impact ratio 0.700") for item in ethics)
    assert "Protected attribute age_band: model inputs derived from it: customer_age_band_young." in ethics


def test_missing_information_is_stated_as_missing_never_invented(brief):
    card = build_model_card({"brief": brief})
    assert card["model_name"] == card["version"] == card["date"] == NOT_RECORDED
    assert card["training_data"]["size"] == card["training_data"]["date_range"] == NOT_RECORDED
    assert card["maintenance"]["retraining_schedule"] == NOT_RECORDED
    assert card["evaluation"]["metrics"] == {} and card["evaluation"]["sliced_metrics"] == {}
    limitations = card["limitations"]
    for missing in ("Evaluation metrics were not recorded.", "Metrics by slice were not recorded.",
                    "Drift against current data was not measured.", "The data-quality score was not recorded."):
        assert missing in limitations
    assert "Fairness across age_band was not evaluated." in card["ethical_considerations"]
    assert "Protected attribute age_band: whether it is a model input was not recorded." \
        in card["ethical_considerations"]


def test_render_has_readable_sections_and_the_card_as_yaml(meta):
    card = build_model_card(meta)
    markdown = render_model_card(card)
    assert markdown.startswith("# Model card: churn_demo_lgbm version 3\n")
    for heading in ("## Training data", "## Evaluation", "## Limitations", "## Ethical considerations",
                    "## Maintenance"):
        assert heading in markdown
    assert "| F1 | 0.521 | [0.480, 0.560] |" in markdown and "| PR-AUC | 0.610 | — |" in markdown
    block = markdown.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block) == {"model_card": card}


def test_render_of_a_bare_card(brief):
    markdown = render_model_card(build_model_card({"brief": brief}))
    assert markdown.startswith("# Model card: not recorded\n")
    assert "Metrics: not recorded." in markdown


def test_a_low_but_insignificant_ratio_is_explained_not_hidden(meta):
    meta["fairness"]["age_band"] = {"disparate_impact": 0.7, "p_value": 0.2, "equal_opportunity_gap": 0.2,
                                    "passed": True}
    text = " ".join(build_model_card(meta)["ethical_considerations"])
    assert "0.700" in text and "not statistically significant" in text and "p = 0.2" in text
