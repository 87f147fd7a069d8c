"""Temporal and random splits, the baselines every model must beat, and LightGBM training with a pickle-free format."""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import polars as pl

from mlplatform.brief import Rule, TaskType, Training
from mlplatform.core.io import write_text_atomic
from mlplatform.core.metrics import best_f1_threshold
from mlplatform.core.model_families import LIGHTGBM
from mlplatform.core.transforms import FittedTransforms, fit_transforms, load_transforms, save_transforms

if TYPE_CHECKING:  # LightGBM is imported where a model is trained or loaded
    import lightgbm as lgb

_CATEGORICAL_DTYPES = (pl.String, pl.Categorical, pl.Enum)
_MODEL_FILE = "model.txt"
_META_FILE = "model.json"
_TRANSFORMS_FILE = "transforms.json"

# Starting values inside the method's typical LightGBM ranges; tuning (Optuna) overrides them by passing
# ``params`` with LightGBM's canonical names.
_DEFAULT_PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    "num_leaves": 31,
    "feature_fraction": 0.9,
    "min_data_in_leaf": 20,
    "num_iterations": 1000,
    "early_stopping_round": 50,
    # One thread: OpenMP threads spin-wait, and beside other busy processes (parallel assets, tuning trials)
    # two threads trained 20k rows ~8x slower than one in our measurement. Pass more for big single jobs.
    "num_threads": 1,
}


@dataclass
class SplitFrames:
    """Train, validation and test rows of one temporal split."""

    train: pl.DataFrame
    validation: pl.DataFrame
    test: pl.DataFrame


class Predictor(Protocol):
    """Anything that scores a frame: baselines and trained models alike."""

    name: str
    params: dict[str, Any]

    def predict_score(self, frame: pl.DataFrame) -> np.ndarray:
        """Scores in the :mod:`mlplatform.core.metrics` convention (positive-class probability for binary)."""
        ...


def temporal_split(
    frame: pl.DataFrame,
    timestamp: str,
    validation_start: date,
    test_start: date,
    test_end: date | None = None,
) -> SplitFrames:
    """Split rows by their label date: train < validation_start <= validation < test_start <= test < test_end.

    Datetimes are compared by their calendar date, so a split boundary is always midnight. Rows on or after
    ``test_end`` are left out on purpose: they are the future the monitoring period judges.

    Raises:
        ValueError: the column is missing, not a date/datetime or has nulls, or a split would be empty.
    """
    if timestamp not in frame.columns:
        raise ValueError(f"timestamp column '{timestamp}' is not in the frame; columns: {frame.columns}")
    if frame.schema[timestamp] not in (pl.Date, pl.Datetime):
        raise ValueError(f"timestamp column '{timestamp}' is {frame.schema[timestamp]}; "
                         "cast it to Date or Datetime")
    if (nulls := frame[timestamp].null_count()) > 0:
        raise ValueError(f"timestamp column '{timestamp}' has {nulls} nulls; such rows belong to no split. "
                         "Quarantine or fix them before splitting.")
    if not validation_start < test_start or (test_end is not None and not test_start < test_end):
        raise ValueError(f"split dates must be ordered validation_start < test_start < test_end; got "
                         f"{validation_start}, {test_start}, {test_end}")
    day = pl.col(timestamp).cast(pl.Date)
    test_filter = day >= test_start if test_end is None else (day >= test_start) & (day < test_end)
    splits = SplitFrames(
        train=frame.filter(day < validation_start),
        validation=frame.filter((day >= validation_start) & (day < test_start)),
        test=frame.filter(test_filter),
    )
    for name in ("train", "validation", "test"):
        if getattr(splits, name).height == 0:
            raise ValueError(f"the {name} split is empty (train < {validation_start} <= validation < "
                             f"{test_start} <= test < {test_end}); move the split dates in the brief so that "
                             "every split has labelled rows.")
    return splits


