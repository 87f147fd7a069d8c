"""Stage: the training set and the candidates — baselines first, then LightGBM (method phases 1 and 3)."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as midnight
from typing import Any

import dagster as dg
import polars as pl

from mlplatform import asset_names
from mlplatform.brief import Brief
from mlplatform.core import tables
from mlplatform.core.datasets import (
    attach_attributes,
    attribute_keys,
    attributes_source,
    known_labels,
    model_features,
    training_row_counts,
    training_set_figures,
)
from mlplatform.core.feature_names import entity_column
from mlplatform.core.features import feature_columns
from mlplatform.core.markdown import table
from mlplatform.core.metrics import compute_metrics
from mlplatform.core.model_families import (
    LIGHTGBM,
    LIGHTGBM_REWEIGHED,
    LIGHTGBM_THRESHOLD_OPTIMIZER,
    MODEL_FAMILIES,
    TORCH,
    ModelFamily,
    candidates,
)
from mlplatform.core.pit_join import point_in_time_join
from mlplatform.core.readable import readable
from mlplatform.core.report import confusion_matrix_plot, importance_plot
from mlplatform.core.tracking import ExperimentRecord, file_dataset_version, log_experiment, log_tuning_trials
from mlplatform.core.training import (
    Predictor,
    SplitFrames,
    TrainedModel,
    majority_baseline,
    train_lightgbm,
)
from mlplatform.core.training import rules_baseline as rules_predictor
from mlplatform.resources.platform import PlatformResource, TrackingResource
from mlplatform.stage_io import load_champion, load_split

# DuckDB's memory for the point-in-time join (the rest spills to the namespace's duckdb_tmp): the feature table's
# deduplication window over every feature row would otherwise take up to 80% of the machine's memory.
PIT_JOIN_MEMORY = "1500MB"


@dg.asset(
    name=asset_names.TRAINING_SET,
    group_name="training",
    deps=[asset_names.FEATURE_STORE, asset_names.ONLINE_FEATURES],
    kinds={"duckdb", "parquet"},
)
def training_set(platform: PlatformResource) -> dg.MaterializeResult:
    """Every known label joined point-in-time with the registered features (an ASOF join with Feast's TTL
    and tie-break semantics), plus the protected attributes used for fairness slices. Every label row left out
    is counted with its reason (metadata ``row_counts``, and the lake table training/row_counts)."""
    b = platform.brief
    valid_labels = platform.read_table(tables.validated(b.label.source))
    as_of = datetime.combine(b.partition_end, midnight())
    labels = known_labels(valid_labels, entity_key=b.entity_key, timestamp=b.label.timestamp, label=b.label.column,
                          delay_days=b.label.delay_days, as_of=as_of, classes=b.label.classes)
    joined = _with_features(platform, labels)
    attributes = platform.read_table(tables.validated(attributes_source(b)))
    frame = attach_attributes(joined, attributes, attribute_keys(b), [*b.protected_attributes, *b.slice_by])
    path = platform.write_table(tables.TRAINING_SET, frame)
    counts = training_row_counts(b, frame, attributes, valid=valid_labels.height, known=labels.height, as_of=as_of,
                                 quarantined=platform.read_table(tables.quarantine(b.label.source)).height)
    platform.write_table(tables.ROW_COUNTS, counts)
    return dg.MaterializeResult(metadata=readable({
        "dagster/row_count": frame.height, "row_counts": dg.MetadataValue.md(table(counts)),
        **{f"rows_{stage}": rows for stage, rows in counts.select("stage", "rows").iter_rows()},
        "dataset_version": file_dataset_version(path, frame), **training_set_figures(b, frame),
        "path": dg.MetadataValue.path(str(path))}))


def _with_features(platform: PlatformResource, labels: pl.DataFrame) -> pl.DataFrame:
    """The label rows with the registered features as of each label's time, read from the lake's feature table."""
    b = platform.brief
    # Our DuckDB ASOF join, equal value for value to Feast's get_historical_features (tested), ~10x faster.
    return point_in_time_join(
        labels, platform.workspace.table(tables.features(b.entity)),
        entity_key=b.entity_key, entity_timestamp=b.label.timestamp,
        features=list(feature_columns(b.features, b.entity)), ttl=timedelta(days=b.features.ttl_days),
        temp_directory=platform.workspace.root / "duckdb_tmp", memory_limit=PIT_JOIN_MEMORY)


def _baseline_comparison(brief: Brief, split, value: float) -> str:
    """The candidate's validation primary metric against both baselines', as the record's delta."""
    label, primary = brief.label.column, brief.metrics.primary
    baselines: dict[str, tuple[Predictor, float]] = {
        "rules": (rules_predictor(brief.rules_baseline), 0.5),
        "majority": (majority_baseline(brief.task_type, split.train[label].to_numpy()), 0.5)}
    parts = []
    for name, (baseline, threshold) in baselines.items():
        reference = compute_metrics(brief.task_type, split.validation[label].to_numpy(),
                                    baseline.predict_score(split.validation), threshold)[primary]
        parts.append(f"{name} {reference:.4f} (delta {value - reference:+.4f})")
    return f"validation {primary} {value:.4f} vs " + ", ".join(parts)


