"""The leakage checklist runs as asset checks against the demo's real lake, and the demo passes all eight."""

import dagster as dg
import pytest

from mlplatform.brief import DEMO_BRIEF, load_brief
from mlplatform.core.model_families import CANDIDATE_ASSETS, candidates
from mlplatform.definitions import build_definitions
from mlplatform.defs import leakage

pytestmark = pytest.mark.slow

BLOCKING_ON_TRAINING_SET = {"leakage_no_future_information", "leakage_no_target_derived_feature",
                            "leakage_temporal_split", "leakage_hold_out_untouched",
                            "leakage_no_duplicates_across_splits"}
ON_MODEL = {"leakage_split_before_fitting", "leakage_target_encoding_train_only", "leakage_scaler_train_only"}


@pytest.fixture(scope="module")
def evaluations(demo_run, demo_settings) -> dict:
    """Only the leakage checks, run on the lake the whole demo graph left behind."""
    assert demo_run.outcome.ok, "\n".join(demo_run.lines)
    defs = build_definitions(demo_settings)
    checks = leakage.build(load_brief(demo_settings.brief_path))
    keys = [key for check in checks for key in check.check_keys]
    with dg.instance_for_test() as instance:
        result = dg.materialize([*defs.assets, *checks], instance=instance, resources=defs.resources,
                                selection=dg.AssetSelection.checks(*keys), raise_on_error=False)
    assert result.get_asset_materialization_events() == []  # the checks read the lake, they rebuild nothing
    evaluations = result.get_asset_check_evaluations()
    others = [e for e in evaluations if e.asset_key.to_user_string() not in ("training_set", "lgbm_model")]
    assert {e.asset_key.to_user_string() for e in others} >= {"torch_model"}
    assert all(e.check_name in ON_MODEL and e.passed for e in others), others
    return {e.check_name: e for e in evaluations if e not in others}


def test_the_eight_items_are_checks_on_the_training_set_and_every_candidate():
    brief = load_brief(DEMO_BRIEF)
    specs = [spec for check in leakage.build(brief) for spec in check.check_specs]
    assert {s.name for s in specs} == BLOCKING_ON_TRAINING_SET | ON_MODEL
    assets = ["training_set", *(CANDIDATE_ASSETS[n] for n in candidates(brief))]
    on = {asset: {s.name for s in specs if s.asset_key.to_user_string() == asset} for asset in assets}
    assert on == {"training_set": BLOCKING_ON_TRAINING_SET} | {asset: ON_MODEL for asset in assets[1:]}
    assert {"lgbm_model", "torch_model"} <= set(on)
    assert all(s.blocking for s in specs)


def test_the_demo_passes_every_leakage_check(evaluations):
    assert set(evaluations) == BLOCKING_ON_TRAINING_SET | ON_MODEL
    failed = {(e.asset_key.to_user_string(), name): e.description for name, e in evaluations.items()
              if not e.passed}
    assert failed == {}


def test_the_findings_carry_their_evidence(evaluations):
    future = evaluations["leakage_no_future_information"].metadata
    assert future["rows_checked"].value == future["rows_matching_point_in_time_row"].value > 1000
    assert len(evaluations["leakage_no_target_derived_feature"].metadata["top_features"].value) == 5
    assert evaluations["leakage_no_duplicates_across_splits"].metadata["entities_in_train_and_test"].value > 0
    # The demo brief's transforms: each fitted step refits from the training split alone to the same values.
    fitted = evaluations["leakage_split_before_fitting"].metadata
    assert fitted["applicable"].value
    for step in ("customer_plan one_hot", "customer_amount_30d_sum standardize", "customer_region target_encode"):
        assert fitted[step].value["matches_train_refit"], step
    encoding = evaluations["leakage_target_encoding_train_only"].metadata
    assert encoding["applicable"].value and encoding["customer_region target_encode"].value["matches_train_refit"]
    scaler = evaluations["leakage_scaler_train_only"].metadata
    assert scaler["applicable"].value and scaler["customer_amount_30d_sum standardize"].value["matches_train_refit"]
