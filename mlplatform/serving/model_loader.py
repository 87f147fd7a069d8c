"""What answers a prediction: a registered model version (the champion, or the challenger of an A/B test), or
the brief's rules when there is none."""

import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from mlplatform.brief import Brief, TaskType
from mlplatform.core.calibration import Calibrator, load_calibrator
from mlplatform.core.model_families import registered_model_name
from mlplatform.core.model_integrity import verified_download
from mlplatform.core.models import load_candidate
from mlplatform.core.tracking import get_alias_version
from mlplatform.core.training import Predictor, rules_baseline
from mlplatform.serving.row_scoring import row_scorer
from mlplatform.serving.schemas import feature_frame, feature_types
from mlplatform.settings import Workspace

log = logging.getLogger(__name__)
CHAMPION = "champion"


@dataclass(frozen=True)
class Scorer:
    """A predictor with the labels a response carries; immutable, so swapping one in is a single assignment.

    A binary model's calibrator (saved with it) maps the raw score to the probability reported; the class is
    still decided on the raw score against the threshold. ``score_row`` (see
    :func:`mlplatform.serving.row_scoring.row_scorer`) scores one feature dict without a frame.
    """

    predictor: Predictor
    task: TaskType
    model_name: str
    model_version: str | None
    threshold: float
    fallback: bool
    calibrator: Calibrator | None = None
    score_row: Callable[[dict], np.ndarray] | None = None

    def predict(self, frame: pl.DataFrame) -> list[tuple[int | float, float | None]]:
        """``(prediction, probability)`` per row: the class at the threshold (binary), the top class
        (multiclass) or the value (regression, no probability)."""
        return self._outputs(np.asarray(self.predictor.predict_score(frame)))

    def predict_rows(self, rows: list[dict], types: dict[str, type]) -> list[tuple[int | float, float | None]]:
        """:meth:`predict` of feature dicts (typed by ``types``); one row skips the frame where ``score_row``
        exists."""
        if len(rows) == 1 and self.score_row is not None:
            return self._outputs(self.score_row(rows[0]))
        return self.predict(feature_frame(rows, types))

    def _outputs(self, scores: np.ndarray) -> list[tuple[int | float, float | None]]:
        if self.task == "binary":
            reported = scores if self.calibrator is None else self.calibrator.transform(scores)
            return [(int(p >= self.threshold), float(q)) for p, q in zip(scores, reported, strict=True)]
        if self.task == "multiclass":
            return [(int(row.argmax()), float(row.max())) for row in scores]
        return [(float(value), None) for value in scores]


def model_name(brief: Brief) -> str:
    """The registered model of the brief (the registry stage registers under this name)."""
    return registered_model_name(brief.name)


def rules_fallback(brief: Brief) -> Scorer:
    """The brief's rules heuristic; for binary tasks a rule's score of 0.5 or more predicts the positive class."""
    return Scorer(rules_baseline(brief.rules_baseline), brief.task_type, "rules", None, 0.5, fallback=True)


def load_champion(brief: Brief, workspace: Workspace) -> tuple[Scorer, Path]:
    """Download and load the version the ``champion`` alias points at (see :func:`load_version`).

    Raises:
        LookupError: the registry has no champion.
        Exception: whatever MLflow or the model files raise; the caller falls back to the rules.
    """
    name = model_name(brief)
    version = get_alias_version(workspace.mlflow_uri, name, CHAMPION)
    if version is None:
        raise LookupError(f"the registry at {workspace.mlflow_uri} has no '{CHAMPION}' alias on {name}; "
                          "run the graph so a model passes the promotion gate")
    return load_version(brief, workspace, version)


def load_version(brief: Brief, workspace: Workspace, version: str, tracking_uri: str | None = None,
                 backend: str = "auto") -> tuple[Scorer, Path]:
    """Download, verify and load one registered version of the brief's model, with its calibrator if it has one.

    The files go to a fresh folder under the brief's models directory (the caller removes it when the model is
    no longer served), so two serving processes never overwrite each other's download. Before anything is read,
    every file must match the SHA-256 the registry recorded at registration and be LightGBM text, JSON or
    safetensors (:func:`mlplatform.core.model_integrity.verified_download`).

    ``tracking_uri`` is the registry to read (default: the brief's local MLflow store); ``backend`` how one row is
    scored (``MLPLATFORM_INFERENCE_BACKEND`` in serving, see :func:`mlplatform.serving.row_scoring.row_scorer`).

    Returns:
        The scorer and the folder holding the download.

    Raises:
        UnsafeModelError: the files are not exactly the safe files whose hashes were recorded.
        Exception: whatever MLflow or the model files raise.
    """
    name = model_name(brief)
    workspace.models_dir.mkdir(parents=True, exist_ok=True)
    download = Path(tempfile.mkdtemp(prefix=f"serving_v{version}_", dir=workspace.models_dir))
    try:
        folder = verified_download(tracking_uri or workspace.mlflow_uri, name, version, download)
        # LightGBM text or torch safetensors, and a JSON calibrator: nothing is unpickled.
        model, calibrator = load_candidate(folder), load_calibrator(folder)
        score_row = row_scorer(model, feature_types(brief), backend)
    except BaseException:
        shutil.rmtree(download, ignore_errors=True)
        raise
    log.info("loaded %s version %s (%s%s)", name, version, model.name, ", calibrated" if calibrator else "")
    return Scorer(model, model.task, name, version, model.threshold, False, calibrator, score_row), download
