"""Stage: responsible-AI documentation — the model card, filled from lineage and metadata (seed phase 9)."""

from datetime import date

import dagster as dg
import polars as pl

from mlplatform.core.drift import NOT_APPLICABLE
from mlplatform.core.evaluation import (
    MAX_TPR_GAP,
    PROXY_MAX_AUC,
    REPRESENTATION_MIN_RATIO,
    proxy_features,
    representation,
    slice_records,
)
from mlplatform.core.io import write_text_atomic
from mlplatform.core.model_card import bias_checklist, build_model_card, model_card_json, render_model_card
from mlplatform.core.quality import normalised_total
from mlplatform.core.tracking import client_for
from mlplatform.defs.training import load_split, model_features
from mlplatform.resources.platform import PlatformResource, TrackingResource

# Where the card lies among the registered model run's MLflow artifacts.
CARD_ARTIFACT_PATH = "model_card"


def _bias_evidence(platform: PlatformResource, split) -> dict:
    """What the bias checklist judges, per protected attribute, read from the lake or measured on the split."""
    b = platform.brief
    later = pl.concat([split.validation, split.test])
    groups = platform.read_table("evaluation", "fairness_groups")
    by_attribute = {a: groups.filter(pl.col("attribute") == a).to_dicts() for a in b.protected_attributes} \
        if groups.width else {}
    return {
        # Proportional to whom: the hold-out is the population the model is judged on.
        "representation": {a: representation(split.train[a], split.test[a]).to_dicts() for a in b.protected_attributes},
        "fairness_groups": by_attribute,
        # Fitted on train, measured on later rows: a proxy must carry over to data it has not seen.
        "proxies": {a: proxy_features(split.train, later, model_features(b), a).to_dicts()
                    for a in b.protected_attributes},
        "edge_cases": platform.read_table("evaluation", "edge_cases").to_dicts(),
        "representation_min_ratio": REPRESENTATION_MIN_RATIO,
        "max_tpr_gap": MAX_TPR_GAP,
        "max_calibration_gap": b.thresholds.max_calibration_error,
        "proxy_max_auc": PROXY_MAX_AUC,
    }


@dg.asset(group_name="reporting", deps=["model_registry", "evaluation_report", "drift_report", "data_quality_report"],
          kinds={"markdown"})
def model_card(platform: PlatformResource, tracking: TrackingResource) -> dg.MaterializeResult:
    """The seed's model card for the registered model, generated from the brief, the training set, the
    evaluation, fairness, drift and data-quality results — never written by hand — with the seed's bias
    checklist judged on that evidence. Written as model_card.md and model_card.json, logged as artifacts of
    the model's MLflow run, and pointed to by the registered version's `model_card` tag and description."""
    b = platform.brief
    drift = platform.read_table("monitoring", "drift")
    split = load_split(platform)
    registered = platform.read_table("registry", "challenger").row(0, named=True)
    name = registered["candidate"]
    metrics = platform.read_table("evaluation", "metrics").filter(pl.col("candidate") == name)
    slices = slice_records(platform.read_table("evaluation", "slices"))
    fairness = {r.pop("attribute"): r for r in platform.read_table("evaluation", "fairness").to_dicts()}
    timestamps = split.train[b.label.timestamp]
    parts = b.split_summary()
    card = build_model_card({
        "brief": b,
        "model_name": f"{b.name}_model",
        "model_version": registered["version"],
        "date": date.today(),
        "model_type": {"lightgbm": "LightGBM", "torch": "torch MLP with categorical embeddings"}[name],
        "training_rows": split.train.height,
        "date_range": (timestamps.min().date(), timestamps.max().date()),
        "dataset_version": platform.read_table("candidates", name)["dataset_version"][0],
        "features": model_features(b),
        "datasets": [f"validation: {parts['validation']}", f"hold-out: {parts['test']}",
                     *_golden_description(platform)],
        "metrics": {r["metric"]: {"value": r["value"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]}
                    for r in metrics.iter_rows(named=True)},
        "sliced_metrics": slices,
        "fairness": fairness,
        "drift": None if (drift["severity"] == NOT_APPLICABLE).all() else
        drift.select("feature", "psi", "severity").to_dicts(),
        "quality_total": normalised_total(platform.read_table("reports", "data_quality_overall")["points"].to_list()),
    })
    checklist = bias_checklist({"brief": b, "fairness": fairness, "sliced_metrics": slices,
                                **_bias_evidence(platform, split)})
    platform.write_table("reporting", "bias_checklist", pl.DataFrame(checklist))
    markdown = render_model_card(card, checklist)
    path = write_text_atomic(markdown, platform.workspace.reports_dir / "model_card.md")
    json_path = write_text_atomic(model_card_json(card, checklist), platform.workspace.reports_dir / "model_card.json")
    card_uri = _log_card(tracking, registered, [path, json_path])
    failed = [item["item"] for item in checklist if item["status"] == "fail"]
    return dg.MaterializeResult(metadata={"card": dg.MetadataValue.md(markdown),
                                          "version": registered["version"],
                                          "bias_checklist_failed": ", ".join(failed) or "none",
                                          "path": dg.MetadataValue.path(str(path)),
                                          "json": dg.MetadataValue.path(str(json_path)),
                                          "mlflow_artifact": card_uri})


def _golden_description(platform: PlatformResource) -> list[str]:
    """The golden test set as the card lists it (none when the brief disables it): size, version, metrics."""
    golden = platform.read_table("evaluation", "golden_metrics")
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
