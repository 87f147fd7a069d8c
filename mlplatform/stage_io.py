"""What more than one stage reads or writes through the platform resource: the training split, the chosen
challenger, the hold-out it is scored on, the production model, and each model's feature importance.

The stage modules under :mod:`mlplatform.defs` import these instead of importing one another; the logic itself is
in :mod:`mlplatform.core` (framework-free functions on plain frames), these only read the lake and the registry.

Feature importance: the evaluation records the challenger's (LightGBM's gain, or permutation importance on
validation rows for a model without its own) in ``evaluation/feature_importance``, one partition per training
run; :func:`champion_importance` finds the champion's through its registered version's run, whatever its family,
and drift triggers rank features by it.
"""

import logging
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from mlplatform.brief import Brief, Features
from mlplatform.core import tables
from mlplatform.core.datasets import split_training_set
from mlplatform.core.holdout import NOTHING_SET_APART, SetApart, quarantined_entities, without_entities
from mlplatform.core.importance import importance_table, own_importance, permutation_importance
from mlplatform.core.models import load_candidate
from mlplatform.core.tracking import download_model_version, get_alias_version
from mlplatform.core.training import SplitFrames
from mlplatform.resources.platform import PlatformResource, TrackingResource

log = logging.getLogger(__name__)


def monthly_partitions(brief: Brief) -> dg.MonthlyPartitionsDefinition:
    """The monthly partitions of the raw batches, the per-batch profiles and the online store."""
    return dg.MonthlyPartitionsDefinition(
        start_date=brief.partition_start.strftime("%Y-%m"), end_date=brief.partition_end.strftime("%Y-%m"), fmt="%Y-%m"
    )


def load_split(platform: PlatformResource) -> SplitFrames:
    """The training set split as the brief says (random, fixed dates, or rolling months anchored at the latest
    known label), with the golden test set set aside: see :func:`mlplatform.core.datasets.split_training_set`."""
    return split_training_set(platform.brief, platform.read_table(tables.TRAINING_SET))


def challenger_name(platform: PlatformResource) -> str:
    """The candidate the evaluation chose (see :func:`mlplatform.core.selection.choose_challenger`)."""
    return platform.read_table(tables.CHALLENGER)["candidate"][0]


def scored_hold_out(platform: PlatformResource, split: SplitFrames) -> tuple[SplitFrames, SetApart]:
    """The split with the hold-out rows of quarantined entities set apart (see :mod:`mlplatform.core.holdout`),
    and what the report says about them."""
    b = platform.brief
    if not isinstance(b.features, Features):  # a plain table: a quarantined row never reaches the training set
        return split, NOTHING_SET_APART
    source = b.features.entities_source
    quarantined = platform.workspace.table(tables.quarantine(source)).exists()
    quarantine = platform.read_table(tables.quarantine(source)) if quarantined else pl.DataFrame()  # checksum-verified
    keys = quarantined_entities(quarantine, platform.read_table(tables.validated(source)), b.entity_key)
    kept, apart = without_entities(split.test, b.entity_key, keys)
    return (SplitFrames(split.train, split.validation, kept),
            SetApart(rows=apart.height, entities=apart[b.entity_key].n_unique(), source=source,
                     positives=int(apart[b.label.column].sum()) if b.task_type == "binary" and apart.height else None))


def load_champion(platform: PlatformResource, tracking: TrackingResource):
    """The production model from the registry as ``(version, model)``, or ``(None, None)`` before the first
    promotion."""
    version = get_alias_version(tracking.uri, tracking.model_name, "champion")
    if version is None:
        return None, None
    model_dir = download_model_version(tracking.uri, tracking.model_name, version,
                                       platform.workspace.models_dir / f"champion_v{version}")
    return version, load_candidate(model_dir)


def _importance_partition(platform: PlatformResource, run_id: str) -> Path:
    return platform.workspace.partition(tables.FEATURE_IMPORTANCE, run_id)


def record_importance(platform: PlatformResource, candidate: str, model: Any, rows: pl.DataFrame,
                      run_id: str | None = None) -> pl.DataFrame:
    """Store ``model``'s importance for its training run (``run_id``, default: the candidate's run): its own, or
    permutation importance of the brief's primary metric on ``rows`` (validation rows, never training ones)."""
    b = platform.brief
    run_id = run_id or str(platform.read_table(tables.candidate(candidate))["run_id"][0])
    importance, method = own_importance(model), "gain"
    if not importance:
        importance = permutation_importance(model, rows, rows[b.label.column].to_numpy(), list(model.features),
                                            task=b.task_type, metric=b.metrics.primary,
                                            threshold=float(getattr(model, "threshold", 0.5)))
        method = "permutation"
    frame = importance_table(importance, method=method, candidate=candidate, run_id=run_id)
    platform.write_partition(tables.FEATURE_IMPORTANCE, run_id, frame)
    return frame


def _as_dict(frame: pl.DataFrame) -> dict[str, float]:
    return dict(zip(frame["feature"].to_list(), frame["importance"].to_list(), strict=True))


def champion_importance(platform: PlatformResource, tracking_uri: str | None = None) -> dict[str, float]:
    """Feature → importance in the model serving production (the ``champion`` alias), any family.

    Read from the importance the evaluation recorded for the champion's training run; a champion registered
    before that was recorded is downloaded (hash-verified) and its own importance used, or permutation
    importance computed on the validation rows and recorded. Before the first promotion: the latest evaluated
    challenger's. Empty when no model has been evaluated yet.
    """
    from mlplatform.core.io import read_parquet_verified
    from mlplatform.core.tracking import client_for
    from mlplatform.serving.model_loader import load_version, model_name

    b = platform.brief
    uri = tracking_uri or platform.workspace.mlflow_uri
    name = model_name(b)
    version = get_alias_version(uri, name, "champion")
    if version is None:
        challenger = platform.workspace.table(tables.CHALLENGER)
        if not challenger.exists():
            return {}
        candidate = str(read_parquet_verified(challenger)["candidate"][0])
        run_id = str(platform.read_table(tables.candidate(candidate))["run_id"][0])
        path = _importance_partition(platform, run_id)
        return _as_dict(read_parquet_verified(path)) if path.exists() else {}
    champion_run = client_for(uri).get_model_version(name, version).run_id
    if champion_run is None:
        raise LookupError(f"{name} version {version} names no training run, so its importance cannot be found")
    run_id = champion_run
    path = _importance_partition(platform, run_id)
    if path.exists():
        return _as_dict(read_parquet_verified(path))
    log.info("no recorded importance for champion version %s (run %s): computing it", version, run_id)
    scorer, download = load_version(b, platform.workspace, version, uri)
    try:
        frame = record_importance(platform, scorer.predictor.name, scorer.predictor, load_split(platform).validation,
                                  run_id=run_id)
    finally:
        shutil.rmtree(download, ignore_errors=True)
    return _as_dict(frame)
