"""Stage: monitoring — whylogs profiles (ingested batches, training reference, monitored period, served
predictions), feature drift over time, prediction drift and concept drift against training (method phase 7).

Data without time (or a brief without a monitored period) has no later period to compare: the assets then
say so, with how to enable it, and still write their tables with the usual columns (severity
``not_applicable``), so that everything reading them keeps working.
"""

import base64
import shutil
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from mlplatform import asset_names
from mlplatform.brief import Brief, Split
from mlplatform.core import tables
from mlplatform.core.datasets import model_features
from mlplatform.core.drift import (
    AWAITING_LABELS,
    NOT_APPLICABLE,
    PREDICTION_DRIFT_SCHEMA,
    drift_by_column,
    drift_not_measured,
    drift_table,
    feature_kind,
    not_applicable_drift,
    prediction_drift_by_period,
    psi_over_time_plot,
    psi_plot,
)
from mlplatform.core.ingestion import monthly_keys, partitioned_sources
from mlplatform.core.markdown import table
from mlplatform.core.model_performance import awaiting_labels, measured_performance, not_applicable_performance
from mlplatform.core.retraining import SplitDates, split_dates
from mlplatform.core.rollout.prediction_log import model_answers, prediction_log_dir, read_prediction_log
from mlplatform.core.validation import validate_table
from mlplatform.resources.platform import PlatformResource, TrackingResource
from mlplatform.serving.model_loader import load_version
from mlplatform.stage_io import challenger_name, load_champion, load_split, monthly_partitions

MONTH = "%Y-%m"
DAY = "day"


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time())


def _monitored_period(brief: Brief) -> tuple[datetime, datetime]:
    """The monitored period as ``[start, end)`` midnights; callers measure drift only when the brief sets it."""
    start, end = brief.monitoring.current_start, brief.monitoring.current_end
    if start is None or end is None:
        raise ValueError(f"drift over time is not measured: {drift_not_measured(brief)}")
    return _midnight(start), _midnight(end)


def monitored_period(platform: PlatformResource) -> tuple[datetime, datetime]:
    """The monitored period as ``[start, end)`` midnights: the brief's fixed period, or (``monitoring.period:
    latest_batch``) the month of the newest batch every monthly source has ingested."""
    b = platform.brief
    if b.monitoring.period != "latest_batch":
        return _monitored_period(b)
    keys = [key for key in monthly_keys(b)
            if all(platform.workspace.partition(tables.raw(name), key).exists() for name in partitioned_sources(b))]
    if not keys:
        raise ValueError("monitoring.period is latest_batch but no monthly batch has been ingested yet; "
                         "materialise the raw sources' partitions (ingest_job) first")
    start = date.fromisoformat(f"{keys[-1]}-01")
    end = date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return _midnight(start), _midnight(end)


def _split_dates(platform: PlatformResource) -> SplitDates:
    """The temporal split's dates (fixed, or rolling from the training set's latest label)."""
    b = platform.brief
    if not isinstance(b.split, Split):
        raise ValueError(f"drift over time needs a temporal split: {drift_not_measured(b)}")
    return split_dates(b.split, platform.scan_table(tables.TRAINING_SET).select(b.label.timestamp).collect()
                       .to_series())


def _column_max(frame: pl.DataFrame, column: str) -> float:
    return float(frame.select(pl.col(column).max()).item())


def _not_measured(brief: Brief) -> dict:
    """The metadata that says drift over time was not measured, why, and how to enable it."""
    return {"drift_over_time": "not measured", "reason": drift_not_measured(brief)}


def _png_markdown(path: Path, title: str) -> dg.MetadataValue:
    """A PNG shown inline in the Dagster UI (a data URI inside Markdown)."""
    encoded = base64.b64encode(path.read_bytes()).decode()
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})")


def _windows(platform: PlatformResource) -> tuple[pl.Expr, pl.Expr]:
    """Filters of the feature table's rows: the training window (reference) and the monitored period (current)."""
    dates = _split_dates(platform)
    at = pl.col("event_timestamp")
    reference = at < _midnight(dates.validation_start)
    if dates.train_start is not None:
        reference = reference & (at >= _midnight(dates.train_start))
    return reference, at.is_between(*monitored_period(platform), closed="left")


# Rows of the feature table read at once where a monitoring asset walks it in chunks (about 0.5 GB of features).
CHUNK_ROWS = 2_000_000


