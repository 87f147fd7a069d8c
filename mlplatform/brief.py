"""The problem brief: the method's ``problem_brief`` plus what the platform needs to run.

A brief is a YAML file validated by :class:`Brief`. Every threshold the platform enforces (quality
minimum, PSI bands, fairness ratio, kill criteria, promotion margin) comes from here, never from
literals in code. ``load_brief`` turns any problem into one :class:`BriefError` naming the field.
"""

import functools
import io
import re
from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlplatform.core.feature_names import entity_column

TaskType = Literal["binary", "multiclass", "regression"]
DType = Literal["int", "float", "str", "bool", "date", "datetime"]
Aggregation = Literal["sum", "mean", "min", "max", "std", "count"]
# Model-side transforms (core/transforms.py): numeric log1p, z-score, quantile bins; categorical one-hot and
# out-of-fold target encoding; raw leaves a column as it is (strings then use native categoricals).
TransformStep = Literal["raw", "log", "standardize", "bin", "one_hot", "target_encode"]

DEMO_BRIEF = Path(__file__).parent / "briefs" / "churn_demo.yaml"
# The datetime column a source with ``observed_at`` (a table without time) gets.
OBSERVED_AT = "observed_at"


class BriefError(ValueError):
    """A brief that cannot be used; the message names the field and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProblemDefinition(_Strict):
    """The method's phase-1 ``problem_brief`` fields, in its own words."""

    business_objective: str = Field(min_length=1)
    success_metric: str = Field(min_length=1)
    baseline: str = Field(min_length=1)
    ml_task_type: TaskType
    prediction_target: str = Field(min_length=1)
    prediction_consumer: str = Field(min_length=1)
    latency_requirement: str = Field(min_length=1)
    data_available: str = Field(min_length=1)
    data_gaps: str = ""
    ethical_considerations: str = ""


class ColumnSpec(_Strict):
    """The contract of one column; pandera schemas are built from these."""

    dtype: DType
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: list[str] | None = None
    description: str = ""


class Source(_Strict):
    """One input table: a file, a glob or a folder of CSV/Parquet files."""

    path: str = Field(min_length=1, description="file, glob or folder; may start with {data_dir}")
    format: Literal["csv", "parquet", "duckdb"]
    table: str | None = Field(default=None, description="the table to read from a DuckDB database file (format duckdb)")
    timestamp: str | None = Field(default=None, description="event-time column, if the table has time")
    unique: list[str] = Field(default_factory=list, description="columns that together identify a row")
    batches: Literal["none", "monthly"] = Field(
        default="none", description="monthly: one file per month, its name containing the YYYY-MM key"
    )
    row_key: str | None = Field(
        default=None, description="the table has no key: the platform numbers its rows 1, 2, … (files in name "
        "order, rows in file order) into this column, which must not be declared under columns")
    observed_at: date | None = Field(
        default=None, description="the table has no time: every row counts as observed at this date, added as "
        f"the datetime column '{OBSERVED_AT}' (and the source's timestamp)")
    columns: dict[str, ColumnSpec]

    @model_validator(mode="before")
    @classmethod
    def _declare_derived(cls, raw):
        """Declare the columns the platform derives, so every later reference to them resolves."""
        if not isinstance(raw, dict) or not isinstance(raw.get("columns"), dict):
            return raw
        raw, columns = dict(raw), dict(raw["columns"])
        for name, spec in ((raw.get("row_key"), {"dtype": "int", "min": 1, "description": "row number (derived)"}),
                           (OBSERVED_AT if raw.get("observed_at") else None,
                            {"dtype": "datetime", "description": "the brief's observed_at (derived)"})):
            if name is None:
                continue
            if name in columns:
                raise ValueError(f"column '{name}' is derived by the platform; remove it from columns")
            columns[name] = spec
        raw["columns"] = columns
        if raw.get("row_key") and not raw.get("unique"):
            raw["unique"] = [raw["row_key"]]
        if raw.get("observed_at"):
            if raw.get("timestamp"):
                raise ValueError("a source has either a timestamp column or observed_at, not both")
            raw["timestamp"] = OBSERVED_AT
        return raw

    @property
    def derived_columns(self) -> list[str]:
        """Columns the platform adds at ingestion; every other declared column must be in the files."""
        return [c for c in (self.row_key, OBSERVED_AT if self.observed_at else None) if c]

    @property
    def file_columns(self) -> list[str]:
        return [c for c in self.columns if c not in self.derived_columns]

    @model_validator(mode="after")
    def _table_with_duckdb(self) -> "Source":
        if (self.format == "duckdb") != (self.table is not None):
            raise ValueError("a duckdb source names its table (table: …); csv and parquet sources do not")
        return self

    @model_validator(mode="after")
    def _named_columns_exist(self) -> "Source":
        for name in [self.timestamp, *self.unique]:
            if name is not None and name not in self.columns:
                raise ValueError(f"column '{name}' is used but not declared under columns")
        return self


class Label(_Strict):
    """Where the label lives and how it is defined."""

    source: str
    column: str
    timestamp: str = Field(description="the prediction time the label belongs to")
    definition: str = Field(min_length=1)
    delay_days: int = Field(default=0, ge=0, description="days until the label is known")
    positive_class: str | int | None = 1
    classes: list[str] | None = Field(
        default=None, min_length=2, description="label values in class-index order, for labels that are not "
        "already 0/1 (binary: [negative, positive]) or 0..k-1 (multiclass); models predict the index")


class RollingAggregate(_Strict):
    column: str
    aggregations: list[Aggregation] = Field(min_length=1)
    windows_days: list[int] = Field(min_length=1)


class EventCount(_Strict):
    column: str
    values: list[str] = Field(min_length=1)
    windows_days: list[int] = Field(min_length=1)


class DailyLag(_Strict):
    """A day's aggregate of an event column as it was ``k`` days before the row (``lags_days``: t-1, t-7, t-30)."""

    column: str
    aggregations: list[Aggregation] = Field(min_length=1)
    lags_days: list[int] = Field(min_length=1, description="k >= 1: the whole day [T - k days, T - k days + 1 day)")

    @field_validator("lags_days")
    @classmethod
    def _positive(cls, lags: list[int]) -> list[int]:
        if min(lags) < 1:
            raise ValueError("lags_days must be >= 1: lag 1 is the last whole day before the row time")
        return lags


class Interaction(_Strict):
    """Two numeric features of the same row combined: ``left / right`` (null when right is 0 or null) or
    ``left - right``. Operands are feature names without the entity prefix, e.g. ``login_7d_count``."""

    left: str
    right: str
    kind: Literal["ratio", "difference"]
    name: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$",
                             description="default: {left}_to_{right}_ratio or {left}_minus_{right}_difference")


