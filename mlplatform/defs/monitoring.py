"""Stage: monitoring — whylogs profiles and feature drift against the training reference (seed phase 7)."""

from dataclasses import asdict
from datetime import datetime, time

import dagster as dg
import polars as pl

from mlplatform.core.drift import concept_drift, label_drift_chi2, prediction_drift_kl, psi_plot
from mlplatform.core.drift import drift_report as compute_drift
from mlplatform.core.feature_store import feature_view_name
from mlplatform.core.markdown import table
from mlplatform.core.metrics import compute_metrics, higher_is_better
from mlplatform.core.profiling import profile_frame, profile_summary, write_profile
from mlplatform.defs.evaluation import challenger_name
from mlplatform.defs.registry import load_champion
from mlplatform.defs.training import load_split, model_features
from mlplatform.resources.platform import PlatformResource, TrackingResource


def reference_and_current(platform: PlatformResource) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Daily feature rows of the training period (reference) and of the monitored period (current)."""
    b = platform.brief
    features = platform.read_table("features", feature_view_name(b.entity))
    at = pl.col("event_timestamp")
    reference = features.filter(at < datetime.combine(b.split.validation_start, time()))
    current = features.filter(at.is_between(datetime.combine(b.monitoring.current_start, time()),
                                            datetime.combine(b.monitoring.current_end, time()), closed="left"))
    return reference, current


@dg.asset(group_name="monitoring", deps=["features_daily", "training_set"], kinds={"whylogs"})
def whylogs_profiles(platform: PlatformResource) -> dg.MaterializeResult:
    """whylogs profiles of the training reference and of the monitored period, stored mergeable."""
    b = platform.brief
    reference, current = reference_and_current(platform)
    columns = model_features(b)
    paths = {}
    for name, frame in (("reference", reference), ("current", current)):
        view = profile_frame(frame.select(columns))
        paths[name] = write_profile(view, platform.workspace.profiles_dir / f"{name}.bin")
        platform.write_table("profiles", name, profile_summary(view))
    return dg.MaterializeResult(metadata={
        "reference_rows": reference.height, "current_rows": current.height,
        "current_summary": dg.MetadataValue.md(table(platform.read_table("profiles", "current"))),
        **{f"{k}_profile": dg.MetadataValue.path(str(v)) for k, v in paths.items()},
    })


@dg.asset(group_name="monitoring", deps=["features_daily", "training_set"], kinds={"numpy", "matplotlib"})
def drift_report(platform: PlatformResource) -> dg.MaterializeResult:
    """PSI, KS and Jensen-Shannon per model feature, monitored period against the training reference,
    with the seed's severity bands from the brief."""
    b = platform.brief
    reference, current = reference_and_current(platform)
    drifts = compute_drift(reference, current, model_features(b), psi_warning=b.thresholds.psi_warning,
                           psi_critical=b.thresholds.psi_critical)
    frame = pl.DataFrame([asdict(d) for d in drifts]).sort("psi", descending=True)
    path = platform.write_table("monitoring", "drift", frame)
    plot = psi_plot(drifts, platform.workspace.reports_dir / "drift" / "psi.png",
                    psi_warning=b.thresholds.psi_warning, psi_critical=b.thresholds.psi_critical)
    counts = frame["severity"].value_counts()
    return dg.MaterializeResult(metadata={
        "period": f"{b.monitoring.current_start} .. {b.monitoring.current_end}",
        "max_psi": float(frame["psi"].max()),
        **{f"{row['severity']}_features": row["count"] for row in counts.iter_rows(named=True)},
        "drift": dg.MetadataValue.md(table(frame)),
        "plot": dg.MetadataValue.path(str(plot)),
        "path": dg.MetadataValue.path(str(path)),
    })


@dg.asset(group_name="monitoring", deps=["champion_model", "evaluation_report", "training_set"],
          kinds={"mlflow", "numpy"})
