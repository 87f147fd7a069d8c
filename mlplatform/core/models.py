"""The model candidates the platform trains, and loading any saved candidate by what its folder holds."""

from pathlib import Path
from typing import TYPE_CHECKING

from mlplatform.core.model_families import LIGHTGBM, SAVED_FORMS, TORCH

if TYPE_CHECKING:  # the loaders are imported when used: torch is heavy
    from mlplatform.core.torch_model import TorchModel
    from mlplatform.core.training import TrainedModel

# Candidate name → the file that marks its saved folder. Each is trained, tracked and evaluated alike.
CANDIDATE_FILES = {family.name: family.artifact for family in (LIGHTGBM, TORCH)}


def load_candidate(directory: Path) -> "TrainedModel | TorchModel":
    """Load a saved model folder (LightGBM text, with per-group thresholds when fairness post-processing made it,
    or torch safetensors) with the loader of the model family whose marker file it holds, never unpickling
    anything."""
    for family in SAVED_FORMS:
        if (directory / family.artifact).exists():
            return family.load(directory)
    expected = sorted({family.artifact for family in SAVED_FORMS})
    raise FileNotFoundError(f"{directory} holds no saved model (expected one of {expected})")
