"""The evaluation report's numbers and text, assembled from the subject modules: the challenger and every baseline
on the hold-out (:func:`evaluate_hold_out`), the report's context and Markdown, and the figures its asset shows."""

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

from mlplatform.brief import Brief, draft_notice, placeholder_fields
from mlplatform.core import tables
from mlplatform.core.calibration import CalibrationSummary
from mlplatform.core.datasets import model_features
from mlplatform.core.evaluation.cross_validation import CrossValidation
from mlplatform.core.evaluation.edge_cases import edge_case_probe
from mlplatform.core.evaluation.error_analysis import ErrorAnalysis
from mlplatform.core.evaluation.fairness_assessment import FairnessReport
from mlplatform.core.evaluation.golden import GoldenSummary, golden_markdown
from mlplatform.core.evaluation.hold_out_metrics import (
    Candidate,
    baseline_comparison,
    lift,
    metric_table,
    prediction_table,
    random_reference,
)
from mlplatform.core.evaluation.kill_criteria import KillCriterion, kill_criteria
from mlplatform.core.evaluation.skew import SkewComparison
from mlplatform.core.evaluation.slices import slice_records, sliced_metrics
from mlplatform.core.holdout import SetApart
from mlplatform.core.report import (
    CandidateMetrics,
    HoldOut,
    ReportContext,
    candidate_context,
    render_evaluation_report,
)
from mlplatform.core.selection import Selection

EDGE_CASE_ROWS = 20
# What the report says about which scores the numbers use (the calibrator is monotone and saved for serving).
SCORES_USED = ("Every metric, interval, slice, fairness figure and the promotion gate use the model's raw scores "
               "and its validation-chosen threshold. A calibrator, when fitted, is saved with the model "
               "(calibrator.json) and changes only the probability a prediction reports; decisions stay on "
               "the raw score, so they and these metrics are the same with or without it.")


@dataclass(frozen=True)
class HoldOutResults:
    """The challenger against every other candidate and baseline on the hold-out.

    ``parts`` is :func:`mlplatform.core.report.candidate_context` of the metric table; ``random`` the primary
    metric of guessing from the label distribution.
    """

    metrics: pl.DataFrame
    comparisons: pl.DataFrame
    slices: pl.DataFrame
    edge_cases: pl.DataFrame
    kill_criteria: list[KillCriterion]
    predictions: pl.DataFrame
    parts: CandidateMetrics
    random: float
    primary: str

    @property
    def headline(self) -> float:
        """The challenger's primary metric on the hold-out."""
        return self.parts.metrics[self.primary]["value"]

    def lake_tables(self) -> dict[tables.Table, pl.DataFrame]:
        """Each result's lake table."""
        return {tables.METRICS: self.metrics, tables.BASELINE_COMPARISON: self.comparisons,
                tables.SLICES: self.slices, tables.KILL_CRITERIA: pl.DataFrame([asdict(k) for k in self.kill_criteria]),
                tables.EDGE_CASES: self.edge_cases, tables.PREDICTIONS: self.predictions}


def evaluate_hold_out(brief: Brief, train: pl.DataFrame, test: pl.DataFrame, scored: list[Candidate],
                      predict: Any, quality: KillCriterion | None) -> HoldOutResults:
    """The challenger (``scored[0]``, scored by ``predict``) against the other candidates and the baselines
    (``scored[1:]``) on the ``test`` rows: metrics with intervals (the guardrails' for the challenger), paired
    comparisons, slices, edge-case probes (reference ranges from ``train``), the kill criteria (``quality``: the
    data-quality criterion's row) and the per-row predictions."""
    label, primary, task = brief.label.column, brief.metrics.primary, brief.task_type
    y, model = test[label].to_numpy(), scored[0]
    metrics = metric_table(task, y, scored, {c.name: [primary] for c in scored}
                           | {model.name: [primary, *brief.metrics.guardrails]})
    parts = candidate_context(list(metrics.to_dicts()), model.name, primary)
    random = random_reference(task, y, primary)
    kills = kill_criteria(parts.metrics[primary]["value"], parts.baselines["rules"][primary], random, primary,
                          brief.kill_criteria, quality)
    return HoldOutResults(
        metrics=metrics, comparisons=baseline_comparison(task, primary, y, model, scored[1:]),
        slices=sliced_metrics(task, test, label, model.scores, model.threshold, brief.slice_by),
        edge_cases=edge_case_probe(predict, test.head(EDGE_CASE_ROWS), model_features(brief), task,
                                   reference=train, label=label),
        kill_criteria=kills,
        predictions=prediction_table(task, test.select(brief.entity_key, brief.label.timestamp, label),
                                     model.scores, model.threshold),
        parts=parts, random=random, primary=primary)


