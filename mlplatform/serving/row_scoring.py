"""Scoring one request without building a frame: a model's input row straight from the feature dict.

A polars frame of one row and the model's column-wise transforms cost about a millisecond per request; the same
arithmetic on the row's Python values costs microseconds. :func:`row_scorer` compiles a saved LightGBM model
(its fitted transforms and category codes, the brief's feature types) into a function from one feature dict
to the model's scores, and then proves on probe rows built from the model's own statistics (every level,
bin edge, unseen and missing value) that it scores exactly what ``predict_score`` scores on a frame. A model
it cannot compile, or one where a single score differs, keeps the frame path.

A torch model's row goes the same way (:func:`torch_row_scorer`): its preprocessing in Python, then the network
exported to ONNX Runtime (in memory; the saved model stays safetensors + JSON), checked on probe rows within
:data:`TORCH_TOLERANCE` of ``predict_score``.
"""

import bisect
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlplatform.core.fairness import GroupThresholdModel
from mlplatform.core.training import TrainedModel
from mlplatform.serving.schemas import feature_frame

log = logging.getLogger(__name__)
# One model input value -> its output values (floats, or a category level text before the category codes).
_Encode = Callable[[Any], list[Any]]
_PROBE_ROWS = 64


def row_scorer(model: Any, types: dict[str, type], backend: str = "auto") -> Callable[[dict], np.ndarray] | None:
    """``row -> scores`` (``predict_score`` of that one row) for a LightGBM or torch model, or None when the model
    is of another kind, uses a step this module does not encode, or a probe row scores differently.

    ``backend``: ``auto``; ``frame`` (always None); or, for a torch model, the one runtime to use
    (:data:`mlplatform.core.torch_model.INFERENCE_BACKENDS`; a LightGBM model takes its row path for any).
    """
    if backend == "frame":
        return None
    if isinstance(model, GroupThresholdModel):
        return group_threshold_row_scorer(model, types, backend)
    if type(model).__name__ == "TorchModel":  # torch is imported only where a torch model was loaded
        return torch_row_scorer(model, types, None if backend == "auto" else (backend,))
    if not isinstance(model, TrainedModel):
        return None
    columns = _column_encoders(model, types)
    if columns is None:
        return None
    outputs = model.transforms.output_columns if model.transforms is not None else model.features
    codes = {name: {level: float(code) for code, level in enumerate(levels)}
             for name, levels in model.categories.items()}
    categorical = [codes.get(name) for name in outputs]

    def design(row: dict) -> list[float]:
        values = [value for name, encode in columns for value in encode(row.get(name))]
        return [(math.nan if value is None else float(value)) if lookup is None else lookup.get(value, math.nan)
                for value, lookup in zip(values, categorical, strict=True)]

    def score(row: dict) -> np.ndarray:
        return model.predict_matrix(np.array([design(row)], dtype=np.float64))

    probes = _probe_rows(model, types)
    try:
        expected = model.predict_score(feature_frame(probes, types))
        found = np.concatenate([score(row) for row in probes])
        agrees = bool(probes) and np.array_equal(found, expected.reshape(found.shape), equal_nan=True)
    except Exception as exc:  # an input the frame path or the row path cannot take: keep the frame path
        log.warning("the row scorer of %s cannot be checked (%s); scoring frames instead", model.name, exc)
        return None
    if not agrees:
        log.warning("the row scorer of %s disagrees with predict_score on probe rows; scoring frames instead",
                    model.name)
        return None
    return score