def _record_candidate(context: dg.AssetExecutionContext, platform: PlatformResource, tracking: TrackingResource, *,
                      name: str, predictor, threshold: float, hyperparameters: dict, training_time_s: float,
                      model_dir=None, notes: str = "", tags: dict[str, str] | None = None) -> dict:
    """Score a candidate on validation and test, log the method's experiment record (``tags`` added to the run's),
    return its summary."""
    b = platform.brief
    split = load_split(platform)
    label = b.label.column
    scores = {"validation": predictor.predict_score(split.validation), "test": predictor.predict_score(split.test)}
    metrics = {
        part: compute_metrics(b.task_type, frame[label].to_numpy(), scores[part], threshold)
        for part, frame in (("validation", split.validation), ("test", split.test))
    }
    artifacts = {}
    if name in candidates(b):  # the record's plots: what a reviewer opens first in the MLflow UI
        plots = platform.workspace.reports_dir / "training"
        if b.task_type == "binary":
            artifacts["confusion_matrix"] = str(confusion_matrix_plot(
                split.validation[label].to_numpy(), scores["validation"] >= threshold,
                plots / f"{name}_confusion_matrix.png", title=f"{name} on validation"))
        if getattr(predictor, "feature_importance", None):
            artifacts["feature_importance"] = str(importance_plot(predictor.feature_importance,
                                                                  plots / f"{name}_feature_importance.png"))
    primary = b.metrics.primary
    version = file_dataset_version(platform.workspace.table(tables.TRAINING_SET))
    record = ExperimentRecord(
        hypothesis=b.hypothesis if name in candidates(b) else f"{name} baseline: the bar every model must clear",
        dataset_version=version,
        features_used=model_features(b),
        model_type=name,
        hyperparameters={**hyperparameters, "threshold": threshold},
        training_time_s=training_time_s,
        primary_metric={primary: metrics["validation"][primary]},
        secondary_metrics={k: v for k, v in metrics["validation"].items() if k != primary},
        baseline_comparison=(_baseline_comparison(b, split, metrics["validation"][primary]) if name in candidates(b)
                             else "this is a baseline"),
        verdict="iterate",  # until the promotion gate decides
        notes=notes,
        artifacts=artifacts,
    )
    run_id = log_experiment(tracking.uri, tracking.artifact_dir, b.name, record, model_dir,
                            tags={"dagster_run_id": context.run.run_id, **(tags or {})})
    summary = pl.DataFrame([{"candidate": name, "split": part, "run_id": run_id, "threshold": threshold,
                             "dataset_version": version, **m}
                            for part, m in metrics.items()])
    platform.write_table(tables.candidate(name), summary)
    return {"run_id": run_id, "validation": metrics["validation"], "threshold": threshold,
            "baseline_comparison": record.baseline_comparison,
            "mlflow_artifacts": str(tracking.artifact_dir / run_id / "artifacts")}


def _metadata(result: dict, primary: str) -> dict:
    return {
        "run_id": result["run_id"],
        "baseline_comparison": result["baseline_comparison"],
        "mlflow_artifacts": dg.MetadataValue.path(result["mlflow_artifacts"]),
        f"validation_{primary}": result["validation"][primary],
        "validation_metrics": dg.MetadataValue.json(result["validation"]),
        "threshold": result["threshold"],
    }


