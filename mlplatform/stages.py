"""The stages of the method in the order they run: one module under :mod:`mlplatform.defs` per stage, each with
``build(brief) -> list`` of its assets, checks, jobs, sensors and schedules.

The code location (:mod:`mlplatform.definitions`) and the stage that reports on the whole graph (the cost report
and the ML-system score in :mod:`mlplatform.defs.governance`) both read the list from here, so neither imports
the other. The modules are imported by name when first asked for; importing this module loads none of them.
"""

import importlib
from types import ModuleType

from mlplatform.brief import Brief

STAGE_MODULES = ("problem", "ingestion", "quality", "features", "feature_store", "training", "leakage", "evaluation",
                 "registry", "rollout", "batch_prediction", "monitoring", "serving_monitor", "reporting", "governance",
                 "automation", "rag_quality", "rag")


def stage_modules() -> list[ModuleType]:
    """The stage modules, in :data:`STAGE_MODULES` order."""
    return [importlib.import_module(f"mlplatform.defs.{name}") for name in STAGE_MODULES]


def build_stages(brief: Brief) -> list:
    """Every asset, check, job, sensor and schedule the code location defines for ``brief``."""
    return [item for stage in stage_modules() for item in stage.build(brief)]
