"""The method's ML-system score: each dimension's anchors, totals and bands, the evidence read from files, and
the two reporting assets materialised on the session's demo."""

from dataclasses import replace
from datetime import date, datetime

import numpy as np
import polars as pl
import pytest
import yaml

from mlplatform.brief import DEMO_BRIEF, load_brief
from mlplatform.core.cost import InferenceTiming, StepRun, cost_document
from mlplatform.core.system_score import (
    WEIGHTS,
    Evidence,
    band,
    gather_evidence,
    render_markdown,
    render_text,
    score_from_table,
    score_system,
    score_table,
)
from mlplatform.settings import Workspace

COST = {"ml_costs": {"optimization_targets": {"monthly_budget": 100.0, "cost_per_prediction": 0.001},
                     "inference": {"cost_per_query_breakdown": {"compute": 0.0001}}},
        "measured": {"monthly_total": 40.0}}

FULL = Evidence(
    business_objective="reduce churn", success_metric="churn -15% among contacted customers",
    kill_criteria=("rules reach 60% of the model",), cost_estimate="training $0.01/run",
    quality_total=27.0, quality_min=18.0, feature_store_registry="feast/registry.db", dataset_version="abc123",
    tracked_runs=4, runs_with_dataset_version=4,
    primary_metric="f1", model_value=0.60, model_ci=(0.55, 0.65), baselines={"rules": 0.40, "majority": 0.0},
    freshness=(("events", datetime(2025, 10, 31), 1.0),), quality_as_of=datetime(2025, 11, 1),
    scored_on=date(2025, 11, 1),
    fairness={"age_band": ("PASS", "")}, calibration_error=0.02, worst_slice=("plan=basic", 0.50),
    registered_version="3", champion_version="3", serving_app=True, rollback_automation=("serving_guard_sensor",),
    ab_test_predictions={"control": 900, "treatment": 100}, profiles=True, drift_report=True,
    performance_report=True, failing_checks=(), retrain_triggers=("drift_sensor",),
    automation_states={"serving_guard_sensor": "running", "drift_sensor": "running"},
    model_card="model_card.md", evaluation_report="report.md", runbook="runbook.md", cost=COST,
)


def points(evidence: Evidence) -> dict[str, int]:
    return {d.name: d.points for d in score_system(evidence).dimensions}


def test_full_evidence_scores_five_everywhere_and_100_in_the_top_band():
    score = score_system(FULL)
    assert set(points(FULL).values()) == {5}
    assert score.total == 100
    assert score.band == "80-100: production-grade ML system"
    assert all(d.evidence and not d.to_raise for d in score.dimensions)


def test_no_evidence_scores_zero_and_says_what_to_do_first():
    score = score_system(Evidence())
    assert set(points(Evidence()).values()) == {0}
    assert score.total == 0
    assert score.band == "below 40: research project, needs further work"
    assert all(d.to_raise for d in score.dimensions)


def test_weights_are_the_methods_and_scaled_so_the_total_is_out_of_100():
    assert WEIGHTS == {"problem_definition": 0.15, "data_quality": 0.15, "experiment_rigor": 0.15,
                       "model_performance": 0.15, "deployment": 0.15, "monitoring": 0.15, "documentation": 0.05,
                       "cost_efficiency": 0.10}
    # Documentation at 0 loses its 5 of the method's 105 points.
    assert score_system(replace(FULL, model_card=None, evaluation_report=None)).total == pytest.approx(95.2)
    # Model performance at 2/5 loses 3/5 of 15.
    assert score_system(replace(FULL, model_ci=(0.35, 0.65))).total == pytest.approx(100 - 9 / 1.05, abs=0.05)


@pytest.mark.parametrize(("total", "expected"), [(100, "80-100"), (80, "80-100"), (79.9, "60-79"), (60, "60-79"),
                                                 (59.9, "40-59"), (40, "40-59"), (39.9, "below 40"), (0, "below 40")])
def test_bands_follow_the_method(total, expected):
    assert band(total).startswith(expected + ":")


@pytest.mark.parametrize(("change", "expected"), [
    ({"cost_estimate": None}, 4),
    ({"cost_estimate": None, "kill_criteria": (), "baselines": {"majority": 0.0}}, 3),
    ({"success_metric": ""}, 2),
    ({"business_objective": ""}, 0),
])
def test_problem_definition_anchors(change, expected):
    assert points(replace(FULL, **change))["problem_definition"] == expected


