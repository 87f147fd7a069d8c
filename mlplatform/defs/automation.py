"""The retraining loop (method phases 7 and 8), run by the Dagster daemon: jobs, sensors and the schedule.

The loop, once its sensors are switched on (``dagster sensor start --start-all``, or the UI's Automation page):

1. ``new_data_sensor`` sees a monthly batch's files appear or change and launches ``ingest_job`` for that
   partition (raw sources and the batch's whylogs profile).
2. ``monitor_new_batch`` (a run-status sensor on ``ingest_job``'s success) launches ``monitor_job``: validation,
   features, the online store, the training set (new labels included) and monitoring, so ``drift_report``,
   ``performance_report`` and ``prediction_profiles`` describe the new batch (``monitoring.period:
   latest_batch`` measures the newest month against the training window).
3. ``drift_sensor`` and ``performance_sensor`` read each fresh report and launch ``retrain_job`` with their reason
   in the run's tags when a top feature's PSI or the primary metric's drop crosses the brief's limits (from the
   training stage on: the monitoring run has just validated the batch and rebuilt features and training set). Not when
   the serving version was fitted on the very rows a retrain would fit (its version tag ``fit_rows``): no newer month
   is labelled yet, so the retrain would fit the same model again. New data alone retrains only when the brief asks
   (``monitoring.retrain_on_new_data``: ``monitor_new_batch`` then launches ``retrain_job`` as well).
4. ``retrain_job`` re-validates, rebuilds features, trains on the rolling split's latest months with the
   production model's hyperparameters (``monitoring.retrain_tuning`` re-tunes), evaluates and runs the promotion
   gate (golden set included). A version that passes becomes the challenger of a canary
   (``monitoring.retrain_rollout: canary``, the default) — or the champion, before any champion served.
5. ``serving_guard_sensor`` (defs.rollout) judges the served traffic from the prediction log: the rollback rule,
   the canary's next step (5% -> 25% -> 50%) and, for the last step, the A/B analysis: ship promotes, kill
   aborts the canary, iterate keeps collecting.
6. ``notify_retrain_success`` / ``notify_retrain_failure`` append every retraining run's outcome to
   ``<data_dir>/<brief>/notifications.jsonl`` (and POST it to ``monitoring.webhook_url``).

Why sensors, not declarative automation conditions: the monitoring and training assets are unpartitioned views
over all monthly batches, downstream of a partitioned source. An eager condition on such a fan-in waits on the
months that have not arrived yet (``any_deps_missing``), and the automation-condition sensor launches runs that
carry no reason; the platform needs each run to say why it ran (a batch, a drift figure, a metric drop) and the
retrain decision reads report *contents* (PSI on the champion's top features, the size of a drop), which a
condition over materialisation status cannot express. Run-status and cursor sensors chain named jobs, tag every
run with its trigger and reason, and fire once per event (run keys and cursors).

Every job carries the brief's namespace tag: the instance's tag concurrency limit (``deploy/dagster.yaml``, and
the local instance config the CLI writes) queues a second run of the same namespace until the first ends, so two
retrains never overlap and no daemon-launched run meets the namespace lock.
"""

import json

import dagster as dg
import polars as pl

from mlplatform import asset_names
from mlplatform.brief import Brief
from mlplatform.core import tables
from mlplatform.core.drift import AWAITING_LABELS, drift_not_measured
from mlplatform.core.ingestion import monthly_keys, partitioned_sources
from mlplatform.core.io import InputError, source_files
from mlplatform.core.retraining import Trigger, drift_trigger, fitted_on, notify, performance_trigger
from mlplatform.core.rollout.registry import RolloutState, rollout_state
from mlplatform.resources.platform import PlatformResource, TrackingResource
from mlplatform.stage_io import champion_importance, load_split

