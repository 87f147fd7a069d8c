"""The production model's feature importance, whatever its family: what drift triggers rank features by.

The evaluation records the challenger's importance (LightGBM's gain, or permutation importance on validation
rows for a model without its own) in ``evaluation/feature_importance``, one partition per training run;
:func:`champion_importance` finds the champion's through its registered version's run.
"""

import logging
from pathlib import Path
from typing import Any

import polars as pl

from mlplatform.core import tables
from mlplatform.core.importance import importance_table, own_importance, permutation_importance
from mlplatform.resources.platform import PlatformResource

log = logging.getLogger(__name__)


def _partition(platform: PlatformResource, run_id: str) -> Path:
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
    from mlplatform.core.tracking import client_for, get_alias_version
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
        path = _partition(platform, run_id)
        return _as_dict(read_parquet_verified(path)) if path.exists() else {}
    champion_run = client_for(uri).get_model_version(name, version).run_id
    if champion_run is None:
        raise LookupError(f"{name} version {version} names no training run, so its importance cannot be found")
    run_id = champion_run
    path = _partition(platform, run_id)
    if path.exists():
        return _as_dict(read_parquet_verified(path))
    log.info("no recorded importance for champion version %s (run %s): computing it", version, run_id)
    from mlplatform.defs.training import load_split

    scorer, download = load_version(b, platform.workspace, version, uri)
    try:
        frame = record_importance(platform, scorer.predictor.name, scorer.predictor, load_split(platform).validation,
                                  run_id=run_id)
    finally:
        import shutil

        shutil.rmtree(download, ignore_errors=True)
    return _as_dict(frame)
