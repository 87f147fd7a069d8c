"""What the ML-system score reads from the Definitions and the Dagster instance: which sensors automate the
rollback and retraining (from their jobs' selections, not their names), whether they run, and which monitoring
checks fail at their latest evaluation."""

import dagster as dg
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteInstigatorOrigin, RemoteRepositoryOrigin
from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus, InstigatorType
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from mlplatform import code_location
from mlplatform.brief import DEMO_BRIEF, load_brief


@dg.asset(group_name="monitoring")
def drift_report() -> None:
    """Stands in for the monitoring stage's report."""


@dg.asset_check(asset=drift_report)
def feature_drift() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False)


@dg.asset_check(asset=drift_report)
def stable_check() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@dg.asset(group_name="serving")
def serving_rollout() -> None:
    """Stands in for the asset that applies the automatic rollback."""


guard_job = dg.define_asset_job("guard_job", selection=[serving_rollout])


@dg.sensor(job=guard_job, default_status=dg.DefaultSensorStatus.STOPPED)
def guard(context):
    """A sensor named without 'rollback' whose job runs the rollback."""


@dg.sensor(job=guard_job, default_status=dg.DefaultSensorStatus.RUNNING)
def watcher(context):
    """Runs by default in code."""


ITEMS = [drift_report, feature_drift, stable_check, serving_rollout, guard_job, guard, watcher]


def _stored_state(name: str, status: InstigatorStatus) -> InstigatorState:
    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=__file__), location_name="test")
    origin = RemoteInstigatorOrigin(RemoteRepositoryOrigin(location, "__repository__"), name)
    return InstigatorState(origin, InstigatorType.SENSOR, status)


def test_the_rollback_is_found_by_what_the_sensor_runs_on_the_real_code_location():
    items = code_location.code_location(load_brief(DEMO_BRIEF))
    assert "serving_guard_sensor" in code_location.rollback_automation(items)  # no "rollback" in its name
    assert code_location.rollback_automation(ITEMS) == ("guard", "watcher")


def test_states_come_from_the_instance_else_from_the_default_in_code():
    with dg.instance_for_test() as instance:
        assert code_location.automation_states(instance, ITEMS) == {"guard": "stopped", "watcher": "running"}
        instance.add_instigator_state(_stored_state("guard", InstigatorStatus.RUNNING))
        instance.add_instigator_state(_stored_state("watcher", InstigatorStatus.STOPPED))
        assert code_location.automation_states(instance, ITEMS) == {"guard": "running", "watcher": "stopped"}


def test_failing_checks_are_the_latest_failed_evaluations_of_the_stage():
    with dg.instance_for_test() as instance:
        assert code_location.failing_checks(instance, ITEMS, "monitoring") == ()  # never evaluated: none failed
        assert dg.materialize([drift_report, feature_drift, stable_check], instance=instance).success
        assert code_location.failing_checks(instance, ITEMS, "monitoring") == ("feature_drift",)
        assert code_location.failing_checks(instance, ITEMS, "serving") == ()
