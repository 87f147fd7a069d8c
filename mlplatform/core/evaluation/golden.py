"""The golden test set in the evaluation: the challenger's primary metric and guardrails on it, whether it has the
rows per class to judge a promotion, and the report's section on it."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from mlplatform.brief import Brief
from mlplatform.core.markdown import table
from mlplatform.core.metrics import compute_metrics
from mlplatform.core.promotion import golden_shortfall
from mlplatform.core.tracking import dataset_version

GOLDEN_METRICS_SCHEMA = {"metric": pl.String, "value": pl.Float64}


@dataclass(frozen=True)
class GoldenSummary:
    """What the report and the asset's metadata say about the golden set.

    Attributes:
        share: the brief's share of keys set aside (0: disabled).
        version: the golden rows' content hash.
        rows, keys: labelled rows and distinct keys in it.
        metrics: the challenger's primary metric and guardrails on it (empty when there are no rows).
        not_judged: why the promotion gate will not judge on it (too few rows per class), or None.
    """

    share: float
    version: str
    rows: int
    keys: int
    metrics: Mapping[str, float]
    not_judged: str | None


def golden_evaluation(brief: Brief, golden: pl.DataFrame, predictor: Any,
                      threshold: float) -> tuple[pl.DataFrame, GoldenSummary]:
    """The challenger (``predictor`` at ``threshold``) on the golden rows (every labelled row of the keys the brief
    sets aside, see :func:`mlplatform.core.datasets.golden_set`), versioned by content hash.

    Returns:
        The evaluation's golden_metrics table (``metric``, ``value``, ``golden_version``, ``rows``) and what the
        report says about it.
    """
    version, y = dataset_version(golden), golden[brief.label.column].to_numpy()
    metrics: dict[str, float] = {}
    not_judged = None
    if golden.height:
        scores = predictor.predict_score(golden)
        measured = compute_metrics(brief.task_type, y, scores, threshold)
        metrics = {m: measured[m] for m in (brief.metrics.primary, *brief.metrics.guardrails)}
        classes = scores.shape[1] if brief.task_type == "multiclass" else 2
        not_judged = golden_shortfall(brief.task_type, y, classes, brief.thresholds.golden_min_class_rows)
    frame = pl.DataFrame({"metric": list(metrics), "value": list(metrics.values())},
                         schema=GOLDEN_METRICS_SCHEMA).with_columns(golden_version=pl.lit(version),
                                                                    rows=pl.lit(golden.height, pl.Int64))
    return frame, GoldenSummary(share=brief.thresholds.golden_share, version=version, rows=golden.height,
                                keys=golden[brief.entity_key].n_unique(), metrics=metrics, not_judged=not_judged)


def golden_markdown(golden: GoldenSummary, primary: str, max_regression: float) -> str:
    """The report's golden-set section, from :func:`golden_evaluation`'s summary."""
    head = "## Golden test set\n\n"
    if golden.share == 0:
        return head + "Disabled (thresholds.golden_share is 0): promotions are judged on the hold-out only."
    text = (f"{golden.rows:,} labelled rows of {golden.keys:,} keys ({golden.share:.0%} of keys, chosen "
            f"by a stable hash of the key; version `{golden.version}`), never trained, validated or tuned on. "
            "The promotion gate scores the champion on the same rows and blocks a challenger whose "
            f"{primary} falls more than {max_regression:.0%} below it.")
    if golden.metrics:
        text += "\n\n" + table(pl.DataFrame({"metric": list(golden.metrics),
                                              "challenger": list(golden.metrics.values())}))
    if golden.not_judged:
        text += f"\n\nNot judged at promotion: {golden.not_judged}."
    return head + text
