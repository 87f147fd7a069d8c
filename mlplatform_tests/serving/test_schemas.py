"""The serving API's models come from the brief: event features and a plain table's own columns alike."""

import pytest
from pydantic import ValidationError

from mlplatform.brief import DEMO_BRIEF, Interaction, load_brief
from mlplatform.core.feature_catalogue import feature_catalogue
from mlplatform.serving.schemas import api_models, feature_types
from mlplatform_tests.defs.plain_table import write_plain_table_brief


def test_event_features_are_typed_like_the_feature_table():
    types = feature_types(load_brief(DEMO_BRIEF))
    assert (types["customer_plan"], types["customer_monthly_fee"]) == (str, float), "declared entity attributes"
    assert (types["customer_login_7d_count"], types["customer_tenure_days"]) == (int, int)
    assert types["customer_amount_30d_sum"] is float


def test_a_plain_table_briefs_inputs_keep_their_declared_types(tmp_path):
    brief = load_brief(write_plain_table_brief(tmp_path))
    assert feature_types(brief) == {"row_size": float, "row_colour": str}
    models = api_models(brief)
    parsed = models.request.model_validate({"row_id": 3, "features": {"row_size": 1.5, "row_colour": "red"}})
    assert parsed.model_dump() == {"row_id": 3, "features": {"row_size": 1.5, "row_colour": "red"}}
    with pytest.raises(ValidationError, match="row_size"):
        models.request.model_validate({"row_id": 3, "features": {"row_size": "large", "row_colour": "red"}})
    (row,) = models.batch.model_fields["predictions"].annotation.__args__
    assert set(row.model_fields) == {*models.response.model_fields, "status", "detail"}


def test_a_protected_attribute_is_served_only_where_the_model_decides_per_group():
    brief = load_brief(DEMO_BRIEF)
    assert "threshold_optimizer" in brief.fairness.mitigation
    assert feature_types(brief)["customer_age_band"] is str, "the per-band thresholds need the band at serving"
    reweigh_only = brief.model_copy(update={"fairness": brief.fairness.model_copy(update={"mitigation": ["reweigh"]})})
    assert "customer_age_band" not in feature_types(reweigh_only), "never a model input otherwise"


def test_request_types_come_from_the_feature_catalogue_not_the_names():
    brief = load_brief(DEMO_BRIEF)
    share = Interaction(left="login_7d_count", right="login_30d_count", kind="ratio", name="weekly_login_count")
    brief = brief.model_copy(update={"features": brief.features.model_copy(
        update={"interactions": [*brief.features.interactions, share]})})
    catalogue = feature_catalogue(brief)
    types = feature_types(brief)
    assert types == {f.name: {"int": int, "float": float, "str": str}[f.dtype] for f in catalogue.features}
    assert types["customer_weekly_login_count"] is float, "a ratio named like a count is still a float"
    features = {name: (1 if kind is int else 0.5 if kind is float else None) for name, kind in types.items()}
    request = api_models(brief).request
    assert request.model_validate({"customer_id": 1, "features": features}).features.customer_weekly_login_count == 0.5
    with pytest.raises(ValidationError, match="customer_login_7d_count"):
        request.model_validate({"customer_id": 1, "features": features | {"customer_login_7d_count": 0.5}})
