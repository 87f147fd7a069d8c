"""Distributed LightGBM: ``lightgbm.dask`` data-parallel training on a ``dask.distributed`` cluster.

For training tables that outgrow one machine. Each Dask worker reads its partitions of the Parquet table,
turns them into the same design matrix the local trainer builds, and LightGBM's own network layer
(``tree_learner=data``) trains one model across the workers. The result is a
:class:`~mlplatform.core.training.TrainedModel`, so scoring, saving, tracking and serving treat it exactly like
a locally trained one.

The same code runs against a ``LocalCluster`` (tests, a laptop) and a real cluster: only the scheduler address
changes. Workers need this package installed and the Parquet path readable (a shared file system or an object
store URL such as ``s3://bucket/features/``).
"""

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import lightgbm as lgb
import numpy as np
import pandas as pd
import polars as pl
from distributed import Client, LocalCluster, wait
from scipy.special import expit, softmax
from sklearn.metrics import log_loss, mean_squared_error

from mlplatform.brief import DistributedTraining, TaskType, Training
from mlplatform.core.metrics import best_f1_threshold
from mlplatform.core.training import (
    _DEFAULT_PARAMS,
    TrainedModel,
    _design_matrix,
    _labels,
    _objective,
    fit_model_inputs,
)

# Dask sets these itself: the thread count from each worker's nthreads, the machine list from the workers
# that hold data. Early stopping is not supported by lightgbm.dask (a worker that stops early leaves the
# others waiting on the network); the best iteration is chosen after training instead.
_DASK_MANAGED = ("num_threads", "num_machines", "machines", "early_stopping_round")


def rounds_after_tuning(best_iteration: int) -> int:
    """Boosting rounds for a fit without early stopping, once tuning found the best round: as many as local
    early stopping trains (the best round plus its patience), so the best prefix is kept within them."""
    return best_iteration + int(_DEFAULT_PARAMS["early_stopping_round"])


def _checked_label_rows(part: pd.DataFrame, label: str, task: TaskType) -> pd.Series:
    """The partition's row count, after the local trainer's label checks (they raise on nulls or bad values)."""
    return pd.Series([len(_labels(pl.from_pandas(part), label, task, "train"))])


def _partition_design(part: pd.DataFrame, features: list[str], categories: dict[str, list[str]],
                      label: str) -> pd.DataFrame:
    """One partition as float features (the local trainer's encoding) plus the label as float."""
    matrix = _design_matrix(pl.from_pandas(part[features]), features, categories)
    design = pd.DataFrame(matrix, columns=features, index=part.index)
    design[label] = part[label].astype("float64")
    return design


def _is_text(dtype: Any) -> bool:
    return isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype)


