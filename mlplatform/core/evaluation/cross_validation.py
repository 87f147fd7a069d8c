"""Cross-validation on small data: time-ordered or stratified folds, each refitting the challenger."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mlplatform.brief import Brief, TaskType, Training
from mlplatform.core.datasets import model_features
from mlplatform.core.metrics import metric_function
from mlplatform.core.models import load_candidate
from mlplatform.core.training import SplitFrames

# The method: cross-validate when there are fewer training rows than this.
CV_MAX_TRAIN_ROWS = 10_000
CV_FOLD_SCHEMA = {"fold": pl.Int64, "train_rows": pl.Int64, "test_rows": pl.Int64, "test_start": pl.String,
                  "test_end": pl.String, "value": pl.Float64}


@dataclass(frozen=True)
class CrossValidation:
    """The method's cross-validation of the challenger, or why it was skipped."""

    reason: str
    """Why it ran (with how the folds were cut and what each refits) or why it was skipped."""
    folds: pl.DataFrame
    """One row per fold (:data:`CV_FOLD_SCHEMA`); empty when skipped."""

    @property
    def ran(self) -> bool:
        """Whether any fold ran."""
        return self.folds.height > 0

    @property
    def mean(self) -> float | None:
        """The primary metric's mean over the folds."""
        return self.folds["value"].mean()  # type: ignore[return-value]

    @property
    def std(self) -> float | None:
        """The primary metric's standard deviation over the folds."""
        return self.folds["value"].std()  # type: ignore[return-value]