@dg.asset(name=asset_names.BASELINE_MODEL, group_name="training", deps=[asset_names.TRAINING_SET], kinds={"mlflow"})
def baseline_model(context: dg.AssetExecutionContext, platform: PlatformResource,
                   tracking: TrackingResource) -> dg.MaterializeResult:
    """The simplest predictor: the majority class (or the mean). Every model must beat it."""
    b = platform.brief
    split = load_split(platform)
    predictor = majority_baseline(b.task_type, split.train[b.label.column].to_numpy())
    result = _record_candidate(context, platform, tracking, name="majority", predictor=predictor, threshold=0.5,
                               hyperparameters={}, training_time_s=0.0)
    return dg.MaterializeResult(metadata=readable(_metadata(result, b.metrics.primary)))


@dg.asset(name=asset_names.RULES_BASELINE, group_name="training", deps=[asset_names.TRAINING_SET], kinds={"mlflow"})
def rules_baseline(context: dg.AssetExecutionContext, platform: PlatformResource,
                   tracking: TrackingResource) -> dg.MaterializeResult:
    """The brief's heuristic (first matching rule wins): what the business does without ML."""
    b = platform.brief
    predictor = rules_predictor(b.rules_baseline)
    result = _record_candidate(context, platform, tracking, name="rules", predictor=predictor, threshold=0.5,
                               hyperparameters={"rules": [r.model_dump() for r in b.rules_baseline]},
                               training_time_s=0.0)
    return dg.MaterializeResult(metadata=readable({**_metadata(result, b.metrics.primary),
                                                   "rules": [r.when for r in b.rules_baseline]}))


def fit_lightgbm(brief: Brief, split: SplitFrames, params: dict | None,
                 best_iteration: int | None) -> tuple[TrainedModel, dict[str, str]]:
    """The LightGBM candidate's final fit, in this process or, with ``training.distributed``, on a Dask cluster;
    returns the model and the engine tags of its experiment record.

    A Dask fit has no early stopping: after tuning it trains the rounds local early stopping would have trained
    for the best trial, untuned the default round budget; either way the best validation prefix is kept.
    """
    settings, features = brief.training, model_features(brief)
    if settings.distributed is None:
        model = train_lightgbm(brief.task_type, split.train, split.validation, features, brief.label.column,
                               params=params, seed=settings.seed, transforms=settings)
        return model, {"training_engine": "local"}
    # Dask and distributed take seconds to import: only a distributed fit pays for them.
    from mlplatform.core.distributed import dask_scheduler, rounds_after_tuning, train_lightgbm_on_cluster

    rounds = {} if best_iteration is None else {"num_iterations": rounds_after_tuning(best_iteration)}
    with dask_scheduler(settings.distributed) as address:
        fit = train_lightgbm_on_cluster(address, brief.task_type, split.train, split.validation, features,
                                        brief.label.column, params={**(params or {}), **rounds}, seed=settings.seed,
                                        transforms=settings, connect_timeout_s=settings.distributed.connect_timeout_s)
    return fit.model, {"training_engine": "dask", "dask_scheduler": settings.distributed.scheduler,
                       "dask_workers": str(fit.workers)}


def _production_params(context: dg.AssetExecutionContext, platform: PlatformResource,
                       tracking: TrackingResource) -> tuple[dict, str] | None:
    """The production LightGBM's tuned hyperparameters and a note, when this run retrains (a trigger tag other
    than the schedule) and the brief does not ask to re-tune (monitoring.retrain_tuning); else None (tune)."""
    from mlplatform.core.tracking import get_alias_version
    from mlplatform.core.tuning import SEARCH_PARAMS

    trigger = context.run.tags.get("mlplatform/trigger")
    if trigger in (None, "scheduled") or platform.brief.monitoring.retrain_tuning:
        return None
    version = get_alias_version(tracking.uri, tracking.model_name, "champion")
    if version is None:
        return None
    _, champion = load_champion(platform, tracking)
    params = {k: v for k, v in (getattr(champion, "params", None) or {}).items() if k in SEARCH_PARAMS}
    if not params:  # a torch or rules champion has no LightGBM hyperparameters to keep
        return None
    return params, f"the production model's hyperparameters (version {version}; {trigger} retrain, no tuning)"