def _profiles_by_chunk(platform: PlatformResource, columns: list[str]) -> dict[str, tuple[Any, int]]:
    """whylogs profiles of the reference and current rows, ``columns`` only, built from chunks of the feature table
    and merged (whylogs profiles are mergeable), so the windows are never held whole; with their row counts."""
    from mlplatform.core.profiling import merge_profiles, profile_frame

    scan = platform.scan_table(tables.features(platform.brief.entity))
    windows = dict(zip(("reference", "current"), _windows(platform), strict=True))
    total = scan.select(pl.len()).collect().item()
    views: dict[str, list] = {name: [] for name in windows}
    rows = dict.fromkeys(windows, 0)
    for start in range(0, max(total, 1), CHUNK_ROWS):
        chunk = scan.slice(start, CHUNK_ROWS).select("event_timestamp", *columns).collect()
        for name, window in windows.items():
            part = chunk.filter(window).drop("event_timestamp")
            if part.height or (not views[name] and start + CHUNK_ROWS >= total):  # an empty window: one profile
                views[name].append(profile_frame(part))
                rows[name] += part.height
        del chunk
    return {name: (merge_profiles(found), rows[name]) for name, found in views.items()}


@dg.asset(name=asset_names.WHYLOGS_PROFILES, group_name="monitoring",
          deps=[asset_names.FEATURES_DAILY, asset_names.TRAINING_SET], kinds={"whylogs"})
def whylogs_profiles(platform: PlatformResource) -> dg.MaterializeResult:
    """whylogs profiles of the training reference and of the monitored period, stored mergeable. Without a
    monitored period (e.g. data without time) only the reference is profiled and the current summary is empty."""
    from mlplatform.core.profiling import SUMMARY_SCHEMA, profile_frame, profile_summary, write_profile

    b = platform.brief
    measured = drift_not_measured(b) is None
    # With a monitored period the windows of the feature table are profiled chunk by chunk and merged.
    profiles = (_profiles_by_chunk(platform, model_features(b)) if measured
                else {"reference": (profile_frame(load_split(platform).train.select(model_features(b))),
                                    load_split(platform).train.height)})
    paths = {}
    for name, (view, _) in profiles.items():
        paths[name] = write_profile(view, platform.workspace.profiles_dir / f"{name}.bin")
        platform.write_table(tables.profile(name), profile_summary(view))
    if not measured:
        platform.write_table(tables.CURRENT_PROFILE, pl.DataFrame(schema=SUMMARY_SCHEMA))
        (platform.workspace.profiles_dir / "current.bin").unlink(missing_ok=True)  # no stale period is shown
    summary = "current" if measured else "reference"
    return dg.MaterializeResult(metadata={
        **{f"{name}_rows": rows for name, (_, rows) in profiles.items()},
        **({} if measured else _not_measured(b)),
        f"{summary}_summary": dg.MetadataValue.md(table(platform.read_table(tables.profile(summary)))),
        **{f"{k}_profile": dg.MetadataValue.path(str(v)) for k, v in paths.items()},
    })


def _batch_profiles_asset(brief: Brief, sources: list[str]) -> dg.AssetsDefinition:
    @dg.asset(
        name=asset_names.BATCH_PROFILES,
        group_name="monitoring",
        partitions_def=monthly_partitions(brief),
        deps=[asset_names.raw(name) for name in sources],
        kinds={"whylogs"},
        description="A whylogs profile of each monthly batch as ingested (" + ", ".join(sources) + "): the rows "
        "that meet the contract, typed, stored in whylogs' mergeable binary format (one file per source and "
        "month; merge any months with mlplatform.core.profiling.merge_profiles), with a per-column summary.",
    )
    def batch_profiles(context: dg.AssetExecutionContext, platform: PlatformResource) -> dg.MaterializeResult:
        from mlplatform.core.profiling import profile_frame, profile_summary, write_profile

        key = context.partition_key
        metadata: dict = {}
        for name in sources:
            path = platform.workspace.partition(tables.raw(name), key)
            if not path.exists():
                raise FileNotFoundError(f"batch {key} of '{name}' has not been ingested ({path}); materialise "
                                        f"raw_{name} for partition {key} first")
            result = validate_table(pl.read_parquet(path), name, platform.brief.sources[name])
            view = profile_frame(result.valid)
            written = write_profile(view, platform.workspace.profiles_dir / "batches" / name / f"{key}.bin")
            summary = profile_summary(view)
            platform.write_partition(tables.batch_profile(name), key, summary.with_columns(pl.lit(key).alias("batch")))
            metadata |= {f"{name}_rows": result.valid.height, f"{name}_quarantined": result.quarantined.height,
                         f"{name}_summary": dg.MetadataValue.md(table(summary)),
                         f"{name}_profile": dg.MetadataValue.path(str(written))}
        return dg.MaterializeResult(metadata=metadata)

    return batch_profiles