def performance_report(platform: PlatformResource, tracking: TrackingResource) -> dg.MaterializeResult:
    """The champion on labels that arrived after it was evaluated: concept drift (primary metric down more
    than the brief allows), prediction drift (KL of scores) and label drift (chi-square), against training."""
    b = platform.brief
    version, model = load_champion(platform, tracking)
    if model is None:
        raise RuntimeError("no champion model yet: materialise champion_model (it needs the promotion gate to pass)")
    frame = platform.read_table("training", "training_set")
    at = pl.col(b.label.timestamp)
    current = frame.filter(at.is_between(datetime.combine(b.monitoring.current_start, time()),
                                         datetime.combine(b.monitoring.current_end, time()), closed="left"))
    train = load_split(platform).train
    if current.height == 0:
        raise RuntimeError(f"no labelled rows between {b.monitoring.current_start} and {b.monitoring.current_end} "
                           "yet; concept drift needs labels from the monitored period")
    primary = b.metrics.primary
    y = current[b.label.column].to_numpy()
    current_scores = model.predict_score(current)
    now = compute_metrics(b.task_type, y, current_scores, model.threshold)
    evaluated = platform.read_table("evaluation", "metrics").filter(
        (pl.col("candidate") == challenger_name(platform)) & (pl.col("metric") == primary))["value"][0]
    drift = concept_drift(primary, evaluated, now[primary], max_drop=b.monitoring.max_metric_drop,
                          higher_is_better=higher_is_better(primary))
    kl = prediction_drift_kl(model.predict_score(train), current_scores)
    chi2, chi2_p = label_drift_chi2(train[b.label.column].to_numpy(), y)
    summary = pl.DataFrame([{**asdict(drift), "champion_version": version, "rows": current.height,
                             "prediction_kl": kl, "label_chi2": chi2, "label_chi2_pvalue": chi2_p}])
    path = platform.write_table("monitoring", "performance", summary)
    return dg.MaterializeResult(metadata={
        f"{primary}_at_evaluation": evaluated, f"{primary}_now": now[primary],
        "relative_drop": drift.relative_drop, "severity": drift.severity, "champion_version": version,
        "prediction_kl": kl, "label_chi2_pvalue": chi2_p, "labelled_rows": current.height,
        "path": dg.MetadataValue.path(str(path)),
    })


@dg.asset_check(asset="performance_report", name="concept_drift",
                description="Concept drift: the champion's primary metric on newly labelled data has not dropped "
                "more than the brief allows (ERROR beyond it, WARN on any drop).")
def concept_drift_check(platform: PlatformResource) -> dg.AssetCheckResult:
    row = platform.read_table("monitoring", "performance").row(0, named=True)
    return dg.AssetCheckResult(
        passed=row["severity"] == "ok",
        severity=dg.AssetCheckSeverity.ERROR if row["severity"] == "critical" else dg.AssetCheckSeverity.WARN,
        metadata={k: row[k] for k in ("metric", "reference", "current", "relative_drop", "severity")},
        description=f"{row['metric']} {row['reference']:.4f} → {row['current']:.4f} "
                    f"({-row['relative_drop']:+.1%})",
    )


@dg.asset_check(asset="drift_report", description="No feature drifts past the brief's PSI bands "
                "(WARN above the warning band, ERROR above the critical one).")
def feature_drift(platform: PlatformResource) -> dg.AssetCheckResult:
    frame = platform.read_table("monitoring", "drift")
    critical = frame.filter(pl.col("severity") == "critical")["feature"].to_list()
    warning = frame.filter(pl.col("severity") == "warning")["feature"].to_list()
    return dg.AssetCheckResult(
        passed=not critical and not warning,
        severity=dg.AssetCheckSeverity.ERROR if critical else dg.AssetCheckSeverity.WARN,
        metadata={"critical": critical, "warning": warning, "max_psi": float(frame["psi"].max())},
        description=f"{len(critical)} critical, {len(warning)} warning features",
    )


def build(brief) -> list:
    return [whylogs_profiles, drift_report, feature_drift, performance_report, concept_drift_check]
