"""A torch MLP with categorical embeddings for tabular data: the second candidate beside LightGBM.

It trains on CUDA when one is present (bf16 autocast, pinned-memory loading) and on the CPU otherwise, with
the same code. Preprocessing is fitted on the training rows only. Weights are saved as safetensors and
everything else as JSON, so loading a model never unpickles anything.
"""

import contextlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from mlplatform.brief import TaskType
from mlplatform.core.metrics import best_f1_threshold
from mlplatform.core.training import _CATEGORICAL_DTYPES, _labels

_WEIGHTS_FILE = "model.safetensors"
_META_FILE = "model.json"
# Reserved embedding rows of every categorical feature; vocabulary values start after them.
_OTHER, _MISSING = 0, 1
_RESERVED = 2
_EVAL_BATCH = 8192

# The method's neural-network ranges are learning_rate 1e-5..1e-2, batch_size 32..512, dropout 0.1..0.5.
_DEFAULT_PARAMS: dict[str, Any] = {
    "hidden": [128, 64],
    "dropout": 0.2,
    "batch_size": 512,
    "learning_rate": 1e-3,
    "weight_decay": 1e-4,
    "max_epochs": 50,
    "patience": 5,
    # Values rarer than this in train share the "other" embedding with unseen ones, so that row is trained.
    "min_category_count": 5,
    # CPU threads. As for LightGBM: beside other busy processes two threads trained 3k rows ~8x slower than
    # one in our measurement (threads spin-wait). Pass more for a big job on an otherwise idle machine.
    "num_threads": 1,
}