def _drift_by_column(platform: PlatformResource) -> tuple[list, pl.DataFrame]:
    """The drift report (monitored period against the training window) and PSI of every model feature in every
    month from the training window on, reading the feature table one column at a time (core.drift.drift_by_column):
    only the row times, one feature column and its samples are in memory at once."""
    b = platform.brief
    scan = platform.scan_table(tables.features(b.entity))
    reference, current = _windows(platform)
    at = pl.col("event_timestamp")
    since = scan.filter(reference).select(at.min()).collect().item()  # months from the training window's first row
    if since is None:
        raise ValueError("drift needs a non-empty reference and current frame")
    first = since.year * 12 + since.month - 1
    # Each row's month counted from the first (-1 before it), as Int32 straight from the scan.
    times = scan.select(reference.alias("reference"), current.alias("current"),
                        pl.when(at >= since).then(at.dt.year().cast(pl.Int32) * 12 + at.dt.month() - 1 - first)
                        .otherwise(-1).cast(pl.Int32).alias("period")).collect()
    is_reference, is_current = times["reference"].to_numpy(), times["current"].to_numpy()
    period = times["period"].to_numpy()
    names = [f"{(first + k) // 12:04d}-{(first + k) % 12 + 1:02d}" for k in range(int(period.max()) + 1)]
    del times
    schema = scan.collect_schema()

    def column(feature: str) -> pl.Series:  # text columns as categoricals: the same categories, a quarter the bytes
        value = pl.col(feature).cast(pl.Categorical) if schema[feature] == pl.String else pl.col(feature)
        return scan.select(value).collect(engine="streaming").to_series()

    return drift_by_column(column, model_features(b), reference=is_reference, current=is_current, period=period,
                           period_names=names, psi_warning=b.thresholds.psi_warning,
                           psi_critical=b.thresholds.psi_critical, max_rows=b.monitoring.drift_max_rows)


def _psi_over_time_plot(platform: PlatformResource, by_month: pl.DataFrame) -> Path:
    """The dashboard: PSI of every model feature in every month, with the split's and monitored period's months."""
    b = platform.brief
    dates = _split_dates(platform)
    markers = {"validation": dates.validation_start.strftime(MONTH), "test": dates.test_start.strftime(MONTH),
               "monitored": monitored_period(platform)[0].strftime(MONTH)}
    return psi_over_time_plot(by_month, platform.workspace.reports_dir / "drift" / "psi_over_time.png",
                              psi_warning=b.thresholds.psi_warning, psi_critical=b.thresholds.psi_critical,
                              markers=markers)


@dg.asset(name=asset_names.DRIFT_REPORT, group_name="monitoring",
          deps=[asset_names.FEATURES_DAILY, asset_names.TRAINING_SET], kinds={"numpy", "matplotlib"})
def drift_report(platform: PlatformResource) -> dg.MaterializeResult:
    """PSI, KS and Jensen-Shannon per model feature, monitored period against the training reference, with the
    method's severity bands from the brief; and the dashboard: PSI of every feature in every month. Without a
    monitored period (data without time) drift is not measured: each feature is listed as not applicable."""
    b = platform.brief
    if drift_not_measured(b):
        return _drift_not_applicable(platform)
    drifts, by_month = _drift_by_column(platform)
    frame = drift_table(drifts)
    path = platform.write_table(tables.DRIFT, frame)
    plot = psi_plot(drifts, platform.workspace.reports_dir / "drift" / "psi.png",
                    psi_warning=b.thresholds.psi_warning, psi_critical=b.thresholds.psi_critical)
    dashboard = _psi_over_time_plot(platform, by_month)
    platform.write_table(tables.DRIFT_BY_MONTH, by_month)
    counts = frame["severity"].value_counts()
    return dg.MaterializeResult(metadata={
        "period": " .. ".join(f"{day:%Y-%m-%d}" for day in monitored_period(platform)),
        "max_psi": _column_max(frame, "psi"),
        **{f"{row['severity']}_features": row["count"] for row in counts.iter_rows(named=True)},
        "psi_over_time": _png_markdown(dashboard, "PSI per feature and month"),
        "drift": dg.MetadataValue.md(table(frame)),
        "plot": dg.MetadataValue.path(str(plot)),
        "dashboard": dg.MetadataValue.path(str(dashboard)),
        "path": dg.MetadataValue.path(str(path)),
    })