TRIGGER_TAG = "mlplatform/trigger"
REASON_TAG = "mlplatform/reason"
BATCH_TAG = "mlplatform/batch"
# The run whose report a retrain answers: drift and decay seen in one monitoring run retrain once.
SOURCE_RUN_TAG = "mlplatform/source_run"
# Runs of one brief on one instance share this tag's value; the instance allows one at a time per value.
NAMESPACE_TAG = "mlplatform/namespace"
RETRAIN_GROUPS = ["quality", "features", "feature_store", "training", "evaluation", "registry", "reporting"]
# What a new batch refreshes before monitoring reads it: validation, features, the online store, the training set.
MONITOR_GROUPS = ["quality", "features", "feature_store", "monitoring"]
# A retrain answering a monitoring run starts where that run stopped: it has just validated the batch and rebuilt
# the features, the online store and the training set from the same inputs, so the retrain does not redo them.
AFTER_MONITORING = ["training", "evaluation", "registry", "reporting"]
def namespace_limit() -> dict:
    """The instance's run-queue rule that keeps one run per brief namespace at a time (``concurrency.runs``)."""
    return {"key": NAMESPACE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}


def _retrain_request(trigger: Trigger, run_key: str, source_run: str | None = None,
                     asset_selection: list[dg.AssetKey] | None = None, job_name: str | None = None) -> dg.RunRequest:
    tags = {TRIGGER_TAG: trigger.kind, REASON_TAG: trigger.reason[:1000]}
    return dg.RunRequest(run_key=run_key, tags={**tags, SOURCE_RUN_TAG: source_run} if source_run else tags,
                         asset_selection=asset_selection, job_name=job_name)


def _after_monitoring(context: dg.SensorEvaluationContext) -> list[dg.AssetKey] | None:
    """The retrain's assets that a monitoring run has not just refreshed (None: the whole job, when the sensor
    runs without its code location, as in a test's sensor context)."""
    repository = context.repository_def
    if repository is None:
        return None
    return sorted(dg.AssetSelection.groups(*AFTER_MONITORING).resolve(repository.asset_graph))


def _latest_record(context: dg.SensorEvaluationContext, asset: str) -> dg.EventLogRecord | None:
    """The newest materialisation of ``asset`` not yet seen by this sensor (the cursor holds the last seen)."""
    records = context.instance.fetch_materializations(dg.AssetKey(asset), limit=1).records
    if not records or (context.cursor and records[0].storage_id <= int(context.cursor)):
        return None
    return records[0]


def _retrain_already_requested(context: dg.SensorEvaluationContext, source_run: str) -> dg.DagsterRun | None:
    """A retrain launched for the same monitoring run by the other report's sensor, if any."""
    runs = context.instance.get_runs(dg.RunsFilter(job_name="retrain_job", tags={SOURCE_RUN_TAG: source_run}),
                                     limit=1)
    return runs[0] if runs else None


def _ingested_since(context: dg.SensorEvaluationContext, brief: Brief, key: str, modified: float) -> bool:
    """Every monthly source's partition ``key`` was materialised after ``modified`` (epoch seconds)."""
    for name in partitioned_sources(brief):
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset_names.raw(name)),
                                  asset_partitions=[key]), limit=1).records
        if not records or records[0].timestamp < modified:
            return False
    return True


def _drift_skip(brief: Brief) -> dg.SkipReason | None:
    """Drift and concept-drift triggers cannot fire where drift over time is not measured: say why."""
    reason = drift_not_measured(brief)
    return dg.SkipReason(f"drift over time is not measured for this brief: {reason}") if reason else None


def _fitted_on_these_rows(platform: PlatformResource, tracking: TrackingResource,
                          state: RolloutState | None) -> str | None:
    """The serving version, when a retrain now would fit the very rows it was fitted on (the split's training and
    validation parts, :func:`~mlplatform.core.retraining.fit_rows_version`); None when the rows differ or either
    side is unknown (no champion, a version registered without the tag, no training set)."""
    if state is None or state.champion is None or not platform.workspace.table(tables.TRAINING_SET).exists():
        return None
    try:
        split = load_split(platform)
    except ValueError:  # no split can be made (e.g. no labelled row): the retrain says why
        return None
    return state.champion if fitted_on(tracking.uri, tracking.model_name, state.champion, split) else None


