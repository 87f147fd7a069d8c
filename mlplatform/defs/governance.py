"""Stage: what the system costs and how good it is as a whole — the method's cost template (phase 10) and its
0–100 ML-system score (phase 11), both from what actually ran."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl

from mlplatform import asset_names
from mlplatform.brief import Brief
from mlplatform.code_location import (
    asset_definitions,
    automation_states,
    code_location,
    failing_checks,
    retrain_triggers,
    rollback_automation,
)
from mlplatform.core import tables
from mlplatform.core.cost import (
    InferenceTiming,
    Rates,
    StepRun,
    cost_document,
    directory_bytes,
    headline_figures,
    history_row,
    step_table,
    time_batch_prediction,
    trend_plot,
    write_cost_yaml,
)
from mlplatform.core.io import write_text_atomic
from mlplatform.core.markdown import table
from mlplatform.core.model_families import model_dir
from mlplatform.core.models import load_candidate
from mlplatform.core.readable import readable
from mlplatform.core.system_score import (
    COST_REPORT,
    gather_evidence,
    render_markdown,
    score_system,
    score_table,
)
from mlplatform.resources.platform import FeatureStoreResource, PlatformResource, TrackingResource
from mlplatform.serving.timing import time_predict_endpoint
from mlplatform.settings import Settings

INFERENCE_ROWS = 1000
PREDICT_REQUESTS = 200  # /predict requests timed for a real-time consumer
# The newest materialisations read per asset: enough for every partition of a monthly asset over decades.
_MAX_PARTITIONS = 1000


def _steps(items: list) -> dict[str, tuple[str, tuple[dg.AssetKey, ...], str]]:
    """Step (op) name → (asset or check, the assets it materialises or checks, its group)."""
    assets = asset_definitions(items)
    groups = {key: group for a in assets for key, group in a.group_names_by_key.items()}
    steps = {a.node_def.name: ("asset", tuple(a.keys), groups[next(iter(a.keys))]) for a in assets}
    for check in (i for i in items if isinstance(i, dg.AssetChecksDefinition)):
        checked = tuple(sorted({k.asset_key for k in check.check_keys}, key=str))
        steps[check.node_def.name] = ("check", checked, groups.get(checked[0], "none"))
    return steps


def executed_steps(instance: dg.DagsterInstance, items: list) -> list[StepRun]:
    """The latest execution of every step: each asset's newest materialisation (per partition) locates its
    run, the run's step stats give the seconds, and a check counts in the run that materialised its asset."""
    steps = _steps(items)
    latest: dict[str, set[dg.AssetKey]] = {}  # run id → assets whose newest materialisation it holds
    devices: dict[tuple[str, dg.AssetKey], str] = {}
    for key in {k for _, keys, _ in steps.values() for k in keys}:
        seen: set[str | None] = set()
        for record in instance.fetch_materializations(key, limit=_MAX_PARTITIONS).records:
            if record.partition_key in seen:
                continue
            seen.add(record.partition_key)
            latest.setdefault(record.run_id, set()).add(key)
            materialization = record.asset_materialization
            assert materialization is not None, "fetch_materializations returns materialisation events only"
            metadata = materialization.metadata
            recorded = metadata.get("device_name") or metadata.get("device")
            if recorded is not None:
                devices[(record.run_id, key)] = str(recorded.value)
    totals: dict[str, StepRun] = {}
    for run_id, keys in latest.items():
        for stats in instance.get_run_step_stats(run_id):
            kind, step_keys, group = steps.get(stats.step_key, (None, (), ""))
            if kind is None or not keys & set(step_keys) or stats.start_time is None or stats.end_time is None:
                continue  # not ours, superseded by a later run, or still running (this very step)
            device = next((devices[(run_id, k)] for k in step_keys if (run_id, k) in devices), "cpu")
            seconds = stats.end_time - stats.start_time
            before = totals.get(stats.step_key)
            totals[stats.step_key] = StepRun(
                stats.step_key, kind, tuple(k.to_user_string() for k in step_keys), group,
                seconds + (before.seconds if before else 0.0), 1 + (before.partitions if before else 0), device)
    return list(totals.values())


def _storage(platform: PlatformResource) -> dict[str, int]:
    ws = platform.workspace
    stores = {"lake": ws.root / "lake", "feature_store": ws.feast_dir, "models": ws.models_dir,
              "mlflow": ws.mlflow_dir, "profiles": ws.profiles_dir, "reports": ws.reports_dir,
              "warehouse": ws.warehouse}
    return {name: directory_bytes(path) for name, path in stores.items()}


def is_real_time(brief: Brief) -> bool:
    """Whether the prediction consumer calls the model one request at a time (not a batch job)."""
    return "batch" not in brief.problem.latency_requirement.lower()


