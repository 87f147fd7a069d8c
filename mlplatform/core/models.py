"""The model candidates the platform trains, and loading any saved candidate by what its folder holds."""

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the loaders are imported when used: torch is heavy
    from mlplatform.core.torch_model import TorchModel
    from mlplatform.core.training import TrainedModel

# Candidate name → the file that marks its saved folder. Each is trained, tracked and evaluated alike.
CANDIDATE_FILES = {"lightgbm": "model.txt", "torch": "model.safetensors"}


def load_candidate(directory: Path) -> "TrainedModel | TorchModel":
    """Load a saved model folder (LightGBM text, with per-group thresholds when fairness post-processing made it,
    or torch safetensors), never unpickling anything."""
    from mlplatform.core.fairness import GROUP_THRESHOLDS_FILE, load_group_threshold_model

    if (directory / GROUP_THRESHOLDS_FILE).exists():
        return load_group_threshold_model(directory)  # type: ignore[return-value]
    if (directory / CANDIDATE_FILES["lightgbm"]).exists():
        from mlplatform.core.training import load_model

        return load_model(directory)
    if (directory / CANDIDATE_FILES["torch"]).exists():
        from mlplatform.core.torch_model import load_torch_model  # torch is heavy: only when a torch model is used

        return load_torch_model(directory)
    raise FileNotFoundError(f"{directory} holds no saved model (expected one of {sorted(CANDIDATE_FILES.values())})")