def hold_out_summary(brief: Brief, test: pl.DataFrame) -> HoldOut:
    """The report's hold-out line: its period (first and last label day, or the split's description without
    time), rows and, binary, the positive rate."""
    timestamp = pl.col(brief.label.timestamp)
    period = (" .. ".join(test.select(timestamp.min().alias("first"), timestamp.max().alias("last"))
                          .select(pl.all().dt.strftime("%Y-%m-%d")).row(0))
              if brief.has_time else brief.split_summary()["test"])
    return HoldOut(period=period, rows=test.height,
                   positive_rate=float(np.mean(test[brief.label.column].to_numpy())) if brief.task_type == "binary"
                   else None)


def report_context(brief: Brief, selection: Selection, test: pl.DataFrame, results: HoldOutResults, *,
                   cross_validation: CrossValidation, calibration: CalibrationSummary | None,
                   fairness: FairnessReport, worst_predictions: ErrorAnalysis, skew: SkewComparison) -> ReportContext:
    """What :func:`mlplatform.core.report.render_evaluation_report` renders: the hold-out results and the deeper
    evaluation's sections (see :class:`~mlplatform.core.report.ReportContext`)."""
    primary, parts = brief.metrics.primary, results.parts
    return ReportContext(
        title=f"{brief.name} (challenger {selection.challenger}, chosen by the model guide on validation "
              f"{primary}: " + ", ".join(f"{n} {v:.4f}" for n, v in selection.validation.items())
              + "; see Model selection)",
        task=brief.task_type, model_name=selection.challenger, primary_metric=primary,
        scores_used=SCORES_USED, holdout=hold_out_summary(brief, test),
        metrics=parts.metrics, baselines={**parts.baselines, "random": {primary: results.random}},
        deltas=parts.deltas,
        comparisons=results.comparisons.with_columns(pl.col("baseline").replace(parts.shown)).to_dicts(),
        kill_criteria=results.kill_criteria, slices=slice_records(results.slices),
        edge_cases=results.edge_cases.to_dicts(), cross_validation=cross_validation, calibration=calibration,
        fairness=fairness, worst_predictions=worst_predictions, skew=skew,
    )


def excluded_markdown(excluded: SetApart) -> str:
    """The report's note on hold-out rows set apart (see :func:`mlplatform.stage_io.scored_hold_out`)."""
    if not excluded.rows:
        return ""
    positives = f", {excluded.positives} positive" if excluded.positives is not None else ""
    return (f"## Hold-out rows set apart\n\n{excluded.rows:,} hold-out rows ({excluded.entities:,} entities"
            f"{positives}) belong to entities whose `{excluded.source}` record was quarantined, so their "
            "attributes reached the training set blank. They are not scored: every hold-out number above is "
            "on the other rows.")


def report_markdown(brief: Brief, ctx: ReportContext, selection: Selection, excluded: SetApart,
                    golden: GoldenSummary) -> str:
    """The whole report: the rendered context, the model selection, the rows set apart and the golden set; a
    report on a draft brief says so before anything else."""
    markdown = "\n\n".join(part for part in (
        render_evaluation_report(ctx), selection.markdown(), excluded_markdown(excluded),
        golden_markdown(golden, brief.metrics.primary, brief.thresholds.max_golden_regression)) if part)
    if draft := draft_notice(placeholder_fields(brief)):
        markdown = f"> **{draft}**\n\n{markdown}"
    return markdown


def report_figures(brief: Brief, selection: Selection, results: HoldOutResults, ctx: ReportContext,
                   excluded: SetApart, golden: GoldenSummary, importance: pl.DataFrame) -> dict[str, Any]:
    """The report's headline numbers, as the asset's metadata shows them."""
    primary, headline = brief.metrics.primary, results.headline
    calibration, cv, ci = ctx.calibration, ctx.cross_validation, results.parts.metrics[primary]
    return {
        "challenger": selection.challenger,
        "selection": selection.decision,
        primary: headline,
        f"{primary}_ci": f"[{ci['ci_low']:.4f}, {ci['ci_high']:.4f}]",
        f"lift_over_rules_{primary}": lift(headline, results.parts.baselines["rules"][primary], primary),
        **({"ece": calibration.ece, "calibrated": calibration.calibrated} if calibration else {}),
        **({f"cv_{primary}_mean": cv.mean, f"cv_{primary}_std": cv.std} if cv is not None and cv.ran
           else {"cross_validation": "skipped"}),
        **({"skewed_entities": ctx.skew.summary.skewed} if ctx.skew and ctx.skew.summary else {}),
        "test_rows": ctx.holdout.rows if ctx.holdout else None,
        "top_features": ", ".join(importance["feature"].head(10).to_list()),
        "test_rows_set_apart_quarantined": excluded.rows,
        "golden_rows": golden.rows, "golden_version": golden.version,
        **({f"golden_{primary}": golden.metrics[primary]} if golden.metrics else {}),
    }
