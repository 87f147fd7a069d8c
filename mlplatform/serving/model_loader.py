"""What answers a prediction: the registry's champion, or the brief's rules when there is none."""

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from mlplatform.brief import Brief, TaskType
from mlplatform.core.models import load_candidate
from mlplatform.core.tracking import download_model_version, get_alias_version
from mlplatform.core.training import Predictor, rules_baseline
from mlplatform.settings import Workspace

log = logging.getLogger(__name__)
CHAMPION = "champion"


@dataclass(frozen=True)
class Scorer:
    """A predictor with the labels a response carries; immutable, so swapping one in is a single assignment."""

    predictor: Predictor
    task: TaskType
    model_name: str
    model_version: str | None
    threshold: float
    fallback: bool

    def predict(self, frame: pl.DataFrame) -> list[tuple[int | float, float | None]]:
        """``(prediction, probability)`` per row: the class at the threshold (binary), the top class
        (multiclass) or the value (regression, no probability)."""
        scores = np.asarray(self.predictor.predict_score(frame))
        if self.task == "binary":
            return [(int(p >= self.threshold), float(p)) for p in scores]
        if self.task == "multiclass":
            return [(int(row.argmax()), float(row.max())) for row in scores]
        return [(float(value), None) for value in scores]


def model_name(brief: Brief) -> str:
    """The registered model of the brief (the registry stage registers under this name)."""
    return f"{brief.name}_model"


def rules_fallback(brief: Brief) -> Scorer:
    """The brief's rules heuristic; for binary tasks a rule's score of 0.5 or more predicts the positive class."""
    return Scorer(rules_baseline(brief.rules_baseline), brief.task_type, "rules", None, 0.5, fallback=True)


def load_champion(brief: Brief, workspace: Workspace) -> tuple[Scorer, Path]:
    """Download and load the version the ``champion`` alias points at.

    The files go to a fresh folder under the brief's models directory (the caller removes it on shutdown),
    so two serving processes never overwrite each other's download.

    Returns:
        The scorer and the folder holding the download.

    Raises:
        LookupError: the registry has no champion.
        Exception: whatever MLflow or the model files raise; the caller falls back to the rules.
    """
    name = model_name(brief)
    version = get_alias_version(workspace.mlflow_uri, name, CHAMPION)
    if version is None:
        raise LookupError(f"the registry at {workspace.mlflow_uri} has no '{CHAMPION}' alias on {name}; "
                          "run the graph so a model passes the promotion gate")
    workspace.models_dir.mkdir(parents=True, exist_ok=True)
    download = Path(tempfile.mkdtemp(prefix=f"serving_v{version}_", dir=workspace.models_dir))
    try:
        # LightGBM text or torch safetensors: load_candidate never unpickles.
        model = load_candidate(download_model_version(workspace.mlflow_uri, name, version, download))
    except BaseException:
        shutil.rmtree(download, ignore_errors=True)
        raise
    log.info("loaded %s version %s (%s)", name, version, model.name)
    return Scorer(model, model.task, name, version, model.threshold, fallback=False), download