def group_threshold_row_scorer(model: GroupThresholdModel, types: dict[str, type], backend: str = "auto"
                               ) -> Callable[[dict], np.ndarray] | None:
    """The row path of a model deciding by per-group thresholds: its base model's row scorer, then the row's group
    shift (:meth:`GroupThresholdModel.predict_score`'s arithmetic; a row missing a protected value takes the
    default threshold, as a null group does on a frame). None where the base model has no row path."""
    base = row_scorer(model.base, types, backend)
    if base is None:
        return None
    groups = model.groups

    def score(row: dict) -> np.ndarray:
        values = [row.get(column) for column in groups.columns]
        key = None if any(v is None for v in values) else " | ".join(str(v) for v in values)
        shift = groups.thresholds.get(key, groups.default) - groups.default if key is not None else 0.0
        return np.clip(base(row) - shift, 0.0, 1.0)

    return score


def _column_encoders(model: TrainedModel, types: dict[str, type]) -> list[tuple[str, _Encode]] | None:
    """``(input, encoder)`` in the model's output order, or None for a step or input this module cannot encode."""
    if model.transforms is None:
        if any(name not in types for name in model.features):
            return None
        return [(name, _identity) for name in model.features]
    encoders = []
    for column in model.transforms.columns:
        kind = types.get(column.column)
        if kind is None:
            return None
        encode: _Encode = _identity
        for step, state in zip(column.steps, column.states, strict=True):
            step_encoder = _step_encoder(step, state, kind, len(column.outputs))
            if step_encoder is None:
                return None
            encode = _then(encode, step_encoder)
        encoders.append((column.column, encode))
    return encoders


def _identity(value: Any) -> list[Any]:
    return [value]


def _then(first: _Encode, second: Callable[[Any], list[Any]]) -> _Encode:
    return lambda value: second(first(value)[0])


