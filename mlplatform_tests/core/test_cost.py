"""The cost template's arithmetic: rates per device, cron runs per month, batch timing, storage and the document."""

import time
from datetime import datetime

import polars as pl
import pytest

from mlplatform.core.cost import (
    METHOD_GPU_HOUR_USD,
    NOT_MEASURED,
    InferenceTiming,
    Rates,
    StepRun,
    cost_document,
    directory_bytes,
    headline_figures,
    history_row,
    hour_rate,
    runs_per_month,
    step_table,
    time_batch_prediction,
    time_requests,
    trend_plot,
)


@pytest.mark.parametrize(("device", "usd"), [
    ("cpu", 0.05), ("NVIDIA H100 80GB HBM3", 8.0), ("Tesla T4", 0.5), ("NVIDIA A10G", 1.0),
    ("NVIDIA A100-SXM4-80GB", 4.0), ("cuda", max(METHOD_GPU_HOUR_USD.values())),
])
def test_each_device_is_priced_at_the_cpu_rate_or_the_methods_gpu_rate(device, usd):
    assert hour_rate(device, Rates()) == usd


def test_a_given_gpu_rate_overrides_the_methods_table():
    assert hour_rate("NVIDIA H100", Rates(gpu_hour_usd=2.5)) == 2.5
    assert hour_rate("cpu", Rates(cpu_hour_usd=0.2, gpu_hour_usd=2.5)) == 0.2


def test_step_costs_are_seconds_times_the_hourly_rate():
    steps = [StepRun("lgbm_model", "asset", ("lgbm_model",), "training", 3600.0),
             StepRun("torch_model", "asset", ("torch_model",), "training", 1800.0, device="Tesla T4"),
             StepRun("raw_events", "asset", ("raw_events",), "ingestion", 36.0, partitions=10)]
    frame = step_table(steps, Rates(cpu_hour_usd=0.10))
    usd = dict(zip(frame["step"], frame["usd"], strict=True))
    assert usd == pytest.approx({"lgbm_model": 0.10, "torch_model": 0.25, "raw_events": 0.001})
    assert frame["step"].to_list() == ["torch_model", "lgbm_model", "raw_events"]  # most expensive first
    assert frame.filter(pl.col("step") == "raw_events")["partitions"][0] == 10


@pytest.mark.parametrize(("cron", "per_month"), [
    ("0 3 * * 1", 52 / 12),  # 2025 has 52 Mondays
    ("0 0 * * *", 365 / 12),
    ("*/30 * * * *", 365 * 24 * 2 / 12),
    ("0 0 1,15 * *", 2.0),
    ("0 9-17 * * 1-5", 261 * 9 / 12),  # 261 weekdays in 2025
    ("0 0 1 * 1", (12 + 52 - 2) / 12),  # both day fields restricted: the 1st OR a Monday (1 Sep, 1 Dec are both)
    ("0 0 1 */3 *", 4 / 12),
    ("@weekly", 52 / 12),
    ("0 0 * * 7", 52 / 12),  # 7 is Sunday too
])
def test_runs_per_month_follow_the_cron_schedule(cron, per_month):
    assert runs_per_month(cron) == pytest.approx(per_month)


@pytest.mark.parametrize("cron", ["0 3 * *", "0 3 * * MON", "0 25 * * *", "61 * * * *", "0 0 0 * *"])
def test_unreadable_cron_schedules_are_refused_naming_the_schedule(cron):
    with pytest.raises(ValueError, match="cron schedule"):
        runs_per_month(cron)


def test_batch_prediction_is_timed_after_a_warm_up_call():
    calls = []

    def predict(frame: pl.DataFrame) -> None:
        calls.append(frame.height)
        time.sleep(0.05 if len(calls) == 1 else 0.01)  # the first call is the slow, cold one

    seconds = time_batch_prediction(predict, pl.DataFrame({"x": range(1000)}), repeats=3)
    assert calls == [1000] * 4
    assert 0.01 <= seconds < 0.05


def test_directory_bytes_sums_nested_files_and_is_zero_for_a_missing_path(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "one.bin").write_bytes(b"x" * 100)
    (tmp_path / "a" / "b" / "two.bin").write_bytes(b"x" * 23)
    assert directory_bytes(tmp_path / "a") == 123
    assert directory_bytes(tmp_path / "a" / "one.bin") == 100
    assert directory_bytes(tmp_path / "missing") == 0


def _steps() -> list[StepRun]:
    return [StepRun("lgbm_model", "asset", ("lgbm_model",), "training", 3600.0),
            StepRun("leakage", "check", ("training_set",), "training", 360.0),
            StepRun("drift_report", "asset", ("drift_report",), "monitoring", 1800.0)]


