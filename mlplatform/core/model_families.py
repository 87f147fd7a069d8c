"""The candidate model families and the registered model's name, in one place.

A family is one kind of candidate the training stage can fit: its candidate name (the MLflow run name, the key the
evaluation and the registry use), the asset that trains it and the artefact folder under the workspace's
``models`` directory that asset saves it to and later stages load it from. Fitting and loading stay in
:mod:`mlplatform.core.training`, :mod:`mlplatform.core.torch_model` and :mod:`mlplatform.core.models`: this
module is names only and imports nothing at run time, so asset definitions can use it at import time.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlplatform.brief import Brief


@dataclass(frozen=True)
class ModelFamily:
    name: str  # the candidate's name: run name, key of its candidates/<name> table and of the selection
    asset: str  # the asset that trains it
    model_type: str  # what the model card calls it

    @property
    def folder(self) -> str:
        """The artefact folder under the workspace's models directory."""
        return self.name


LIGHTGBM = ModelFamily("lightgbm", "lgbm_model", "LightGBM")
TORCH = ModelFamily("torch", "torch_model", "torch MLP with categorical embeddings")
LIGHTGBM_REWEIGHED = ModelFamily("lightgbm_reweighed", "lgbm_reweighed_model",
                                 "LightGBM refitted on reweighed training rows (fairness mitigation)")
LIGHTGBM_THRESHOLD_OPTIMIZER = ModelFamily("lightgbm_threshold_optimizer", "lgbm_threshold_model",
                                           "LightGBM with per-group thresholds (fairness mitigation)")
MODEL_FAMILIES = (LIGHTGBM, TORCH, LIGHTGBM_REWEIGHED, LIGHTGBM_THRESHOLD_OPTIMIZER)
FAMILIES_BY_NAME = {family.name: family for family in MODEL_FAMILIES}


def registered_model_name(brief_name: str) -> str:
    """The MLflow registered model a brief's challengers and champion are versions of."""
    return f"{brief_name}_model"


# The training asset of each candidate, by candidate name.
CANDIDATE_ASSETS = {family.name: family.asset for family in MODEL_FAMILIES}
# Each fairness mitigation the brief may list, and the candidate it trains.
MITIGATION_CANDIDATES = {"reweigh": LIGHTGBM_REWEIGHED.name, "threshold_optimizer": LIGHTGBM_THRESHOLD_OPTIMIZER.name}


def candidates(brief: "Brief") -> list[str]:
    """The trained models that compete, on validation, to become the challenger (mitigated ones included)."""
    return [LIGHTGBM.name, *([TORCH.name] if brief.training.torch else []),
            *(MITIGATION_CANDIDATES[m] for m in brief.fairness.mitigation)]
