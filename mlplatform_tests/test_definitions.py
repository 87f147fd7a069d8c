"""The real code location loads, with every stage's assets, groups and gates."""

import dagster as dg

from mlplatform.brief import DEMO_BRIEF
from mlplatform.definitions import build_definitions
from mlplatform.settings import Settings

EXPECTED = {
    "problem": {"problem_brief"},
    "ingestion": {"raw_customers", "raw_events", "raw_labels"},
    "quality": {"validated_customers", "quarantined_customers", "validated_events", "quarantined_events",
                "validated_labels", "quarantined_labels", "data_quality_report"},
    "features": {"features_daily"},
    "feature_store": {"feature_store", "online_features"},
    "training": {"training_set", "baseline_model", "rules_baseline", "lgbm_model", "torch_model",
                 "lgbm_reweighed_model", "lgbm_threshold_model"},
    "evaluation": {"evaluation_report"},
    "registry": {"model_registry", "champion_model"},
    "serving": {"ab_test_report", "serving_rollout", "batch_predictions"},
    "monitoring": {"whylogs_profiles", "batch_profiles", "drift_report", "performance_report", "prediction_profiles",
                   "serving_monitor"},
    "reporting": {"model_card", "cost_report", "ml_system_score"},
    "rag": {"rag_report_documents", "rag_queries", "rag_documents", "rag_chunks", "rag_index", "rag_reranker",
            "rag_retrieval_eval", "rag_answer_eval", "rag_report", "rag_system_card"},
}
BLOCKING = {("data_quality_report", "data_quality_gate"), ("evaluation_report", "kill_criteria"),
            ("model_registry", "promotion_gate"), ("rag_answer_eval", "rag_quality_gate"),
            *(("training_set", f"leakage_{item}") for item in ("no_future_information", "no_target_derived_feature",
                                                                "temporal_split", "hold_out_untouched",
                                                                "no_duplicates_across_splits")),
            *((model, f"leakage_{item}") for model in ("lgbm_model", "torch_model", "lgbm_reweighed_model",
                                                                    "lgbm_threshold_model")
              for item in ("split_before_fitting", "target_encoding_train_only", "scaler_train_only"))}


def test_definitions_module_loads_the_demo_brief():
    from mlplatform.definitions import defs

    assert isinstance(defs, dg.Definitions)
    defs.resolve_all_job_defs()


def test_every_stage_has_its_assets_in_its_group(tmp_path):
    defs = build_definitions(Settings(data_dir=tmp_path, brief_path=DEMO_BRIEF))
    graph = defs.resolve_asset_graph()
    groups: dict[str, set[str]] = {}
    for key in graph.get_all_asset_keys():
        groups.setdefault(graph.get(key).group_name, set()).add(key.to_user_string())
    assert groups == EXPECTED
    assert graph.get(dg.AssetKey("raw_events")).partitions_def is not None


def test_gates_are_blocking_checks(tmp_path):
    defs = build_definitions(Settings(data_dir=tmp_path, brief_path=DEMO_BRIEF))
    specs = {(spec.asset_key.to_user_string(), spec.name): spec
             for check in defs.asset_checks for spec in check.check_specs}
    for gate in BLOCKING:
        assert gate in specs, gate
        assert specs[gate].blocking, gate