def test_a_draft_brief_scores_zero_on_problem_definition_and_the_score_says_draft():
    draft = replace(FULL, placeholders=("owner", "problem.business_objective"))
    score = score_system(draft)
    assert points(draft)["problem_definition"] == 0
    problem = score.dimensions[0]
    assert "owner, problem.business_objective" in problem.to_raise[0]
    assert render_markdown(score).startswith("# ML-system score: ") and "(DRAFT)" in render_markdown(score)
    assert "DRAFT" in render_text(score) and "problem.business_objective" in render_text(score)
    assert score_from_table(score_table(score)).placeholders == draft.placeholders


def test_stale_data_is_not_excellent_and_the_evidence_names_the_day_it_was_judged_at():
    stale = replace(FULL, scored_on=date(2026, 12, 7))  # the newest data is 2025-10-31: 13 months old
    score = score_system(stale)
    assert points(stale)["data_quality"] == 4
    text = " ".join(score.dimensions[1].to_raise)
    assert "2026-12-07" in text and "events newest 2025-10-31 is 402 days old" in text
    assert "as of 2025-11-01" in text  # the day the quality report judged it at
    assert points(replace(FULL, freshness=()))["data_quality"] == 4  # not known is not credited


def test_fairness_evidence_never_calls_a_waived_item_fair():
    waived = replace(FULL, fairness={"age_band": ("WAIVED", "owner accepted the 0.72 ratio until Q3")})
    performance = score_system(waived).dimensions[3]
    said = " ".join(performance.evidence + performance.to_raise)
    assert "age_band WAIVED (owner accepted the 0.72 ratio until Q3)" in said
    assert "fair:" not in said and "pass" not in " ".join(performance.evidence).lower().split("fairness")[0]


@pytest.mark.parametrize(("change", "expected"), [
    ({"freshness": ()}, 4),
    ({"dataset_version": None}, 4),
    ({"dataset_version": None, "feature_store_registry": None, "freshness": ()}, 3),
    ({"quality_total": 17.9}, 2),
    ({"quality_total": None}, 0),
])
def test_data_quality_anchors(change, expected):
    assert points(replace(FULL, **change))["data_quality"] == expected


@pytest.mark.parametrize(("change", "expected"), [
    ({"runs_with_dataset_version": 3}, 4),
    ({"runs_with_dataset_version": 3, "model_ci": None}, 3),
    ({"tracked_runs": 0, "runs_with_dataset_version": 0}, 0),
])
def test_experiment_rigor_anchors(change, expected):
    assert points(replace(FULL, **change))["experiment_rigor"] == expected


@pytest.mark.parametrize(("change", "expected"), [
    ({"fairness": {"age_band": ("FAIL", "disparate impact 0.61 under 0.8")}}, 4),
    ({"fairness": {"age_band": ("WAIVED", "groups too small this quarter")}}, 4),
    ({"fairness": {"age_band": ("NOT_ASSESSABLE", "one group")}}, 4),
    ({"calibration_error": 0.2}, 4),
    ({"worst_slice": ("plan=basic", 0.30)}, 4),  # a slice below the rules baseline: edge cases not handled
    ({"fairness": {}, "calibration_error": None, "worst_slice": None}, 3),
    ({"model_ci": (0.35, 0.65)}, 2),  # the interval still holds the rules baseline's 0.40
    ({"model_value": 0.39}, 1),
    ({"model_value": None}, 0),
    ({"calibration_error": None, "calibration_applies": False}, 5),  # e.g. regression: nothing to calibrate
])
def test_model_performance_anchors(change, expected):
    assert points(replace(FULL, **change))["model_performance"] == expected


def test_model_performance_respects_lower_is_better_metrics():
    mae = replace(FULL, primary_metric="mae", model_value=2.0, model_ci=(1.8, 2.2), baselines={"majority": 3.0},
                  worst_slice=("plan=basic", 2.5))
    assert points(mae)["model_performance"] == 5
    assert points(replace(mae, model_ci=(1.8, 3.1)))["model_performance"] == 2
    assert points(replace(mae, model_value=3.5))["model_performance"] == 1


@pytest.mark.parametrize(("change", "expected"), [
    ({"ab_test_predictions": None}, 4),
    ({"ab_test_predictions": {"control": 0, "treatment": 0}}, 4),  # a report of no traffic tests nothing
    ({"automation_states": {"serving_guard_sensor": "stopped", "drift_sensor": "running"}}, 4),
    ({"automation_states": None}, 4),  # states not known earn nothing
    ({"ab_test_predictions": None, "rollback_automation": ()}, 3),
    ({"serving_app": False}, 2),
    ({"champion_version": None}, 1),
    ({"registered_version": None}, 0),
])
def test_deployment_anchors(change, expected):
    assert points(replace(FULL, **change))["deployment"] == expected