def _report_sensor(context: dg.SensorEvaluationContext, platform: PlatformResource, tracking: TrackingResource,
                   report: str, kind: str, decide) -> dg.SkipReason | dg.RunRequest:
    """Read the newest ``report`` once: ``decide()`` gives the trigger (or why not); one retrain per report run.

    While a canary runs, the report waits (the cursor stays): a retrain would replace the challenger before the
    A/B analysis judged it. A trigger does not retrain when the serving version was fitted on the rows a retrain
    would fit (no newer labelled month yet, or a fixed-date split): it would fit the same model again. Launch
    ``retrain_job`` by hand to retrain anyway (e.g. after changing the brief's candidates)."""
    record = _latest_record(context, report)
    if record is None:
        return dg.SkipReason(f"no new {report.replace('_', ' ')}")
    try:
        state = rollout_state(tracking.uri, tracking.model_name)
    except LookupError:  # nothing registered yet: no canary either
        state = None
    if state is not None and state.canary_running:
        return dg.SkipReason(f"{report} {record.storage_id} waits: version {state.challenger} serves a "
                             f"{state.challenger_share:.0%} canary until the A/B analysis decides")
    context.update_cursor(str(record.storage_id))
    trigger, calm = decide()
    if trigger is None:
        return dg.SkipReason(f"{report} {record.storage_id}: {calm}")
    if version := _fitted_on_these_rows(platform, tracking, state):
        return dg.SkipReason(f"{trigger.reason}; not retrained: version {version} serves and was fitted on the rows "
                             "a retrain would fit now (the split's training and validation parts); retraining "
                             "resumes once new labelled rows reach them (a fixed-date split's windows take none: "
                             "split.rolling moves them)")
    source_run = record.run_id or None
    if source_run and (earlier := _retrain_already_requested(context, source_run)):
        return dg.SkipReason(f"{trigger.reason}; retrain run {earlier.run_id} "
                             f"({earlier.tags.get(TRIGGER_TAG)}) already answers monitoring run {source_run}")
    return _retrain_request(trigger, run_key=f"{kind}:{record.storage_id}", source_run=source_run,
                            asset_selection=_after_monitoring(context) if source_run else None)


