"""Stage: responsible-AI documentation — the model card, filled from lineage and metadata (method phase 9)."""

from datetime import date

import dagster as dg
import polars as pl

from mlplatform.brief import placeholder_fields
from mlplatform.core import tables
from mlplatform.core.datasets import model_features
from mlplatform.core.drift import NOT_APPLICABLE
from mlplatform.core.evaluation.bias_evidence import (
    PROXY_MAX_AUC,
    REPRESENTATION_MIN_RATIO,
    proxy_features,
    representation,
)
from mlplatform.core.evaluation.slices import slice_records
from mlplatform.core.io import write_text_atomic
from mlplatform.core.model_card import (
    NOT_RECORDED,
    bias_checklist,
    build_model_card,
    card_extras,
    model_card_json,
    render_model_card,
)
from mlplatform.core.model_families import FAMILIES_BY_NAME, registered_model_name
from mlplatform.core.quality import normalised_total
from mlplatform.core.readable import readable
from mlplatform.core.tracking import client_for
from mlplatform.resources.platform import PlatformResource, TrackingResource
from mlplatform.stage_io import load_split

# Where the card lies among the registered model run's MLflow artifacts.
CARD_ARTIFACT_PATH = "model_card"


def _bias_evidence(platform: PlatformResource, split) -> dict:
    """What the bias checklist judges, per protected attribute, read from the lake or measured on the split."""
    b = platform.brief
    later = pl.concat([split.validation, split.test])
    groups = platform.read_table(tables.FAIRNESS_GROUPS)
    by_attribute = {a: groups.filter(pl.col("attribute") == a).to_dicts() for a in b.protected_attributes} \
        if groups.width else {}
    return {
        # Proportional to whom: the hold-out is the population the model is judged on.
        "representation": {a: representation(split.train[a], split.test[a]).to_dicts() for a in b.protected_attributes},
        "fairness_groups": by_attribute,
        # Fitted on train, measured on later rows: a proxy must carry over to data it has not seen.
        "proxies": {a: proxy_features(split.train, later, model_features(b), a).to_dicts()
                    for a in b.protected_attributes},
        "edge_cases": platform.read_table(tables.EDGE_CASES).to_dicts(),
        "representation_min_ratio": REPRESENTATION_MIN_RATIO,
        "max_calibration_gap": b.thresholds.max_calibration_error,
        "proxy_max_auc": PROXY_MAX_AUC,
    }


def latest_check(instance: dg.DagsterInstance, asset: str, name: str):
    """The latest evaluation (``AssetCheckEvaluation``: passed, description, metadata) of a check; None when it
    was never evaluated in ``instance``."""
    key = dg.AssetCheckKey(dg.AssetKey(asset), name)
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key]).get(key)
    if record is None or record.event is None or record.event.dagster_event is None:
        return None
    return record.event.dagster_event.event_specific_data


def concept_drift_result(instance: dg.DagsterInstance) -> dict | None:
    """The concept_drift check's latest result as ``{status, description}``; None when never evaluated."""
    evaluation = latest_check(instance, "performance_report", "concept_drift")
    if evaluation is None or not hasattr(evaluation, "passed"):
        return None
    return {"status": "PASS" if evaluation.passed else "FAIL", "description": evaluation.description or ""}


def leakage_waivers(instance: dg.DagsterInstance) -> dict[str, str]:
    """Model inputs the single-feature leakage check let through as WAIVED (feature → the brief's reason)."""
    evaluation = latest_check(instance, "training_set", "leakage_no_target_derived_feature")
    waived = getattr(evaluation, "metadata", {}).get("waived") if evaluation is not None else None
    value = getattr(waived, "value", waived) or {}
    return {str(feature): str(entry.get("reason", "")) if isinstance(entry, dict) else str(entry)
            for feature, entry in value.items()} if isinstance(value, dict) else {}


def retraining_schedule(instance: dg.DagsterInstance, brief) -> str:
    """When the model is retrained: the brief's schedule and rules, and each sensor or schedule of the code
    location whose job retrains, with its running / stopped state in the instance."""
    from mlplatform.defs.governance import _code_location, _retrain_triggers, automation_states

    items = _code_location(brief)
    states = automation_states(instance, items)
    m = brief.monitoring
    triggers = ", ".join(f"{name} ({states.get(name, 'state not known')})" for name in _retrain_triggers(items))
    return (f"cron '{m.retrain_cron}' (UTC); on drift (a top-{m.top_features} feature's PSI above "
            f"{m.retrain_psi:g}) and on concept drift (primary metric down more than {m.max_metric_drop:.0%} on new "
            f"labels); a retrained challenger goes through the promotion gate ({m.retrain_rollout}). "
            f"Triggers in the code location: {triggers or 'none'}.")


def promotion_verdict(tracking_uri: str, run_id: str) -> str:
    """The experiment's one verdict: the run's MLflow tag, checked against its experiment record."""
    from mlplatform.core.tracking import experiment_record

    tag = client_for(tracking_uri).get_run(run_id).data.tags.get("verdict")
    record = (experiment_record(tracking_uri, run_id) or {}).get("verdict")
    if tag is None:
        return NOT_RECORDED
    if record is not None and record != tag:
        return f"CONFLICT: the run's tag says {tag}, its experiment record says {record}"
    return f"{tag} (experiment {run_id[:8]}: the MLflow tag and the experiment record agree)"