def expanding_window_folds(times: pl.Series, k: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """Temporal k-fold: rows cut by time into ``k + 1`` consecutive blocks of about equal size; fold ``i``
    trains on blocks ``0..i`` and tests on block ``i + 1``, so every test block lies after its training rows.

    Rows sharing a timestamp stay in one block: with at most ``k + 1`` distinct timestamps each is a block
    (so fewer folds, none with a single timestamp), and a heavy timestamp can merge blocks.

    Returns:
        ``(train_indices, test_indices)`` per fold, as row positions into ``times``.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if times.null_count():
        raise ValueError(f"{times.null_count()} rows have no timestamp; they belong to no fold")
    values = times.to_numpy()
    distinct, counts = np.unique(values, return_counts=True)
    cumulative = np.cumsum(counts)
    if len(distinct) <= k + 1:
        ends = np.arange(len(distinct) - 1)  # every timestamp its own block
    else:
        # Block j ends at the first timestamp whose running count reaches j/(k+1) of the rows.
        targets = cumulative[-1] * np.arange(1, k + 1) / (k + 1)
        ends = np.unique(np.minimum(np.searchsorted(cumulative, targets), len(distinct) - 2))
    edges = [distinct[e] for e in ends]  # last timestamp of each block but the final one
    block = np.searchsorted(np.asarray(edges), values, side="left") if edges else np.zeros(len(values), int)
    return [(np.flatnonzero(block <= i), np.flatnonzero(block == i + 1)) for i in range(len(edges))]


def _when(value) -> str:
    """A timestamp for people: midnight datetimes as their date."""
    if isinstance(value, datetime) and value.time() == time():
        return value.date().isoformat()
    return str(value)


def stratified_folds(labels: pl.Series, k: int = 5, *, stratify: bool,
                     seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded random k-fold for data without time; with ``stratify`` each class is dealt evenly over the folds.

    Returns:
        ``(train_indices, test_indices)`` per fold, as row positions into ``labels``.
    """
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    rng = np.random.default_rng(seed)
    groups = labels.to_numpy() if stratify else np.zeros(labels.len())
    fold = np.empty(labels.len(), dtype=np.int64)
    for value in np.unique(groups):
        rows = np.flatnonzero(groups == value)
        fold[rows[rng.permutation(rows.size)]] = np.arange(rows.size) % k
    return [(np.flatnonzero(fold != i), np.flatnonzero(fold == i)) for i in range(k)]


def candidate_refit(model: Any, task: TaskType, features: list[str], label: str, *, seed: int = 0,
                    transforms: Training | None = None) -> tuple[Callable[[pl.DataFrame], Any], str]:
    """How to refit a saved candidate's family with its settings on a fold's training rows, for
    :func:`cross_validation`; and a sentence saying what is refitted.

    LightGBM: the saved parameters, exactly its best-iteration rounds, no early stopping, the brief's
    ``transforms`` refitted. The torch network: its saved parameters (architecture, dropout, batch size,
    learning rate...) for exactly its best epoch, no early stopping. Either is given the fold's training rows as
    validation rows too (torch keeps the epoch with the best loss on them), so the test block steers nothing.

    Raises:
        TypeError: a model of another kind.
    """
    from mlplatform.core.training import TrainedModel, train_lightgbm  # LightGBM loads only when CV runs

    if isinstance(model, TrainedModel):
        rounds = int(model.best_iteration)
        fixed = {**model.params, "num_iterations": rounds, "early_stopping_round": 0}

        def lightgbm(train: pl.DataFrame) -> Any:
            return train_lightgbm(task, train, train, features, label, params=fixed, seed=seed, transforms=transforms)
        return lightgbm, f"LightGBM (and the brief's transforms) with the saved parameters and {rounds} rounds"
    from mlplatform.core.torch_model import TorchModel, train_torch  # torch is heavy: only for a torch candidate

    if isinstance(model, TorchModel):
        epochs = int(model.info.get("best_epoch") or model.params["max_epochs"])
        params = {k: v for k, v in model.params.items() if k != "seed"} | {"max_epochs": epochs, "patience": epochs}

        def network(train: pl.DataFrame) -> Any:
            return train_torch(task, train, train, features, label, params=params, seed=seed, device="cpu")
        return network, f"the torch network with the saved architecture and settings for {epochs} epochs"
    raise TypeError(f"cross-validation cannot refit a {type(model).__name__}; add it to candidate_refit")


def cross_validation(task: TaskType, frame: pl.DataFrame, features: list[str], label: str, metric: str,
                     refit: Callable[[pl.DataFrame], Any], threshold: float = 0.5, *,
                     folds: list[tuple[np.ndarray, np.ndarray]], timestamp: str | None = None) -> pl.DataFrame:
    """Cross-validation of one model family with fixed settings over ``folds`` (row positions into ``frame``:
    from :func:`expanding_window_folds` for data with time, :func:`stratified_folds` without).

    Each fold fits ``refit`` (see :func:`candidate_refit`) on the fold's training rows only and applies
    ``threshold``: the test block steers nothing, so its metric is an honest estimate.

    Returns:
        One row per fold: ``fold``, ``train_rows``, ``test_rows``, ``test_start``, ``test_end`` (first and
        last ``timestamp`` of the test block; empty without one) and ``value`` (``metric`` on the test block).
    """
    one = metric_function(task, metric, threshold)
    rows = []
    for fold, (train_idx, test_idx) in enumerate(folds, start=1):
        train, test = frame[train_idx], frame[test_idx]
        model = refit(train)
        rows.append({"fold": fold, "train_rows": train.height, "test_rows": test.height,
                     "test_start": _when(test[timestamp].min()) if timestamp else "",
                     "test_end": _when(test[timestamp].max()) if timestamp else "",
                     "value": one(test[label].to_numpy(), model.predict_score(test))})
    return pl.DataFrame(rows, schema=CV_FOLD_SCHEMA)


def cross_validate_challenger(brief: Brief, split: SplitFrames, challenger: str,
                              model_dir: Path) -> CrossValidation:
    """The method's rule: cross-validate the challenger (saved in ``model_dir``) when the training split is small;
    else say why not (no folds)."""
    b, rows = brief, split.train.height
    if rows >= CV_MAX_TRAIN_ROWS:
        return CrossValidation(folds=pl.DataFrame(schema=CV_FOLD_SCHEMA), reason=(
            f"the training split has {rows:,} rows; the method cross-validates below {CV_MAX_TRAIN_ROWS:,}, "
            "where one hold-out is too small to trust. At this size the hold-out and its bootstrap intervals "
            "are the estimate."))
    model = load_candidate(model_dir)
    frame = pl.concat([split.train, split.validation])
    if b.has_time:
        frame = frame.sort(b.label.timestamp, maintain_order=True)
        how = "expanding-window folds over train + validation in time order"
        index = expanding_window_folds(frame[b.label.timestamp])
    else:
        stratify = b.task_type != "regression"
        how = f"5 random folds over train + validation{', stratified by class' if stratify else ''}"
        index = stratified_folds(frame[b.label.column], stratify=stratify, seed=b.training.seed)
    refit, refitted = candidate_refit(model, b.task_type, model_features(b), b.label.column, seed=b.training.seed,
                                      transforms=b.training)
    folds = cross_validation(b.task_type, frame, model_features(b), b.label.column, b.metrics.primary, refit,
                             model.threshold, folds=index, timestamp=b.label.timestamp if b.has_time else None)
    if folds.height == 0:
        return CrossValidation(folds=folds, reason="train and validation hold a single label timestamp, so no fold "
                                                   "can test on later rows than it trains on.")
    reason = (f"The training split has {rows:,} rows (under {CV_MAX_TRAIN_ROWS:,}), so the method's rule applies: "
              f"{how}, each refitting the challenger ({challenger}): {refitted}, and its threshold "
              f"{model.threshold:.3f}. The validation rows, on which those were tuned, are in the folds, so the "
              "estimate leans optimistic.")
    return CrossValidation(reason=reason, folds=folds)
