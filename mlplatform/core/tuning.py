"""LightGBM hyperparameter search with Optuna: TPE over the method's ranges, median pruning, resumable studies.

Every trial trains through :func:`mlplatform.core.training.fit_lightgbm_scored` (``train_lightgbm`` with its
validation scores), so the tuned parameters mean the same thing when the final model is trained with them.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import optuna
import polars as pl

from mlplatform.brief import Brief, TaskType, Training
from mlplatform.core.datasets import model_features
from mlplatform.core.metrics import compute_metrics, higher_is_better
from mlplatform.core.tracking import dataset_version
from mlplatform.core.training import SplitFrames, fit_lightgbm_scored

# Report to the pruner every few boosting rounds only: with SQLite storage a report and a pruning decision
# cost ~40 ms together, as much as 25 rounds of training on a few thousand rows.
_REPORT_EVERY = 25
_PRUNER_STARTUP_TRIALS = 5
_PARAM_COLUMNS = {"learning_rate": pl.Float64, "num_leaves": pl.Int64, "feature_fraction": pl.Float64,
                  "min_data_in_leaf": pl.Int64}
# The searched LightGBM parameters: the columns of ``TuningResult.trials`` that are hyperparameters.
SEARCH_PARAMS: tuple[str, ...] = tuple(_PARAM_COLUMNS)


@dataclass
class TuningResult:
    """The best parameters found and every trial of the study (earlier runs of a resumed study included).

    ``n_trials_done`` counts the trials this call ran (completed, pruned or failed); ``best_iteration`` is the
    boosting round early stopping kept in the best trial (a fit without early stopping needs about that many).
    """

    best_params: dict[str, Any]
    best_value: float
    n_trials_done: int
    trials: pl.DataFrame
    best_iteration: int

    @property
    def new_trials(self) -> pl.DataFrame:
        """The trials this call ran: the last ``n_trials_done`` by number (a resumed study's new ones)."""
        return self.trials.sort("number").tail(self.n_trials_done)


def _search_space(trial: optuna.Trial) -> dict[str, Any]:
    """The method's LightGBM ranges, under LightGBM's canonical parameter names."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 15, 255),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 5, 100),
    }


def _pruning_callback(trial: optuna.Trial, maximise: bool) -> Callable[[lgb.callback.CallbackEnv], None]:
    """Report LightGBM's validation metric (the early-stopping one) and stop the trial when the pruner says so.

    The study's direction is the primary metric's, which LightGBM may not compute (F1, PR-AUC); its own
    validation loss is the per-round signal. It is negated when its direction differs from the study's, so
    the pruner compares trials the right way round.
    """

    def callback(env: lgb.callback.CallbackEnv) -> None:
        step = env.iteration + 1
        if step % _REPORT_EVERY:
            return
        if not env.evaluation_result_list:  # no validation set: nothing to judge the trial by
            return
        value, is_higher_better = env.evaluation_result_list[0][2], env.evaluation_result_list[0][3]
        trial.report(value if is_higher_better == maximise else -value, step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at boosting round {step}")

    return callback


def _check_metric(task: TaskType, metric: str) -> None:
    higher_is_better(metric)  # raises for a metric without a direction
    # Two rows are enough to learn which metrics compute_metrics reports for this task.
    score = np.array([[0.8, 0.2], [0.2, 0.8]]) if task == "multiclass" else np.array([0.2, 0.8])
    available = compute_metrics(task, np.array([0, 1]), score)
    if metric not in available:
        raise ValueError(f"primary metric '{metric}' is not computed for {task} tasks; use one of "
                         f"{sorted(available)}")


def _trials_frame(study: optuna.Study) -> pl.DataFrame:
    rows = []
    for trial in study.trials:
        duration = trial.duration.total_seconds() if trial.duration else None
        rows.append({
            "number": trial.number,
            "state": trial.state.name,
            # Optuna gives a pruned trial its last intermediate value (a loss), not comparable to the others.
            "value": trial.value if trial.state == optuna.trial.TrialState.COMPLETE else None,
            "started_at": trial.datetime_start,
            "duration_s": duration,
            "best_iteration": trial.user_attrs.get("best_iteration"),
            "last_reported_round": trial.last_step,
            **{name: trial.params.get(name) for name in _PARAM_COLUMNS},
        })
    schema = {"number": pl.Int64, "state": pl.String, "value": pl.Float64, "started_at": pl.Datetime,
              "duration_s": pl.Float64,
              "best_iteration": pl.Int64, "last_reported_round": pl.Int64, **_PARAM_COLUMNS}
    return pl.DataFrame(rows, schema=schema)


def tune_lightgbm(
    task: TaskType,
    train: pl.DataFrame,
    validation: pl.DataFrame,
    features: list[str],
    label: str,
    *,
    primary_metric: str,
    n_trials: int,
    timeout_s: float | None,
    storage_url: str | None,
    study_name: str,
    seed: int = 0,
    warmup_rounds: int = 50,
    transforms: Training | None = None,
) -> TuningResult:
    """Search LightGBM's learning rate, leaves, feature fraction and leaf size for the best validation score.

    TPE proposes parameters; a median pruner stops a trial whose validation loss is worse than the median of
    earlier trials at the same boosting round. Each trial is scored like the final model: the primary metric
    on ``validation``, binary F1-type metrics at the trial model's F1-best threshold. The test set is never
    seen. Calling again with the same ``storage_url`` and ``study_name`` resumes the study: new trials are
    added and the best of all of them is returned.

    Args:
        task: the brief's task type.
        train: rows that fit each trial's trees.
        validation: rows for early stopping, pruning and the score.
        features: the model inputs, in order.
        label: the label column.
        primary_metric: the brief's primary metric; maximised or minimised by its direction.
        n_trials: trials to run in this call.
        timeout_s: stop starting new trials after this many seconds (a running trial finishes); None: no limit.
        storage_url: e.g. ``sqlite:///<dir>/optuna.db`` (the folder is created); None keeps the study in memory.
        study_name: the study's name in the storage.
        seed: seeds the sampler and LightGBM, so the same call on the same data gives the same study.
        warmup_rounds: boosting rounds every trial runs before it may be pruned; low learning rates start
            slowly, so a small value favours fast learners.

    Raises:
        ValueError: the metric does not fit the task, the stored study optimises the other direction, or no
            trial completed.
    """
    _check_metric(task, primary_metric)
    maximise = higher_is_better(primary_metric)
    direction: Literal["maximize", "minimize"] = "maximize" if maximise else "minimize"
    if storage_url and storage_url.startswith("sqlite:///"):
        Path(storage_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    y_valid = validation[label].to_numpy()

    def objective(trial: optuna.Trial) -> float:
        model, scores = fit_lightgbm_scored(task, train, validation, features, label, params=_search_space(trial),
                                            seed=seed, callbacks=[_pruning_callback(trial, maximise)],
                                            transforms=transforms)
        trial.set_user_attr("best_iteration", model.best_iteration)
        metrics = compute_metrics(task, y_valid, scores, model.threshold)
        return metrics[primary_metric]

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(storage=storage_url, study_name=study_name, direction=direction,
                                    load_if_exists=True,
                                    pruner=optuna.pruners.MedianPruner(_PRUNER_STARTUP_TRIALS, warmup_rounds))
        if study.direction.name.lower() != direction:
            raise ValueError(f"study '{study_name}' in {storage_url} was created to {study.direction.name.lower()}"
                             f" but {primary_metric} needs {direction}; use another study_name")
        earlier = len(study.trials)
        # Offset by the trials already stored: a resumed study with the same seed would otherwise propose the
        # same random start-up points again.
        study.sampler = optuna.samplers.TPESampler(seed=seed + earlier)
        study.optimize(objective, n_trials=n_trials, timeout=timeout_s)
    finally:
        optuna.logging.set_verbosity(verbosity)
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
        raise ValueError(f"no tuning trial of study '{study_name}' completed (all were pruned or failed); "
                         "raise n_trials, timeout_s or warmup_rounds")
    return TuningResult(dict(study.best_params), float(study.best_value), len(study.trials) - earlier,
                        _trials_frame(study), int(study.best_trial.user_attrs["best_iteration"]))


def tuning_rows(task: TaskType, train: pl.DataFrame, label: str, max_rows: int | None, seed: int) -> pl.DataFrame:
    """The training rows Optuna's trials fit on: all of them when there are at most ``max_rows`` (or no cap);
    otherwise a random sample of about ``max_rows`` (seeded), for a classification task drawn per class so that each
    class keeps its share of the rows (at least one row each). Rows keep their order."""
    if max_rows is None or train.height <= max_rows:
        return train
    row = "__tuning_row"
    indexed = train.with_row_index(row)
    groups = ([group for _, group in indexed.group_by(label, maintain_order=True)] if task != "regression"
              else [indexed])
    drawn = [group.sample(n=max(1, group.height * max_rows // train.height), seed=seed) for group in groups]
    return pl.concat(drawn).sort(row).drop(row)


def tune_for_brief(brief: Brief, split: SplitFrames, storage: Path) -> TuningResult:
    """:func:`tune_lightgbm` on the brief's model inputs, label, primary metric and tuning budget, the trials fitting
    at most ``training.tuning_max_rows`` training rows (:func:`tuning_rows`; validation whole), the study kept in
    SQLite at ``storage`` under a name of the brief and the trials' training rows' content (a rerun on the same rows
    resumes it)."""
    settings = brief.training
    storage.parent.mkdir(parents=True, exist_ok=True)
    train = tuning_rows(brief.task_type, split.train, brief.label.column, settings.tuning_max_rows, settings.seed)
    return tune_lightgbm(
        brief.task_type, train, split.validation, model_features(brief), brief.label.column,
        primary_metric=brief.metrics.primary, n_trials=settings.tuning_trials, timeout_s=settings.tuning_timeout_s,
        storage_url=f"sqlite:///{storage}", study_name=f"{brief.name}_lightgbm_{dataset_version(train)[:12]}",
        seed=settings.seed, transforms=settings)


def tuning_note(tuned: TuningResult, primary: str) -> str:
    """What the experiment record says about the search."""
    return (f"Optuna: {tuned.n_trials_done} trials this run ({len(tuned.trials)} in the study), best "
            f"validation {primary} {tuned.best_value:.4f}")
