"""Stage checks: the method's 8-item leakage checklist (method phase 2, "数据泄露预防检查清单").

Items about the data (1, 4, 5, 6, 7) are blocking checks on ``training_set``: failing one means no model may
be trained on it. Items about fitted transforms (2, 3, 8) need the trained model, so they are blocking checks
on every candidate's asset (``lgbm_model``, ``torch_model``...): failing one stops a model that saw held-out
data from being evaluated or promoted, whichever candidate becomes the challenger.
"""

from collections.abc import Callable
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

import dagster as dg
import polars as pl

from mlplatform import asset_names
from mlplatform.brief import Brief
from mlplatform.core import tables
from mlplatform.core.datasets import model_features
from mlplatform.core.features import feature_columns
from mlplatform.core.leakage import (
    ITEMS,
    FittedTransform,
    LeakageFinding,
    category_levels,
    check_hold_out_untouched,
    check_no_duplicates_across_splits,
    check_no_future_information,
    check_no_target_derived_feature,
    check_scaler_train_only,
    check_split_before_fitting,
    check_target_encoding_train_only,
    check_temporal_split,
)
from mlplatform.core.model_families import CANDIDATE_ASSETS, candidates, model_dir
from mlplatform.core.models import load_candidate
from mlplatform.core.readable import readable
from mlplatform.core.training import TrainedModel
from mlplatform.resources.platform import PlatformResource
from mlplatform.stage_io import load_split

if TYPE_CHECKING:  # torch is heavy: imported only where a torch candidate is checked
    from mlplatform.core.torch_model import TorchModel


def _result(finding: LeakageFinding) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=finding.passed, description=finding.detail, metadata=readable(finding.evidence),
                               severity=dg.AssetCheckSeverity.ERROR)


def _describe(item: str, how: str) -> str:
    return f"Leakage checklist: {ITEMS[item]} {how}"


@dg.asset_check(asset=asset_names.TRAINING_SET, name="leakage_no_future_information", blocking=True,
                description=_describe("no_future_information", "Redoes the point-in-time join on the feature "
                                      "table for sampled rows: each feature value must be that of the latest "
                                      "feature row at or before the label time, never a later row's."))
def no_future_information(platform: PlatformResource) -> dg.AssetCheckResult:
    b = platform.brief
    training = platform.read_table(tables.TRAINING_SET)
    features = [f for f in feature_columns(b.features, b.entity) if f in training.columns]
    finding = check_no_future_information(
        training, platform.scan_table(tables.features(b.entity)), entity_key=b.entity_key,
        label_time=b.label.timestamp, features=features, ttl_days=b.features.ttl_days)
    return _result(finding)


@dg.asset_check(asset=asset_names.TRAINING_SET, name="leakage_no_target_derived_feature", blocking=True,
                description=_describe("no_target_derived_feature", "Each model input alone, fitted on train, must "
                                      "not reach a hold-out ROC-AUC / R² above the brief's "
                                      "thresholds.leakage_max_single_feature_score, unless the brief declares it "
                                      "legitimate with a reason (leakage.allowed_predictive_features: shown as "
                                      "WAIVED)."))
def no_target_derived_feature(platform: PlatformResource) -> dg.AssetCheckResult:
    b = platform.brief
    split = load_split(platform)
    features = model_features(b)
    return _result(check_no_target_derived_feature(
        split.train, split.test, features=features, label=b.label.column, task=b.task_type,
        threshold=b.thresholds.leakage_max_single_feature_score, allowed=b.leakage.allowed(features, b.entity)))


@dg.asset_check(asset=asset_names.TRAINING_SET, name="leakage_temporal_split", blocking=True,
                description=_describe("temporal_split", "Train, validation and test label times must be "
                                      "consecutive, non-overlapping periods."))
def temporal_split_check(platform: PlatformResource) -> dg.AssetCheckResult:
    b = platform.brief
    return _result(check_temporal_split(load_split(platform), b.label.timestamp, timed=b.has_time))


@dg.asset_check(asset=asset_names.TRAINING_SET, name="leakage_hold_out_untouched", blocking=True,
                description=_describe("hold_out_untouched", "Early stopping and the threshold use validation; "
                                      "the test split must share no row with train or validation and start "
                                      "after both."))
def hold_out_untouched(platform: PlatformResource) -> dg.AssetCheckResult:
    b = platform.brief
    return _result(check_hold_out_untouched(load_split(platform), entity_key=b.entity_key,
                                            timestamp=b.label.timestamp, timed=b.has_time))


@dg.asset_check(asset=asset_names.TRAINING_SET, name="leakage_no_duplicates_across_splits", blocking=True,
                description=_describe("no_duplicates_across_splits", "No exact duplicate rows and no (entity, "
                                      "label time) in two splits; entities seen in train and test at other "
                                      "times are reported."))
def no_duplicates_across_splits(platform: PlatformResource) -> dg.AssetCheckResult:
    b = platform.brief
    return _result(check_no_duplicates_across_splits(load_split(platform), entity_key=b.entity_key,
                                                     timestamp=b.label.timestamp))


