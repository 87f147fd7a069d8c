"""A saved candidate (LightGBM text or torch safetensors + JSON) as an MLflow pyfunc model, with nothing pickled.

MLflow would cloudpickle a ``PythonModel`` instance; we log the model *from code* instead (MLflow's "models from
code"): the logged model holds the small script ``pyfunc_model_code.py``, which names :class:`CandidatePyfunc`
with ``mlflow.models.set_model``, and the candidate's saved folder as its artifact. Loading runs that script
and :meth:`CandidatePyfunc.load_context` rebuilds the model from the folder with our own loader, so
``mlflow.pyfunc.load_model(uri).predict(frame)`` scores as ``predict_score`` does. The script imports
``mlplatform``, which must be installed where the model is loaded (it is listed in the model's requirements).
"""

import contextlib
import logging
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import polars as pl
from mlflow.pyfunc.model import PythonModel

from mlplatform.core.models import CANDIDATE_FILES, load_candidate

# The artifact key under which the saved candidate folder travels inside the pyfunc model.
CANDIDATE_ARTIFACT = "candidate"
_MODEL_CODE = Path(__file__).with_name("pyfunc_model_code.py")
# What loading needs, pinned to the versions that saved it; listing them also spares MLflow inferring the
# requirements, which loads the model in a subprocess.
_REQUIREMENTS = ("mlplatform", "mlflow", "numpy", "pandas", "polars", "lightgbm", "torch", "safetensors")


class CandidatePyfunc(PythonModel):
    """Scores a pandas frame of feature columns with the candidate in the ``candidate`` artifact.

    ``predict`` returns what the candidate's ``predict_score`` returns: the positive-class probability
    (binary), one column of probabilities per class (multiclass) or the predicted value (regression).
    """

    def load_context(self, context: Any) -> None:
        self._model = load_candidate(Path(context.artifacts[CANDIDATE_ARTIFACT]))

    # MLflow reads the model_input hint: pandas' DataFrame is passed through as it is, with no schema inferred.
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> np.ndarray:
        if not isinstance(model_input, pd.DataFrame):
            kind = f"{type(model_input).__module__}.{type(model_input).__name__}"
            raise TypeError(f"pass a pandas DataFrame of feature columns, not a {kind}")
        return self._model.predict_score(pl.from_pandas(model_input))


def save_pyfunc(model_dir: Path, destination: Path) -> Path:
    """Write the candidate saved in ``model_dir`` as a pyfunc model folder at ``destination``, all or nothing (see
    :func:`mlplatform.core.atomic.write_model_folder`). Its files, the code MLflow runs included, are hashed at
    registration; load it with :func:`mlplatform.core.model_integrity.load_verified_pyfunc`.

    Raises:
        ValueError: ``model_dir`` holds no saved candidate.
    """
    from mlplatform.core.atomic import write_model_folder

    if not any((model_dir / name).is_file() for name in CANDIDATE_FILES.values()):
        raise ValueError(f"{model_dir} holds no saved model (expected one of {sorted(CANDIDATE_FILES.values())}); "
                         "save it with save_model or save_torch_model first")

    def write(folder: Path) -> None:
        with _without_signature_warning():
            mlflow.pyfunc.save_model(
                path=str(folder),
                python_model=str(_MODEL_CODE),
                artifacts={CANDIDATE_ARTIFACT: str(model_dir)},
                pip_requirements=[f"{name}=={version(name)}" for name in _REQUIREMENTS],
            )

    return write_model_folder(destination, write)


class _SignatureWarningFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to infer model signature")


@contextlib.contextmanager
def _without_signature_warning() -> Iterator[None]:
    """Drop MLflow's warning that no signature was inferred: the model is logged without an example frame on
    purpose, and the features it scores are in the candidate's own JSON."""
    logger, quiet = logging.getLogger("mlflow.pyfunc"), _SignatureWarningFilter()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)
