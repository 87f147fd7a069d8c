"""Stage: responsible-AI documentation — the model card, filled from lineage and metadata (seed phase 9)."""

from datetime import date

import dagster as dg
import polars as pl

from mlplatform.core.evaluation import slice_records
from mlplatform.core.io import write_text_atomic
from mlplatform.core.model_card import build_model_card, render_model_card
from mlplatform.defs.training import load_split, model_features
from mlplatform.resources.platform import PlatformResource


@dg.asset(group_name="reporting", deps=["model_registry", "evaluation_report", "drift_report", "data_quality_report"],
          kinds={"markdown"})
def model_card(platform: PlatformResource) -> dg.MaterializeResult:
    """The seed's model card for the registered model, generated from the brief, the training set, the
    evaluation, fairness, drift and data-quality results — never written by hand."""
    b = platform.brief
    split = load_split(platform)
    registered = platform.read_table("registry", "challenger").row(0, named=True)
    name = registered["candidate"]
    metrics = platform.read_table("evaluation", "metrics").filter(pl.col("candidate") == name)
    slices = platform.read_table("evaluation", "slices")
    timestamps = split.train[b.label.timestamp]
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
        "metrics": {r["metric"]: {"value": r["value"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]}
                    for r in metrics.iter_rows(named=True)},
        "sliced_metrics": slice_records(slices),
        "fairness": {r.pop("attribute"): r for r in platform.read_table("evaluation", "fairness").to_dicts()},
        "drift": platform.read_table("monitoring", "drift").select("feature", "psi", "severity").to_dicts(),
        "quality_total": float(platform.read_table("reports", "data_quality_overall")["points"].sum()),
    })
    markdown = render_model_card(card)
    path = write_text_atomic(markdown, platform.workspace.reports_dir / "model_card.md")
    return dg.MaterializeResult(metadata={"card": dg.MetadataValue.md(markdown),
                                          "version": registered["version"],
                                          "path": dg.MetadataValue.path(str(path))})


def build(brief) -> list:
    return [model_card]
