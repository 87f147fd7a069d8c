"""Jobs, schedules and sensors: new data is ingested, and drift, decay or the calendar retrain (seed phase 7).

Each trigger launches ``retrain_job`` — re-validate the data, rebuild features, retrain, evaluate, and run the
promotion gate against the production model, then promote or start a canary (``monitoring.retrain_rollout``) —
with the reason in the run's tags. Every retraining run's outcome is appended to the notifications log (and
POSTed to the brief's webhook when one is set).
"""

import json

import dagster as dg
import polars as pl

from mlplatform.brief import Brief
from mlplatform.core.drift import drift_not_measured
from mlplatform.core.ingestion import month_keys
from mlplatform.core.io import InputError, source_files
from mlplatform.core.retraining import Trigger, drift_trigger, notify, performance_trigger
from mlplatform.core.training import load_model
from mlplatform.resources.platform import PlatformResource

TRIGGER_TAG = "mlplatform/trigger"
REASON_TAG = "mlplatform/reason"
RETRAIN_GROUPS = ["quality", "features", "feature_store", "training", "evaluation", "registry", "reporting"]
# The per-batch profile (monitoring.py) is partitioned like the raw batches: it runs with each batch's ingestion.
BATCH_PROFILES = "batch_profiles"


def partitioned_sources(brief: Brief) -> list[str]:
    """Sources that arrive in monthly batches (the partitioned raw assets)."""
    return [name for name, source in brief.sources.items() if source.batches == "monthly"]


def monthly_keys(brief: Brief) -> list[str]:
    return month_keys(brief.partition_start, brief.partition_end)


def _retrain_request(trigger: Trigger, run_key: str) -> dg.RunRequest:
    return dg.RunRequest(run_key=run_key, tags={TRIGGER_TAG: trigger.kind, REASON_TAG: trigger.reason[:1000]})


def _latest_storage_id(context: dg.SensorEvaluationContext, asset: str) -> int | None:
    """The newest materialisation of ``asset`` not yet seen by this sensor (the cursor holds the last seen)."""
    records = context.instance.fetch_materializations(dg.AssetKey(asset), limit=1).records
    if not records or (context.cursor and records[0].storage_id <= int(context.cursor)):
        return None
    return records[0].storage_id


def _drift_skip(brief: Brief) -> dg.SkipReason | None:
    """Drift and concept-drift triggers cannot fire where drift over time is not measured: say why."""
    reason = drift_not_measured(brief)
    return dg.SkipReason(f"drift over time is not measured for this brief: {reason}") if reason else None