@pytest.mark.parametrize(("change", "expected"), [
    ({"retrain_triggers": ()}, 4),
    ({"failing_checks": ("feature_drift",)}, 4),
    ({"failing_checks": None}, 4),
    # Drift and concept drift failing and every sensor stopped: detection exists, nothing acts on it.
    ({"failing_checks": ("feature_drift", "concept_drift"),
      "automation_states": {"serving_guard_sensor": "stopped", "drift_sensor": "stopped"}}, 4),
    ({"retrain_triggers": (), "drift_report": False, "performance_report": False, "failing_checks": None}, 3),
    ({"profiles": False, "drift_report": False, "performance_report": False}, 0),
])
def test_monitoring_anchors(change, expected):
    assert points(replace(FULL, **change))["monitoring"] == expected


@pytest.mark.parametrize(("change", "expected"), [
    ({"runbook": None}, 4),
    ({"runbook": None, "evaluation_report": None}, 3),
    ({"model_card": None}, 2),
    ({"model_card": None, "evaluation_report": None}, 0),
])
def test_documentation_anchors(change, expected):
    assert points(replace(FULL, **change))["documentation"] == expected


def _cost(budget, total, target) -> dict:
    return {"ml_costs": {"optimization_targets": {"monthly_budget": budget, "cost_per_prediction": target},
                         "inference": {"cost_per_query_breakdown": {"compute": 0.0001}}},
            "measured": {"monthly_total": total}}


@pytest.mark.parametrize(("cost", "expected"), [
    (_cost(100.0, 140.0, 0.001), 4),  # over budget
    (_cost(100.0, "not measured: inference volume unknown", "not set"), 3),
    (_cost("not set", 40.0, 0.001), 2),
    (None, 0),
])
def test_cost_efficiency_anchors(cost, expected):
    assert points(replace(FULL, cost=cost))["cost_efficiency"] == expected


def test_the_score_round_trips_through_its_table_and_renders():
    score = score_system(replace(FULL, runbook=None))
    again = score_from_table(score_table(score))
    assert again == score
    assert again.total == score.total
    markdown, text = render_markdown(score), render_text(score)
    assert f"{score.total:.0f}/100" in markdown and score.band in markdown
    assert "runbook" in text and "documentation" in text


# Evidence read from files: each point traces to a file a test can change.

def _write(workspace: Workspace, layer: str, name: str, frame: pl.DataFrame) -> None:
    path = workspace.table(layer, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path)


def test_evidence_is_read_from_the_lake_and_report_files(tmp_path):
    brief = load_brief(DEMO_BRIEF)
    ws = Workspace(tmp_path / "data", brief.name)
    uri = f"sqlite:///{ws.mlflow_dir / 'mlflow.db'}"

    def gather() -> Evidence:
        return gather_evidence(ws, brief, tmp_path, tracking_uri=uri, model_name="m")

    empty = gather()
    assert (empty.quality_total, empty.model_card, empty.cost, empty.tracked_runs) == (None, None, None, 0)
    assert not (ws.mlflow_dir / "mlflow.db").exists()  # reading evidence creates no MLflow backend

    _write(ws, "reports", "data_quality_overall", pl.DataFrame({"points": [5.0, 4.0, 3.0, 5.0, 3.0, 2.0]}))
    _write(ws, "evaluation", "challenger", pl.DataFrame({"candidate": ["lightgbm"]}))
    _write(ws, "evaluation", "metrics", pl.DataFrame({
        "candidate": ["lightgbm", "rules", "majority"], "metric": ["f1"] * 3, "value": [0.6, 0.4, 0.0],
        "ci_low": [0.5, None, None], "ci_high": [0.7, None, None]}))
    # The gate lets a waived attribute through (passed) but its status says WAIVED: the score does not call it fair.
    _write(ws, "evaluation", "fairness", pl.DataFrame({"attribute": ["age_band"], "passed": [True],
                                                       "status": ["WAIVED"], "reason": ["accepted until Q3"]}))
    _write(ws, "evaluation", "slices", pl.DataFrame({
        "dimension": ["plan", "plan", "plan"], "value": ["basic", "pro", None], "small_slice": [False, False, True],
        "f1": [0.45, 0.9, 0.0]}))
    rng = np.random.default_rng(0)
    scores = rng.uniform(size=2000)
    _write(ws, "evaluation", "predictions", pl.DataFrame({
        "churned": (rng.uniform(size=2000) < scores).astype(int), "score": scores}))
    ws.reports_dir.mkdir(parents=True)
    (ws.reports_dir / "model_card.md").write_text("# card")
    cost = cost_document([StepRun("lgbm_model", "asset", ("lgbm_model",), "training", 720.0)],
                         training_group="training", retrain_cron="0 3 * * 1",
                         inference=InferenceTiming("lightgbm", 1000, 0.02), storage_bytes={"lake": 10})
    (ws.reports_dir / "cost_report.yaml").write_text(yaml.safe_dump(cost))

    found = gather()
    assert found.quality_total == 22.0
    assert (found.model_value, found.model_ci, found.baselines) == (0.6, (0.5, 0.7), {"rules": 0.4, "majority": 0.0})
    assert found.fairness == {"age_band": ("WAIVED", "accepted until Q3")}
    assert found.worst_slice == ("plan=basic", 0.45)  # the small slice is listed, not judged
    assert found.calibration_error < 0.05  # scores drawn as the true probabilities are calibrated
    assert found.model_card == str(ws.reports_dir / "model_card.md")
    assert found.cost_estimate.startswith("training $0.01/run")  # 720 s at $0.05 an hour
    assert points(found)["model_performance"] == 4  # significant, calibrated, slices hold; fairness waived

    (tmp_path / "runbook.md").write_text("# when the drift sensor fires")
    assert points(gather())["documentation"] == points(found)["documentation"] + 1
    (ws.reports_dir / "model_card.md").unlink()
    assert points(gather())["documentation"] == 0


