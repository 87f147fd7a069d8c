"""The model-family registry: every kind of candidate the training stage can fit, and the registered model's name.

A family is one kind of candidate: its candidate name (the MLflow run name, the key the evaluation, the selection
and the registry use), the asset that trains it and the asset it starts from, the artefact folder under the
workspace's ``models`` directory it is saved to and loaded from, the file that marks such a folder, and how a
saved model is written and read (``save`` / ``load``). The training stage generates one candidate asset per
family from this registry (:mod:`mlplatform.defs.training`, where each family's fit is); every other stage
finds a candidate's folder with :func:`model_dir` and loads it with :func:`mlplatform.core.models.load_candidate`.

Importing this module imports nothing heavy: savers and loaders are named as ``module:function`` and imported
when called (torch takes seconds to import), so asset definitions can use the registry at import time.
"""

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplatform import asset_names

if TYPE_CHECKING:
    from mlplatform.brief import Brief


def _function(path: str) -> Callable[..., Any]:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class ModelFamily:
    name: str  # the candidate's name: run name, key of its candidates/<name> table and of the selection
    asset: str  # the asset that trains it
    model_type: str  # what the model card calls it
    artifact: str  # the file that marks a folder holding a saved model of this family
    saver: str  # "module:function(model, directory) -> directory"
    loader: str  # "module:function(directory) -> model"
    starts_from: str = asset_names.TRAINING_SET  # the asset it is trained from (a mitigation: the tuned LightGBM)
    kinds: tuple[str, ...] = ()  # the candidate asset's kinds (the UI's tags)
    mitigation: str | None = None  # the brief's fairness.mitigation entry that adds this candidate
    deep: bool = False  # a deep network: the selection keeps it out below the guide's sample floor

    @property
    def folder(self) -> str:
        """The artefact folder under the workspace's models directory."""
        return self.name

    def directory(self, models_dir: Path) -> Path:
        return models_dir / self.folder

    def save(self, model: Any, directory: Path) -> Path:
        """Write ``model`` to ``directory`` (all or nothing, plain files only); returns the folder."""
        return _function(self.saver)(model, directory)

    def load(self, directory: Path) -> Any:
        """Read a model this family saved (never unpickling anything)."""
        return _function(self.loader)(directory)


_LIGHTGBM_FILE = "model.txt"
LIGHTGBM = ModelFamily("lightgbm", asset_names.LGBM_MODEL, "LightGBM", _LIGHTGBM_FILE,
                       "mlplatform.core.training:save_model", "mlplatform.core.training:load_model",
                       kinds=("lightgbm", "optuna", "mlflow"))
TORCH = ModelFamily("torch", asset_names.TORCH_MODEL, "torch MLP with categorical embeddings", "model.safetensors",
                    "mlplatform.core.torch_model:save_torch_model", "mlplatform.core.torch_model:load_torch_model",
                    kinds=("torch", "mlflow"), deep=True)
LIGHTGBM_REWEIGHED = ModelFamily("lightgbm_reweighed", asset_names.LGBM_REWEIGHED_MODEL,
                                 "LightGBM refitted on reweighed training rows (fairness mitigation)", _LIGHTGBM_FILE,
                                 LIGHTGBM.saver, LIGHTGBM.loader, starts_from=LIGHTGBM.asset,
                                 kinds=("lightgbm", "mlflow"), mitigation="reweigh")
LIGHTGBM_THRESHOLD_OPTIMIZER = ModelFamily(
    "lightgbm_threshold_optimizer", asset_names.LGBM_THRESHOLD_MODEL,
    "LightGBM with per-group thresholds (fairness mitigation)", "group_thresholds.json",
    "mlplatform.core.fairness:save_group_threshold_model", "mlplatform.core.fairness:load_group_threshold_model",
    starts_from=LIGHTGBM.asset, kinds=("fairlearn", "mlflow"), mitigation="threshold_optimizer")
MODEL_FAMILIES = (LIGHTGBM, TORCH, LIGHTGBM_REWEIGHED, LIGHTGBM_THRESHOLD_OPTIMIZER)
FAMILIES_BY_NAME = {family.name: family for family in MODEL_FAMILIES}
# How a saved folder is told apart, most specific marker first: a per-group-threshold folder also holds the
# LightGBM files of its base model, and a reweighed LightGBM is saved like any LightGBM.
SAVED_FORMS = (LIGHTGBM_THRESHOLD_OPTIMIZER, LIGHTGBM, TORCH)


def registered_model_name(brief_name: str) -> str:
    """The MLflow registered model a brief's challengers and champion are versions of."""
    return f"{brief_name}_model"


def model_dir(models_dir: Path, candidate: str) -> Path:
    """The folder the candidate ``candidate`` is saved in and loaded from (KeyError: not a model family)."""
    return FAMILIES_BY_NAME[candidate].directory(models_dir)


# The training asset of each candidate, by candidate name.
CANDIDATE_ASSETS = {family.name: family.asset for family in MODEL_FAMILIES}
# Each fairness mitigation the brief may list, and the candidate it trains.
MITIGATION_CANDIDATES = {family.mitigation: family.name for family in MODEL_FAMILIES if family.mitigation}


def candidates(brief: "Brief") -> list[str]:
    """The trained models that compete, on validation, to become the challenger (mitigated ones included)."""
    return [LIGHTGBM.name, *([TORCH.name] if brief.training.torch else []),
            *(MITIGATION_CANDIDATES[m] for m in brief.fairness.mitigation)]
