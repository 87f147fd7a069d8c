"""Materialise the whole graph from the command line, stage by stage, with progress and gate reporting."""

import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from mlplatform.brief import load_brief
from mlplatform.core.run_lock import Holder, namespace_lock
from mlplatform.definitions import GROUPS, build_definitions
from mlplatform.resources.runs import PID_TAG, fail_dead_runs, process_tags
from mlplatform.settings import Settings, Workspace

# Dagster's run tags naming the partition, or the range of partitions, a run materialises.
PARTITION_NAME_TAG = "dagster/partition"
ASSET_PARTITION_RANGE_START_TAG, ASSET_PARTITION_RANGE_END_TAG = (
    "dagster/asset_partition_range_start", "dagster/asset_partition_range_end")

# The platform's own exceptions: their messages are written for the user and name the fix.
_USER_ERRORS = {"BriefError", "InputError", "SchemaError"}


@dataclass
class RunOutcome:
    """What a run did: stages completed, and the gate that stopped it, if any."""

    stages: list[tuple[str, float]] = field(default_factory=list)
    stopped_by: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.stopped_by is None


def instance_for(settings: Settings) -> dg.DagsterInstance:
    """A persistent instance under the data directory, so `dagster dev` shows the runs the CLI made; in the
    production profile, the instance DAGSTER_HOME configures (PostgreSQL, see deploy/dagster.yaml)."""
    if settings.profile == "production":
        return dg.DagsterInstance.get()
    home = settings.data_dir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    _write_instance_config(home / "dagster.yaml")
    # Opened from the folder, not through DAGSTER_HOME: setting that variable would send every later run in
    # this process to the first data directory's instance.
    return dg.DagsterInstance.from_config(str(home))


