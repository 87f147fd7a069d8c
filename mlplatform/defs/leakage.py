"""Stage checks: the seed's 8-item leakage checklist (seed phase 2, "数据泄露预防检查清单").

Items about the data (1, 4, 5, 6, 7) are blocking checks on ``training_set``: failing one means no model may
be trained on it. Items about fitted transforms (2, 3, 8) need the trained model, so they are blocking checks
on ``lgbm_model``: failing one stops a model that saw held-out data from being evaluated or promoted.
"""

from collections.abc import Callable
from dataclasses import replace

import dagster as dg

from mlplatform.brief import Brief
from mlplatform.core.feature_store import feature_view_name
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
from mlplatform.core.training import TrainedModel, load_model
from mlplatform.defs.training import load_split, model_features
from mlplatform.resources.platform import PlatformResource


def _result(finding: LeakageFinding) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=finding.passed, description=finding.detail, metadata=finding.evidence,
                               severity=dg.AssetCheckSeverity.ERROR)


def _describe(item: str, how: str) -> str:
    return f"Leakage checklist: {ITEMS[item]} {how}"


@dg.asset_check(asset="training_set", name="leakage_no_future_information", blocking=True,
                description=_describe("no_future_information", "Redoes the point-in-time join on the feature "
                                      "table for sampled rows: each feature value must be that of the latest "
                                      "feature row at or before the label time, never a later row's."))
def no_future_information(platform: PlatformResource) -> dg.AssetCheckResult:
    b = platform.brief
    training = platform.read_table("training", "training_set")
    features = [f for f in feature_columns(b.features, b.entity) if f in training.columns]
    finding = check_no_future_information(
        training, platform.read_table("features", feature_view_name(b.entity)), entity_key=b.entity_key,
        label_time=b.label.timestamp, features=features, ttl_days=b.features.ttl_days)
    return _result(finding)


@dg.asset_check(asset="training_set", name="leakage_no_target_derived_feature", blocking=True,
                description=_describe("no_target_derived_feature", "Each model input alone, fitted on train, must "
                                      "not reach a hold-out ROC-AUC / R² above the brief's "
                                      "thresholds.leakage_max_single_feature_score."))
def no_target_derived_feature(platform: PlatformResource) -> dg.AssetCheckResult:
    b = platform.brief
    split = load_split(platform)
    return _result(check_no_target_derived_feature(
        split.train, split.test, features=model_features(b), label=b.label.column, task=b.task_type,
        threshold=b.thresholds.leakage_max_single_feature_score))


@dg.asset_check(asset="training_set", name="leakage_temporal_split", blocking=True,
                description=_describe("temporal_split", "Train, validation and test label times must be "
                                      "consecutive, non-overlapping periods."))
def temporal_split_check(platform: PlatformResource) -> dg.AssetCheckResult:
    b = platform.brief
    return _result(check_temporal_split(load_split(platform), b.label.timestamp, timed=b.has_time))


@dg.asset_check(asset="training_set", name="leakage_hold_out_untouched", blocking=True,
                description=_describe("hold_out_untouched", "Early stopping and the threshold use validation; "
                                      "the test split must share no row with train or validation and start "
                                      "after both."))
def hold_out_untouched(platform: PlatformResource) -> dg.AssetCheckResult:
    b = platform.brief
    return _result(check_hold_out_untouched(load_split(platform), entity_key=b.entity_key,
                                            timestamp=b.label.timestamp, timed=b.has_time))


@dg.asset_check(asset="training_set", name="leakage_no_duplicates_across_splits", blocking=True,
                description=_describe("no_duplicates_across_splits", "No exact duplicate rows and no (entity, "
                                      "label time) in two splits; entities seen in train and test at other "
                                      "times are reported."))
def no_duplicates_across_splits(platform: PlatformResource) -> dg.AssetCheckResult:
    b = platform.brief
    return _result(check_no_duplicates_across_splits(load_split(platform), entity_key=b.entity_key,
                                                     timestamp=b.label.timestamp))


def fitted_transforms(model: TrainedModel) -> list[FittedTransform]:
    """Every transform the saved model fitted on data, with the function that refits it from a frame.

    LightGBM's native categorical levels, then each fitted step of the model-side transforms
    (:mod:`mlplatform.core.transforms`): standardisation (a scaler, item 8), target encoding (item 3),
    one-hot levels and quantile-bin edges (item 2 covers all of them).
    """
    found = []
    if model.categories:
        columns = list(model.categories)
        found.append(FittedTransform("lightgbm categorical levels", "category_levels", dict(model.categories),
                                     lambda frame: category_levels(frame, columns)))
    if model.transforms is not None:
        found += [FittedTransform(name, kind, stored, fit) for name, kind, stored, fit in
                  model.transforms.statistics()]
    return found


def _transform_check(platform: PlatformResource, check: Callable[..., LeakageFinding]) -> dg.AssetCheckResult:
    """Run a fitted-transform check on the saved model's transforms, against the train split and all rows."""
    model_dir = platform.workspace.models_dir / "lightgbm"
    finding = check(fitted_transforms(load_model(model_dir)), load_split(platform).train,
                    platform.read_table("training", "training_set"))
    return _result(replace(finding, evidence={**finding.evidence, "model_dir": str(model_dir)}))


@dg.asset_check(asset="lgbm_model", name="leakage_split_before_fitting", blocking=True,
                description=_describe("split_before_fitting", "Every transform the saved model fitted (categorical "
                                      "levels, scalers, target encodings, bin edges) must reproduce exactly from "
                                      "the training split alone."))
def split_before_fitting(platform: PlatformResource) -> dg.AssetCheckResult:
    return _transform_check(platform, check_split_before_fitting)


@dg.asset_check(asset="lgbm_model", name="leakage_target_encoding_train_only", blocking=True,
                description=_describe("target_encoding_train_only", "Target-encoding statistics must reproduce "
                                      "from the training split alone; not applicable without a target encoder."))
def target_encoding_train_only(platform: PlatformResource) -> dg.AssetCheckResult:
    return _transform_check(platform, check_target_encoding_train_only)


@dg.asset_check(asset="lgbm_model", name="leakage_scaler_train_only", blocking=True,
                description=_describe("scaler_train_only", "Scaler statistics must reproduce from the training "
                                      "split alone; not applicable without a scaler."))
def scaler_train_only(platform: PlatformResource) -> dg.AssetCheckResult:
    return _transform_check(platform, check_scaler_train_only)


def build(brief: Brief) -> list:
    return [no_future_information, split_before_fitting, target_encoding_train_only, no_target_derived_feature,
            temporal_split_check, hold_out_untouched, no_duplicates_across_splits, scaler_train_only]