def random_split(frame: pl.DataFrame, label: str, *, validation_fraction: float, test_fraction: float,
                 stratify_by_label: bool, seed: int) -> SplitFrames:
    """A seeded random split for data without time; with ``stratify_by_label`` every class keeps its share.

    Each row's part depends only on its position within its class and the seed, so the same table always
    splits the same way.

    Raises:
        ValueError: a part would be empty, or the label has nulls.
    """
    if (nulls := frame[label].null_count()) > 0:
        raise ValueError(f"label column '{label}' has {nulls} nulls; quarantine or fix them before splitting")
    groups = frame[label] if stratify_by_label else pl.Series([0] * frame.height)
    rng = np.random.default_rng(seed)
    part = np.empty(frame.height, dtype=np.int8)  # 0 train, 1 validation, 2 test
    for value in groups.unique(maintain_order=True):
        rows = np.flatnonzero((groups == value).to_numpy())
        rows = rows[rng.permutation(rows.size)]
        n_test, n_val = round(rows.size * test_fraction), round(rows.size * validation_fraction)
        part[rows[:n_test]], part[rows[n_test:n_test + n_val]], part[rows[n_test + n_val:]] = 2, 1, 0
    indexed = frame.with_columns(pl.Series("__part", part))
    splits = SplitFrames(*(indexed.filter(pl.col("__part") == i).drop("__part") for i in range(3)))
    for name in ("train", "validation", "test"):
        if getattr(splits, name).height == 0:
            raise ValueError(f"the {name} split is empty ({frame.height} labelled rows); it needs more rows or "
                             "larger split fractions in the brief")
    return splits


@dataclass
class ConstantPredictor:
    """The majority-class (classification) or mean (regression) baseline."""

    task: TaskType
    value: np.ndarray
    name: str = "majority"
    params: dict[str, Any] = field(default_factory=dict)

    def predict_score(self, frame: pl.DataFrame) -> np.ndarray:
        if self.task == "multiclass":
            return np.tile(self.value, (frame.height, 1))
        return np.full(frame.height, float(self.value))


def majority_baseline(task: TaskType, y_train: np.ndarray | pl.Series) -> ConstantPredictor:
    """The simplest honest baseline, fitted on the training labels only.

    Binary scores are the training positive rate: at threshold 0.5 that predicts the majority class, and the
    probability metrics (log loss, Brier) get the best constant. Multiclass scores are the class frequencies
    (argmax = majority class); regression predicts the mean.
    """
    y = np.asarray(y_train, dtype=float)
    if y.size == 0 or np.isnan(y).any():
        raise ValueError("majority_baseline needs a non-empty label array without nulls")
    if task == "multiclass":
        value = np.bincount(y.astype(int)) / y.size
        return ConstantPredictor(task, value, "majority", {"class_frequencies": value.round(6).tolist()})
    if task == "regression":
        return ConstantPredictor(task, np.array(y.mean()), "mean", {"mean": float(y.mean())})
    if task == "binary":
        return ConstantPredictor(task, np.array(y.mean()), "majority", {"positive_rate": float(y.mean())})
    raise ValueError(f"unknown task type '{task}'; expected binary, multiclass or regression")


@dataclass
class RulesPredictor:
    """The brief's heuristic: the first rule whose condition holds gives the score, otherwise 0."""

    rules: list[Rule]
    name: str = "rules"
    params: dict[str, Any] = field(default_factory=dict)

    def predict_score(self, frame: pl.DataFrame) -> np.ndarray:
        score = np.zeros(frame.height)
        decided = np.zeros(frame.height, dtype=bool)
        for number, rule in enumerate(self.rules, start=1):
            matches = _evaluate_rule(frame, number, rule)
            score[matches & ~decided] = rule.predict
            decided |= matches
        return score


def _parse_rule(number: int, rule: Rule) -> pl.Expr:
    try:
        return pl.sql_expr(rule.when)
    except Exception as exc:  # polars raises several SQL error types
        raise ValueError(f"rules_baseline rule {number} ('{rule.when}') is not a valid SQL condition: "
                         f"{exc}") from None