def test_the_document_fills_the_methods_template_with_measured_costs():
    doc = cost_document(_steps(), training_group="training", retrain_cron="0 3 * * 1",
                        inference=InferenceTiming("lightgbm", 500, 2.0),
                        storage_bytes={"lake": 2_000_000_000, "models": 1_000_000_000, "mlflow": 1_000_000_000})
    costs = doc["ml_costs"]
    assert set(costs) == {"training", "inference", "optimization_targets"}
    assert set(costs["training"]) == {"compute_cost_per_run", "runs_per_month", "data_storage_monthly",
                                      "experiment_tracking"}
    assert costs["training"]["compute_cost_per_run"] == pytest.approx(3960 / 3600 * 0.05)  # the check counts too
    assert costs["training"]["runs_per_month"] == pytest.approx(4.33)
    assert costs["training"]["data_storage_monthly"] == pytest.approx(3 * 0.023)
    assert costs["training"]["experiment_tracking"] == pytest.approx(0.023)
    # 2 s for 500 rows: 4 s per 1,000 at $0.05 an hour.
    assert costs["inference"]["cost_per_1k_predictions"] == pytest.approx(4 / 3600 * 0.05, rel=1e-3)
    assert costs["inference"]["cost_per_query_breakdown"]["compute"] == pytest.approx(4 / 3600 * 0.05 / 1000,
                                                                                       rel=1e-3)
    assert doc["measured"]["pipeline_seconds_per_run"] == 5760
    assert doc["measured"]["training_seconds_per_run"] == 3960
    # Nothing measured the prediction volume and no budget is set: the document says so instead of guessing.
    for value in (costs["inference"]["daily_volume"], costs["inference"]["monthly_cost"],
                  doc["measured"]["monthly_total"]):
        assert value.startswith(NOT_MEASURED)
    assert costs["optimization_targets"]["monthly_budget"].startswith("not set")
    assert "0 3 * * 1" in doc["assumptions"]["runs_per_month"]


def test_a_known_volume_budget_and_target_complete_the_monthly_figures():
    doc = cost_document(_steps(), training_group="training", retrain_cron="0 0 1 * *",
                        inference=InferenceTiming("lightgbm", 1000, 3.6), storage_bytes={"lake": 1_000_000_000},
                        rates=Rates(cpu_hour_usd=1.0, storage_gb_month_usd=0.1), daily_volume=10_000,
                        monthly_budget_usd=50.0, target_cost_per_prediction_usd=0.01)
    inference = doc["ml_costs"]["inference"]
    assert inference["cost_per_1k_predictions"] == pytest.approx(0.001)  # 3.6 s at $1 an hour
    assert inference["monthly_cost"] == pytest.approx(0.001 * 10 * 365 / 12, rel=1e-3)
    training_month = 3960 / 3600 * 1.0  # one run a month
    assert doc["measured"]["monthly_total"] == pytest.approx(training_month + 0.1 + 0.001 * 10 * 365 / 12, rel=1e-3)
    assert doc["ml_costs"]["optimization_targets"] == {"cost_per_prediction": 0.01, "monthly_budget": 50.0,
                                                       "cost_reduction_goal": ""}


def test_history_rows_make_a_trend_plot(tmp_path):
    doc = cost_document(_steps(), training_group="training", retrain_cron="0 3 * * 1",
                        inference=InferenceTiming("lightgbm", 1000, 0.01), storage_bytes={"lake": 10})
    history = pl.concat([history_row(doc, datetime(2025, 1, day)) for day in (1, 2)])
    assert history.height == 2
    assert history["storage_bytes"].to_list() == [10, 10]
    figures = headline_figures(doc)
    assert figures["storage_bytes"] == 10 and figures["runs_per_month"] == doc["ml_costs"]["training"]["runs_per_month"]
    assert figures["compute_cost_per_run_usd"] == history["training_cost_per_run"][0]
    path = trend_plot(history, tmp_path / "trend.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_requests_are_timed_one_at_a_time_through_a_real_client_and_refusals_not_counted():
    from fastapi import FastAPI, HTTPException
    from fastapi.testclient import TestClient

    app, seen = FastAPI(), []

    @app.post("/predict")
    def predict(body: dict) -> dict:
        seen.append(body["customer_id"])
        if body["customer_id"] % 4 == 0:
            raise HTTPException(404, "unknown id")
        return {"prediction": 1}

    with TestClient(app) as client:
        seconds, answered, refused = time_requests(
            lambda i: client.post("/predict", json={"customer_id": i}).status_code == 200, list(range(1, 21)),
            warmup=3)
    assert (answered, refused) == (15, 5)
    assert seen == [1, 2, 3, *range(1, 21)]  # three untimed warm-up requests, then each id once
    assert 0 < seconds < 10


def test_the_document_states_how_inference_was_measured_and_judges_the_brief_cost_section():
    from mlplatform.brief import DEMO_BRIEF, load_brief
    from mlplatform.core.system_score import Evidence, score_system

    cost = load_brief(DEMO_BRIEF).cost
    method = "200 POST /predict requests one at a time through the serving app"
    doc = cost_document(_steps(), training_group="training", retrain_cron="0 3 * * 1",
                        inference=InferenceTiming("churn_demo_model version 1", 200, 2.0, method),
                        storage_bytes={"lake": 10_000_000}, rates=Rates(cpu_hour_usd=cost.price_per_cpu_hour),
                        daily_volume=cost.daily_volume, monthly_budget_usd=cost.monthly_budget,
                        target_cost_per_prediction_usd=cost.target_cost_per_prediction)
    assert doc["assumptions"]["inference"].startswith(method)
    assert doc["measured"]["inference_method"] == method
    assert doc["ml_costs"]["optimization_targets"]["monthly_budget"] == cost.monthly_budget
    cost_efficiency = score_system(Evidence(cost=doc)).dimensions[-1]
    assert cost_efficiency.points == 5, cost_efficiency.to_raise  # within budget, under the per-prediction target
    assert any(method in item for item in cost_efficiency.evidence)