def _lightgbm_params(context: dg.AssetExecutionContext, platform: PlatformResource, tracking: TrackingResource,
                     split: SplitFrames):
    """The final fit's hyperparameters, best iteration (None: early stopping decides), a note, and the tuning
    result when this run tuned: a retrain keeps the production model's (the method), else Optuna searches when
    the brief gives it trials, else LightGBM's defaults."""
    from mlplatform.core.tuning import tune_for_brief, tuning_note

    b = platform.brief
    production = _production_params(context, platform, tracking)
    if production is not None:
        params, note = production
        return params, None, note, None
    if not b.training.tuning_trials:
        return None, None, "untuned defaults (training.tuning_trials is 0)", None
    tuned = tune_for_brief(b, split, platform.workspace.root / "optuna" / "optuna.db")
    return tuned.best_params, tuned.best_iteration, tuning_note(tuned, b.metrics.primary), tuned


@dataclass
class Fitted:
    """What a family's fit hands its candidate asset: the model, how long the fit took, what the experiment record
    says about it, and the metadata the asset adds after the record's (the model folder comes last)."""

    model: Any
    training_time_s: float
    notes: str
    metadata: dict
    tags: dict[str, str] | None = None
    after_record: Callable[[dict], None] | None = None  # called with the record's summary (its run id)


Fit = Callable[[dg.AssetExecutionContext, PlatformResource, TrackingResource, SplitFrames], Fitted]


def _fit_lightgbm(context: dg.AssetExecutionContext, platform: PlatformResource, tracking: TrackingResource,
                  split: SplitFrames) -> Fitted:
    """LightGBM tuned with Optuna (TPE, pruning; the study resumes from SQLite) over the method's search space,
    then refitted with the best parameters (on a Dask cluster when the brief sets ``training.distributed``);
    early stopping and the decision threshold use validation only. Logged to MLflow with the method's experiment
    record and the training engine."""
    from mlplatform.core.tuning import SEARCH_PARAMS

    b = platform.brief
    started = time.perf_counter()
    params, best_iteration, note, tuned = _lightgbm_params(context, platform, tracking, split)
    model, engine = fit_lightgbm(b, split, params, best_iteration)
    elapsed = time.perf_counter() - started

    def log_trials(result: dict) -> None:  # each trial of this run as a child of the candidate's run
        if tuned is not None:
            log_tuning_trials(tracking.uri, result["run_id"], tuned.new_trials, b.metrics.primary, SEARCH_PARAMS)

    return Fitted(model, elapsed, f"best iteration {model.best_iteration}; {note}",
                  {"training_time_s": round(elapsed, 2), "tuning": note, **engine, "train_rows": split.train.height,
                   "best_iteration": model.best_iteration}, tags=engine, after_record=log_trials)


def _fit_torch(context: dg.AssetExecutionContext, platform: PlatformResource, tracking: TrackingResource,
               split: SplitFrames) -> Fitted:
    """A tabular network (MLP with categorical embeddings) on the same features: CUDA with bf16 when present,
    else CPU, same code; standardisation and vocabularies fitted on train; weights saved as safetensors."""
    from mlplatform.core.torch_model import train_torch  # torch loads only for this step

    b = platform.brief
    started = time.perf_counter()
    model = train_torch(b.task_type, split.train, split.validation, model_features(b), b.label.column,
                        params=dict(b.training.torch_params) or None, seed=b.training.seed)
    elapsed = time.perf_counter() - started
    return Fitted(model, elapsed, f"device {model.info['device']}, {model.info['samples_per_s']:.0f} samples/s",
                  {"training_time_s": round(elapsed, 2), "device": str(model.info["device"]),
                   "samples_per_s": float(model.info["samples_per_s"])})


def _protected_columns(brief: Brief, frame: pl.DataFrame) -> list[str]:
    """Where each protected attribute is read when scoring: its served feature column when the brief serves it
    (an entity attribute), else the attribute the training set carries for fairness."""
    return [entity_column(brief.entity, a) if entity_column(brief.entity, a) in frame.columns else a
            for a in brief.protected_attributes]