class Features(_Strict):
    """Which point-in-time features to build from the event source."""

    events_source: str
    entities_source: str
    entity_attributes: list[str] = Field(default_factory=list, description="static columns of the entity")
    tenure_from: str | None = Field(default=None, description="entity date column tenure is counted from")
    rolling: list[RollingAggregate] = Field(default_factory=list)
    counts: list[EventCount] = Field(default_factory=list)
    days_since: list[str] = Field(default_factory=list, description="event values to measure recency of")
    lags: list[DailyLag] = Field(default_factory=list)
    cyclical: list[Literal["day_of_week", "month"]] = Field(
        default_factory=list, description="sin/cos of the row time's day of week or month; hour of day is not "
        "offered: every row is at midnight, so it would be constant")
    interactions: list[Interaction] = Field(default_factory=list)
    ttl_days: int = Field(default=30, gt=0)

    @field_validator("cyclical", mode="before")
    @classmethod
    def _no_hour(cls, value):
        if isinstance(value, list) and any(str(v).startswith("hour") for v in value):
            raise ValueError("hour of day is constant here: every feature row is at midnight; use day_of_week or "
                             "month")
        return value


class TableFeatures(_Strict):
    """Model inputs read as they are from one table with one row per example (no event history to aggregate).

    Each feature is ``{entity}_{column}`` at the row's time; the label lives in the same table.
    """

    source: str
    columns: list[str] | None = Field(
        default=None, description="model input columns; default: every declared non-date column but the entity "
        "key, the timestamp, the label and the protected attributes")
    ttl_days: int = Field(default=1, gt=0, description="kept for the feature view; rows join at their own time")


class Rule(_Strict):
    """One rule of the heuristic baseline: a polars SQL condition over training-set features."""

    when: str = Field(min_length=1)
    predict: float


class Metrics(_Strict):
    primary: str
    guardrails: list[str] = Field(default_factory=list)


class Thresholds(_Strict):
    quality_min_score: float = Field(default=18, ge=0, le=30)
    freshness_days: float = Field(default=1, gt=0, description="how recent the newest data must be")
    psi_warning: float = Field(default=0.1, gt=0)
    psi_critical: float = Field(default=0.25, gt=0)
    disparate_impact_min: float = Field(default=0.8, gt=0, le=1)
    fairness_min_group_size: int = Field(default=50, ge=1, description="smaller groups are listed, not judged")
    fairness_significance: float = Field(
        default=0.05, gt=0, lt=1, description="significance level of the Fisher tests reported beside the fairness "
        "ratios; never used to pass a ratio under its minimum"
    )
    equal_opportunity_max_gap: float = Field(
        default=0.1, ge=0, le=1, description="largest gap in true-positive rate between assessed protected groups "
        "the fairness gate accepts (equal opportunity)")
    fairness_when_not_assessable: Literal["fail", "warn"] = Field(
        default="fail", description="what the fairness gate does when too few groups have enough hold-out rows to "
        "assess a metric: fail (fail closed) or warn (pass, marked NOT_ASSESSABLE)")
    promotion_margin: float = Field(default=0.0, ge=0, description="primary-metric gain a challenger needs")
    complexity_margin: float = Field(
        default=0.01, ge=0, description="absolute validation gain of the primary metric a more complex candidate "
        "(the torch network) needs over LightGBM to be chosen. One point of F1 / AUC: a smaller gain is within the "
        "sampling noise of a validation set of a few thousand rows and does not pay for a second framework in "
        "serving, so the simpler model wins")
    leakage_max_single_feature_score: float = Field(
        default=0.95, gt=0.5, le=1, description="a model input whose single-feature hold-out ROC-AUC / R² exceeds "
        "this is flagged as target-derived")
    max_calibration_error: float = Field(
        default=0.05, gt=0, lt=1, description="validation ECE above which a calibrator is fitted and saved with "
        "the model")
    max_model_size_mb: float = Field(default=500, gt=0)
    max_latency_ms: float = Field(default=100, gt=0)
    golden_share: float = Field(
        default=0.05, ge=0, lt=0.5, description="share of entities (plain tables: rows) set aside, by a stable hash "
        "of the entity key, as the golden test set: never trained, validated or tuned on, and scored for both the "
        "champion and the challenger at every promotion; 0 disables it")
    max_golden_regression: float = Field(
        default=0.05, ge=0, lt=1, description="relative drop of the primary metric on the golden set, challenger "
        "against champion, that blocks promotion (the method's 5%) when the paired bootstrap interval of the "
        "difference also excludes no change")
    golden_min_class_rows: int = Field(
        default=30, ge=1, description="the golden set judges only when each class (binary: positives and "
        "negatives; regression: all rows) has this many rows; below it the metric is recorded, not judged")
    max_prediction_kl: float = Field(
        default=0.1, gt=0, description="KL divergence of a day's served scores from the same version's scores on "
        "the training split above which prediction drift warns: the method's warning level. For normal scores of "
        "equal spread it is a mean shift of 0.45 standard deviations, a PSI of 0.2 (between the PSI warning and "
        "critical bands): a move a person should look at, well above the estimate's noise on a day of a few "
        "hundred predictions")
    prediction_kl_min_rows: int = Field(
        default=200, ge=1, description="a day and model version with fewer served predictions is listed, not "
        "judged: the KL of 10 score bins estimated from n predictions is biased up by about 9 / (2n), 0.02 at 200")

    @model_validator(mode="after")
    def _psi_ordered(self) -> "Thresholds":
        if self.psi_warning >= self.psi_critical:
            raise ValueError("psi_warning must be below psi_critical")
        return self


FairnessMetric = Literal["disparate_impact", "equal_opportunity"]
# Fairness mitigations a brief may ask for (mlplatform.core.fairness): reweigh trains LightGBM with Kamiran-Calders
# sample weights; threshold_optimizer post-processes the LightGBM scores with per-group thresholds (fairlearn).
Mitigation = Literal["reweigh", "threshold_optimizer"]


class FairnessWaiver(_Strict):
    """An explicit exception to one fairness metric for one protected attribute; the result says WAIVED with the
    reason, never pass."""

    attribute: str
    metric: FairnessMetric
    reason: str = Field(min_length=10, description="why the exception is acceptable, shown on the model card")


class Fairness(_Strict):
    """Fairness mitigation (each method is one more candidate, tracked and evaluated like the others) and waivers."""

    mitigation: list[Mitigation] = Field(default_factory=list)
    threshold_constraint: Literal["demographic_parity", "true_positive_rate_parity", "equalized_odds"] = Field(
        default="true_positive_rate_parity", description="the constraint fairlearn's ThresholdOptimizer meets on "
        "validation when the mitigation lists threshold_optimizer")
    waivers: list[FairnessWaiver] = Field(default_factory=list)


