"""The single code location: every stage of the method as one lineage graph.

:func:`build_definitions` builds the graph of one :class:`~mlplatform.settings.Settings`; the CLI and the runner
call it with theirs. Dagster's tools (`dagster dev -m mlplatform.definitions`, workspace.yaml, the daemon, each
run's process) load :func:`defs`, which builds it from the settings of the process's environment when a tool asks,
never at import: importing this module builds nothing and reads no environment variable.
"""

import dagster as dg

from mlplatform.brief import load_brief
from mlplatform.profiles import production_resources
from mlplatform.resources.gates import blocking_gate_edges
from mlplatform.resources.platform import FeatureStoreResource, PlatformResource, TrackingResource
from mlplatform.settings import Settings
from mlplatform.stages import build_stages, stage_modules

# The stage modules in the order the method runs them; the list itself lives in mlplatform.stages.
STAGES = stage_modules()
# The asset groups in the order the method runs them; a stage module may add assets or checks to any group.
GROUPS = ["problem", "ingestion", "quality", "features", "feature_store", "training", "evaluation", "registry",
          "serving", "monitoring", "reporting", "rag"]


def resources_for(settings: Settings, blocking_gates: list[list[str]] | None = None) -> dict:
    platform = PlatformResource.from_settings(settings, blocking_gates)
    if settings.profile == "production":  # the same assets; state in PostgreSQL and Redis (mlplatform.profiles)
        return {"platform": platform, **production_resources(platform)}
    return {
        "platform": platform,
        "feast_store": FeatureStoreResource(platform=platform),
        "tracking": TrackingResource(platform=platform),
    }


def build_definitions(settings: Settings) -> dg.Definitions:
    brief = load_brief(settings.brief_path)
    items = build_stages(brief)

    def of(*kinds) -> list:
        return [i for i in items if isinstance(i, kinds)]

    checks = of(dg.AssetChecksDefinition)
    assets = [i for i in of(dg.AssetsDefinition) if i not in checks]
    sensors, schedules = of(dg.SensorDefinition), of(dg.ScheduleDefinition)
    jobs = [i for i in items if i not in [*assets, *checks, *sensors, *schedules]]
    # Local runs share one SQLite-backed instance on two cores: in-process avoids ~3 s of start-up per step
    # and SQLite write contention. The production profile runs steps in parallel processes.
    executor = dg.in_process_executor if settings.profile == "local" else dg.multiprocess_executor
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs,
        sensors=sensors,
        schedules=schedules,
        # Gates hold across runs: a run refuses a child of a blocking gate whose latest evaluation failed.
        resources=resources_for(settings, blocking_gate_edges(assets, checks)),
        executor=executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The code location as Dagster's tools load it: the definitions of this process's environment
    (:meth:`Settings.from_env`, the documented interface of the code location: ``MLPLATFORM_DATA_DIR``,
    ``MLPLATFORM_BRIEF``, ``MLPLATFORM_PROFILE`` …)."""
    return build_definitions(Settings.from_env())
