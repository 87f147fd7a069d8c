"""The real code location loads, with every stage's assets, groups and gates."""

import dagster as dg

from mlplatform.brief import DEMO_BRIEF
from mlplatform.core import tables
from mlplatform.definitions import build_definitions
from mlplatform.resources.gates import blocking_gate_edges
from mlplatform.settings import Settings

EXPECTED = {
    "problem": {"problem_brief"},
    "ingestion": {"raw_customers", "raw_events", "raw_labels"},
    "quality": {"validated_customers", "quarantined_customers", "validated_events", "quarantined_events",
                "validated_labels", "quarantined_labels", "data_quality_report"},
    "features": {"feature_catalogue", "features_daily"},
    "feature_store": {"feature_store", "online_features"},
    "training": {"training_set", "baseline_model", "rules_baseline", "lgbm_model", "torch_model",
                 "lgbm_reweighed_model", "lgbm_threshold_model"},
    "evaluation": {"evaluation_report", "evaluation_challenger", "evaluation_metrics", "evaluation_kill_criteria",
                   "evaluation_slices", "evaluation_edge_cases", "evaluation_fairness", "evaluation_fairness_groups",
                   "evaluation_golden", "evaluation_golden_metrics"},
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


def test_the_code_location_loads_the_settings_of_the_environment(tmp_path, monkeypatch):
    """What Dagster's tools load: the definitions of the environment's settings, built when called."""
    from mlplatform.definitions import defs

    monkeypatch.setenv("MLPLATFORM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MLPLATFORM_BRIEF", raising=False)
    loaded = defs()
    assert isinstance(loaded, dg.Definitions)
    assert loaded.resources["platform"].data_dir == str(tmp_path)
    loaded.resolve_all_job_defs()


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


def test_the_tables_later_stages_read_are_assets_their_readers_depend_on(tmp_path):
    defs = build_definitions(Settings(data_dir=tmp_path, brief_path=DEMO_BRIEF))
    graph = defs.resolve_asset_graph()

    def parents(asset: str) -> set[str]:
        return {key.to_user_string() for key in graph.get(dg.AssetKey(asset)).parent_keys}

    assert {tables.METRICS.asset_key, tables.CHALLENGER.asset_key} <= parents("serving_monitor")
    assert tables.CHALLENGER.asset_key in parents("model_registry")
    assert {t.asset_key for t in (tables.METRICS, tables.SLICES, tables.FAIRNESS, tables.FAIRNESS_GROUPS,
                                  tables.EDGE_CASES, tables.GOLDEN_METRICS)} <= parents("model_card")
    gate = next(check for check in defs.asset_checks
                if any(spec.name == "promotion_gate" for spec in check.check_specs))
    read = {dep.asset_key.to_user_string() for spec in gate.check_specs for dep in spec.additional_deps}
    assert read == {tables.METRICS.asset_key, tables.FAIRNESS.asset_key, tables.GOLDEN.asset_key}


def test_every_asset_descends_from_the_brief(tmp_path):
    graph = build_definitions(Settings(data_dir=tmp_path, brief_path=DEMO_BRIEF)).resolve_asset_graph()
    brief = dg.AssetKey("problem_brief")
    assert graph.get(brief).child_keys >= {dg.AssetKey(f"raw_{name}") for name in ("customers", "events", "labels")}
    assert {key for key in graph.get_all_asset_keys() if not graph.get(key).parent_keys} == {brief}


def test_the_evaluation_tables_add_no_gate_to_the_evaluation_step(tmp_path):
    """The evaluation report and its tables are one step: the gates on the tables' parents are those already on
    the report's, so a run is refused (or not) exactly as before the tables were assets."""
    defs = build_definitions(Settings(data_dir=tmp_path, brief_path=DEMO_BRIEF))
    evaluation = defs.resolve_assets_def("evaluation_report")
    step = {key.to_user_string() for key in evaluation.keys}
    assert step > {"evaluation_report", tables.METRICS.asset_key}
    edges = blocking_gate_edges([a for a in defs.assets if isinstance(a, dg.AssetsDefinition)], defs.asset_checks)
    gates = {(child, parent, name) for child, parent, name in edges if child in step}
    assert {(parent, name) for _, parent, name in gates} == {
        (parent, name) for child, parent, name in gates if child == "evaluation_report"}
    assert any(child == "evaluation_report" for child, _, _ in gates)


def test_the_runner_materialises_the_evaluation_step_in_one_run(tmp_path):
    from mlplatform.runner import _stage_runs

    graph = build_definitions(Settings(data_dir=tmp_path, brief_path=DEMO_BRIEF)).resolve_asset_graph()
    keys = [key for key in graph.get_all_asset_keys() if graph.get(key).group_name == "evaluation"]
    runs = _stage_runs(graph, keys)
    assert len(runs) == 1
    assert runs[0][0].resolve(graph) == set(keys)