def build(brief: Brief) -> list:
    ingested = [asset_names.raw(name) for name in partitioned_sources(brief)]
    batches = [*ingested, asset_names.BATCH_PROFILES] if ingested else []
    # The sources that are re-read whole (labels, entities): every monitoring run and retrain reads them afresh.
    whole = dg.AssetSelection.assets(*(asset_names.raw(name) for name in brief.sources
                                       if name not in partitioned_sources(brief)))
    interval = brief.monitoring.sensor_interval_s
    namespace = {NAMESPACE_TAG: brief.name}
    # The loop's runs execute their steps in the run's own process: a step process of its own would import the
    # platform (Dagster, polars, MLflow, LightGBM) again for each of dozens of short steps.
    ingest_job = dg.define_asset_job(
        "ingest_job", selection=dg.AssetSelection.assets(*batches), tags=namespace,
        executor_def=dg.in_process_executor,
        description="Ingest one monthly batch of the time-partitioned sources and profile it.")
    full_run = dg.define_asset_job(
        "full_run", selection=dg.AssetSelection.all() - dg.AssetSelection.assets(*batches), tags=namespace,
        description="Everything after the monthly batches: validation to model card and monitoring.")
    retrain_job = dg.define_asset_job(
        "retrain_job", selection=dg.AssetSelection.groups(*RETRAIN_GROUPS) | whole, tags=namespace,
        executor_def=dg.in_process_executor,
        description="Re-read the whole sources, re-validate the data, rebuild features, retrain on the latest "
                    "months (the production model's "
                    "hyperparameters unless monitoring.retrain_tuning), evaluate, gate promotion against the "
                    "production model (golden set included), then start a canary or promote.")
    monitor_job = dg.define_asset_job(
        "monitor_job", tags=namespace, executor_def=dg.in_process_executor,
        selection=(dg.AssetSelection.groups(*MONITOR_GROUPS) | dg.AssetSelection.assets(asset_names.TRAINING_SET)
                   | whole)
        - dg.AssetSelection.assets(*batches),
        description="After a batch: the whole sources (labels, entities) re-read, validation, features, the online "
                    "store and the training set refreshed, then "
                    "profiles, feature drift and the champion's performance on newly labelled data.")

    @dg.sensor(job=ingest_job, minimum_interval_seconds=interval, default_status=dg.DefaultSensorStatus.STOPPED,
               description="Ingests a monthly batch when its files appear or change.")
    def new_data_sensor(context: dg.SensorEvaluationContext, platform: PlatformResource):
        """Ingests a monthly batch when its files appear or change (name, size and modification time); a batch
        whose partitions were all materialised after its files last changed counts as ingested already."""
        if not partitioned_sources(platform.brief):
            return dg.SkipReason("no source of this brief arrives in monthly batches (sources.*.batches)")
        seen = json.loads(context.cursor) if context.cursor else {}
        newest_file: dict[str, float] = {}
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
                    newest_file[key] = max(newest_file.get(key, 0.0), *(f.stat().st_mtime for f in batch))
        changed = [key for key, signature in current.items() if seen.get(key) != signature
                   and not (key not in seen and _ingested_since(context, platform.brief, key, newest_file[key]))]
        context.update_cursor(json.dumps(current))
        if not changed:
            return dg.SkipReason("no new or changed batch files")
        return [dg.RunRequest(run_key=f"{key}:{current[key]}", partition_key=key,
                              tags={TRIGGER_TAG: "new_data", REASON_TAG: f"batch {key} arrived or changed",
                                    BATCH_TAG: key})
                for key in changed]

    @dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[ingest_job],
                          request_jobs=[monitor_job, retrain_job], minimum_interval_seconds=interval,
                          default_status=dg.DefaultSensorStatus.STOPPED,
                          description="Refreshes features and monitoring for each newly ingested batch; retrains "
                                      "after it too when monitoring.retrain_on_new_data asks.")
    def monitor_new_batch(context: dg.RunStatusSensorContext):
        """Refreshes features and monitoring (drift, performance, prediction profiles) once a batch is ingested.
        New data alone retrains only when the brief sets monitoring.retrain_on_new_data (drift and decay decide
        otherwise); one sensor for both, since every sensor costs a tick of the daemon every interval."""
        partition = context.dagster_run.tags.get("dagster/partition", "?")
        monitor = dg.RunRequest(run_key=f"monitor:{context.dagster_run.run_id}", job_name=monitor_job.name,
                                tags={TRIGGER_TAG: "new_data", REASON_TAG: f"batch {partition} ingested",
                                      BATCH_TAG: partition})
        if not brief.monitoring.retrain_on_new_data:
            return monitor
        return [monitor, _retrain_request(Trigger("new_data", f"batch {partition} ingested"),
                                          run_key=f"new_data:{context.dagster_run.run_id}",
                                          job_name=retrain_job.name)]

    @dg.sensor(job=retrain_job, minimum_interval_seconds=interval, default_status=dg.DefaultSensorStatus.STOPPED,
               description="Retrains when a top feature's PSI in a new drift report passes the retrain threshold.")
    def drift_sensor(context: dg.SensorEvaluationContext, platform: PlatformResource, tracking: TrackingResource):
        """Retrains when a new drift report shows PSI above the brief's retrain threshold on a top feature."""
        if skip := _drift_skip(platform.brief):
            return skip
        b = platform.brief

        def decide() -> tuple[Trigger | None, str]:
            importance = champion_importance(platform, tracking.uri)  # the serving model's, any family
            trigger = drift_trigger(platform.read_table(tables.DRIFT), importance,
                                    top_n=b.monitoring.top_features, threshold=b.monitoring.retrain_psi)
            return trigger, f"no top-{b.monitoring.top_features} feature above PSI {b.monitoring.retrain_psi}"

        return _report_sensor(context, platform, tracking, asset_names.DRIFT_REPORT, "drift", decide)

    @dg.sensor(job=retrain_job, minimum_interval_seconds=interval, default_status=dg.DefaultSensorStatus.STOPPED,
               description="Retrains when a new performance report shows critical concept drift.")
    def performance_sensor(context: dg.SensorEvaluationContext, platform: PlatformResource,
                           tracking: TrackingResource):
        """Retrains when a new performance report shows critical concept drift."""
        if skip := _drift_skip(platform.brief):
            return skip

        def decide() -> tuple[Trigger | None, str]:
            row = platform.read_table(tables.PERFORMANCE).row(0, named=True)
            drop = row.get("relative_drop")
            return performance_trigger(row), ("awaiting labels for the monitored period"
                                               if row["severity"] == AWAITING_LABELS else "no critical drop"
                                               if drop is None else f"no critical drop ({drop:.1%} of {row['metric']})")

        return _report_sensor(context, platform, tracking, asset_names.PERFORMANCE_REPORT, "performance", decide)

    scheduled_retrain = dg.ScheduleDefinition(
        name="scheduled_retrain", cron_schedule=brief.monitoring.retrain_cron, job=retrain_job,
        tags={TRIGGER_TAG: "scheduled", REASON_TAG: f"schedule {brief.monitoring.retrain_cron}"},
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Retrains on the calendar (monitoring.retrain_cron: {brief.monitoring.retrain_cron}, UTC) "
                    "whatever the monitoring says.")

    @dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[retrain_job],
                          minimum_interval_seconds=interval, default_status=dg.DefaultSensorStatus.STOPPED,
                          description="Logs each finished retraining run with its trigger and the promotion decision.")
    def notify_retrain_success(context: dg.RunStatusSensorContext, platform: PlatformResource):
        """Logs each finished retraining run with its trigger and the promotion decision."""
        _notify(platform, context.dagster_run, "succeeded")

    @dg.run_failure_sensor(monitored_jobs=[retrain_job], minimum_interval_seconds=interval,
                           default_status=dg.DefaultSensorStatus.STOPPED,
                           description="Tells the team when a retraining run fails, with the reason.")
    def notify_retrain_failure(context: dg.RunFailureSensorContext, platform: PlatformResource):
        """Tells the team when a retraining run fails (a refused gate included), with the reason."""
        _notify(platform, context.dagster_run, "failed", context.failure_event.message)

    return [ingest_job, full_run, retrain_job, monitor_job, new_data_sensor, monitor_new_batch,
            drift_sensor, performance_sensor, scheduled_retrain, notify_retrain_success, notify_retrain_failure]