def _lightgbm_transforms(model: TrainedModel) -> list[FittedTransform]:
    """LightGBM's native categorical levels, then each fitted step of the model-side transforms
    (:mod:`mlplatform.core.transforms`): standardisation (a scaler, item 8), target encoding (item 3), one-hot
    levels and quantile-bin edges (item 2 covers all of them)."""
    found = []
    if model.categories:
        columns = list(model.categories)
        found.append(FittedTransform("lightgbm categorical levels", "category_levels", dict(model.categories),
                                     lambda frame: category_levels(frame, columns)))
    if model.transforms is not None:
        found += [FittedTransform(name, kind, stored, fit) for name, kind, stored, fit in
                  model.transforms.statistics()]
    return found


def _torch_transforms(model: "TorchModel", label: str | None) -> list[FittedTransform]:
    """The torch network's preprocessing: imputation medians and missing flags, standardisation (a scaler, item
    8), category vocabularies and, for regression with ``label`` given, the target's standardisation."""
    from mlplatform.core.torch_model import fit_preprocessing  # torch is heavy: only for a torch candidate

    prep, min_count = model.preprocessing, int(model.params["min_category_count"])

    def part(*names: str) -> Callable[[pl.DataFrame], dict[str, Any]]:
        def refit(frame: pl.DataFrame) -> dict[str, Any]:
            fitted = asdict(fit_preprocessing(frame, model.features, min_count))
            return {name: fitted[name] for name in names}
        return refit

    stored = asdict(prep)
    found = [FittedTransform("torch imputation", "other", {k: stored[k] for k in ("medians", "indicators")},
                             part("medians", "indicators")),
             FittedTransform("torch standardize", "scaler", {k: stored[k] for k in ("means", "stds")},
                             part("means", "stds"))]
    if prep.categories:
        found.append(FittedTransform("torch category vocabularies", "category_levels",
                                     {"categories": stored["categories"]}, part("categories")))
    if model.task == "regression" and label is not None:
        def target(frame: pl.DataFrame) -> dict[str, Any]:
            y = frame[label].cast(pl.Float64).to_numpy()
            return {"target_mean": float(y.mean()), "target_std": float(y.std()) or 1.0}
        found.append(FittedTransform("torch target standardize", "scaler",
                                     {"target_mean": prep.target_mean, "target_std": prep.target_std}, target))
    return found


def fitted_transforms(model: Any, label: str | None = None) -> list[FittedTransform]:
    """Every transform a saved candidate fitted on data, with the function that refits it from a frame.

    Args:
        model: a loaded candidate (:func:`mlplatform.core.models.load_candidate`): LightGBM or the torch network.
        label: the label column; a regression network's target scaling is checked when given.

    Raises:
        TypeError: a model of another kind, whose fitted statistics this does not know how to read.
    """
    if isinstance(model, TrainedModel):
        return _lightgbm_transforms(model)
    from mlplatform.core.fairness import GroupThresholdModel

    if isinstance(model, GroupThresholdModel):  # its transforms are its base LightGBM's (the per-group thresholds
        return _lightgbm_transforms(model.base)  # are fitted on validation by design, never on the hold-out)
    from mlplatform.core.torch_model import TorchModel

    if isinstance(model, TorchModel):
        return _torch_transforms(model, label)
    raise TypeError(f"no leakage check knows the fitted transforms of a {type(model).__name__}; add it to "
                    "mlplatform.defs.leakage.fitted_transforms")


# Items about fitted transforms: the check and what it verifies.
TRANSFORM_CHECKS: dict[str, tuple[Callable[..., LeakageFinding], str]] = {
    "split_before_fitting": (check_split_before_fitting, "Every transform the saved model fitted (categorical "
                             "levels, imputers, scalers, target encodings, bin edges) must reproduce exactly from "
                             "the training split alone."),
    "target_encoding_train_only": (check_target_encoding_train_only, "Target-encoding statistics must reproduce "
                                   "from the training split alone; not applicable without a target encoder."),
    "scaler_train_only": (check_scaler_train_only, "Scaler statistics must reproduce from the training split "
                          "alone; not applicable without a scaler."),
}


def _transform_check(asset: str, candidate: str, item: str) -> dg.AssetChecksDefinition:
    """Item ``item`` as a blocking check on one candidate's asset: its saved model's fitted transforms refitted
    on the train split, compared with a refit on all rows."""
    check, how = TRANSFORM_CHECKS[item]

    @dg.asset_check(asset=asset, name=f"leakage_{item}", blocking=True, description=_describe(item, how))
    def transform_check(platform: PlatformResource) -> dg.AssetCheckResult:
        folder = model_dir(platform.workspace.models_dir, candidate)
        transforms = fitted_transforms(load_candidate(folder), platform.brief.label.column)
        finding = check(transforms, load_split(platform).train, platform.read_table(tables.TRAINING_SET))
        return _result(replace(finding, evidence={**finding.evidence, "model_dir": str(folder)}))

    return transform_check


def model_checks(brief: Brief) -> list[dg.AssetChecksDefinition]:
    """Items 2, 3 and 8 on every candidate the brief trains, so whichever becomes the challenger was checked."""
    return [_transform_check(CANDIDATE_ASSETS[name], name, item)
            for name in candidates(brief) for item in TRANSFORM_CHECKS]


def build(brief: Brief) -> list:
    return [no_future_information, no_target_derived_feature, temporal_split_check, hold_out_untouched,
            no_duplicates_across_splits, *model_checks(brief)]