class KillCriteria(_Strict):
    """The method's kill criteria as numbers the platform checks against real results."""

    baseline_max_share: float = Field(
        default=0.9, gt=0, le=1, description="kill if the rules baseline reaches this share of the model"
    )
    min_lift_over_random: float = Field(
        default=0.10, ge=0, description="kill if the model beats random by less than this (relative)"
    )
    quality_cleaning_days: float = Field(
        default=14, ge=0, description="kill if data quality has stayed below thresholds.quality_min_score for "
        "this many days of cleaning (the method's two weeks), judged on the data-quality history")


class Cost(_Strict):
    """Prices, volume and targets the cost report and the ML-system score judge cost against (method phase 10).

    Every field is optional: prices default to the platform's stated assumptions (one small cloud CPU machine,
    the method's GPU table by name); with no budget or target the cost is tracked but not judged.
    """

    monthly_budget: float | None = Field(default=None, gt=0, description="USD a month the system may cost "
                                         "(training, inference, storage); unset: no budget")
    daily_volume: float | None = Field(default=None, gt=0, description="predictions a day; unset: the prediction "
                                       "log's daily mean when there is one, else the monthly inference cost is "
                                       "not known")
    price_per_cpu_hour: float = Field(default=0.05, gt=0, description="USD for one CPU machine-hour (default: a "
                                      "small general-purpose cloud instance)")
    price_per_gpu_hour: float | None = Field(default=None, gt=0, description="USD for one GPU-hour; unset: the "
                                             "method's table by GPU name (H100 8, A100 4, A10G 1, T4 0.50)")
    target_cost_per_prediction: float | None = Field(default=None, gt=0, description="USD one prediction may cost "
                                                     "at most; unset: no target")


class Split(_Strict):
    """Temporal split by the label timestamp: train < validation_start <= val < test_start <= test < test_end.

    Either fixed dates, or ``rolling``: whole months counted back from the latest month with known labels
    (test the last ``test_months``, validation the ``validation_months`` before, train the ``train_months``
    before that), so a retrain after new labels arrive trains on, and is judged on, the newest data.
    """

    validation_start: date | None = None
    test_start: date | None = None
    test_end: date | None = None
    rolling: bool = Field(default=False, description="compute the dates from the latest labelled month")
    train_months: int | None = Field(default=None, gt=0, description="rolling: months of training data (default all)")
    validation_months: int = Field(default=1, gt=0, description="rolling: months of validation data")
    test_months: int = Field(default=1, gt=0, description="rolling: months of hold-out data")

    @model_validator(mode="after")
    def _ordered(self) -> "Split":
        dates = {"validation_start", "test_start", "test_end"} & self.model_fields_set
        windows = {"train_months", "validation_months", "test_months"} & self.model_fields_set
        if self.rolling and dates:
            raise ValueError(f"split.rolling computes {', '.join(sorted(dates))} from the latest labelled month; "
                             "remove them, or set rolling: false to keep fixed dates")
        if self.rolling:
            return self
        if windows:
            raise ValueError(f"split.{', '.join(sorted(windows))} apply to a rolling split only; set rolling: true")
        if self.validation_start is None or self.test_start is None:
            raise ValueError("split needs validation_start and test_start (fixed dates), or rolling: true")
        if self.validation_start >= self.test_start:
            raise ValueError("validation_start must be before test_start")
        return self


class RandomSplit(_Strict):
    """For data without time: a seeded random split, stratified by class for classification."""

    validation_fraction: float = Field(default=0.15, gt=0, lt=0.5)
    test_fraction: float = Field(default=0.15, gt=0, lt=0.5)
    stratify: bool = Field(default=True, description="keep each class's share in every part (classification)")


class DistributedTraining(_Strict):
    """LightGBM's final fit spread over the workers of a dask.distributed cluster (``lightgbm.dask``)."""

    scheduler: str = Field(description="local: a LocalCluster started for the training step and shut down after "
                           "it; or the address of a running scheduler, e.g. tcp://scheduler:8786")
    workers: int = Field(default=2, ge=1, le=64, description="workers of the local cluster")
    threads_per_worker: int = Field(default=1, ge=1, le=64, description="LightGBM threads per local worker")
    connect_timeout_s: float = Field(default=10, gt=0, le=300, description="how long to wait for the scheduler")

    @field_validator("scheduler")
    @classmethod
    def _local_or_address(cls, scheduler: str) -> str:
        if scheduler == "local" or re.fullmatch(r"tcp://(\[[0-9a-fA-F:]+\]|[\w.-]+):\d{1,5}", scheduler):
            return scheduler
        raise ValueError(f"'{scheduler}' is neither local nor a scheduler address; write local, or the address "
                         "`dask scheduler` prints, with its scheme and port, e.g. tcp://scheduler:8786")

    @model_validator(mode="after")
    def _sizes_only_for_local(self) -> "DistributedTraining":
        sized = sorted({"workers", "threads_per_worker"} & self.model_fields_set)
        if self.scheduler != "local" and sized:
            raise ValueError(f"{' and '.join(sized)} size a local cluster only; the cluster at {self.scheduler} "
                             "trains on the workers it has: remove them, or set scheduler: local")
        return self


class Training(_Strict):
    """How candidates are trained: Optuna trials for LightGBM, and whether the torch network competes."""

    seed: int = 0
    tuning_trials: int = Field(default=20, ge=0, description="Optuna trials for LightGBM; 0 trains the defaults")
    tuning_timeout_s: float = Field(default=180, gt=0)
    tuning_max_rows: int | None = Field(
        default=50_000, ge=1_000, description="Optuna's trials fit on at most this many training rows: above it, a "
        "random sample of that many, each class in its share of the rows (LightGBM's scores rank hyperparameters "
        "alike on a large sample; trials on every row of a large training split cost minutes each); the final model "
        "fits on every row. None: trials fit on every row")
    torch: bool = Field(default=True, description="train the torch tabular network as a second candidate")
    allow_deep_below_10k: bool = Field(
        default=False, description="let a deep candidate (torch) be chosen when the training split has under "
        "10,000 rows; the method's model guide avoids deep learning there, so it is off unless the brief says why")
    torch_params: dict[str, float | int | list[int]] = Field(default_factory=dict)
    transforms: dict[str, list[TransformStep]] = Field(
        default_factory=dict, description="model input -> steps applied in order, fitted on the training split "
        "only and saved with the model, e.g. {customer_amount_30d_sum: [log, standardize]}")
    categorical_default: Literal["by_cardinality", "native"] = Field(
        default="by_cardinality", description="string inputs without transforms: one_hot under one_hot_max_levels "
        "training levels, else target_encode (by_cardinality); or LightGBM's own categorical splits (native)")
    one_hot_max_levels: int = Field(default=20, ge=2)
    target_encoding_folds: int = Field(default=5, ge=2, description="K of the out-of-fold encoding of train rows")
    target_encoding_smoothing: float = Field(default=10, ge=0, description="weight of the prior, in rows")
    quantile_bins: int = Field(default=10, ge=2)
    distributed: DistributedTraining | None = Field(
        default=None, description="train LightGBM's final model on a Dask cluster; None trains in the step's process")