# The two assets on the session's demo (the whole graph materialised once by the demo_run fixture).

@pytest.mark.slow
def test_cost_report_and_score_materialise_on_the_demo(demo_run, demo_settings):
    import dagster as dg
    from typer.testing import CliRunner

    from mlplatform.cli import app
    from mlplatform.definitions import build_definitions
    from mlplatform.defs import governance

    assert demo_run.outcome.ok
    defs = build_definitions(demo_settings)
    mine = governance.build(load_brief(demo_settings.brief_path))
    assets = [*(a for a in defs.assets if a not in mine), *mine]  # whether or not STAGES lists the stage yet
    ws = Workspace(demo_settings.data_dir, "churn_demo")
    with dg.instance_for_test() as instance:
        # A fresh instance has only this run's history: one earlier step for the cost report to find.
        assert dg.materialize(assets, instance=instance, resources=defs.resources, selection=["problem_brief"]).success
        result = dg.materialize(assets, instance=instance, resources=defs.resources,
                                selection=["cost_report", "ml_system_score"])
    assert result.success
    metadata = {e.asset_key.to_user_string(): e.materialization.metadata
                for e in result.get_asset_materialization_events()}

    document = yaml.safe_load((ws.reports_dir / "cost_report.yaml").read_text())
    assert set(document["ml_costs"]) == {"training", "inference", "optimization_targets"}
    assert document["ml_costs"]["inference"]["cost_per_1k_predictions"] > 0
    assert document["measured"]["storage_bytes"]["lake"] > 0
    steps = pl.read_parquet(ws.table("reports", "cost_steps"))
    assert steps.filter(pl.col("step") == "problem_brief")["seconds"][0] > 0
    assert document["ml_costs"]["training"]["compute_cost_per_run"] == 0  # no training ran in this instance

    table = pl.read_parquet(ws.table("reports", "ml_system_score"))
    assert table["dimension"].to_list() == list(WEIGHTS)
    score = score_from_table(table)
    assert metadata["ml_system_score"]["total"].value == score.total
    points_by_name = dict(zip(table["dimension"], table["points"], strict=True))
    # The demo brief's budget and target, with inference timed through /predict on the champion.
    assert points_by_name["cost_efficiency"] == 5
    assert "POST /predict" in document["assumptions"]["inference"]
    assert points_by_name["documentation"] >= 4  # the model card and evaluation report of the demo run
    # Drift and concept drift detected, but every retraining sensor is stopped in this instance: not excellent.
    assert points_by_name["monitoring"] == 4
    evidence = dict(zip(table["dimension"], table["to_raise"], strict=True))
    assert any("drift_sensor (stopped)" in item for item in evidence["monitoring"])
    assert any("serving_guard_sensor (stopped)" in item for item in evidence["deployment"])

    shown = CliRunner().invoke(app, ["score", "--data-dir", str(demo_settings.data_dir)])
    assert shown.exit_code == 0, shown.output
    assert f"ML-system score {score.total:.0f}/100" in shown.output


def test_the_score_command_says_when_nothing_was_scored(tmp_path):
    from typer.testing import CliRunner

    from mlplatform.cli import app

    shown = CliRunner().invoke(app, ["score", "--data-dir", str(tmp_path)])
    assert shown.exit_code == 2
    assert "no ML-system score" in shown.output and "mlplatform demo" in shown.output