def _fit_reweighed(context: dg.AssetExecutionContext, platform: PlatformResource, tracking: TrackingResource,
                   split: SplitFrames) -> Fitted:
    """Fairness mitigation before training (the brief's ``fairness.mitigation: [reweigh]``): LightGBM with the
    tuned candidate's parameters, trained on rows reweighed (Kamiran-Calders) so that the label is independent of
    the protected groups. The attribute stays out of the model inputs."""
    from mlplatform.core.fairness import group_key, reweighing_weights

    b = platform.brief
    tuned = LIGHTGBM.load(LIGHTGBM.directory(platform.workspace.models_dir))
    started = time.perf_counter()
    weights = reweighing_weights(group_key(split.train, list(b.protected_attributes)),
                                 split.train[b.label.column].to_numpy())
    model = train_lightgbm(b.task_type, split.train, split.validation, model_features(b), b.label.column,
                           params=tuned.params, seed=b.training.seed, transforms=b.training, weights=weights)
    model.name = LIGHTGBM_REWEIGHED.name
    elapsed = time.perf_counter() - started
    return Fitted(model, elapsed, "fairness mitigation: reweighing by "
                  f"{b.protected_attributes} (weights {weights.min():.3f}..{weights.max():.3f})",
                  {"training_time_s": round(elapsed, 2)}, tags={"fairness_mitigation": "reweigh"})


def _fit_group_thresholds(context: dg.AssetExecutionContext, platform: PlatformResource, tracking: TrackingResource,
                          split: SplitFrames) -> Fitted:
    """Fairness mitigation after training (the brief's ``fairness.mitigation: [threshold_optimizer]``): the tuned
    LightGBM with per-group thresholds fitted by fairlearn's ThresholdOptimizer on validation under
    ``fairness.threshold_constraint``. Scoring reads the protected attribute, so serving must receive it."""
    from mlplatform.core.fairness import GroupThresholdModel, fit_group_thresholds, group_key

    b = platform.brief
    base = LIGHTGBM.load(LIGHTGBM.directory(platform.workspace.models_dir))
    started = time.perf_counter()
    columns = _protected_columns(b, split.validation)
    groups = fit_group_thresholds(base.predict_score(split.validation), split.validation[b.label.column].to_numpy(),
                                  group_key(split.validation, columns), columns=columns, default=base.threshold,
                                  constraint=b.fairness.threshold_constraint, seed=b.training.seed)
    model = GroupThresholdModel(base, groups, LIGHTGBM_THRESHOLD_OPTIMIZER.name)
    elapsed = time.perf_counter() - started
    return Fitted(model, elapsed, f"fairness mitigation: ThresholdOptimizer ({groups.constraint}) on {columns}",
                  {"group_thresholds": dg.MetadataValue.json(groups.thresholds)},
                  tags={"fairness_mitigation": "threshold_optimizer"})


# Each model family's fit; the registry (mlplatform.core.model_families) holds the rest of what a family is.
FITS: dict[str, Fit] = {LIGHTGBM.name: _fit_lightgbm, TORCH.name: _fit_torch,
                        LIGHTGBM_REWEIGHED.name: _fit_reweighed,
                        LIGHTGBM_THRESHOLD_OPTIMIZER.name: _fit_group_thresholds}


def candidate_asset(family: ModelFamily) -> dg.AssetsDefinition:
    """The asset that trains ``family``'s candidate: its fit on the split, saved to the family's folder, scored on
    validation and test and logged with the method's experiment record. Described by the fit's docstring."""
    fit = FITS[family.name]

    def train(context: dg.AssetExecutionContext, platform: PlatformResource,
              tracking: TrackingResource) -> dg.MaterializeResult:
        b = platform.brief
        fitted = fit(context, platform, tracking, load_split(platform))
        model_dir = family.save(fitted.model, family.directory(platform.workspace.models_dir))
        result = _record_candidate(context, platform, tracking, name=family.name, predictor=fitted.model,
                                   threshold=fitted.model.threshold, hyperparameters=fitted.model.params,
                                   training_time_s=fitted.training_time_s, model_dir=model_dir, notes=fitted.notes,
                                   tags=fitted.tags)
        if fitted.after_record is not None:
            fitted.after_record(result)
        return dg.MaterializeResult(metadata=readable({**_metadata(result, b.metrics.primary), **fitted.metadata,
                                                       "model_dir": dg.MetadataValue.path(str(model_dir))}))

    train.__doc__ = fit.__doc__
    return dg.asset(name=family.asset, group_name="training", deps=[family.starts_from],
                    kinds=set(family.kinds))(train)


# One candidate asset per model family, generated from the registry.
CANDIDATES = {family.name: candidate_asset(family) for family in MODEL_FAMILIES}


def build(brief: Brief) -> list:
    return [training_set, baseline_model, rules_baseline, *(CANDIDATES[name] for name in candidates(brief))]