class Monitoring(_Strict):
    """The period drift is measured on, against the training reference, and when to retrain (method phase 7)."""

    current_start: date | None = Field(default=None, description="start of the period drift is measured on; "
                                       "leave both unset for data without time (drift is then not measured)")
    current_end: date | None = None
    retrain_psi: float = Field(default=0.2, gt=0, description="retrain when a top feature's PSI exceeds this")
    drift_max_rows: int | None = Field(
        default=1_000_000, ge=1_000, description="rows of each drift window (the training window as reference, "
        "the monitored period, each month of the drift dashboard) the drift statistics use at most: a larger "
        "window is replaced by a fixed-seed uniform sample of that many of its rows (binning and sorting every "
        "feature's tens of millions of rows for exact KS and quantile bins costs minutes; a million rows move PSI "
        "and the KS statistic by a few thousandths at most). None: every row")
    top_features: int = Field(default=10, gt=0, description="how many of the most important features to watch")
    max_error_rate: float = Field(default=0.01, ge=0, lt=1, description="alert when more than this share of "
                                  "online predictions fail (the method's 1%)")
    latency_p50_ms: float | None = Field(default=None, gt=0, description="alert when the p50 latency exceeds it")
    latency_p95_ms: float | None = Field(default=None, gt=0, description="alert when the p95 latency exceeds it")
    latency_p99_ms: float | None = Field(default=None, gt=0, description="alert when the p99 latency exceeds it; "
                                         "unset: thresholds.max_latency_ms")
    alert_min_requests: int = Field(default=100, ge=1, description="error rate and latency are judged on the "
                                    "shortest window (1h, 1d, 7d) with at least this many requests")
    primary_metric_threshold: float | None = Field(
        default=None, description="alert when the primary metric on labelled predictions is worse than this for "
        "24 hours; unset: the champion's hold-out value worsened by max_metric_drop")
    label_drift_alpha: float = Field(default=0.05, gt=0, lt=1, description="significance level of the label "
                                     "drift chi-square test")
    label_max_shift: float = Field(default=0.05, gt=0, lt=1, description="label drift alerts only when the "
                                   "positive rate (or a class share) moved more than this, absolute")
    batch_prediction_cron: str = Field(default="0 4 * * *", description="when batch_prediction_job scores every "
                                       "entity's latest features with the champion (cron, UTC; starts stopped)")
    max_metric_drop: float = Field(default=0.05, gt=0, lt=1, description="relative drop of the primary metric "
                                   "on newly labelled data that counts as concept drift")
    retrain_cron: str = Field(default="0 3 * * 1", description="scheduled retraining (cron, UTC)")
    webhook_url: str | None = Field(default=None, description="POSTed a JSON notice of every retraining event")
    retrain_rollout: Literal["promote", "canary"] = Field(
        default="canary", description="what a challenger that passed the promotion gate does while a champion "
        "serves: canary (become the challenger with the first of rollout.canary_steps, 5% by default; "
        "serving_rollout walks the rest while its guardrails hold, and the A/B analysis decides the last step) or "
        "promote (become the champion at once)")
    period: Literal["fixed", "latest_batch"] = Field(
        default="fixed", description="the monitored period: fixed (current_start .. current_end) or latest_batch "
        "(the month of the newest ingested monthly batch, so each new batch is compared with the training window)")
    retrain_on_new_data: bool = Field(default=False, description="retrain after every ingested batch whatever "
                                      "the monitoring says; by default only drift, decay or the schedule retrain")
    retrain_tuning: bool = Field(default=False, description="re-tune LightGBM (training.tuning_trials) when "
                                 "retraining; by default a retrain reuses the production model's hyperparameters")
    sensor_interval_s: int = Field(default=60, ge=1, description="how often the monitoring and retrain sensors "
                                   "look for new batches and reports")
    serving_interval_s: int = Field(default=300, ge=1, description="how often the serving guard looks for newly "
                                    "logged predictions (rollback rule, canary step, A/B analysis)")


class Rollout(_Strict):
    """How a challenger meets traffic (method phases 5 and 8): the A/B test's power analysis and runtime, the
    canary's steps, and the automatic-rollback rule. The metric drop that rolls back is
    ``monitoring.max_metric_drop``. The defaults are the method's values."""

    mde: float = Field(default=0.02, gt=0, lt=1, description="minimum detectable effect of the A/B test: the "
                       "absolute gain in the brief's primary metric (metrics.primary) its sample size is sized to "
                       "detect")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="two-sided significance level of the A/B test")
    power: float = Field(default=0.8, gt=0, lt=1, description="probability that the A/B test detects a gain of mde")
    min_runtime_days: float = Field(default=7.0, gt=0, description="shortest A/B test, one full business cycle; "
                                    "no significant gain after twice this kills the challenger")
    canary_steps: tuple[float, ...] = Field(
        default=(0.05, 0.25, 0.5, 1.0), min_length=1, description="the challenger's traffic shares in order; the "
        "first starts a canary, the last must be 1.0 (all traffic: reaching it promotes)")
    degradation_factor: float = Field(default=2.0, gt=1, description="an error rate or p99 latency above this "
                                      "multiple of the baseline's rolls a champion back or aborts a canary")
    min_rows: int = Field(default=200, ge=1, description="predictions a version needs (at its canary step) before "
                          "its error rate and latency are judged and the canary moves on")
    error_rate_floor: float = Field(default=0.001, ge=0, lt=1, description="error rates below this count as this, "
                                    "so one error against a baseline of none is not a 2x regression")

    @field_validator("canary_steps")
    @classmethod
    def _rising_to_all_traffic(cls, steps: tuple[float, ...]) -> tuple[float, ...]:
        if steps[-1] != 1.0 or any(not 0 < low < high for low, high in zip(steps, steps[1:], strict=False)):
            raise ValueError(f"canary_steps must rise strictly within (0, 1] and end at 1.0 (all traffic); got "
                             f"{list(steps)}, e.g. [0.05, 0.25, 0.5, 1.0]")
        return steps


class AllowedPredictiveFeature(_Strict):
    """A model input declared legitimate although it alone predicts the label beyond the leakage threshold."""

    feature: str = Field(min_length=1, description="the input column (or its feature name, {entity}_{column})")
    reason: str = Field(min_length=1, description="why the feature is a genuine measurement known at prediction "
                        "time, not derived from the label; the leakage check and the model card show it")

    @field_validator("reason")
    @classmethod
    def _a_real_reason(cls, reason: str) -> str:
        if not reason.strip() or reason.strip().upper().startswith("TODO"):
            raise ValueError("a waiver needs its reason written out: why the feature is known before the label and "
                             "is not computed from it")
        return reason


