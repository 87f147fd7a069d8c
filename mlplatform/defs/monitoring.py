"""Stage: monitoring — whylogs profiles and feature drift against the training reference (seed phase 7)."""

from dataclasses import asdict
from datetime import datetime, time

import dagster as dg
import polars as pl

from mlplatform.core.drift import drift_report as compute_drift
from mlplatform.core.drift import psi_plot
from mlplatform.core.feature_store import feature_view_name
from mlplatform.core.markdown import table
from mlplatform.core.profiling import profile_frame, profile_summary, write_profile
from mlplatform.defs.training import model_features
from mlplatform.resources.platform import PlatformResource


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
    return [whylogs_profiles, drift_report, feature_drift]