def _as_float(value: Any) -> float | None:
    """A numeric value as the transforms see it: float, NaN and missing both None."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _step_encoder(step: str, state: dict, kind: type, width: int) -> Callable[[Any], list[Any]] | None:
    """One fitted step of ``core.transforms`` on one value (same arithmetic), or None if not encodable here."""
    if step == "raw":
        return _identity
    if step == "log":
        def log1p(value: Any) -> list[Any]:
            x = _as_float(value)
            return [None if x is None else float(np.sign(x)) * math.log1p(abs(x))]
        return log1p
    if step == "standardize":
        mean, std = state["mean"], state["std"]
        return lambda value: [None if (x := _as_float(value)) is None else (x - mean) / std]
    if step == "bin":
        edges = [float(edge) for edge in state["edges"]]
        return lambda value: [None if (x := _as_float(value)) is None else float(bisect.bisect_right(edges, x))]
    if kind is not str:  # one-hot and target encoding compare level texts: only text inputs are encoded here
        return None
    if step == "one_hot":
        levels = state["levels"]
        return lambda value: [1.0 if value == level else 0.0 for level in levels]
    if step == "target_encode":
        mapping, prior = state["mapping"], [float(p) for p in state["prior"]]
        if len(prior) != width:
            return None
        return lambda value: list(mapping.get(value, prior)) if value is not None else list(prior)
    return None


def _probe_rows(model: TrainedModel, types: dict[str, type]) -> list[dict]:
    """Rows mixing every value the model's statistics name (levels, bin edges, means), neighbours of them,
    unseen and missing values, seeded so a model is always checked on the same rows."""
    numbers = [0.0, 1.0, -1.0, 0.5, 2.5, -3.75, 1e6, 17.0]
    texts = ["", "unseen level"]
    for column in model.transforms.columns if model.transforms is not None else []:
        for state in column.states:
            numbers += [float(edge) for edge in state.get("edges", [])]
            numbers += [state[key] for key in ("mean", "std") if key in state]
            texts += list(state.get("levels", [])) + list(state.get("mapping", {}))
    for levels in model.categories.values():
        texts += levels
    return _mixed_rows(types, numbers, texts)


def _mixed_rows(types: dict[str, type], numbers: list[float], texts: list[str]) -> list[dict]:
    """:data:`_PROBE_ROWS` rows drawing each input from ``numbers`` (and their neighbours: +-1 for whole numbers,
    +-1e-9 or a normal step for floats) or ``texts``, a fifth missing, seeded so a model is always checked on the
    same rows; none when an input is neither text, number nor bool (dates are not model inputs: the frame path
    reports them)."""
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(_PROBE_ROWS):
        row: dict[str, Any] = {}
        for name, kind in types.items():
            if rng.random() < 0.2:
                row[name] = None
            elif kind is str:
                row[name] = texts[rng.integers(len(texts))]
            elif kind is bool:
                row[name] = bool(rng.integers(2))
            elif kind is int:
                row[name] = int(round(numbers[rng.integers(len(numbers))])) + int(rng.integers(-1, 2))
            elif kind is float:
                number = numbers[rng.integers(len(numbers))]
                row[name] = number + float(rng.choice([0.0, 1e-9, -1e-9, rng.normal()]))
            else:
                return []
        rows.append(row)
    return rows



# A torch network's float32 arithmetic differs between runtimes and batch sizes in the last bits of a score: the
# row path must agree within this, absolute and relative (a regression's values can be large).
TORCH_TOLERANCE = 1e-5


def torch_row_scorer(model: Any, types: dict[str, type], backends: tuple[str, ...] | None = None
                     ) -> Callable[[dict], np.ndarray] | None:
    """``row -> scores`` for a torch model: the row's inputs made in Python
    (:meth:`~mlplatform.core.torch_model.Preprocessing.transform_rows`) and the network run by the first of
    ``backends`` (default: ONNX Runtime, then TorchScript, then eager torch) that builds and scores the probe rows
    within :data:`TORCH_TOLERANCE` (absolute and relative) of ``predict_score`` on a frame. None when none does
    (the frame path stays)."""
    from mlplatform.core.torch_model import compile_network, row_scores

    probes = _torch_probe_rows(model, types)
    if not probes:
        return None
    try:
        expected = np.asarray(model.predict_score(feature_frame(probes, types)))
    except Exception as exc:
        log.warning("the probe rows of %s do not score on a frame (%s); scoring frames instead", model.name, exc)
        return None
    for backend in backends or ("onnxruntime", "torchscript", "eager"):
        try:
            score_rows = row_scores(model, compile_network(model, backend))
            found = np.concatenate([score_rows([row]) for row in probes])
        except Exception as exc:  # a runtime that is missing or cannot run this graph: try the next one
            log.warning("the %s backend cannot score %s (%s)", backend, model.name, exc)
            continue
        if found.shape == expected.shape and np.allclose(found, expected, rtol=TORCH_TOLERANCE, atol=TORCH_TOLERANCE):
            log.info("scoring single rows of %s with %s", model.name, backend)
            return TorchRowScorer(backend, score_rows)
        log.warning("the %s backend disagrees with predict_score on probe rows of %s (largest difference %.3g)",
                    backend, model.name, float(np.max(np.abs(found - expected))) if found.shape == expected.shape
                    else float("inf"))
    return None


@dataclass(frozen=True)
class TorchRowScorer:
    """``row -> scores`` of a torch model through one runtime (``backend``)."""

    backend: str
    score_rows: Callable[[list[dict]], np.ndarray]

    def __call__(self, row: dict) -> np.ndarray:
        return self.score_rows([row])


def _torch_probe_rows(model: Any, types: dict[str, type]) -> list[dict]:
    """Rows mixing the preprocessing's statistics (medians, means, vocabularies), unseen and missing values."""
    prep = model.preprocessing
    if any(name not in types for name in model.features):
        return []
    if any(types[name] is not str for name in prep.categories):
        return []  # a categorical input the API types as non-text: the frame path casts it
    numbers = [0.0, 1.0, -1.0, 1e6, *prep.medians, *prep.means, *(m + s for m, s in zip(prep.means, prep.stds,
                                                                                      strict=True))]
    texts = ["", "unseen level", *(level for levels in prep.categories.values() for level in levels)]
    return _mixed_rows(types, numbers, texts)