def _validation_loss_by_round(task: TaskType, booster: lgb.Booster, matrix: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The early-stopping metric of the local trainer (log loss / L2) on validation after every round."""
    classes = booster.num_model_per_iteration()
    raw = np.zeros((len(y), classes)) if task == "multiclass" else np.zeros(len(y))
    losses = []
    for round_index in range(booster.current_iteration()):
        raw = raw + booster.predict(matrix, start_iteration=round_index, num_iteration=1, raw_score=True)
        if task == "binary":
            losses.append(log_loss(y, expit(raw), labels=[0, 1]))
        elif task == "multiclass":
            losses.append(log_loss(y, softmax(raw, axis=1), labels=list(range(classes))))
        else:
            losses.append(mean_squared_error(y, raw))
    return np.asarray(losses)


def _workers(client: Client) -> list[str]:
    """The cluster's worker addresses, sorted.

    Raises:
        ConnectionError: the scheduler has no workers.
    """
    info = client.scheduler_info()
    workers = sorted(info["workers"])
    if not workers:
        address = info["address"]
        raise ConnectionError(f"the Dask scheduler at {address} has no workers; start some (`dask worker {address}` "
                              "on each machine) and run again")
    return workers


def _spread(client: Client, frame: dd.DataFrame, meta: pd.DataFrame) -> tuple[dd.DataFrame, int]:
    """``frame`` computed with its partitions dealt round-robin over the workers, and how many workers hold a
    partition: lightgbm.dask trains on the workers that hold data, and the scheduler alone may put every
    partition on one of them."""
    workers = _workers(client)
    parts = frame.to_delayed()
    placed = [client.compute(part, workers=[workers[i % len(workers)]]) for i, part in enumerate(parts)]
    wait(placed)
    return dd.from_delayed(placed, meta=meta), min(len(parts), len(workers))


def _scatter(client: Client, frame: pl.DataFrame) -> dd.DataFrame:
    """An in-memory frame as a Dask frame of one slice per worker, each slice sent to its worker, in the
    order :func:`_spread` deals partitions (so no slice moves twice). Arrow-backed pandas keeps the polars
    types (nullable integers and booleans) intact on the way."""
    workers = _workers(client)
    rows_per_worker = -(-frame.height // len(workers))  # ceiling division
    slices = frame.iter_slices(max(rows_per_worker, 1))
    parts = [client.scatter(part.to_pandas(use_pyarrow_extension_array=True), workers=[worker])
             for part, worker in zip(slices, workers, strict=False)]
    return dd.from_delayed(parts, meta=frame.head(0).to_pandas(use_pyarrow_extension_array=True))


def _connect(scheduler_address: str, connect_timeout_s: float) -> Client:
    """A client of the scheduler, or an error naming the address and how to get a scheduler there."""
    try:
        return Client(scheduler_address, timeout=connect_timeout_s, set_as_default=False)
    except OSError as exc:
        raise ConnectionError(f"no Dask scheduler answered at {scheduler_address} within {connect_timeout_s}s "
                              f"({exc}); start one (`dask scheduler`, or a LocalCluster) and pass its address, or "
                              "set training.distributed.scheduler: local in the brief") from None


def _require_columns(columns: list[str], needed: list[str], source: str) -> None:
    missing = [name for name in needed if name not in columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the {source}; its columns are {columns}")


def train_lightgbm_distributed(
    scheduler_address: str,
    task: TaskType,
    train_path: str | Path,
    validation: pl.DataFrame,
    features: list[str],
    label: str,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    connect_timeout_s: float = 30,
) -> TrainedModel:
    """Train LightGBM across the workers of a Dask cluster from a Parquet feature table.

    Categories of string features are fitted on the whole training table (sorted, as the local trainer does),
    so a model trained here encodes inputs exactly like :func:`~mlplatform.core.training.train_lightgbm`.
    LightGBM's Dask interface has no early stopping, so ``num_iterations`` rounds are trained and the model
    keeps the prefix with the lowest validation loss, the iteration early stopping would have picked. Pass the
    tuned parameters of a local run on a sample (and its best iteration plus some headroom as
    ``num_iterations``) to keep the distributed run short.

    Args:
        scheduler_address: the Dask scheduler, e.g. ``tcp://scheduler:8786`` or ``LocalCluster.scheduler_address``.
        task: the brief's task type.
        train_path: a Parquet file, folder or glob (local path or fsspec URL) every worker can read; each file
            or row group becomes a partition.
        validation: rows (in memory on this machine) that pick the best iteration and the binary threshold.
        features: the model inputs, in order.
        label: the label column.
        params: LightGBM parameters (canonical names) overriding the local defaults, e.g. from tuning.
        seed: LightGBM's seed.
        connect_timeout_s: how long to wait for the scheduler.

    Raises:
        ConnectionError: no scheduler answers at ``scheduler_address``, or it has no workers.
        ValueError: the table lacks a feature or the label, is empty, has a bad label, or misses a class.
    """
    if not features:
        raise ValueError("train_lightgbm_distributed needs at least one feature")
    table = dd.read_parquet(str(train_path))
    source = f"Parquet table {train_path}"
    _require_columns(list(table.columns), [*features, label], source)
    # lightgbm.dask finds the client as the current one.
    with _connect(scheduler_address, connect_timeout_s) as client, client.as_current():
        model, _ = _fit_on_cluster(client, task, table[[*features, label]], source, validation, features, label,
                                   params, seed)
    return model


@dataclass
class ClusterFit:
    """A model trained on a Dask cluster, and where: what the experiment record says about the engine."""

    model: TrainedModel
    scheduler_address: str
    workers: int  # the workers that held training rows, i.e. LightGBM's machines


def train_lightgbm_on_cluster(
    scheduler_address: str,
    task: TaskType,
    train: pl.DataFrame,
    validation: pl.DataFrame,
    features: list[str],
    label: str,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    transforms: Training | None = None,
    connect_timeout_s: float = 30,
) -> ClusterFit:
    """:func:`~mlplatform.core.training.train_lightgbm` with the trees grown on the workers of a Dask cluster.

    The model-side transforms are fitted on ``train`` here, exactly as the local trainer fits them; the
    transformed rows are then sent to the workers (one slice each), so the workers need no access to this
    machine's files. The result is the same kind of model as a local one (same inputs, transforms, category
    maps, threshold rule), saved and served the same way. As in :func:`train_lightgbm_distributed`, there is
    no early stopping: ``num_iterations`` rounds are trained and the best validation prefix is kept.

    Args:
        scheduler_address: the Dask scheduler, e.g. ``tcp://scheduler:8786`` or ``LocalCluster.scheduler_address``.
        task: the brief's task type.
        train: training rows (in memory on this machine).
        validation: rows that pick the best iteration and the binary threshold; never the test set.
        features: the model inputs, in order.
        label: the label column.
        params: LightGBM parameters (canonical names) overriding the local defaults, e.g. from tuning.
        seed: LightGBM's seed.
        transforms: the brief's ``training`` section; None fits no transforms.
        connect_timeout_s: how long to wait for the scheduler.

    Raises:
        ConnectionError: no scheduler answers at ``scheduler_address``, or it has no workers.
        ValueError: a feature or the label is missing, there are no rows, a label is bad, or a class is missing.
    """
    if not features:
        raise ValueError("train_lightgbm_on_cluster needs at least one feature")
    _require_columns(train.columns, [*features, label], "training frame")
    inputs = fit_model_inputs(task, train, validation, features, label, transforms)
    with _connect(scheduler_address, connect_timeout_s) as client, client.as_current():
        # Transformed frames hold the model's input columns only, row for row with the originals.
        table = _scatter(client, inputs.train.select(inputs.columns).with_columns(train[label]))
        validation_inputs = inputs.validation.select(inputs.columns).with_columns(validation[label])
        trained, workers = _fit_on_cluster(client, task, table, "training frame", validation_inputs, inputs.columns,
                                           label, params, seed)
    importance = inputs.importance(trained.booster.feature_importance(importance_type="gain",
                                                                      iteration=trained.best_iteration))
    model = TrainedModel(task, trained.booster, list(features), trained.categories, trained.best_iteration,
                         trained.params, importance, trained.threshold, transforms=inputs.transforms)
    return ClusterFit(model, scheduler_address, workers)


def _fit_on_cluster(client: Client, task: TaskType, table: dd.DataFrame, source: str, validation: pl.DataFrame,
                    features: list[str], label: str, params: dict[str, Any] | None,
                    seed: int) -> tuple[TrainedModel, int]:
    """Train on ``table`` (features and label, spread over the workers); return the model and how many workers
    trained it. ``client`` must be the current client (lightgbm.dask looks it up)."""
    text_columns = [name for name in features if _is_text(table.dtypes[name])]
    checked_rows = table[[label]].map_partitions(_checked_label_rows, label, task, meta=pd.Series(dtype="int64"))
    label_summary = [checked_rows.sum(), table[label].max(), table[label].nunique()]
    uniques = [table[name].dropna().astype(str).unique() for name in text_columns]
    rows, label_max, label_values, *uniques = client.compute([*label_summary, *uniques], sync=True)
    if rows == 0:
        raise ValueError(f"the {source} has no rows")
    if task == "multiclass" and label_values != label_max + 1:
        raise ValueError(f"label '{label}' has {label_values} distinct classes in the training table but its "
                         f"largest class index is {label_max:.0f}; every class 0..{label_max:.0f} needs rows")
    categories = {name: sorted(values) for name, values in zip(text_columns, uniques, strict=True)}
    meta = pd.DataFrame({name: pd.Series(dtype="float64") for name in [*features, label]})
    design, workers = _spread(client, table.map_partitions(_partition_design, features, categories, label,
                                                           meta=meta), meta)
    full_params = {
        **_DEFAULT_PARAMS,
        **_objective(task, np.asarray([label_max])),
        **(params or {}),
        "seed": seed,
        "deterministic": True,
        "force_col_wise": True,
        "verbosity": -1,
        "tree_learner": "data",
    }
    used_params = {k: v for k, v in full_params.items() if k not in _DASK_MANAGED}
    estimator_params = {k: v for k, v in used_params.items() if k != "num_iterations"}
    estimator_class = lgb.DaskLGBMRegressor if task == "regression" else lgb.DaskLGBMClassifier
    estimator = estimator_class(client=client, n_estimators=used_params["num_iterations"], **estimator_params)
    with warnings.catch_warnings():
        # The scikit-learn layer always passes n_jobs; Dask replaces it by each worker's thread count.
        warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
        estimator.fit(design[features], design[label],
                      categorical_feature=[features.index(name) for name in categories])
    booster = estimator.booster_
    y_valid = _labels(validation, label, task, "validation")
    valid_matrix = _design_matrix(validation, features, categories)
    best = int(np.argmin(_validation_loss_by_round(task, booster, valid_matrix, y_valid))) + 1
    gains = booster.feature_importance(importance_type="gain", iteration=best)
    model = TrainedModel(task, booster, list(features), categories, best, used_params,
                         {name: float(gain) for name, gain in zip(features, gains, strict=True)})
    if task == "binary":
        model.threshold = best_f1_threshold(y_valid, model.predict_score(validation))
    return model, workers


@contextmanager
def dask_scheduler(settings: DistributedTraining) -> Iterator[str]:
    """The scheduler address to train on: a running cluster's as given, or, for ``local``, a LocalCluster's,
    started here and shut down when the block ends (also on errors).

    Local workers are threads of this process: LightGBM keeps its network state per thread, so they train
    over sockets exactly as separate machines do, without the seconds each worker process would need to start
    (and re-import this package) inside a pipeline step, and without processes that could outlive a killed
    step.
    """
    if settings.scheduler != "local":
        yield settings.scheduler
        return
    # No dashboard; the scheduler's small HTTP server (health, metrics) gets a free loopback port instead of
    # 8787, which another cluster on the machine may hold.
    with LocalCluster(n_workers=settings.workers, threads_per_worker=settings.threads_per_worker, processes=False,
                      dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster:
        yield cluster.scheduler_address