@dg.asset(group_name="reporting", deps=["model_registry", "evaluation_report", "drift_report", "data_quality_report",
                                        "performance_report",
                                        *(t.asset_key for t in (tables.METRICS, tables.SLICES, tables.FAIRNESS,
                                                                tables.FAIRNESS_GROUPS, tables.EDGE_CASES,
                                                                tables.GOLDEN_METRICS))],
          kinds={"markdown"})
def model_card(context: dg.AssetExecutionContext, platform: PlatformResource,
               tracking: TrackingResource) -> dg.MaterializeResult:
    """The method's model card for the registered model, generated from the brief, the training set, the
    evaluation, fairness, drift and data-quality results — never written by hand — with the method's bias
    checklist judged on that evidence. Written as model_card.md and model_card.json, logged as artifacts of
    the model's MLflow run, and pointed to by the registered version's `model_card` tag and description. It
    records the retraining schedule and triggers, the concept_drift check's latest result, the experiment's one
    promotion verdict, leakage waivers, and says DRAFT while the brief holds placeholders."""
    b = platform.brief
    drift = platform.read_table(tables.DRIFT)
    split = load_split(platform)
    registered = platform.read_table(tables.REGISTERED_CHALLENGER).row(0, named=True)
    name = registered["candidate"]
    metrics = platform.read_table(tables.METRICS).filter(pl.col("candidate") == name)
    slices = slice_records(platform.read_table(tables.SLICES))
    fairness = {r.pop("attribute"): r for r in platform.read_table(tables.FAIRNESS).to_dicts()}
    timestamps = pl.col(b.label.timestamp)
    parts = b.split_summary()
    meta = {
        "brief": b,
        "model_name": registered_model_name(b.name),
        "model_version": registered["version"],
        "date": date.today(),
        "model_type": FAMILIES_BY_NAME[name].model_type,
        "training_rows": split.train.height,
        "date_range": split.train.select(timestamps.dt.date().min().alias("first"),
                                         timestamps.dt.date().max().alias("last")).row(0),
        "dataset_version": platform.read_table(tables.candidate(name))["dataset_version"][0],
        "features": model_features(b),
        "datasets": [f"validation: {parts['validation']}", f"hold-out: {parts['test']}",
                     *_golden_description(platform)],
        "metrics": {r["metric"]: {"value": r["value"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]}
                    for r in metrics.iter_rows(named=True)},
        "sliced_metrics": slices,
        "fairness": fairness,
        "drift": None if (drift["severity"] == NOT_APPLICABLE).all() else
        drift.select("feature", "psi", "severity").to_dicts(),
        "quality_total": normalised_total(platform.read_table(tables.DATA_QUALITY_OVERALL)["points"].to_list()),
        "retraining_schedule": retraining_schedule(context.instance, b),
        "concept_drift": concept_drift_result(context.instance),
        "promotion_verdict": promotion_verdict(tracking.uri, registered["run_id"]),
        "leakage_waivers": leakage_waivers(context.instance),
        "placeholders": placeholder_fields(b),
    }
    card, extras = build_model_card(meta), card_extras(meta)
    checklist = bias_checklist({"brief": b, "fairness": fairness, "sliced_metrics": slices,
                                **_bias_evidence(platform, split)})
    platform.write_table(tables.BIAS_CHECKLIST, pl.DataFrame(checklist))
    markdown = render_model_card(card, checklist, extras)
    path = write_text_atomic(markdown, platform.workspace.reports_dir / "model_card.md")
    json_path = write_text_atomic(model_card_json(card, checklist, extras),
                                  platform.workspace.reports_dir / "model_card.json")
    card_uri = _log_card(tracking, registered, [path, json_path])
    failed = [item["item"] for item in checklist if item["fails"]]
    return dg.MaterializeResult(metadata=readable({"card": dg.MetadataValue.md(markdown),
                                                   "version": registered["version"],
                                                   "bias_checklist_failed": ", ".join(failed) or "none",
                                                   "path": dg.MetadataValue.path(str(path)),
                                                   "json": dg.MetadataValue.path(str(json_path)),
                                                   "mlflow_artifact": card_uri}))


def _golden_description(platform: PlatformResource) -> list[str]:
    """The golden test set as the card lists it (none when the brief disables it): size, version, metrics."""
    golden = platform.read_table(tables.GOLDEN_METRICS)
    if platform.brief.thresholds.golden_share == 0 or golden.height == 0:
        return []
    values = ", ".join(f"{r['metric']} {r['value']:.4f}" for r in golden.iter_rows(named=True))
    return [f"golden test set: {golden['rows'][0]:,} rows of keys never trained or tuned on "
            f"(version {golden['golden_version'][0]}); {values}"]


def _log_card(tracking: TrackingResource, registered: dict, files: list) -> str:
    """Log the card files to the registered model's run and point the model version at them; returns the
    Markdown card's ``runs:/`` URI."""
    client = client_for(tracking.uri)
    for file in files:
        client.log_artifact(registered["run_id"], str(file), CARD_ARTIFACT_PATH)
    uri = f"runs:/{registered['run_id']}/{CARD_ARTIFACT_PATH}/{files[0].name}"
    client.set_model_version_tag(tracking.model_name, registered["version"], "model_card", uri)
    client.update_model_version(tracking.model_name, registered["version"],
                                description=f"Model card (generated from lineage): {uri}")
    return uri


def build(brief) -> list:
    return [model_card]