# The local instance's settings: the platform never reports usage anywhere; the daemon (`dagster dev`) marks runs
# it launched that never started, or ran past two hours, as failed (the CLI checks its own runs' processes).
# Runs the daemon launches queue per brief namespace (each job carries its namespace tag, defs.automation), so two
# retrains, or a retrain and a monitoring run, never overlap on one data directory.
INSTANCE_CONFIG = {"telemetry": {"enabled": False},
                   "run_monitoring": {"enabled": True, "start_timeout_seconds": 180, "max_runtime_seconds": 7200},
                   "concurrency": {"runs": {"tag_concurrency_limits": [
                       {"key": "mlplatform/namespace", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]}}}


def _write_instance_config(config: Path) -> None:
    """Write the local instance's dagster.yaml, or add the settings it lacks to an existing one (kept otherwise)."""
    import yaml

    current = (yaml.safe_load(config.read_text()) or {}) if config.exists() else {}
    missing = {key: value for key, value in INSTANCE_CONFIG.items() if key not in current}
    if missing:
        config.write_text(yaml.safe_dump({**current, **missing}, sort_keys=False))


def namespace_of(settings: Settings) -> Path:
    """The brief's folder under the data directory: what one run at a time may write (see core.run_lock)."""
    return Workspace(settings.data_dir, load_brief(settings.brief_path).name).root


def report_dead_runs(instance: dg.DagsterInstance, progress: Callable[[str], None] = print) -> list[dg.DagsterRun]:
    """Mark runs whose process died (e.g. killed with SIGKILL) as failed, and say which."""
    marked = fail_dead_runs(instance)
    for run in marked:
        progress(f"! marked run {run.run_id} ({run.job_name}, pid {run.tags.get(PID_TAG)}) as failed: its process "
                 "is gone")
    return marked


def _stopped_by(result: dg.ExecuteInProcessResult, gates: set[dg.AssetCheckKey]) -> tuple[str, str] | None:
    """The blocking gate that failed, or the step that raised, with the reason in the user's terms."""
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.asset_check_key in gates and not evaluation.passed:
            return f"gate {evaluation.check_name}", evaluation.description or "failed"
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        if error is None:  # a failure recorded without an exception has no further reason to give
            return f"step {event.step_key}", "failed"
        while error.cause is not None:  # the user's exception sits under Dagster's wrappers
            error = error.cause
        cls_name = error.cls_name or ""
        if "DagsterAssetCheckFailedError" in cls_name:
            continue
        message = error.message.strip()
        if cls_name in _USER_ERRORS:  # written for the user: the exception's module path is noise
            message = message.split(f"{cls_name}: ", 1)[-1]
        return f"step {event.step_key}", message
    if not result.success:  # failed before any step ran, e.g. a resource (the run lock) refused to start
        failure = result.get_run_failure_event().job_failure_data
        error = failure.error if failure else None
        while error is not None and error.cause is not None:
            error = error.cause
        return "run start", error.message.strip() if error else "failed"
    return None


def _assets_and_checks(defs: dg.Definitions) -> list[dg.AssetsDefinition]:
    """Every asset and check of ``defs``; :func:`build_definitions` makes each one an AssetsDefinition."""
    items = [*(defs.assets or []), *(defs.asset_checks or [])]
    typed = [item for item in items if isinstance(item, dg.AssetsDefinition)]
    assert len(typed) == len(items), "build_definitions passes AssetsDefinition objects only"
    return typed


# The named jobs the CLI's runs belong to, so the UI's Jobs and Runs pages list them with their history: the monthly
# batches through ``ingest_job``, everything else through ``full_run`` (see defs.automation).
RUN_JOBS = ("full_run", "ingest_job")


def job_for(defs: dg.Definitions, keys: AbstractSet[dg.AssetKey]) -> dg.JobDefinition | None:
    """The first of :data:`RUN_JOBS` whose selection holds every asset in ``keys``; None when none does (a brief
    whose graph has no such job), and the run falls back to an unnamed one."""
    names = {job.name for job in defs.jobs or []}
    for name in RUN_JOBS:
        if name in names:
            job = defs.resolve_job_def(name)
            if keys <= set(job.asset_layer.selected_asset_keys):
                return job
    return None


def _stage_runs(graph, keys: list[dg.AssetKey]) -> list[tuple[dg.AssetSelection, dict[str, str]]]:
    """The runs (selection, partition tags) that materialise one stage's assets with their checks, each after what
    it depends on in the stage: every unpartitioned asset whose upstream is done joins one run; then each partition
    of each partitioned asset whose upstream is done is a run of its own, or, for an asset whose backfill policy is
    a single run, all its partitions are one run; repeat."""
    runs: list[tuple[dg.AssetSelection, dict[str, str]]] = []
    pending = list(keys)
    while pending:
        # A step that writes several assets (the evaluation report and its tables) runs whole: the keys of one
        # step wait only for what is outside it, and join a run together.
        ready = [k for k in pending
                 if not (graph.get(k).parent_keys & set(pending)) - graph.get(k).execution_set_asset_keys]
        ready = [k for k in ready if graph.get(k).execution_set_asset_keys & set(pending) <= set(ready)]
        plain = [k for k in ready if graph.get(k).partitions_def is None]
        if plain:
            runs.append((dg.AssetSelection.assets(*plain) | dg.AssetSelection.checks_for_assets(*plain), {}))
        for key in ready:
            node = graph.get(key)
            if node.partitions_def is None:
                continue
            selection = dg.AssetSelection.assets(key) | dg.AssetSelection.checks_for_assets(key)
            partitions = node.partitions_def.get_partition_keys()
            if node.backfill_policy == dg.BackfillPolicy.single_run():
                runs.append((selection, {ASSET_PARTITION_RANGE_START_TAG: partitions[0],
                                         ASSET_PARTITION_RANGE_END_TAG: partitions[-1]}))
            else:
                runs += [(selection, {PARTITION_NAME_TAG: partition}) for partition in partitions]
        pending = [k for k in pending if k not in ready]
    return runs


def run_graph(settings: Settings, instance: dg.DagsterInstance | None = None,
              progress: Callable[[str], None] = print, until: str | None = None, wait_s: float = 0.0) -> RunOutcome:
    """Materialise every asset of the brief in stage order (within a stage in dependency order, each partition
    of a partitioned asset in a run of its own, see :func:`_stage_runs`);
    stop at the first blocking gate that fails or the first step that raises, or after the stage ``until``
    (a group name such as ``quality``).

    The brief's namespace is locked for the whole graph: another run of it on this data directory is waited for
    up to ``wait_s`` seconds. Runs whose process died are marked failed first.

    Raises:
        NamespaceLockedError: another run of the brief still holds the data directory after ``wait_s``.
    """
    if until is not None and until not in GROUPS:
        raise ValueError(f"until must be one of {', '.join(GROUPS)}, got '{until}'")
    namespace = namespace_of(settings)

    def waiting(holder: Holder | None) -> None:
        progress(f"… waiting up to {wait_s:.0f} s for the run holding {namespace} to finish: "
                 f"{holder.describe() if holder else 'another process (it has not written its details yet)'}")

    with namespace_lock(namespace, wait_s, on_wait=waiting):
        instance = instance or instance_for(settings)
        report_dead_runs(instance, progress)
        return _run_stages(settings, instance, progress, until)


def _run_stages(settings: Settings, instance: dg.DagsterInstance, progress: Callable[[str], None],
                until: str | None) -> RunOutcome:
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    checks = list(defs.asset_checks or [])
    assets_and_checks = _assets_and_checks(defs)
    gates = {spec.key for check in checks for spec in check.check_specs if spec.blocking}
    outcome = RunOutcome()
    # Step events, tracebacks included, stay in the instance (and the UI); the terminal shows progress lines
    # and the one reason a run stopped.
    run_config = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    # Each run names the process executing it, so a run left STARTED by a killed process can be found.
    tags = process_tags()
    for group in GROUPS:
        keys = [k for k in graph.get_all_asset_keys() if graph.get(k).group_name == group]
        if not keys:
            continue
        started = time.perf_counter()
        for selection, partition_tags in _stage_runs(graph, keys):
            selected = selection.resolve(graph)
            job = job_for(defs, selected)
            if job is None:
                result = dg.materialize(assets_and_checks, instance=instance, resources=defs.resources,
                                        raise_on_error=False, run_config=run_config, selection=selection,
                                        tags={**tags, **partition_tags})
            else:  # a subset of the named job: its checks on the selected assets run with them
                result = job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False,
                                                asset_selection=sorted(selected), tags={**tags, **partition_tags})
            stopped = _stopped_by(result, gates)
            if stopped:
                outcome.stopped_by, outcome.reason = stopped
                progress(f"✗ {group}: stopped by {stopped[0]}: {stopped[1]}")
                return outcome
        elapsed = time.perf_counter() - started
        outcome.stages.append((group, elapsed))
        progress(f"✓ {group:<14} {len(keys):>2} assets  {elapsed:6.1f} s")
        if group == until:
            break
    return outcome