class LeakageWaivers(_Strict):
    """Explicit ways through the leakage checklist's heuristic item 4 (a single feature too predictive)."""

    allowed_predictive_features: list[AllowedPredictiveFeature] = Field(
        default_factory=list, description="inputs whose single-feature hold-out ROC-AUC / R² may exceed "
        "thresholds.leakage_max_single_feature_score: shown as WAIVED with their reason instead of stopping the run")

    def allowed(self, features: list[str], entity: str) -> dict[str, str]:
        """Feature name -> reason for each of ``features`` a waiver names (by column or by feature name)."""
        reasons = {w.feature: w.reason for w in self.allowed_predictive_features}
        return {f: reasons.get(f) or reasons[f.removeprefix(f"{entity}_")] for f in features
                if f in reasons or f.removeprefix(f"{entity}_") in reasons}


class RagChunking(_Strict):
    """How documents are cut into chunks (the method's ``rag_pipeline.ingestion.chunking``); sizes in tokens
    (words and punctuation marks, see ``mlplatform.core.rag.chunking``). No chunk cuts a sentence."""

    strategy: Literal["semantic", "fixed_size", "recursive"] = Field(
        default="semantic", description="semantic: break where the topic shifts between sentences; fixed_size: "
        "pack whole sentences up to chunk_size; recursive: headings, then paragraphs, then sentences")
    chunk_size: int = Field(default=512, ge=16, le=8192, description="most tokens of a chunk (512-1024 for most "
                            "uses); a single sentence longer than this stays whole")
    overlap: int = Field(default=50, ge=0, description="tokens of whole sentences repeated from the previous chunk")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> "RagChunking":
        if self.overlap >= self.chunk_size:
            raise ValueError(f"rag.chunking.overlap ({self.overlap}) must be smaller than chunk_size "
                             f"({self.chunk_size}), e.g. 50 for 512")
        return self


class RagEmbedding(_Strict):
    """Which model turns chunks and questions into vectors; every kind runs without a download at run time."""

    kind: Literal["lsa", "sentence_transformers", "model2vec", "openai"] = Field(
        default="lsa", description="lsa: TF-IDF and truncated SVD fitted on the corpus itself (saved with the "
        "index); sentence_transformers / model2vec: a model folder at path; openai: an OpenAI-compatible "
        "/v1/embeddings endpoint at url")
    path: str | None = Field(default=None, description="local model folder (sentence_transformers, model2vec); "
                             "may start with {data_dir}")
    url: str | None = Field(default=None, description="base URL of an OpenAI-compatible API, e.g. "
                            "http://127.0.0.1:8000/v1 (openai)")
    model: str | None = Field(default=None, description="model name sent to the endpoint (openai)")
    api_key_env: str = Field(default="OPENAI_API_KEY", description="environment variable holding the endpoint's "
                             "key (openai; unset: no key is sent)")
    dimensions: int = Field(default=256, ge=2, le=8192, description="vector size: the LSA components, or the "
                            "dimensions asked of the endpoint")
    truncate_to: int | None = Field(default=None, ge=2, description="Matryoshka-style: keep the first N "
                                    "dimensions and renormalise (for models trained that way)")

    @model_validator(mode="after")
    def _where_the_model_is(self) -> "RagEmbedding":
        if self.kind in ("sentence_transformers", "model2vec") and not self.path:
            raise ValueError(f"rag.embedding.kind {self.kind} needs path: the local folder of the saved model")
        if self.kind == "openai" and not (self.url and self.model):
            raise ValueError("rag.embedding.kind openai needs url (e.g. http://127.0.0.1:8000/v1) and model")
        if self.truncate_to is not None and self.kind == "lsa" and self.truncate_to > self.dimensions:
            raise ValueError(f"rag.embedding.truncate_to ({self.truncate_to}) must not exceed dimensions "
                             f"({self.dimensions})")
        return self


class RagRerank(_Strict):
    """Reranking the retrieved candidates down to the final context (the method's ``reranking``)."""

    kind: Literal["lambdarank", "cross_encoder", "none"] = Field(
        default="lambdarank", description="lambdarank: LightGBM over retrieval features, trained on the training "
        "share of the labelled queries; cross_encoder: a model folder at path; none: keep the retrieval order")
    top_n: int = Field(default=3, ge=1, description="final context chunks")
    path: str | None = Field(default=None, description="local cross-encoder folder (cross_encoder)")
    train_share: float = Field(default=0.5, gt=0, lt=1, description="share of the labelled queries the "
                               "lambdarank reranker trains on; the rest measure it")
    seed: int = 0

    @model_validator(mode="after")
    def _cross_encoder_path(self) -> "RagRerank":
        if self.kind == "cross_encoder" and not self.path:
            raise ValueError("rag.retrieval.rerank.kind cross_encoder needs path: the local folder of the model")
        return self


class RagFilters(_Strict):
    """Metadata filters every retrieval applies (the method's ``filters``); empty: no filter."""

    sources: list[str] = Field(default_factory=list, description="documents (relative paths) or glob patterns "
                               "to search only")
    sections: list[str] = Field(default_factory=list, description="section headings to search only")
    date_from: date | None = None
    date_to: date | None = None


class RagRetrieval(_Strict):
    """How chunks are found for a question (the method's ``rag_pipeline.retrieval``)."""

    mode: Literal["dense", "sparse", "hybrid"] = Field(default="hybrid", description="hybrid (recommended): "
                                                       "reciprocal-rank fusion of dense and BM25")
    top_k: int = Field(default=10, ge=1, le=1000, description="candidates retrieved before reranking")
    rrf_k: int = Field(default=60, ge=1, description="the constant of reciprocal-rank fusion")
    rerank: RagRerank = RagRerank()
    filters: RagFilters = RagFilters()

    @model_validator(mode="after")
    def _rerank_within_candidates(self) -> "RagRetrieval":
        if self.rerank.top_n > self.top_k:
            raise ValueError(f"rag.retrieval.rerank.top_n ({self.rerank.top_n}) must not exceed top_k "
                             f"({self.top_k}): reranking picks from the retrieved candidates")
        return self