def _notify(platform: PlatformResource, run: dg.DagsterRun, status: str, message: str | None = None) -> dict:
    decision = None
    promotion = platform.workspace.table(tables.PROMOTION)
    if promotion.exists():
        row = pl.read_parquet(promotion).row(0, named=True)
        decision = {"challenger_version": row["challenger_version"], "promoted": row["promote"]}
        decision["rollout"] = _rollout_of(platform, row["challenger_version"]) if row["promote"] else None
        if not row["promote"]:
            decision["reasons"] = row["reasons"]
    event = {"event": "retrain", "run_id": run.run_id, "job": run.job_name, "status": status,
             "trigger": run.tags.get(TRIGGER_TAG, "manual"), "reason": run.tags.get(REASON_TAG, ""),
             "promotion": decision, "message": message}
    return notify(platform.workspace.root / "notifications.jsonl", event, platform.brief.monitoring.webhook_url)


def _rollout_of(platform: PlatformResource, version: str) -> str | None:
    """What champion_model did with ``version`` after the gate passed: "promoted", or "canary at 5%"."""
    path = platform.workspace.table(tables.ROLLOUT)
    rows = pl.read_parquet(path).filter(pl.col("challenger_version") == version) if path.exists() else None
    if rows is None or rows.height == 0:
        return None  # champion_model did not run (e.g. the run failed after the gate)
    row = rows.row(0, named=True)
    return "promoted" if row["action"] == "promoted" else f"canary at {row['challenger_share']:.0%}"