def _inference_timing(platform: PlatformResource, tracking: TrackingResource,
                      feast_store: FeatureStoreResource) -> InferenceTiming:
    """Inference timed the way the brief's consumer calls the model: /predict for a real-time consumer (the
    newest entities of the training set, served from the run's registry and online store, so the production
    profile's PostgreSQL and Redis rather than local files), else one batch of training-set rows."""
    b = platform.brief
    rows = platform.read_table(tables.TRAINING_SET)
    if is_real_time(b):
        newest = rows.sort(b.label.timestamp, descending=True)[b.entity_key].unique(maintain_order=True)
        settings = Settings(data_dir=Path(platform.data_dir), brief_path=Path(platform.brief_path))
        timing = time_predict_endpoint(settings, newest.head(PREDICT_REQUESTS).to_list(), tracking.uri,
                                       feast_store.config())
        if timing is not None:
            return timing
    candidate = platform.read_table(tables.REGISTERED_CHALLENGER)["candidate"][0]
    model = load_candidate(model_dir(platform.workspace.models_dir, candidate))
    batch = rows.head(INFERENCE_ROWS)
    method = ("" if not is_real_time(b) else "the serving app answered no /predict request, so ") + (
        f"{candidate} scoring {batch.height:,} training-set rows in one batch on this machine's CPU (fastest of 3 "
        "after a warm-up)")
    return InferenceTiming(candidate, batch.height, time_batch_prediction(model.predict_score, batch), method)


def _daily_volume(platform: PlatformResource) -> float | None:
    """Predictions a day: the brief's cost.daily_volume, else the prediction log's mean per day, else None."""
    from mlplatform.core.rollout.prediction_log import read_prediction_log

    if platform.brief.cost.daily_volume is not None:
        return platform.brief.cost.daily_volume
    log = read_prediction_log(platform.workspace)
    if not log.height:
        return None
    days = log.select(pl.col("request_time").dt.date().n_unique()).item()
    return log.height / days


@dg.asset(name=asset_names.COST_REPORT, group_name="reporting", kinds={"yaml", "matplotlib"},
          deps=[asset_names.MODEL_CARD, asset_names.CHAMPION_MODEL, asset_names.PERFORMANCE_REPORT,
                asset_names.WHYLOGS_PROFILES])
def cost_report(context: dg.AssetExecutionContext, platform: PlatformResource, tracking: TrackingResource,
                feast_store: FeatureStoreResource) -> dg.MaterializeResult:
    """The method's cost template filled from what ran: seconds and dollars per step from the Dagster instance,
    training cost per run and per month (the retraining schedule), inference cost per prediction (a real-time
    consumer's: timed through the serving app's /predict on the champion; a batch consumer's: one batch call),
    and storage of the lake, models and MLflow, judged against the brief's cost section (budget, volume,
    target, prices; unset prices are the stated defaults of mlplatform.core.cost)."""
    b = platform.brief
    rates = Rates(cpu_hour_usd=b.cost.price_per_cpu_hour, gpu_hour_usd=b.cost.price_per_gpu_hour)
    runs = executed_steps(context.instance, code_location(b))
    inference = _inference_timing(platform, tracking, feast_store)
    document = cost_document(runs, training_group="training", retrain_cron=b.monitoring.retrain_cron,
                             inference=inference, storage_bytes=_storage(platform), rates=rates,
                             daily_volume=_daily_volume(platform), monthly_budget_usd=b.cost.monthly_budget,
                             target_cost_per_prediction_usd=b.cost.target_cost_per_prediction)
    reports = platform.workspace.reports_dir
    body, path = write_cost_yaml(document, reports / COST_REPORT)
    platform.write_table(tables.COST_STEPS, steps := step_table(runs, rates))
    history = platform.append_rows(tables.COST_HISTORY, history_row(document, datetime.now(UTC).replace(tzinfo=None)))
    plot = trend_plot(history, reports / "cost_trend.png")
    return dg.MaterializeResult(metadata=readable({
        **headline_figures(document), "inference_method": inference.describe(),
        "ml_costs": dg.MetadataValue.md(f"```yaml\n{body}```"),
        "steps": dg.MetadataValue.md(table(steps, max_rows=200)),
        "trend": dg.MetadataValue.path(str(plot)),
        "path": dg.MetadataValue.path(str(path)),
    }))


@dg.asset(name=asset_names.ML_SYSTEM_SCORE, group_name="reporting",
          deps=[asset_names.COST_REPORT, asset_names.MODEL_CARD], kinds={"markdown"})
def ml_system_score(context: dg.AssetExecutionContext, platform: PlatformResource,
                    tracking: TrackingResource) -> dg.MaterializeResult:
    """The method's 0–100 ML-system score: eight weighted dimensions, each 0–5 from evidence the platform holds
    (the brief, quality and evaluation tables, MLflow runs and aliases, monitoring outputs, sensors, the model
    card and the cost report), with the evidence and what would raise each score."""
    b = platform.brief
    items = code_location(b)
    evidence = gather_evidence(
        platform.workspace, b, Path(platform.brief_path).parent, tracking_uri=tracking.uri,
        model_name=tracking.model_name, rollback_automation=rollback_automation(items),
        retrain_triggers=retrain_triggers(items), automation_states=automation_states(context.instance, items),
        failing_checks=failing_checks(context.instance, items, "monitoring"))
    score = score_system(evidence)
    markdown = render_markdown(score)
    platform.write_table(tables.ML_SYSTEM_SCORE, score_table(score))
    path = write_text_atomic(markdown, platform.workspace.reports_dir / "ml_system_score.md")
    return dg.MaterializeResult(metadata=readable({
        "total": score.total,
        "band": score.band,
        **{d.name: d.points for d in score.dimensions},
        "score": dg.MetadataValue.md(markdown),
        "path": dg.MetadataValue.path(str(path)),
    }))


def build(brief: Brief) -> list:
    return [cost_report, ml_system_score]