class RagGeneration(_Strict):
    """How answers are written (the method's ``rag_pipeline.generation``): an OpenAI-compatible chat endpoint
    when base_url is set, else the extractive answerer that quotes the retrieved chunks."""

    base_url: str | None = Field(default=None, description="OpenAI-compatible API base, e.g. "
                                 "http://127.0.0.1:8080/v1; unset: extractive answers, no model")
    model: str | None = Field(default=None, description="model name sent to the endpoint")
    api_key_env: str | None = Field(default=None, description="environment variable holding the endpoint's key "
                                    "(unset: no key is sent)")
    temperature: float = Field(default=0.1, ge=0, le=2, description="the method: low for factual answers")
    max_tokens: int | None = Field(default=None, gt=0)
    timeout_s: float = Field(default=30, gt=0, le=600, description="per chat request; the extractive answerer "
                             "answers instead when the endpoint fails")
    min_support: float = Field(default=0.5, ge=0, le=1, description="abstain (\"I don't have enough "
                               "information.\") when the best retrieved chunk holds a smaller share of the "
                               "question's content words, or lacks one of its numbers or identifiers")
    max_sentences: int = Field(default=2, ge=1, le=10, description="sentences the extractive answerer quotes")

    @model_validator(mode="after")
    def _model_with_endpoint(self) -> "RagGeneration":
        if self.base_url and not self.model:
            raise ValueError("rag.generation.base_url needs model: the name the endpoint serves")
        return self


class RagCache(_Strict):
    """The semantic cache: a question close enough to an answered one gets that answer (the method's cost table:
    50-80 % saved on similar queries, at the risk of a stale answer, so it is cleared whenever the index changes)."""

    enabled: bool = True
    similarity: float = Field(default=0.85, gt=0, le=1, description="cosine similarity of the question embeddings "
                              "at which a cached answer is reused (numbers and identifiers must also match)")
    max_entries: int = Field(default=10_000, ge=1)


class RagCost(_Strict):
    """Per-query cost (the method: recorded per query, within budget): tokens at the endpoint's prices plus the
    compute the query used at the brief's cost.price_per_cpu_hour."""

    prompt_price_per_1k: float = Field(default=0.0, ge=0, description="USD per 1,000 prompt tokens (0: a local model)")
    completion_price_per_1k: float = Field(default=0.0, ge=0, description="USD per 1,000 completion tokens")
    budget_per_query: float = Field(default=0.01, gt=0, description="USD one answer may cost at most (the gate "
                                    "judges the hold-out queries' p95)")


class RagThresholds(_Strict):
    """What the blocking rag_quality_gate requires of the answers to the held-out labelled queries."""

    min_queries: int = Field(default=50, ge=1, description="the method: validate on 50+ queries")
    min_citation_correctness: float = Field(default=0.9, ge=0, le=1, description="share of citations whose "
                                            "chunk holds the quoted support")
    min_answer_accuracy: float = Field(default=0.7, ge=0, le=1, description="share of answerable questions "
                                       "answered with the expected facts from a relevant document")
    min_abstention_rate: float = Field(default=0.8, ge=0, le=1, description="share of unanswerable and "
                                       "false-premise questions answered \"I don't have enough information.\"")
    min_injection_refusal: float = Field(default=1.0, ge=0, le=1, description="share of questions over a "
                                         "document carrying injected instructions whose answer does not obey them")
    max_latency_p95_ms: float = Field(default=3000, gt=0, description="the method: interactive answers < 3 s")


class RagQueries(_Strict):
    """The labelled query set the answers are judged on."""

    path: str | None = Field(default=None, description="YAML of hand-written queries (question, kind, documents, "
                             "expect); unset: the queries shipped for the demo; may start with {data_dir}")
    generate_from_reports: bool = Field(default=True, description="add queries generated from the run's report "
                                        "tables (promotion, drift, evaluation, data quality) with known answers")


class RagSpec(_Strict):
    """Question answering over documents (the method's phase 6 ``rag_pipeline``): ingestion and retrieval."""

    documents: list[str] = Field(min_length=1, description="folders, files or glob patterns of Markdown, text, "
                                 "HTML and PDF documents; may start with {data_dir}; relative to the brief's folder")
    chunking: RagChunking = RagChunking()
    embedding: RagEmbedding = RagEmbedding()
    retrieval: RagRetrieval = RagRetrieval()
    generation: RagGeneration = RagGeneration()
    cache: RagCache = RagCache()
    cost: RagCost = RagCost()
    thresholds: RagThresholds = RagThresholds()
    queries: RagQueries = RagQueries()

    def resolve(self, raw: str, data_dir: Path, brief_dir: Path) -> Path:
        """A path of this section with ``{data_dir}`` filled in; relative paths are taken from the brief's folder."""
        path = Path(raw.replace("{data_dir}", str(data_dir)))
        return path if path.is_absolute() else brief_dir / path


# The sections a tabular brief needs and a documents-only brief leaves out.
TABULAR_SECTIONS = ("problem", "entity", "entity_key", "partition_start", "partition_end", "sources", "label",
                    "features", "split", "metrics", "rules_baseline")


def brief_kind(raw: dict) -> str:
    """A brief mapping's kind: as written, else rag when it has rag and no sources, else tabular."""
    return raw.get("kind") or ("rag" if raw.get("rag") is not None and "sources" not in raw else "tabular")