@dataclass
class Preprocessing:
    """What turns a frame into network inputs, fitted on the training rows only.

    Numeric features are imputed with the train median and standardised with the train mean and standard
    deviation; those with nulls in train also get a 0/1 missing flag. A categorical feature's value maps to
    ``2 + its position`` in the vocabulary, an unseen or rare value to 0 and a null to 1.
    """

    numeric: list[str]
    medians: list[float]
    means: list[float]
    stds: list[float]
    indicators: list[str]
    categories: dict[str, list[str]]
    target_mean: float = 0.0
    target_std: float = 1.0

    def transform(self, frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Float32 numeric inputs (standardised values, then missing flags) and int64 category indices."""
        missing = [name for name in [*self.numeric, *self.categories] if name not in frame.columns]
        if missing:
            raise ValueError(f"feature columns missing from the frame: {missing}")
        numeric = [
            ((_as_float(name).fill_null(median) - mean) / std).alias(name)
            for name, median, mean, std in zip(self.numeric, self.medians, self.means, self.stds, strict=True)
        ]
        flags = [_as_float(name).is_null().cast(pl.Float32).alias(f"{name}__missing") for name in self.indicators]
        codes = []
        for name, vocabulary in self.categories.items():
            index = {value: position + _RESERVED for position, value in enumerate(vocabulary)}
            text = pl.col(name).cast(pl.String)
            mapped = text.replace_strict(index, default=_OTHER, return_dtype=pl.Int64)
            codes.append(pl.when(text.is_null()).then(_MISSING).otherwise(mapped).alias(name))
        # An empty selection would lose the row count, hence the explicit empty arrays.
        x_num = frame.select(numeric + flags).to_numpy() if numeric or flags else np.zeros((frame.height, 0))
        x_cat = frame.select(codes).to_numpy() if codes else np.zeros((frame.height, 0))
        return x_num.astype(np.float32), x_cat.astype(np.int64)

    def transform_rows(self, rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`transform` of feature dicts, value by value in Python: the same float64 arithmetic (so the same
        float32 inputs) without building a frame, which costs about a millisecond for one row. A categorical
        value must be text (or missing); a numeric one a number, a bool or missing."""
        numeric = list(zip(self.numeric, self.medians, self.means, self.stds, strict=True))
        vocabularies = [(name, {value: position + _RESERVED for position, value in enumerate(vocabulary)})
                        for name, vocabulary in self.categories.items()]
        x_num = np.empty((len(rows), len(numeric) + len(self.indicators)), dtype=np.float32)
        x_cat = np.empty((len(rows), len(vocabularies)), dtype=np.int64)
        for r, row in enumerate(rows):
            values = [(_row_float(row.get(name), name), median, mean, std) for name, median, mean, std in numeric]
            x_num[r, :len(numeric)] = [((median if x is None else x) - mean) / std for x, median, mean, std in values]
            x_num[r, len(numeric):] = [float(_row_float(row.get(name), name) is None) for name in self.indicators]
            x_cat[r] = [_MISSING if (text := _row_text(row.get(name), name)) is None else index.get(text, _OTHER)
                        for name, index in vocabularies]
        return x_num, x_cat


def _row_float(value: Any, name: str) -> float | None:
    """A numeric feature value as the frame path reads it: float64, NaN and missing both None."""
    if value is None:
        return None
    if not isinstance(value, int | float):
        raise TypeError(f"feature '{name}' is numeric; got {type(value).__name__} {value!r}")
    number = float(value)
    return None if math.isnan(number) else number


def _row_text(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"feature '{name}' is categorical (text); got {type(value).__name__} {value!r}")


def _as_float(name: str) -> pl.Expr:
    # NaN is missing too, as it is for LightGBM.
    return pl.col(name).cast(pl.Float64).fill_nan(None)


def fit_preprocessing(train: pl.DataFrame, features: list[str], min_count: int) -> Preprocessing:
    """Fit the inputs' preprocessing on ``train`` (medians, means, standard deviations, missing flags,
    vocabularies of values seen ``min_count`` times); :func:`train_torch` calls it on the training rows and the
    leakage checklist refits with it."""
    numeric, medians, means, stds, indicators, categories = [], [], [], [], [], {}
    for name in features:
        if name not in train.columns:
            raise ValueError(f"feature column '{name}' is not in the train frame")
        dtype = train.schema[name]
        if isinstance(dtype, _CATEGORICAL_DTYPES):
            counts = train[name].cast(pl.String).drop_nulls().value_counts()
            categories[name] = counts.filter(pl.col("count") >= min_count)[name].sort().to_list()
        elif dtype.is_numeric() or dtype in (pl.Boolean, pl.Null):
            value = _as_float(name)
            median = train.select(value.median()).item()
            median = 0.0 if median is None else float(median)  # an all-missing column
            filled = value.fill_null(median)
            mean, std, nulls = train.select(filled.mean().alias("mean"), filled.std(ddof=0).alias("std"),
                                            value.null_count().alias("nulls")).row(0)
            std = float(std or 0.0)
            numeric.append(name)
            medians.append(median)
            means.append(float(mean))
            stds.append(std if std > 0 else 1.0)
            if nulls:
                indicators.append(name)
        else:
            raise ValueError(f"feature '{name}' has type {dtype}, which the torch model cannot use; pass numeric "
                             "or string features (derive numbers from dates first)")
    return Preprocessing(numeric, medians, means, stds, indicators, categories)


def _embedding_dim(cardinality: int) -> int:
    # fast.ai's rule of thumb, capped: small vocabularies get a few dimensions, large ones at most 16.
    return min(16, max(2, round(1.6 * cardinality**0.56)))


class TabularMLP(nn.Module):
    """Numeric inputs and one embedding per categorical feature, concatenated into ReLU layers with dropout."""

    def __init__(self, n_numeric: int, cardinalities: list[int], embedding_dims: list[int], hidden: list[int],
                 dropout: float, n_outputs: int) -> None:
        super().__init__()
        embeddings = [nn.Embedding(c, d) for c, d in zip(cardinalities, embedding_dims, strict=True)]
        self.embeddings = nn.ModuleList(embeddings)
        layers: list[nn.Module] = []
        width = n_numeric + sum(embedding_dims)
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, n_outputs))
        self.body = nn.Sequential(*layers)
        with torch.no_grad():
            # The reserved rows start neutral: a value never seen in training adds nothing rather than noise.
            for embedding in embeddings:
                embedding.weight[:_RESERVED] = 0.0

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        parts = [x_num, *(embedding(x_cat[:, i]) for i, embedding in enumerate(self.embeddings))]
        return self.body(torch.cat(parts, dim=1))