def _drift_not_applicable(platform: PlatformResource) -> dg.MaterializeResult:
    """Data without a monitored period: each model feature listed as not applicable, no month measured."""
    b = platform.brief
    schema = platform.read_table(tables.TRAINING_SET).schema
    frame = not_applicable_drift({f: feature_kind(schema[f]) for f in model_features(b)})
    path = platform.write_table(tables.DRIFT, frame)
    platform.write_table(tables.DRIFT_BY_MONTH, pl.DataFrame(
        schema={"period": pl.String, "feature": pl.String, "rows": pl.Int64, "psi": pl.Float64,
                "severity": pl.String}))
    return dg.MaterializeResult(metadata={**_not_measured(b), "features": frame.height,
                                          "path": dg.MetadataValue.path(str(path))})


@dg.asset(name=asset_names.PERFORMANCE_REPORT, group_name="monitoring",
          deps=[asset_names.CHAMPION_MODEL, asset_names.EVALUATION_REPORT, asset_names.TRAINING_SET],
          kinds={"mlflow", "numpy"})
def performance_report(platform: PlatformResource, tracking: TrackingResource) -> dg.MaterializeResult:
    """The champion on labels that arrived after it was evaluated: concept drift (primary metric down more
    than the brief allows), prediction drift (KL of scores) and label drift (chi-square), against training.
    Data without time has no later labels: the report then says concept drift is not applicable."""
    b, primary = platform.brief, platform.brief.metrics.primary
    if drift_not_measured(b):
        path = platform.write_table(tables.PERFORMANCE, not_applicable_performance(primary))
        return dg.MaterializeResult(metadata={**_not_measured(b), "severity": NOT_APPLICABLE,
                                              "path": dg.MetadataValue.path(str(path))})
    version, model = load_champion(platform, tracking)
    if model is None:
        raise RuntimeError("no champion model yet: materialise champion_model (it needs the promotion gate to pass)")
    at, label, period = pl.col(b.label.timestamp), b.label.column, monitored_period(platform)
    current = platform.read_table(tables.TRAINING_SET).filter(at.is_between(*period, closed="left"))
    if current.height == 0:  # labels arrive after their delay: judged by a later run, proxies meanwhile
        summary, metadata = awaiting_labels(primary, version, period, b.label.delay_days)
    else:
        evaluated = platform.read_table(tables.METRICS).filter(
            (pl.col("candidate") == challenger_name(platform)) & (pl.col("metric") == primary))["value"][0]
        train = load_split(platform).train
        summary, metadata = measured_performance(
            b.task_type, primary, version, evaluated=evaluated, labels=current[label].to_numpy(),
            scores=model.predict_score(current), threshold=model.threshold, train_labels=train[label].to_numpy(),
            train_scores=model.predict_score(train), max_drop=b.monitoring.max_metric_drop)
    path = platform.write_table(tables.PERFORMANCE, summary)
    return dg.MaterializeResult(metadata={**metadata, "path": dg.MetadataValue.path(str(path))})


def _served_scores(rows: list[tuple], task: str) -> np.ndarray:
    """The score a logged prediction carries: the probability, or the value for regression."""
    return np.array([row[0 if task == "regression" else 1] for row in rows], dtype=np.float64)


def _reference_scores(platform: PlatformResource, tracking: TrackingResource, versions: list[str]) -> dict:
    """Each served version's answers on the training reference, loaded as the serving app loads it (verified
    files, calibrator), so served and reference scores are comparable."""
    b = platform.brief
    train = load_split(platform).train
    scores = {}
    for version in versions:
        scorer, download = load_version(b, platform.workspace, version, tracking.uri)
        try:
            scores[version] = _served_scores(scorer.predict(train), b.task_type)
        finally:
            shutil.rmtree(download, ignore_errors=True)
    return scores