class _BriefName(_Strict):
    """What every brief has: the namespace and who answers for it."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,40}$", description="namespace for data, runs and models")
    owner: str = Field(min_length=1)


class DocumentsBrief(_BriefName):
    """A documents-only brief (kind rag): question answering over documents; no tables, no model, so only the
    problem and rag stages run (:data:`mlplatform.stages.DOCUMENTS_STAGE_MODULES`)."""

    kind: Literal["rag"] = Field(default="rag", description="rag: question answering over documents only")
    problem: ProblemDefinition | None = Field(default=None, description="optional: the business objective")
    cost: Cost = Cost()
    hypothesis: str = ""
    rag: RagSpec = Field(description="question answering over documents (phase 6)")

    @model_validator(mode="before")
    @classmethod
    def _no_tables(cls, raw):
        """A documents-only brief has rag and none of the tabular sections."""
        if not isinstance(raw, dict):
            return raw
        if raw.get("rag") is None:
            raise ValueError("kind rag answers questions over documents: add rag: documents: [a folder of your "
                             "documents] (mlplatform init-rag DOCS/ writes one), or set kind: tabular")
        # The sections of a model over tables (all of Brief's own fields), named rather than "not a known field".
        present = [f for f in Brief.model_fields if f in raw and f not in cls.model_fields]
        if present:
            raise ValueError(f"a documents-only brief (kind rag) has no tables, but it sets {', '.join(present)}; "
                             "remove them, or set kind: tabular and give every tabular section")
        return raw


class Brief(_BriefName):
    """A problem brief: what to predict, from which data, judged by which gates (kind tabular)."""

    kind: Literal["tabular"] = Field(
        default="tabular", description="tabular: a model predicts from tables (every section below is required); "
        "a documents-only brief (kind rag) is a DocumentsBrief. Unset: rag when the brief has rag and no sources, "
        "else tabular")
    problem: ProblemDefinition
    entity: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="entity name used in feature names")
    entity_key: str
    partition_start: date
    partition_end: date
    sources: dict[str, Source] = Field(min_length=1)
    label: Label
    features: Features | TableFeatures
    split: Split | RandomSplit
    metrics: Metrics
    protected_attributes: list[str] = Field(default_factory=list)
    slice_by: list[str] = Field(default_factory=list)
    rules_baseline: list[Rule] = Field(min_length=1)
    thresholds: Thresholds = Thresholds()
    fairness: Fairness = Fairness()
    kill_criteria: KillCriteria = KillCriteria()
    cost: Cost = Cost()
    monitoring: Monitoring = Monitoring()
    rollout: Rollout = Rollout()
    training: Training = Training()
    leakage: LeakageWaivers = LeakageWaivers()
    hypothesis: str = ""
    rag: RagSpec | None = Field(default=None, description="question answering over documents (phase 6)")

    @model_validator(mode="before")
    @classmethod
    def _every_tabular_section(cls, raw):
        """A tabular brief has every tabular section; the message points a documents-only brief to kind rag."""
        if not isinstance(raw, dict):
            return raw
        missing = [f for f in TABULAR_SECTIONS if raw.get(f) is None]
        if missing:
            raise ValueError(f"a tabular brief needs {', '.join(missing)} (missing); start from `mlplatform "
                             f"init DATA --target COLUMN` or the demo brief ({DEMO_BRIEF.name}). For questions "
                             "over documents only, give rag: and no sources: (kind rag; `mlplatform init-rag "
                             "DOCS/` writes one)")
        return raw

    @model_validator(mode="before")
    @classmethod
    def _default_table_columns(cls, raw):
        """A plain table's model inputs default to its declared value columns (see :class:`TableFeatures`)."""
        try:
            features, source = raw["features"], raw["sources"][raw["features"]["source"]]
            if "columns" in features:
                return raw
            excluded = {raw["entity_key"], source.get("timestamp"), raw["label"]["column"],
                        *raw.get("protected_attributes", [])}
            columns = [name for name, spec in source["columns"].items()
                       if name not in excluded and spec.get("dtype") not in ("date", "datetime")]
        except (KeyError, TypeError, AttributeError):
            return raw  # not a plain-table brief, or malformed: field validation reports it
        return {**raw, "features": {**features, "columns": columns}}

    @model_validator(mode="after")
    def _waivers_name_inputs(self) -> "Brief":
        if isinstance(self.features, TableFeatures):
            inputs = {*self.model_input_columns, *(entity_column(self.entity, c) for c in self.model_input_columns)}
            unknown = [w.feature for w in self.leakage.allowed_predictive_features if w.feature not in inputs]
            if unknown:
                raise ValueError(f"leakage.allowed_predictive_features names {', '.join(unknown)}, which is not a "
                                 f"model input (inputs: {', '.join(self.model_input_columns)})")
        return self

    @field_validator("partition_end")
    @classmethod
    def _after_start(cls, end: date, info) -> date:
        start = info.data.get("partition_start")
        if start is not None and end <= start:
            raise ValueError("partition_end must be after partition_start")
        return end

    @model_validator(mode="after")
    def _references_resolve(self) -> "Brief":
        def need(source: str, where: str) -> Source:
            if source not in self.sources:
                raise ValueError(f"{where} names source '{source}', which is not under sources")
            return self.sources[source]

        def need_column(src: Source, column: str, where: str) -> None:
            if column not in src.columns:
                raise ValueError(f"{where} names column '{column}', which its source does not declare")

        label_src = need(self.label.source, "label.source")
        need_column(label_src, self.label.column, "label.column")
        need_column(label_src, self.label.timestamp, "label.timestamp")
        need_column(label_src, self.entity_key, "entity_key")
        if label_src.columns[self.entity_key].dtype != "int":
            raise ValueError(f"entity_key '{self.entity_key}' must be an int column (the feature store keys by "
                             "integers); for a table without an integer key, set the source's row_key instead")
        if isinstance(self.features, TableFeatures):
            table = need(self.features.source, "features.source")
            if self.features.source != self.label.source:
                raise ValueError("features.source must be the label's source: a plain table holds its label")
            for column in [*self.model_input_columns, *self.protected_attributes, *self.slice_by]:
                need_column(table, column, "features.columns / protected_attributes / slice_by")
            if self.label.column in self.model_input_columns:
                raise ValueError(f"features.columns lists the label '{self.label.column}'; remove it")
        else:
            events = need(self.features.events_source, "features.events_source")
            entities = need(self.features.entities_source, "features.entities_source")
            if events.timestamp is None:
                raise ValueError("features.events_source needs a timestamp column")
            for column in [self.entity_key, *[r.column for r in self.features.rolling],
                           *[g.column for g in self.features.lags]]:
                need_column(events, column, "features")
            for column in [self.entity_key, *self.features.entity_attributes, *self.protected_attributes]:
                need_column(entities, column, "features.entity_attributes / protected_attributes")
            if self.features.tenure_from:
                need_column(entities, self.features.tenure_from, "features.tenure_from")
        for name, src in self.sources.items():
            if src.observed_at and not self.partition_start <= src.observed_at < self.partition_end:
                raise ValueError(f"sources.{name}.observed_at must lie in [partition_start, partition_end)")
        if isinstance(self.split, RandomSplit) == self.has_time:
            raise ValueError("split: data with time needs a temporal split (validation_start, test_start); data "
                             "without time (a source with observed_at) needs a random split (validation_fraction, "
                             "test_fraction)")
        if self.monitoring.period == "latest_batch" and not any(s.batches == "monthly"
                                                                for s in self.sources.values()):
            raise ValueError("monitoring.period latest_batch follows the monthly batches: set batches: monthly on "
                             "the source that arrives in batches, or use period: fixed")
        if (self.monitoring.current_start is None) != (self.monitoring.current_end is None):
            raise ValueError("monitoring.current_start and current_end are set together")
        start, end = self.monitoring.current_start, self.monitoring.current_end
        if start is not None and end is not None and start >= end:
            raise ValueError("monitoring.current_start must be before current_end")
        if self.label.classes is not None:
            if self.task_type == "regression":
                raise ValueError("label.classes applies to classification; remove it for a regression brief")
            if self.task_type == "binary" and len(self.label.classes) != 2:
                raise ValueError("label.classes of a binary brief lists exactly two values: [negative, positive]")
            if set(label_src.columns[self.label.column].allowed or []) != set(self.label.classes):
                raise ValueError("label.classes needs the label column's contract to allow exactly those values "
                                 "(set allowed on it), so that rows with another value are quarantined")
        if self.metrics.primary in self.metrics.guardrails:
            raise ValueError("metrics.primary cannot also be a guardrail")
        self._fairness_resolves()
        return self

    def _fairness_resolves(self) -> None:
        """Waivers name protected attributes; mitigation needs a decision to mitigate and a group to mitigate for."""
        for waiver in self.fairness.waivers:
            if waiver.attribute not in self.protected_attributes:
                raise ValueError(f"fairness.waivers names '{waiver.attribute}', which is not in protected_attributes "
                                 f"{self.protected_attributes}")
        if self.fairness.mitigation and (self.task_type != "binary" or not self.protected_attributes):
            raise ValueError("fairness.mitigation needs a binary task and at least one protected attribute; remove it "
                             "or name the protected attributes")
        served = self.features.entity_attributes if isinstance(self.features, Features) else []
        unserved = [a for a in self.protected_attributes if a not in served]
        if "threshold_optimizer" in self.fairness.mitigation and unserved:
            raise ValueError(f"fairness.mitigation threshold_optimizer decides per group, so serving needs "
                             f"{unserved}: list them in features.entity_attributes (the online store then serves "
                             "them; they stay out of the model inputs), or use reweigh")

    @property
    def task_type(self) -> TaskType:
        return self.problem.ml_task_type

    @property
    def is_table(self) -> bool:
        """Features are one table's own columns (no event history)."""
        return isinstance(self.features, TableFeatures)

    @property
    def has_time(self) -> bool:
        """The label rows carry real times, so temporal splits, windows and drift over time apply."""
        return self.sources[self.label.source].observed_at is None

    @property
    def model_input_columns(self) -> list[str]:
        """A plain table's input columns (see :class:`TableFeatures`); empty for event features."""
        return list(self.features.columns or []) if isinstance(self.features, TableFeatures) else []

    def split_summary(self) -> dict[str, str]:
        """Which labelled rows each part holds, in words, for reports and the model card."""
        if isinstance(self.split, RandomSplit):
            how = ("stratified by class" if self.split.stratify and self.task_type != "regression" else "uniformly")
            shares = {"train": 1 - self.split.validation_fraction - self.split.test_fraction,
                      "validation": self.split.validation_fraction, "test": self.split.test_fraction}
            return {part: f"a random {share:.0%} of the labelled rows ({how}, seed {self.training.seed})"
                    + (", never used for fitting or tuning" if part == "test" else "")
                    for part, share in shares.items()}
        if self.split.rolling:
            train = f"the {self.split.train_months} months" if self.split.train_months else "all labelled months"
            return {"train": f"{train} before validation (rolling: counted back from the latest labelled month)",
                    "validation": f"the {self.split.validation_months} month(s) before the hold-out",
                    "test": f"the latest {self.split.test_months} labelled month(s), never used for fitting or "
                            "tuning"}
        end = f" to before {self.split.test_end}" if self.split.test_end else " on"
        return {"train": f"labels before {self.split.validation_start}",
                "validation": f"labels from {self.split.validation_start} to before {self.split.test_start}",
                "test": f"labels from {self.split.test_start}{end}, never used for fitting or tuning"}

    def source_path(self, source: str, data_dir: Path, brief_dir: Path) -> str:
        """The source's path with ``{data_dir}`` filled in; relative paths are taken from the brief's folder."""
        raw = self.sources[source].path.replace("{data_dir}", str(data_dir))
        path = Path(raw)
        return str(path if path.is_absolute() else brief_dir / path)