def _evaluate_rule(frame: pl.DataFrame, number: int, rule: Rule) -> np.ndarray:
    condition = _parse_rule(number, rule)
    try:
        result = frame.select(condition.alias("match")).to_series()
    except Exception as exc:  # unknown columns and type errors only show up on evaluation
        raise ValueError(f"rules_baseline rule {number} ('{rule.when}') cannot be evaluated: {exc}") from None
    if result.dtype != pl.Boolean:
        raise ValueError(f"rules_baseline rule {number} ('{rule.when}') gives {result.dtype}, not a boolean; "
                         "write a condition such as 'x >= 3'")
    # SQL semantics: a condition on a null value is unknown, which does not match.
    return result.fill_null(False).to_numpy()


def rules_baseline(rules: list[Rule]) -> RulesPredictor:
    """The brief's rules heuristic as a predictor; conditions are polars SQL over feature columns.

    Raises:
        ValueError: a rule does not parse; the message names the rule and the cause. Conditions that name
            unknown columns fail the same way when scored.
    """
    if not rules:
        raise ValueError("rules_baseline needs at least one rule")
    for number, rule in enumerate(rules, start=1):
        _parse_rule(number, rule)
    return RulesPredictor(list(rules), params={"rules": [r.model_dump() for r in rules]})


@dataclass
class TrainedModel:
    """A LightGBM booster plus what scoring needs: feature order, train-time category maps, threshold, and the
    model-side transforms fitted on the training split (applied to every frame scored, serving included)."""

    task: TaskType
    booster: "lgb.Booster"
    features: list[str]
    categories: dict[str, list[str]]
    best_iteration: int
    params: dict[str, Any]
    feature_importance: dict[str, float]
    threshold: float = 0.5
    name: str = LIGHTGBM.name
    transforms: FittedTransforms | None = None

    def predict_score(self, frame: pl.DataFrame) -> np.ndarray:
        if self.transforms is None:
            matrix = _design_matrix(frame, self.features, self.categories)
        else:
            matrix = _design_matrix(self.transforms.apply(frame), self.transforms.output_columns, self.categories)
        return self.predict_matrix(matrix)

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Scores of rows already encoded as the booster's design matrix (see ``predict_score``)."""
        # One thread: OpenMP's spin-waiting threads cost more than they save on serving-sized batches.
        return np.asarray(self.booster.predict(matrix, num_iteration=self.best_iteration, num_threads=1))


def _fit_categories(frame: pl.DataFrame, features: list[str]) -> dict[str, list[str]]:
    categories = {}
    for name in features:
        # A missing column is reported by _design_matrix, with every other missing one.
        if isinstance(frame.schema.get(name), _CATEGORICAL_DTYPES):
            values = frame[name].cast(pl.String).drop_nulls().unique().sort()
            categories[name] = values.to_list()
    return categories


def _design_matrix(frame: pl.DataFrame, features: list[str], categories: dict[str, list[str]]) -> np.ndarray:
    """Float matrix in ``features`` order; categoricals become codes of the train category set (else NaN)."""
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise ValueError(f"feature columns missing from the frame: {missing}")
    columns = []
    for name in features:
        dtype = frame.schema[name]
        if name in categories:
            codes = {value: float(code) for code, value in enumerate(categories[name])}
            as_text = pl.col(name).cast(pl.String)
            columns.append(as_text.replace_strict(codes, default=None, return_dtype=pl.Float64))
        elif dtype.is_numeric() or dtype in (pl.Boolean, pl.Null):  # Null: an all-missing column, e.g. one row
            columns.append(pl.col(name).cast(pl.Float64))
        else:
            raise ValueError(f"feature '{name}' has type {dtype}, which LightGBM cannot use; pass numeric or "
                             "string features (derive numbers from dates first)")
    # Nulls become NaN, LightGBM's missing value.
    return frame.select(columns).to_numpy().astype(np.float64)


def _labels(frame: pl.DataFrame, label: str, task: TaskType, split: str) -> np.ndarray:
    if label not in frame.columns:
        raise ValueError(f"label column '{label}' is not in the {split} frame")
    if (nulls := frame[label].null_count()) > 0:
        raise ValueError(f"label column '{label}' has {nulls} nulls in {split}; unlabelled rows cannot train")
    y = frame[label].cast(pl.Float64).to_numpy()
    if task == "binary" and not np.isin(y, (0.0, 1.0)).all():
        found = sorted(set(y.tolist()))[:10]
        raise ValueError(f"binary label '{label}' must be 0/1; found {found} in {split}")
    if task == "multiclass" and (np.any(y < 0) or np.any(y != np.round(y))):
        raise ValueError(f"multiclass label '{label}' must be class indices 0..k-1 in {split}")
    return y


