"""The stages of the method in the order they run: one module under :mod:`mlplatform.defs` per stage, each with
``build(brief) -> list`` of its assets, checks, jobs, sensors and schedules.

The code location (:mod:`mlplatform.definitions`) and the stage that reports on the whole graph (the cost report
and the ML-system score in :mod:`mlplatform.defs.governance`) both read the list from here, so neither imports
the other. The modules are imported by name when first asked for; importing this module loads none of them.
"""

import importlib
from types import ModuleType

from mlplatform.brief import AnyBrief, DocumentsBrief

STAGE_MODULES = ("problem", "ingestion", "quality", "features", "feature_store", "training", "leakage", "evaluation",
                 "registry", "rollout", "batch_prediction", "monitoring", "serving_monitor", "reporting", "governance",
                 "automation", "rag_quality", "rag")


def stage_modules() -> list[ModuleType]:
    """The stage modules, in :data:`STAGE_MODULES` order."""
    return [importlib.import_module(f"mlplatform.defs.{name}") for name in STAGE_MODULES]


# The stages of a documents-only brief (kind rag): the problem brief, then question answering; no tables, no model.
DOCUMENTS_STAGE_MODULES = ("problem", "rag_quality", "rag")


def stage_modules_for(brief: AnyBrief) -> list[ModuleType]:
    """The stage modules ``brief`` builds: all of them, or for a documents-only brief the problem and rag stages."""
    names = DOCUMENTS_STAGE_MODULES if isinstance(brief, DocumentsBrief) else STAGE_MODULES
    return [importlib.import_module(f"mlplatform.defs.{name}") for name in names]


def build_stages(brief: AnyBrief) -> list:
    """Every asset, check, job, sensor and schedule the code location defines for ``brief``."""
    return [item for stage in stage_modules_for(brief) for item in stage.build(brief)]