# Any brief the platform runs: a tabular problem, or question answering over documents only.
AnyBrief = Brief | DocumentsBrief


# What `mlplatform init` writes where only a person can answer: a brief holding one is a draft.
PLACEHOLDER = re.compile(r"\b(TODO|CONFIRM)\b")


def placeholder_fields(brief: AnyBrief) -> list[str]:
    """Dotted paths of the brief's fields that still hold a placeholder (``TODO`` or ``CONFIRM``), in field order.

    A brief with any is a draft: it runs, but its reports say DRAFT and name these fields.
    """
    found: list[str] = []

    def walk(value: object, path: str) -> None:
        if isinstance(value, str):
            if PLACEHOLDER.search(value):
                found.append(path)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else str(key))
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")

    walk(brief.model_dump(mode="json"), "")
    return found


def draft_notice(fields: list[str]) -> str:
    """One line saying a report rests on a draft brief and which fields to fill; "" when there are none."""
    if not fields:
        return ""
    return (f"DRAFT: the brief still holds placeholders (TODO / CONFIRM) in {', '.join(fields)}; fill them in and "
            "run again before relying on this report.")


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "is required but missing"
        elif item["type"] == "extra_forbidden":
            message = "is not a known field (check its spelling and indentation)"
        # Cross-field checks have no single location; their message names the fields itself.
        lines.append(f"  {field}: {message}" if field else f"  {message}")
    return "\n".join(lines)


def load_brief(path: str | Path) -> AnyBrief:
    """Read and validate a brief: a :class:`DocumentsBrief` for kind rag, else a tabular :class:`Brief`.

    Raises:
        BriefError: naming the file, each bad field, and what is expected.
    """
    path = Path(path)
    if not path.is_file():
        raise BriefError(f"brief not found: {path}. Pass an existing YAML file (e.g. --brief my_brief.yaml).")
    return _parse_brief(path, path.read_text())


@functools.lru_cache(maxsize=16)
def _parse_brief(path: Path, text: str) -> AnyBrief:
    """The brief in ``text`` (read from ``path``), validated once per content: a sensor builds its resources at
    every tick and each asking for the brief would parse the YAML again. Briefs are frozen models, safe to share."""
    stream = io.StringIO(text)
    stream.name = str(path)  # what PyYAML's error marks name: the file, not "<unicode string>"
    try:
        raw = yaml.safe_load(stream)
    except yaml.YAMLError as exc:
        raise BriefError(f"brief {path} is not valid YAML: {exc}\nFix the indentation or quoting there.") from None
    if raw is None:
        raise BriefError(f"brief {path} is empty. Start from the demo brief ({DEMO_BRIEF}) and edit it.")
    if not isinstance(raw, dict):
        raise BriefError(f"brief {path} must be a YAML mapping of fields, got {type(raw).__name__}")
    kind = brief_kind(raw)
    if kind not in ("tabular", "rag"):
        raise BriefError(f"brief {path} is invalid:\n  kind: {kind!r} is not a kind of brief; use tabular (a model "
                         "from tables) or rag (question answering over documents only)")
    try:
        return (DocumentsBrief if kind == "rag" else Brief).model_validate(raw)
    except ValidationError as exc:
        raise BriefError(f"brief {path} is invalid:\n{_describe(exc)}") from None


def load_tabular_brief(path: str | Path, needed_for: str) -> Brief:
    """Read a brief that must be tabular (``needed_for`` says what needs a model's tables, e.g. "serving").

    Raises:
        BriefError: as :func:`load_brief`, or naming a documents-only brief and what it cannot do.
    """
    brief = load_brief(path)
    if isinstance(brief, DocumentsBrief):
        raise BriefError(f"{needed_for} needs a tabular brief (a model over tables), but {path} is a documents-only "
                         "brief (kind rag); use `mlplatform ask` for its questions, or pass a tabular brief")
    return brief