@dataclass
class TorchModel:
    """A trained :class:`TabularMLP` plus its preprocessing, architecture, threshold and training figures.

    ``info`` holds ``device``, ``device_name``, ``mixed_precision`` (bf16 on CUDA), ``pinned_memory`` (batches
    loaded through pinned memory, on CUDA), ``epochs_run``, ``best_epoch``, ``best_validation_loss``,
    ``train_rows``, ``training_time_s`` (the training passes only) and ``samples_per_s`` (training rows per
    second).
    """

    task: TaskType
    network: TabularMLP
    features: list[str]
    preprocessing: Preprocessing
    architecture: dict[str, Any]
    params: dict[str, Any]
    threshold: float = 0.5
    info: dict[str, Any] = field(default_factory=dict)
    name: str = "torch_mlp"

    def predict_score(self, frame: pl.DataFrame) -> np.ndarray:
        """Positive-class probability (binary), class probabilities (multiclass) or values (regression)."""
        x_num, x_cat = self.preprocessing.transform(frame)
        device = next(self.network.parameters()).device
        self.network.eval()
        outputs = []
        with torch.no_grad():
            for start in range(0, frame.height, _EVAL_BATCH):
                rows = slice(start, start + _EVAL_BATCH)
                out = self.network(torch.from_numpy(x_num[rows]).to(device), torch.from_numpy(x_cat[rows]).to(device))
                outputs.append(out.float().cpu())
        logits = torch.cat(outputs) if outputs else torch.zeros((0, self.architecture["n_outputs"]))
        return self.scores_of_logits(logits.numpy())

    def scores_of_logits(self, logits: np.ndarray) -> np.ndarray:
        """The network's float32 outputs (rows x outputs) as :meth:`predict_score` reports them."""
        out = torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32))
        if self.task == "binary":
            return torch.sigmoid(out[:, 0]).double().numpy()
        if self.task == "multiclass":
            return torch.softmax(out, dim=1).double().numpy()
        prep = self.preprocessing
        return out[:, 0].double().numpy() * prep.target_std + prep.target_mean


class _BatchRows(TensorDataset):
    """A :class:`TensorDataset` read a batch at a time: the batch's row indices (a list) become one index tensor
    for every tensor, rather than each tensor converting the list again. The same rows, so the same batches."""

    def __getitem__(self, index: Any) -> tuple[torch.Tensor, ...]:
        rows = torch.as_tensor(index)
        return tuple(tensor[rows] for tensor in self.tensors)


@contextlib.contextmanager
def _training_settings(device: torch.device, num_threads: int) -> Iterator[None]:
    """Deterministic kernels and the CPU thread count while training; the caller's settings come back after."""
    if device.type == "cuda":
        # cuBLAS needs a fixed workspace to be deterministic; it reads this when its first handle is made.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    # warn_only: an op without a deterministic kernel warns instead of failing the training.
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        torch.set_num_threads(threads)


def _loss_function(task: TaskType) -> nn.Module:
    if task == "binary":
        return nn.BCEWithLogitsLoss()
    if task == "multiclass":
        return nn.CrossEntropyLoss()
    if task == "regression":
        return nn.MSELoss()  # on the standardised target
    raise ValueError(f"unknown task type '{task}'; expected binary, multiclass or regression")


def _targets(task: TaskType, y: np.ndarray, prep: Preprocessing) -> torch.Tensor:
    if task == "multiclass":
        return torch.from_numpy(y.astype(np.int64))
    if task == "regression":
        y = (y - prep.target_mean) / prep.target_std
    return torch.from_numpy(y.astype(np.float32))


def _batch_loss(network: TabularMLP, loss_fn: nn.Module, task: TaskType, batch: list[torch.Tensor],
                device: torch.device) -> torch.Tensor:
    x_num, x_cat, y = (t.to(device, non_blocking=True) for t in batch)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        out = network(x_num, x_cat)
    out = out.float()  # the loss in full precision
    return loss_fn(out if task == "multiclass" else out[:, 0], y)