def _empty_prediction_log(platform: PlatformResource) -> dg.MaterializeResult:
    """Nothing served yet: empty tables with their usual columns, and metadata that says so."""
    from mlplatform.core.profiling import SUMMARY_SCHEMA

    platform.write_table(tables.PREDICTION_PROFILES, pl.DataFrame(schema={DAY: pl.String, **SUMMARY_SCHEMA}))
    path = platform.write_table(tables.PREDICTION_DRIFT, pl.DataFrame(schema=PREDICTION_DRIFT_SCHEMA))
    folder = prediction_log_dir(platform.workspace)
    return dg.MaterializeResult(metadata={
        "logged_predictions": 0,
        "prediction_log": f"empty: no predictions are logged under {folder} yet, so there is nothing to profile. "
                          "Serve the model (mlplatform serve) and send requests; the app writes its log there.",
        "path": dg.MetadataValue.path(str(path))})


def _prediction_drift(platform: PlatformResource, tracking: TrackingResource,
                      log: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The logged predictions a model scored, and their drift per day and model version: the KL divergence of each
    version's served scores from its scores on the training reference."""
    score = "prediction" if platform.brief.task_type == "regression" else "probability"
    scored = model_answers(log, score)
    references = _reference_scores(platform, tracking, scored["model_version"].unique().sort().to_list())
    return scored, prediction_drift_by_period(scored, references, score=score, period=DAY, version="model_version")


@dg.asset(name=asset_names.PREDICTION_PROFILES, group_name="monitoring",
          deps=[asset_names.CHAMPION_MODEL, asset_names.TRAINING_SET], kinds={"whylogs", "numpy"})
def prediction_profiles(platform: PlatformResource, tracking: TrackingResource) -> dg.MaterializeResult:
    """whylogs profiles of the serving app's prediction log, one per day (UTC): the features as served and the
    outputs, stored mergeable beside the other profiles; and prediction drift per day and model version, the KL
    divergence of its served scores from its scores on the training reference. An empty log is reported as such."""
    from mlplatform.core.profiling import served_frame, write_profiles_by_period

    log = read_prediction_log(platform.workspace)
    if log.height == 0:
        return _empty_prediction_log(platform)
    log = log.with_columns(pl.col("request_time").dt.strftime("%Y-%m-%d").alias(DAY))
    folder = platform.workspace.profiles_dir / "predictions"
    summaries = write_profiles_by_period(served_frame(log).with_columns(log[DAY]), DAY, folder)
    platform.write_table(tables.PREDICTION_PROFILES, summaries)
    scored, drift = _prediction_drift(platform, tracking, log)
    path = platform.write_table(tables.PREDICTION_DRIFT, drift)
    latest = summaries.filter(pl.col(DAY) == summaries[DAY][-1])
    return dg.MaterializeResult(metadata={
        "logged_predictions": log.height,
        "scored_predictions": scored.height,
        "days": log[DAY].n_unique(),
        "max_prediction_kl": _column_max(drift, "kl") if drift.height else "n/a: no model-scored predictions",
        "prediction_drift": dg.MetadataValue.md(table(drift)),
        f"summary_{latest[DAY][0]}": dg.MetadataValue.md(table(latest.drop(DAY))),
        "profiles": dg.MetadataValue.path(str(folder)),
        "path": dg.MetadataValue.path(str(path)),
    })


def _day_versions(frame: pl.DataFrame) -> str:
    return ", ".join(f"{r['period']} version {r['model_version']} (KL {r['kl']:.3f}, {r['rows']} predictions)"
                     for r in frame.iter_rows(named=True))


def prediction_drift_result(drift: pl.DataFrame, *, max_kl: float, min_rows: int) -> dg.AssetCheckResult:
    """The prediction-drift verdict on ``monitoring/prediction_drift``: WARN when a day and model version with at
    least ``min_rows`` served predictions has a KL above ``max_kl``, listing each; smaller days are listed, not
    judged. The method calls prediction drift a warning (it may mean upstream data problems), so it never blocks."""
    if drift.height == 0:
        return dg.AssetCheckResult(passed=True, metadata={"max_prediction_kl": max_kl},
                                   description="no logged predictions with a model score: nothing to judge")
    too_few = drift.filter(pl.col("rows") < min_rows)
    over = drift.filter((pl.col("rows") >= min_rows) & (pl.col("kl") > max_kl)).sort("kl", descending=True)
    description = (f"prediction drift above KL {max_kl} on {over.height} day(s): {_day_versions(over)}" if over.height
                   else f"every judged day is within KL {max_kl} (max {_column_max(drift, 'kl'):.4f})")
    if too_few.height:
        description += f"; not judged (under {min_rows} predictions): {_day_versions(too_few)}"
    return dg.AssetCheckResult(
        passed=over.height == 0, severity=dg.AssetCheckSeverity.WARN,
        metadata={"max_prediction_kl": max_kl, "min_rows": min_rows, "days_over": over["period"].to_list(),
                  "days_not_judged": too_few["period"].to_list(),
                  "prediction_drift": dg.MetadataValue.md(table(drift))},
        description=description)


@dg.asset_check(asset=asset_names.PREDICTION_PROFILES, name="prediction_drift",
                description="Prediction drift: no day and model version serves scores further than the brief's "
                "KL limit from that version's scores on the training split (WARN, never blocking: the method reads "
                "it as a sign of upstream data problems); passes when nothing was logged.")
def prediction_drift_check(platform: PlatformResource) -> dg.AssetCheckResult:
    t = platform.brief.thresholds
    return prediction_drift_result(platform.read_table(tables.PREDICTION_DRIFT),
                                   max_kl=t.max_prediction_kl, min_rows=t.prediction_kl_min_rows)


def _not_applicable_check(brief: Brief, what: str) -> dg.AssetCheckResult:
    reason = drift_not_measured(brief) or "the report was written without a monitored period"
    return dg.AssetCheckResult(passed=True, metadata=_not_measured(brief),
                               description=f"not applicable: {what} is not measured; {reason}")


@dg.asset_check(asset=asset_names.PERFORMANCE_REPORT, name="concept_drift",
                description="Concept drift: the champion's primary metric on newly labelled data has not dropped "
                "more than the brief allows (ERROR beyond it, WARN on any drop); not applicable to data without "
                "time.")
def concept_drift_check(platform: PlatformResource) -> dg.AssetCheckResult:
    row = platform.read_table(tables.PERFORMANCE).row(0, named=True)
    if row["severity"] == NOT_APPLICABLE:
        return _not_applicable_check(platform.brief, "concept drift")
    if row["severity"] == AWAITING_LABELS:
        return dg.AssetCheckResult(passed=True, metadata={"severity": AWAITING_LABELS, "labelled_rows": 0},
                                   description="awaiting labels: the monitored period has no labelled rows yet")
    return dg.AssetCheckResult(
        passed=row["severity"] == "ok",
        severity=dg.AssetCheckSeverity.ERROR if row["severity"] == "critical" else dg.AssetCheckSeverity.WARN,
        metadata={k: row[k] for k in ("metric", "reference", "current", "relative_drop", "severity")},
        description=f"{row['metric']} {row['reference']:.4f} → {row['current']:.4f} "
                    f"({-row['relative_drop']:+.1%})",
    )


@dg.asset_check(asset=asset_names.DRIFT_REPORT, description="No feature drifts past the brief's PSI bands "
                "(WARN above the warning band, ERROR above the critical one); not applicable to data without time.")
def feature_drift(platform: PlatformResource) -> dg.AssetCheckResult:
    frame = platform.read_table(tables.DRIFT)
    if frame.height and (frame["severity"] == NOT_APPLICABLE).all():
        return _not_applicable_check(platform.brief, "feature drift over time")
    critical = frame.filter(pl.col("severity") == "critical")["feature"].to_list()
    warning = frame.filter(pl.col("severity") == "warning")["feature"].to_list()
    return dg.AssetCheckResult(
        passed=not critical and not warning,
        severity=dg.AssetCheckSeverity.ERROR if critical else dg.AssetCheckSeverity.WARN,
        metadata={"critical": critical, "warning": warning, "max_psi": _column_max(frame, "psi")},
        description=f"{len(critical)} critical, {len(warning)} warning features",
    )


def build(brief: Brief) -> list:
    sources = partitioned_sources(brief)
    batches = [_batch_profiles_asset(brief, sources)] if sources else []
    return [whylogs_profiles, *batches, drift_report, feature_drift, performance_report, concept_drift_check,
            prediction_profiles, prediction_drift_check]