def _objective(task: TaskType, y_train: np.ndarray) -> dict[str, Any]:
    if task == "binary":
        return {"objective": "binary", "metric": "binary_logloss"}
    if task == "multiclass":
        return {"objective": "multiclass", "metric": "multi_logloss", "num_class": int(y_train.max()) + 1}
    if task == "regression":
        return {"objective": "regression", "metric": "l2"}
    raise ValueError(f"unknown task type '{task}'; expected binary, multiclass or regression")


@dataclass
class ModelInputs:
    """Train and validation rows as the booster sees them: after the model-side transforms (if any)."""

    features: list[str]
    columns: list[str]
    train: pl.DataFrame
    validation: pl.DataFrame
    transforms: FittedTransforms | None

    def importance(self, gains: np.ndarray) -> dict[str, float]:
        """Gain per model input: the gains of its one-hot or encoded columns summed."""
        source = self.transforms.source_of if self.transforms else {name: name for name in self.features}
        importance = dict.fromkeys(self.features, 0.0)
        for column, gain in zip(self.columns, gains, strict=True):
            importance[source[column]] += float(gain)
        return importance


def fit_model_inputs(task: TaskType, train: pl.DataFrame, validation: pl.DataFrame, features: list[str], label: str,
                     transforms: Training | None) -> ModelInputs:
    """Fit the brief's model-side transforms on ``train`` alone and apply them to both frames; without
    ``transforms`` the frames and features pass through. Shared by the local and the distributed trainer, so
    both encode inputs the same way."""
    if transforms is None:
        return ModelInputs(list(features), list(features), train, validation, None)
    fitted, train_inputs = fit_transforms(train, features, label, task, transforms)
    return ModelInputs(list(features), fitted.output_columns, train_inputs, fitted.apply(validation), fitted)


def train_lightgbm(
    task: TaskType,
    train: pl.DataFrame,
    validation: pl.DataFrame,
    features: list[str],
    label: str,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    callbacks: "list[Callable[[lgb.callback.CallbackEnv], None]] | None" = None,
    transforms: Training | None = None,
    weights: np.ndarray | None = None,
) -> TrainedModel:
    """Train LightGBM with early stopping on the validation rows.

    With ``transforms`` (the brief's ``training`` section), the model-side transforms of
    :mod:`mlplatform.core.transforms` are fitted on ``train`` alone (target encodings out of fold) and kept
    in the model, which applies them to every frame it scores. String features left as they are (no
    ``transforms``, or ``raw``) are LightGBM categoricals whose category set comes from ``train`` only: a
    value first seen in validation or later scores as missing, exactly as it would in serving. Feature
    importance is reported per model input (the gains of its one-hot or encoded columns summed). For
    binary tasks the decision threshold is the F1-best one on validation.

    Args:
        task: the brief's task type.
        train: training rows (fits trees and category maps).
        validation: rows for early stopping and the threshold; never the test set.
        features: the model inputs, in order; other columns (keys, protected attributes) are ignored.
        label: the label column.
        params: LightGBM parameters (canonical names) overriding the defaults, e.g. from tuning.
        seed: makes training deterministic.
        callbacks: LightGBM callbacks run after each boosting round, e.g. tuning's pruning callback.
        transforms: the brief's ``training`` section (its ``transforms`` and categorical defaults); None fits
            no transforms.
        weights: a weight per training row (e.g. fairness reweighing); None weighs rows equally.
    """
    return fit_lightgbm_scored(task, train, validation, features, label, params, seed, callbacks, transforms,
                               weights)[0]


