"""Stage: responsible-AI documentation — the model card, filled from lineage and metadata (method phase 9)."""

from dataclasses import asdict, replace
from datetime import date

import dagster as dg
import polars as pl

from mlplatform import asset_names
from mlplatform.brief import placeholder_fields
from mlplatform.core import tables
from mlplatform.core.evaluation.bias_evidence import bias_evidence
from mlplatform.core.io import write_text_atomic
from mlplatform.core.model_card import (
    NOT_RECORDED,
    CardExtras,
    CardFacts,
    ChecklistItem,
    CheckOutcome,
    ModelCard,
    bias_checklist,
    build_model_card,
    card_evidence,
    card_extras,
    model_card_json,
    render_model_card,
)
from mlplatform.core.model_families import registered_model_name
from mlplatform.core.readable import readable
from mlplatform.core.tracking import client_for
from mlplatform.resources.platform import PlatformResource, TrackingResource
from mlplatform.stage_io import load_split

# Where the card lies among the registered model run's MLflow artifacts.
CARD_ARTIFACT_PATH = "model_card"


def latest_check(instance: dg.DagsterInstance, asset: str, name: str):
    """The latest evaluation (``AssetCheckEvaluation``: passed, description, metadata) of a check; None when it
    was never evaluated in ``instance``."""
    key = dg.AssetCheckKey(dg.AssetKey(asset), name)
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key]).get(key)
    if record is None or record.event is None or record.event.dagster_event is None:
        return None
    return record.event.dagster_event.event_specific_data


def concept_drift_result(instance: dg.DagsterInstance) -> CheckOutcome | None:
    """The concept_drift check's latest result; None when never evaluated."""
    evaluation = latest_check(instance, asset_names.PERFORMANCE_REPORT, "concept_drift")
    if evaluation is None or not hasattr(evaluation, "passed"):
        return None
    return CheckOutcome("PASS" if evaluation.passed else "FAIL", evaluation.description or "")


def leakage_waivers(instance: dg.DagsterInstance) -> dict[str, str]:
    """Model inputs the single-feature leakage check let through as WAIVED (feature → the brief's reason)."""
    evaluation = latest_check(instance, asset_names.TRAINING_SET, "leakage_no_target_derived_feature")
    waived = getattr(evaluation, "metadata", {}).get("waived") if evaluation is not None else None
    value = getattr(waived, "value", waived) or {}
    return {str(feature): str(entry.get("reason", "")) if isinstance(entry, dict) else str(entry)
            for feature, entry in value.items()} if isinstance(value, dict) else {}


def retraining_schedule(instance: dg.DagsterInstance, brief) -> str:
    """When the model is retrained: the brief's schedule and rules, and each sensor or schedule of the code
    location whose job retrains, with its running / stopped state in the instance."""
    from mlplatform.code_location import automation_states, code_location, retrain_triggers

    items = code_location(brief)
    states = automation_states(instance, items)
    m = brief.monitoring
    triggers = ", ".join(f"{name} ({states.get(name, 'state not known')})" for name in retrain_triggers(items))
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


@dg.asset(name=asset_names.MODEL_CARD, group_name="reporting",
          deps=[asset_names.MODEL_REGISTRY, asset_names.EVALUATION_REPORT, asset_names.DRIFT_REPORT,
                asset_names.DATA_QUALITY_REPORT, asset_names.PERFORMANCE_REPORT,
                *(t.asset_key for t in (tables.METRICS, tables.SLICES, tables.FAIRNESS, tables.FAIRNESS_GROUPS,
                                        tables.EDGE_CASES, tables.GOLDEN_METRICS))],
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
    split = load_split(platform)
    registered = platform.read_table(tables.REGISTERED_CHALLENGER).row(0, named=True)
    facts = _card_facts(platform, split.train, registered, context.instance, tracking)
    checklist = bias_checklist(bias_evidence(b, split, platform.read_table(tables.FAIRNESS_GROUPS),
                                             platform.read_table(tables.EDGE_CASES), fairness=facts.fairness or {},
                                             sliced_metrics=facts.sliced_metrics or ()))
    platform.write_table(tables.BIAS_CHECKLIST, pl.DataFrame([asdict(item) for item in checklist]))
    markdown, files = _write_card(platform, build_model_card(facts), checklist, card_extras(facts))
    return dg.MaterializeResult(metadata=readable({
        "card": dg.MetadataValue.md(markdown), "version": registered["version"],
        "bias_checklist_failed": ", ".join(item.item for item in checklist if item.fails) or "none",
        "path": dg.MetadataValue.path(str(files[0])), "json": dg.MetadataValue.path(str(files[1])),
        "mlflow_artifact": _log_card(tracking, registered, files)}))


def _card_facts(platform: PlatformResource, train: pl.DataFrame, registered: dict, instance: dg.DagsterInstance,
                tracking: TrackingResource) -> CardFacts:
    """What the card says about the registered version: the evidence in the lake (training rows, metrics, slices,
    fairness, drift, data quality, the golden set) and what the Dagster instance and MLflow record."""
    b = platform.brief
    evidence = card_evidence(
        b, registered["candidate"], train, metrics=platform.read_table(tables.METRICS),
        slices=platform.read_table(tables.SLICES), fairness=platform.read_table(tables.FAIRNESS),
        drift=platform.read_table(tables.DRIFT),
        quality_points=platform.read_table(tables.DATA_QUALITY_OVERALL)["points"].to_list(),
        dataset_version=platform.read_table(tables.candidate(registered["candidate"]))["dataset_version"][0],
        golden_metrics=platform.read_table(tables.GOLDEN_METRICS))
    return _with_platform_records(replace(evidence, model_name=registered_model_name(b.name),
                                          model_version=registered["version"], date=date.today()),
                                  instance, tracking, registered["run_id"])


def _with_platform_records(facts: CardFacts, instance: dg.DagsterInstance, tracking: TrackingResource,
                           run_id: str) -> CardFacts:
    """The card's facts with what the Dagster instance and MLflow record: retraining, the concept_drift check's
    latest result, the promotion verdict, leakage waivers, and the brief's placeholders."""
    return replace(facts, retraining_schedule=retraining_schedule(instance, facts.brief),
                   concept_drift=concept_drift_result(instance),
                   promotion_verdict=promotion_verdict(tracking.uri, run_id),
                   leakage_waivers=leakage_waivers(instance), placeholders=placeholder_fields(facts.brief))


def _write_card(platform: PlatformResource, card: ModelCard, checklist: list[ChecklistItem],
                extras: CardExtras) -> tuple[str, list]:
    """The card as model_card.md and model_card.json in the reports folder; returns the Markdown and both paths."""
    markdown = render_model_card(card, checklist, extras)
    reports = platform.workspace.reports_dir
    return markdown, [write_text_atomic(markdown, reports / "model_card.md"),
                      write_text_atomic(model_card_json(card, checklist, extras), reports / "model_card.json")]


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