def build(brief: Brief) -> list:
    ingested = [f"raw_{name}" for name in partitioned_sources(brief)]
    batches = [*ingested, BATCH_PROFILES] if ingested else []
    ingest_job = dg.define_asset_job(
        "ingest_job", selection=dg.AssetSelection.assets(*batches),
        description="Ingest one monthly batch of the time-partitioned sources and profile it.")
    full_run = dg.define_asset_job(
        "full_run", selection=dg.AssetSelection.all() - dg.AssetSelection.assets(*batches),
        description="Everything after the monthly batches: validation to model card and monitoring.")
    retrain_job = dg.define_asset_job(
        "retrain_job", selection=dg.AssetSelection.groups(*RETRAIN_GROUPS),
        description="Re-validate the data, rebuild features, retrain, evaluate, and gate promotion against the "
                    "production model.")
    monitor_job = dg.define_asset_job(
        "monitor_job", selection=dg.AssetSelection.groups("monitoring") - dg.AssetSelection.assets(*batches),
        description="Profiles, feature drift and the champion's performance on newly labelled data.")

    @dg.sensor(job=ingest_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
    def new_data_sensor(context: dg.SensorEvaluationContext, platform: PlatformResource):
        """Ingests a monthly batch when its files appear or change (name, size and modification time)."""
        if not partitioned_sources(platform.brief):
            return dg.SkipReason("no source of this brief arrives in monthly batches (sources.*.batches)")
        seen = json.loads(context.cursor) if context.cursor else {}
        current = {}
        for name in partitioned_sources(platform.brief):
            try:
                files = source_files(platform.source_path(name))
            except InputError as exc:
                return dg.SkipReason(str(exc))
            for key in monthly_keys(platform.brief):
                batch = [f for f in files if key in f.name]
                if batch:
                    current[key] = ";".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in batch)
        changed = [key for key, signature in current.items() if seen.get(key) != signature]
        context.update_cursor(json.dumps(current))
        if not changed:
            return dg.SkipReason("no new or changed batch files")
        return [dg.RunRequest(run_key=f"{key}:{current[key]}", partition_key=key,
                              tags={TRIGGER_TAG: "new_data", REASON_TAG: f"batch {key} arrived or changed"})
                for key in changed]

    @dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[ingest_job],
                          request_job=retrain_job, default_status=dg.DefaultSensorStatus.STOPPED)
    def retrain_on_new_data(context: dg.RunStatusSensorContext):
        """Retrains once a new batch has been ingested."""
        partition = context.dagster_run.tags.get("dagster/partition", "?")
        return _retrain_request(Trigger("new_data", f"batch {partition} ingested"),
                                run_key=f"new_data:{context.dagster_run.run_id}")

    @dg.sensor(job=retrain_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
    def drift_sensor(context: dg.SensorEvaluationContext, platform: PlatformResource):
        """Retrains when a new drift report shows PSI above the brief's retrain threshold on a top feature."""
        if skip := _drift_skip(platform.brief):
            return skip
        storage_id = _latest_storage_id(context, "drift_report")
        if storage_id is None:
            return dg.SkipReason("no new drift report")
        context.update_cursor(str(storage_id))
        b = platform.brief
        importance = load_model(platform.workspace.models_dir / "lightgbm").feature_importance
        trigger = drift_trigger(platform.read_table("monitoring", "drift"), importance,
                                top_n=b.monitoring.top_features, threshold=b.monitoring.retrain_psi)
        if trigger is None:
            return dg.SkipReason(f"drift report {storage_id}: no top-{b.monitoring.top_features} feature above "
                                 f"PSI {b.monitoring.retrain_psi}")
        return _retrain_request(trigger, run_key=f"drift:{storage_id}")

    @dg.sensor(job=retrain_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
    def performance_sensor(context: dg.SensorEvaluationContext, platform: PlatformResource):
        """Retrains when a new performance report shows critical concept drift."""
        if skip := _drift_skip(platform.brief):
            return skip
        storage_id = _latest_storage_id(context, "performance_report")
        if storage_id is None:
            return dg.SkipReason("no new performance report")
        context.update_cursor(str(storage_id))
        trigger = performance_trigger(platform.read_table("monitoring", "performance").row(0, named=True))
        if trigger is None:
            return dg.SkipReason(f"performance report {storage_id}: no critical drop")
        return _retrain_request(trigger, run_key=f"performance:{storage_id}")

    scheduled_retrain = dg.ScheduleDefinition(
        name="scheduled_retrain", cron_schedule=brief.monitoring.retrain_cron, job=retrain_job,
        tags={TRIGGER_TAG: "scheduled", REASON_TAG: f"schedule {brief.monitoring.retrain_cron}"},
        default_status=dg.DefaultScheduleStatus.STOPPED)

    @dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[retrain_job],
                          default_status=dg.DefaultSensorStatus.STOPPED)
    def notify_retrain_success(context: dg.RunStatusSensorContext, platform: PlatformResource):
        """Logs each finished retraining run with its trigger and the promotion decision."""
        _notify(platform, context.dagster_run, "succeeded")

    @dg.run_failure_sensor(monitored_jobs=[retrain_job], default_status=dg.DefaultSensorStatus.STOPPED)
    def notify_retrain_failure(context: dg.RunFailureSensorContext, platform: PlatformResource):
        """Tells the team when a retraining run fails, with the reason."""
        _notify(platform, context.dagster_run, "failed", context.failure_event.message)

    return [ingest_job, full_run, retrain_job, monitor_job, new_data_sensor, retrain_on_new_data, drift_sensor,
            performance_sensor, scheduled_retrain, notify_retrain_success, notify_retrain_failure]


def _notify(platform: PlatformResource, run: dg.DagsterRun, status: str, message: str | None = None) -> dict:
    decision = None
    promotion = platform.workspace.table("registry", "promotion")
    if promotion.exists():
        row = pl.read_parquet(promotion).row(0, named=True)
        decision = {"challenger_version": row["challenger_version"], "promoted": row["promote"]}
        decision["rollout"] = _rollout_of(platform, row["challenger_version"]) if row["promote"] else None
    event = {"run_id": run.run_id, "job": run.job_name, "status": status,
             "trigger": run.tags.get(TRIGGER_TAG, "manual"), "reason": run.tags.get(REASON_TAG, ""),
             "promotion": decision, "message": message}
    return notify(platform.workspace.root / "notifications.jsonl", event, platform.brief.monitoring.webhook_url)


def _rollout_of(platform: PlatformResource, version: str) -> str | None:
    """What champion_model did with ``version`` after the gate passed: "promoted", or "canary at 5%"."""
    path = platform.workspace.table("registry", "rollout")
    rows = pl.read_parquet(path).filter(pl.col("challenger_version") == version) if path.exists() else None
    if rows is None or rows.height == 0:
        return None  # champion_model did not run (e.g. the run failed after the gate)
    row = rows.row(0, named=True)
    return "promoted" if row["action"] == "promoted" else f"canary at {row['challenger_share']:.0%}"