def fit_lightgbm_scored(
    task: TaskType,
    train: pl.DataFrame,
    validation: pl.DataFrame,
    features: list[str],
    label: str,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    callbacks: "list[Callable[[lgb.callback.CallbackEnv], None]] | None" = None,
    transforms: Training | None = None,
    weights: np.ndarray | None = None,
) -> tuple[TrainedModel, np.ndarray]:
    """:func:`train_lightgbm`, and the model's scores of ``validation`` (``predict_score``'s): the validation rows
    are encoded once, for early stopping, the threshold and these scores (tuning scores every trial on them)."""
    import lightgbm as lgb

    if not features:
        raise ValueError("train_lightgbm needs at least one feature")
    y_train = _labels(train, label, task, "train")
    y_valid = _labels(validation, label, task, "validation")
    inputs = fit_model_inputs(task, train, validation, features, label, transforms)
    columns = inputs.columns
    categories = _fit_categories(inputs.train, columns)
    full_params = {
        **_DEFAULT_PARAMS,
        **_objective(task, y_train),
        **(params or {}),
        "seed": seed,
        "deterministic": True,
        "force_col_wise": True,
        "verbosity": -1,
    }
    categorical = [columns.index(name) for name in categories]
    train_set = lgb.Dataset(_design_matrix(inputs.train, columns, categories), y_train, weight=weights,
                            feature_name=columns, categorical_feature=categorical, free_raw_data=True)
    # The matrix predict_score builds of validation: the same transforms applied, the same columns and categories.
    valid_matrix = _design_matrix(inputs.validation, columns, categories)
    valid_set = lgb.Dataset(valid_matrix, y_valid, reference=train_set)
    booster = lgb.train(full_params, train_set, valid_sets=[valid_set], valid_names=["validation"],
                        callbacks=callbacks)
    best = booster.best_iteration or booster.current_iteration()
    importance = inputs.importance(booster.feature_importance(importance_type="gain", iteration=best))
    model = TrainedModel(task, booster, list(features), categories, best, full_params, importance,
                         transforms=inputs.transforms)
    scores = model.predict_matrix(valid_matrix)
    if task == "binary":
        model.threshold = best_f1_threshold(y_valid, scores)
    return model, scores


def save_model(model: TrainedModel, directory: Path) -> Path:
    """Write the model as LightGBM text plus a JSON of features, categories and threshold, and its fitted
    transforms (if any) as ``transforms.json``: plain text only, no pickle. The folder is replaced all or
    nothing: a save that fails half-way leaves the previous model intact."""
    from mlplatform.core.atomic import write_model_folder

    return write_model_folder(directory, lambda folder: _write_model_files(model, folder))


def _write_model_files(model: TrainedModel, directory: Path) -> None:
    write_text_atomic(model.booster.model_to_string(num_iteration=model.best_iteration), directory / _MODEL_FILE)
    if model.transforms is not None:
        save_transforms(model.transforms, directory / _TRANSFORMS_FILE)
    meta = {
        "task": model.task,
        "name": model.name,
        "features": model.features,
        "categories": model.categories,
        "best_iteration": model.best_iteration,
        "threshold": model.threshold,
        "params": model.params,
        "feature_importance": model.feature_importance,
    }
    write_text_atomic(json.dumps(meta, indent=2), directory / _META_FILE)


def load_model(directory: Path) -> TrainedModel:
    """Read a model written by :func:`save_model`; a folder without ``transforms.json`` has no transforms.

    Raises:
        ValueError: the directory does not hold both files.
    """
    import lightgbm as lgb

    model_file, meta_file = directory / _MODEL_FILE, directory / _META_FILE
    if not model_file.is_file() or not meta_file.is_file():
        raise ValueError(f"{directory} is not a saved model: it needs {_MODEL_FILE} and {_META_FILE}")
    meta = json.loads(meta_file.read_text())
    booster = lgb.Booster(model_str=model_file.read_text())
    transforms_file = directory / _TRANSFORMS_FILE
    transforms = load_transforms(transforms_file) if transforms_file.is_file() else None
    return TrainedModel(meta["task"], booster, meta["features"], meta["categories"], meta["best_iteration"],
                        meta["params"], meta["feature_importance"], meta["threshold"], meta["name"], transforms)
