"""The code location as data: its assets, checks, jobs, sensors and schedules for a brief, which sensors and
schedules run which assets, their running / stopped state and the failing checks in a Dagster instance.

Read by the stages that report on the whole graph (the cost report and the ML-system score in
:mod:`mlplatform.defs.governance`, the model card's retraining section in :mod:`mlplatform.defs.reporting`), so
that no stage imports another.
"""

import dagster as dg

from mlplatform import asset_names
from mlplatform.brief import Brief
from mlplatform.core.system_score import RUNNING, STOPPED
from mlplatform.stages import build_stages


def code_location(brief: Brief) -> list:
    """Every asset, check, job, sensor and schedule the code location defines for ``brief``."""
    return build_stages(brief)


def asset_definitions(items: list) -> list[dg.AssetsDefinition]:
    return [i for i in items if isinstance(i, dg.AssetsDefinition) and not isinstance(i, dg.AssetChecksDefinition)]


# The asset that applies the automatic rollback (defs.rollout): a sensor or schedule whose job runs it automates it.
ROLLBACK_ASSET = dg.AssetKey(asset_names.SERVING_ROLLOUT)


def automation_for(items: list, wanted: set[dg.AssetKey]) -> tuple[str, ...]:
    """Sensors and schedules whose job's selection holds any of the ``wanted`` assets."""
    assets = asset_definitions(items)
    triggers = []
    for item in items:
        targets = (item.targets if isinstance(item, dg.SensorDefinition)
                   else [item.target] if isinstance(item, dg.ScheduleDefinition) else [])
        selections = [getattr(t.job_def, "selection", None) for t in targets]
        if any(s is not None and s.resolve(assets) & wanted for s in selections):
            triggers.append(item.name)
    return tuple(triggers)


def retrain_triggers(items: list) -> tuple[str, ...]:
    """Sensors and schedules whose job retrains: its selection holds an asset of the training stage."""
    training = {k for a in asset_definitions(items) for k, group in a.group_names_by_key.items() if group == "training"}
    return automation_for(items, training)


def rollback_automation(items: list) -> tuple[str, ...]:
    """Sensors and schedules whose job runs the automatic rollback."""
    return automation_for(items, {ROLLBACK_ASSET})


def automation_states(instance: dg.DagsterInstance, items: list) -> dict[str, str]:
    """Sensor or schedule name → running / stopped: the state a person set in the instance, else its default in
    code (what the daemon would do)."""
    from dagster._core.scheduler.instigation import InstigatorStatus

    stored = {state.name: state.status for state in instance.all_instigator_state()}
    states = {}
    for item in items:
        if not isinstance(item, dg.SensorDefinition | dg.ScheduleDefinition):
            continue
        status = stored.get(item.name, InstigatorStatus.DECLARED_IN_CODE)
        if status in (InstigatorStatus.DECLARED_IN_CODE, InstigatorStatus.AUTOMATICALLY_RUNNING):
            running = item.default_status.value == "RUNNING"
        else:
            running = status == InstigatorStatus.RUNNING
        states[item.name] = RUNNING if running else STOPPED
    return states


def failing_checks(instance: dg.DagsterInstance, items: list, group: str) -> tuple[str, ...]:
    """Checks on the ``group`` stage's assets whose latest evaluation in the instance failed."""
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    groups = {key: g for a in asset_definitions(items) for key, g in a.group_names_by_key.items()}
    keys = [key for item in items if isinstance(item, dg.AssetsDefinition) for key in item.check_keys
            if groups.get(key.asset_key) == group]
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    return tuple(sorted(key.name for key, record in latest.items()
                        if record.status == AssetCheckExecutionRecordStatus.FAILED))