def _validation_loss(network: TabularMLP, loss_fn: nn.Module, task: TaskType, data: list[torch.Tensor],
                     device: torch.device) -> float:
    network.eval()
    total, rows = 0.0, data[0].shape[0]
    with torch.no_grad():
        for start in range(0, rows, _EVAL_BATCH):
            batch = [t[start:start + _EVAL_BATCH] for t in data]
            total += float(_batch_loss(network, loss_fn, task, batch, device)) * batch[0].shape[0]
    return total / rows


def train_torch(
    task: TaskType,
    train: pl.DataFrame,
    validation: pl.DataFrame,
    features: list[str],
    label: str,
    *,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    device: str | None = None,
) -> TorchModel:
    """Train the MLP with AdamW, stopping when the validation loss has not improved for ``patience`` epochs.

    The weights of the best epoch are kept. For binary tasks the decision threshold is the F1-best one on
    validation, as for LightGBM. The global torch RNG, determinism and thread settings are left as they were.

    Args:
        task: the brief's task type.
        train: training rows (fit the weights and all preprocessing statistics).
        validation: rows for early stopping and the threshold; never the test set.
        features: the model inputs; string columns become embeddings.
        label: the label column.
        params: overrides of ``hidden``, ``dropout``, ``batch_size``, ``learning_rate``, ``weight_decay``,
            ``max_epochs``, ``patience``, ``min_category_count`` and ``num_threads``.
        seed: seeds initialisation, dropout and shuffling, so the same call gives the same model.
        device: ``cuda``, ``cpu`` (or e.g. ``cuda:1``); None picks CUDA when available.

    Returns:
        The trained model on the CPU, ready to score and save.
    """
    if not features:
        raise ValueError("train_torch needs at least one feature")
    unknown = set(params or {}) - set(_DEFAULT_PARAMS)
    if unknown:
        raise ValueError(f"unknown torch model params {sorted(unknown)}; known: {sorted(_DEFAULT_PARAMS)}")
    hp = {**_DEFAULT_PARAMS, **(params or {})}
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = target.type == "cuda"
    loss_fn = _loss_function(task)
    y_train = _labels(train, label, task, "train")
    y_valid = _labels(validation, label, task, "validation")
    prep = fit_preprocessing(train, features, int(hp["min_category_count"]))
    n_outputs = 1
    if task == "multiclass":
        n_outputs = int(y_train.max()) + 1
        if y_valid.max() >= n_outputs:
            raise ValueError(f"validation has class {int(y_valid.max())}, which train never shows; the model has "
                             f"classes 0..{n_outputs - 1}")
    elif task == "regression":
        prep.target_mean, prep.target_std = float(y_train.mean()), float(y_train.std()) or 1.0
    cardinalities = [len(vocabulary) + _RESERVED for vocabulary in prep.categories.values()]
    architecture: dict[str, Any] = {
        "n_numeric": len(prep.numeric) + len(prep.indicators),
        "cardinalities": cardinalities,
        "embedding_dims": [_embedding_dim(c) for c in cardinalities],
        "hidden": [int(size) for size in hp["hidden"]],
        "dropout": float(hp["dropout"]),
        "n_outputs": n_outputs,
    }
    train_data = [*map(torch.from_numpy, prep.transform(train)), _targets(task, y_train, prep)]
    valid_data = [*map(torch.from_numpy, prep.transform(validation)), _targets(task, y_valid, prep)]

    rng_devices = [target.index or 0] if cuda else []
    settings = _training_settings(target, int(hp["num_threads"]))
    with torch.random.fork_rng(devices=rng_devices, device_type=target.type), settings:
        torch.manual_seed(seed)
        network = TabularMLP(**architecture).to(target)
        # foreach: one call per step for all parameters (the same arithmetic per element as the per-tensor loop).
        optimizer = torch.optim.AdamW(network.parameters(), lr=hp["learning_rate"], weight_decay=hp["weight_decay"],
                                      foreach=True)
        dataset = _BatchRows(*train_data)
        # Whole batches by index: one gather per batch instead of collating rows one by one.
        batches = BatchSampler(RandomSampler(dataset, generator=torch.Generator().manual_seed(seed)),
                               int(hp["batch_size"]), drop_last=False)
        loader = DataLoader(dataset, sampler=batches, batch_size=None, pin_memory=cuda)
        best_loss, best_epoch, best_state = math.inf, 0, None
        epoch, train_seconds = 0, 0.0
        for epoch in range(1, int(hp["max_epochs"]) + 1):
            network.train()
            started = time.perf_counter()
            for batch in loader:
                loss = _batch_loss(network, loss_fn, task, batch, target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if cuda:
                torch.cuda.synchronize(target)  # GPU work is asynchronous; count it in this epoch
            train_seconds += time.perf_counter() - started
            valid_loss = _validation_loss(network, loss_fn, task, valid_data, target)
            if valid_loss < best_loss:
                best_loss, best_epoch = valid_loss, epoch
                best_state = {name: value.detach().clone() for name, value in network.state_dict().items()}
            elif epoch - best_epoch >= int(hp["patience"]):
                break
    if best_state is None:
        raise ValueError(f"the validation loss was never finite in {epoch} epochs; lower learning_rate or check "
                         "the features for extreme values")
    network.load_state_dict(best_state)
    model = TorchModel(task, network.cpu().eval(), list(features), prep, architecture, {**hp, "seed": seed})
    model.info = {
        "device": str(target),
        "device_name": torch.cuda.get_device_name(target) if cuda else "cpu",
        "mixed_precision": "bf16" if cuda else "none",
        "pinned_memory": loader.pin_memory,
        "epochs_run": epoch,
        "best_epoch": best_epoch,
        "best_validation_loss": best_loss,
        "train_rows": train.height,
        "training_time_s": train_seconds,
        "samples_per_s": train.height * epoch / train_seconds if train_seconds > 0 else float("nan"),
    }
    if task == "binary":
        model.threshold = best_f1_threshold(y_valid, model.predict_score(validation))
    return model


def save_torch_model(model: TorchModel, directory: Path) -> Path:
    """Write the weights as safetensors and the rest (preprocessing, architecture, threshold) as JSON, replacing
    ``directory`` all or nothing: a save that fails half-way leaves the previous model intact."""
    from mlplatform.core.atomic import write_model_folder

    return write_model_folder(directory, lambda folder: _write_torch_files(model, folder))


def _write_torch_files(model: TorchModel, directory: Path) -> None:
    save_file({name: value.contiguous() for name, value in model.network.state_dict().items()},
              str(directory / _WEIGHTS_FILE))
    meta = {
        "task": model.task,
        "name": model.name,
        "features": model.features,
        "preprocessing": asdict(model.preprocessing),
        "architecture": model.architecture,
        "params": model.params,
        "threshold": model.threshold,
        "info": model.info,
    }
    (directory / _META_FILE).write_text(json.dumps(meta, indent=2))


def load_torch_model(directory: Path) -> TorchModel:
    """Read a model written by :func:`save_torch_model`, on the CPU.

    Raises:
        ValueError: the directory does not hold both files.
    """
    weights, meta_file = directory / _WEIGHTS_FILE, directory / _META_FILE
    if not weights.is_file() or not meta_file.is_file():
        raise ValueError(f"{directory} is not a saved torch model: it needs {_WEIGHTS_FILE} and {_META_FILE}")
    meta = json.loads(meta_file.read_text())
    network = TabularMLP(**meta["architecture"])
    network.load_state_dict(load_file(str(weights), device="cpu"))
    return TorchModel(meta["task"], network.eval(), meta["features"], Preprocessing(**meta["preprocessing"]),
                      meta["architecture"], meta["params"], meta["threshold"], meta["info"], meta["name"])


# How a loaded network can run at inference time, fastest first in our measurement of one row on the CPU
# (docs/serving_performance.md): ONNX Runtime on the graph exported from the network, TorchScript (traced and
# frozen), plain eager torch, and dynamic INT8 quantisation of the linear layers by ONNX Runtime or torch.
# Every backend is built in memory from the loaded weights: the saved model stays safetensors + JSON.
INFERENCE_BACKENDS = ("onnxruntime", "torchscript", "eager", "onnxruntime-int8", "torch-int8")
Network = Callable[[np.ndarray, np.ndarray], np.ndarray]


def compile_network(model: TorchModel, backend: str = "onnxruntime", threads: int = 1) -> Network:
    """The model's network as a function of float32 numeric and int64 category inputs (rows x columns, as
    :meth:`Preprocessing.transform` makes them) to float32 outputs, run by ``backend`` (one of
    :data:`INFERENCE_BACKENDS`) with ``threads`` intra-op threads (one: requests score one row each, and idle
    threads spin on a busy machine).

    Raises:
        ValueError: an unknown backend.
        Exception: whatever the export or the runtime raises (e.g. a graph ONNX Runtime cannot run).
    """
    network = model.network.eval()
    example = (torch.zeros((2, model.architecture["n_numeric"])),
               torch.full((2, len(model.architecture["cardinalities"])), _MISSING, dtype=torch.int64))
    if backend in ("eager", "torch-int8", "torchscript"):
        if backend == "torch-int8":
            with warnings.catch_warnings():  # torch announces the move of quantisation to torchao
                warnings.simplefilter("ignore")
                network = torch.ao.quantization.quantize_dynamic(network, {nn.Linear}, dtype=torch.qint8)
        if backend == "torchscript":
            with torch.no_grad():
                network = torch.jit.freeze(torch.jit.trace(network, example))

        def run_torch(x_num: np.ndarray, x_cat: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return network(torch.from_numpy(x_num), torch.from_numpy(x_cat)).numpy()

        return run_torch
    if backend not in ("onnxruntime", "onnxruntime-int8"):
        raise ValueError(f"unknown inference backend '{backend}'; expected one of {INFERENCE_BACKENDS}")
    import onnxruntime

    graph = onnx_graph(model)
    if backend == "onnxruntime-int8":
        graph = _quantize_onnx(graph)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    # An input the graph never reads (no categorical features) is dropped by the export.
    wanted = {item.name for item in session.get_inputs()}
    output = session.get_outputs()[0].name

    def run_onnx(x_num: np.ndarray, x_cat: np.ndarray) -> np.ndarray:
        feed = {"x_num": x_num, "x_cat": x_cat}
        return session.run([output], {name: value for name, value in feed.items() if name in wanted})[0]

    return run_onnx


def onnx_graph(model: TorchModel) -> bytes:
    """The model's network exported to ONNX (opset 17, any number of rows), in memory."""
    import io

    example = (torch.zeros((2, model.architecture["n_numeric"])),
               torch.full((2, len(model.architecture["cardinalities"])), _MISSING, dtype=torch.int64))
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript-based exporter is announced deprecated; it needs no onnxscript
        warnings.simplefilter("ignore")
        torch.onnx.export(model.network.eval(), example, buffer,  # type: ignore[arg-type]  # takes a file object
                          dynamo=False, opset_version=17,
                          input_names=["x_num", "x_cat"], output_names=["out"],
                          dynamic_axes={"x_num": {0: "rows"}, "x_cat": {0: "rows"}, "out": {0: "rows"}})
    return buffer.getvalue()


def _quantize_onnx(graph: bytes) -> bytes:
    """ONNX Runtime's dynamic INT8 quantisation of the graph's matrix products (weights int8, activations
    quantised per call)."""
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="onnx_int8_") as scratch:
        source, target = Path(scratch) / "model.onnx", Path(scratch) / "model.int8.onnx"
        source.write_bytes(graph)
        quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        return target.read_bytes()


def row_scores(model: TorchModel, network: Network) -> Callable[[list[dict]], np.ndarray]:
    """``rows -> scores``: :meth:`TorchModel.predict_score` of feature dicts, through
    :meth:`Preprocessing.transform_rows` and ``network`` (see :func:`compile_network`)."""
    prep = model.preprocessing

    def score(rows: list[dict]) -> np.ndarray:
        return model.scores_of_logits(network(*prep.transform_rows(rows)))

    return score
