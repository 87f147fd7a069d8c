"""Stage: the evaluation report on the true hold-out and the golden test set, and the kill criteria (method phases 1
and 4)."""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from mlplatform import asset_names
from mlplatform.core import tables
from mlplatform.core.calibration import CALIBRATION_SCHEMA, CalibrationSummary, calibration_summary, save_calibrator
from mlplatform.core.datasets import golden_set, model_features
from mlplatform.core.evaluation.cross_validation import CrossValidation, cross_validate_challenger
from mlplatform.core.evaluation.error_analysis import ErrorAnalysis, error_analysis
from mlplatform.core.evaluation.fairness_assessment import (
    AttributeFairness,
    FairnessReport,
    fairness_assessment,
    fairness_rule,
)
from mlplatform.core.evaluation.golden import GoldenSummary, golden_evaluation
from mlplatform.core.evaluation.hold_out_metrics import Candidate
from mlplatform.core.evaluation.hold_out_report import (
    HoldOutResults,
    evaluate_hold_out,
    report_context,
    report_figures,
    report_markdown,
)
from mlplatform.core.evaluation.kill_criteria import KillCriterion, QualityRecord, quality_kill_criterion
from mlplatform.core.evaluation.skew import (
    SkewComparison,
    latest_offline_rows,
    skew_sample,
    skew_summary,
    skew_table,
)
from mlplatform.core.feature_names import feature_service_name
from mlplatform.core.markdown import table
from mlplatform.core.metrics import compute_metrics
from mlplatform.core.model_families import CANDIDATE_ASSETS, candidates, model_dir
from mlplatform.core.models import load_candidate
from mlplatform.core.promotion import Scorer
from mlplatform.core.quality import normalised_total
from mlplatform.core.readable import readable
from mlplatform.core.report import calibration_plot, inline_plots, pr_curve_plot, write_report
from mlplatform.core.selection import Selection, choose_challenger
from mlplatform.core.training import SplitFrames, majority_baseline
from mlplatform.core.training import rules_baseline as rules_predictor
from mlplatform.resources.platform import FeatureStoreResource, PlatformResource
from mlplatform.stage_io import load_split, record_importance, scored_hold_out

# evaluation/fairness, which the promotion gate and the model card read; new columns go last.
FAIRNESS_SCHEMA = {"attribute": pl.String, "disparate_impact": pl.Float64, "p_value": pl.Float64,
                   "equal_opportunity_gap": pl.Float64, "passed": pl.Boolean,
                   "equal_opportunity_p_value": pl.Float64, "applicable": pl.Boolean, "note": pl.String,
                   "status": pl.String, "disparate_impact_status": pl.String, "equal_opportunity_status": pl.String,
                   "reason": pl.String}
# evaluation/fairness_candidates: every trained candidate's fairness and primary metric on the hold-out, which
# the challenger choice reads (before/after mitigation side by side).
CANDIDATE_FAIRNESS_SCHEMA = {"candidate": pl.String, "attribute": pl.String, "disparate_impact": pl.Float64,
                             "equal_opportunity_gap": pl.Float64, "status": pl.String, "passed": pl.Boolean,
                             "primary_metric": pl.String, "primary_value": pl.Float64, "reason": pl.String}
SKEW_ENTITIES = 200  # hold-out entities compared offline vs online
REPORT = asset_names.EVALUATION_REPORT
# The evaluation's tables that later stages read (the promotion gate, the model card, monitoring, the question
# answering over the reports): each an asset of the evaluation step besides the report.
EVALUATION_TABLES = (tables.CHALLENGER, tables.METRICS, tables.KILL_CRITERIA, tables.SLICES, tables.EDGE_CASES,
                     tables.FAIRNESS, tables.FAIRNESS_GROUPS, tables.GOLDEN, tables.GOLDEN_METRICS)


def _threshold(platform: PlatformResource, candidate: str) -> float:
    return float(platform.read_table(tables.candidate(candidate))["threshold"][0])


def _choose_challenger(platform: PlatformResource, train_rows: int, unfair: dict[str, str]) -> Selection:
    """The challenger by the method's model guide, from every candidate's validation primary metric, leaving out
    candidates that fail the fairness gate on the hold-out (``unfair``) while one passes; recorded in
    evaluation/challenger (the challenger's row first)."""
    b = platform.brief
    primary = b.metrics.primary
    validation = {}
    for name in candidates(b):
        summary = platform.read_table(tables.candidate(name)).filter(pl.col("split") == "validation")
        validation[name] = float(summary[primary][0])
    selection = choose_challenger(validation, primary, train_rows=train_rows,
                                  margin=b.thresholds.complexity_margin,
                                  allow_deep_below_10k=b.training.allow_deep_below_10k, unfair=unfair)
    platform.write_table(tables.CHALLENGER, selection.table())
    return selection


def hold_out_candidates(platform: PlatformResource, split, models: dict,
                        scores: Mapping[str, np.ndarray] | None = None) -> list[Candidate]:
    """Every model (name → loaded predictor) and both baselines scored on the test split, models first;
    ``scores``: test-split scores already computed, by model name."""
    b = platform.brief
    test = split.test
    majority = majority_baseline(b.task_type, split.train[b.label.column].to_numpy())
    rules = rules_predictor(b.rules_baseline)
    known = scores or {}
    scored = [Candidate(name, known[name] if name in known else model.predict_score(test), _threshold(platform, name))
              for name, model in models.items()]
    return [*scored,
            Candidate("rules", rules.predict_score(test), _threshold(platform, "rules")),
            Candidate("majority", majority.predict_score(test), _threshold(platform, "majority"))]


# An assessment of one model: each protected attribute and the long per-group table.
Assessment = tuple[list[AttributeFairness], pl.DataFrame]


def _assess(platform: PlatformResource, test: pl.DataFrame, model: Candidate) -> Assessment:
    b = platform.brief
    return fairness_assessment(b.task_type, test, b.label.column, model.scores, model.threshold,
                               b.protected_attributes, b.metrics.primary, fairness_rule(b), b.label.positive_class)


def _candidate_fairness(platform: PlatformResource, test: pl.DataFrame,
                        scores: Mapping[str, np.ndarray]) -> tuple[dict[str, str], dict[str, Assessment]]:
    """Every trained candidate's fairness verdict on the hold-out (evaluation/fairness_candidates, with its primary
    metric: the report's before/after mitigation), from its test-split ``scores`` (name → scores); returns
    candidate -> why it fails the gate, for those that do, and each candidate's assessment (:func:`_assess`)."""
    b = platform.brief
    rows, unfair, assessed = [], {}, {}
    for name, found in scores.items():
        model = Candidate(name, found, _threshold(platform, name))
        assessed[name] = _assess(platform, test, model)
        attributes, _ = assessed[name]
        value = compute_metrics(b.task_type, test[b.label.column].to_numpy(), model.scores, model.threshold,
                                only=[b.metrics.primary])[b.metrics.primary]
        failing = [f"{a.attribute}: {a.reason}" for a in attributes if not a.passed]
        if failing:
            unfair[name] = "; ".join(failing)
        rows += [{"candidate": name, "attribute": a.attribute, "disparate_impact": a.disparate_impact,
                  "equal_opportunity_gap": a.equal_opportunity_gap, "status": a.status, "passed": a.passed,
                  "reason": a.reason, "primary_metric": b.metrics.primary, "primary_value": value}
                 for a in attributes]
    platform.write_table(tables.FAIRNESS_CANDIDATES, pl.DataFrame(rows, schema=CANDIDATE_FAIRNESS_SCHEMA))
    return unfair, assessed


def _select(platform: PlatformResource, split: SplitFrames, trained: Mapping[str, Scorer]
            ) -> tuple[Selection, dict[str, np.ndarray], dict[str, Assessment]]:
    """The challenger (:func:`_choose_challenger`, leaving out candidates unfair on the hold-out), with every
    trained model's hold-out scores and fairness assessment: each model scores the hold-out once, and the
    fairness of every candidate, the metrics and the report share them."""
    scores = {name: model.predict_score(split.test) for name, model in trained.items()}
    unfair, assessed = _candidate_fairness(platform, split.test, scores)
    return _choose_challenger(platform, split.train.height, unfair), scores, assessed


def _fairness(platform: PlatformResource, test: pl.DataFrame, model: Candidate,
              assessed: Assessment | None = None) -> FairnessReport:
    """Fairness per protected attribute (evaluation/fairness, evaluation/fairness_groups) for the report;
    ``assessed``: the model's :func:`_assess` on these scores when already computed."""
    attributes, groups = assessed if assessed is not None else _assess(platform, test, model)
    platform.write_table(tables.FAIRNESS, pl.DataFrame([a.row() for a in attributes], schema=FAIRNESS_SCHEMA))
    platform.write_table(tables.FAIRNESS_GROUPS, groups)
    return FairnessReport(rule=fairness_rule(platform.brief), attributes=attributes,
                          candidates=platform.read_table(tables.FAIRNESS_CANDIDATES))


def _cross_validation(platform: PlatformResource, split: SplitFrames, challenger: str) -> CrossValidation:
    """The method's rule: cross-validate when the training split is small (evaluation/cross_validation); else say
    why not."""
    cv = cross_validate_challenger(platform.brief, split, challenger,
                                   model_dir(platform.workspace.models_dir, challenger))
    platform.write_table(tables.CROSS_VALIDATION, cv.folds)
    return cv


def _calibration(platform: PlatformResource, split, model: Candidate, predictor) -> CalibrationSummary | None:
    """Binary tasks: ECE and Brier, and a calibrator fitted on validation when miscalibrated, saved into the
    challenger's model folder (calibrator.json) so that it is registered with the model; a stale one is
    removed. Other tasks have no positive-class probability to calibrate: None."""
    b = platform.brief
    if b.task_type != "binary":
        return None
    label = b.label.column
    summary, calibrator = calibration_summary(split.validation[label].to_numpy(),
                                              predictor.predict_score(split.validation),
                                              split.test[label].to_numpy(), model.scores,
                                              max_ece=b.thresholds.max_calibration_error)
    save_calibrator(calibrator, model_dir(platform.workspace.models_dir, model.name))
    platform.write_table(tables.CALIBRATION, pl.DataFrame([summary.row()], schema=CALIBRATION_SCHEMA))
    return summary


def _error_analysis(platform: PlatformResource, test: pl.DataFrame, model: Candidate) -> ErrorAnalysis:
    """The worst predictions with every feature (evaluation/worst_predictions) and what the report shows."""
    worst, summary = error_analysis(platform.brief, test, model.scores)
    platform.write_table(tables.WORST_PREDICTIONS, worst)
    return summary


def _skew(platform: PlatformResource, feast_store: FeatureStoreResource, test: pl.DataFrame,
          predictor) -> SkewComparison:
    """Offline-vs-online skew on sampled hold-out entities (evaluation/skew): the Feast online store's features
    against the offline feature row it should hold and against the training set's hold-out row, with the
    model's prediction from each."""
    from mlplatform.core.fairness import scoring_columns
    from mlplatform.core.feature_store import online_features

    b = platform.brief
    path = platform.workspace.table(tables.features(b.entity))
    if not path.exists():
        return SkewComparison(reason=f"the brief has no feature table ({path.name}) in the online store to compare "
                                     "with.")
    start, end = (datetime.combine(d, time()) for d in (b.partition_start, b.partition_end))
    features = pl.scan_parquet(path)  # read for the sampled entities only
    sample = skew_sample(test, features, entity_key=b.entity_key, timestamp=b.label.timestamp, start=start, end=end,
                         ttl=timedelta(days=b.features.ttl_days), n=SKEW_ENTITIES, seed=b.training.seed)
    ids = sample[b.entity_key].to_list()
    skew = skew_table(b.task_type, sample,
                      latest_offline_rows(features, ids, entity_key=b.entity_key, start=start, end=end),
                      online_features(feast_store.store(), ids, feature_service_name(b.name)),
                      entity_key=b.entity_key, timestamp=b.label.timestamp,
                      features=scoring_columns(predictor, model_features(b)), predict=predictor.predict_score)
    platform.write_table(tables.SKEW, skew)
    shown = skew.sort("features_differing", "prediction_difference", "holdout_prediction_difference",
                      descending=True).head(20)
    return SkewComparison(summary=skew_summary(skew), rows=shown, window=f"{start:%Y-%m-%d} .. {end:%Y-%m-%d}",
                          task=b.task_type)


def _golden(platform: PlatformResource, predictor, threshold: float) -> GoldenSummary:
    """The golden test set (evaluation/golden: every labelled row of the keys the brief sets aside, which no
    model trains, validates or tunes on) and the challenger's primary metric and guardrails on it
    (evaluation/golden_metrics). The promotion gate scores the champion on the same rows."""
    b = platform.brief
    golden = golden_set(b, platform.read_table(tables.TRAINING_SET))
    platform.write_table(tables.GOLDEN, golden)
    metrics, summary = golden_evaluation(b, golden, predictor, threshold)
    platform.write_table(tables.GOLDEN_METRICS, metrics)
    return summary


def _plots(platform: PlatformResource, test: pl.DataFrame, scored: list[Candidate]) -> dict:
    """Binary tasks: the precision-recall curves and the reliability diagram (PNGs beside the report)."""
    if platform.brief.task_type != "binary":
        return {}
    y = test[platform.brief.label.column].to_numpy()
    reports = platform.workspace.reports_dir / "evaluation"
    model = scored[0]
    return {"pr_curve": pr_curve_plot(y, model.scores, {c.name: c.scores for c in scored[1:]},
                                      reports / "pr_curve.png"),
            "calibration": calibration_plot(y, model.scores, reports / "calibration.png")}


def quality_history(instance: dg.DagsterInstance, platform: PlatformResource) -> list[QualityRecord]:
    """Every data-quality report the instance recorded (time, total, gate passed), oldest first; without any, the
    lake's latest report at its file's time."""
    records = []
    for record in instance.fetch_materializations(dg.AssetKey(asset_names.DATA_QUALITY_REPORT), limit=10_000).records:
        metadata = record.asset_materialization.metadata if record.asset_materialization else {}
        total = metadata["total"].value if "total" in metadata else None
        if isinstance(total, int | float) and "passed" in metadata:
            records.append(QualityRecord(datetime.fromtimestamp(record.timestamp, UTC).replace(tzinfo=None),
                                         float(total), bool(metadata["passed"].value)))
    path = platform.workspace.table(tables.DATA_QUALITY_OVERALL)
    if not records and path.exists():
        total = normalised_total(platform.read_table(tables.DATA_QUALITY_OVERALL)["points"].to_list())
        at = datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(tzinfo=None)
        records.append(QualityRecord(at, total, total >= platform.brief.thresholds.quality_min_score))
    return sorted(records, key=lambda r: r.at)


def _quality_kill(context: dg.AssetExecutionContext, platform: PlatformResource) -> KillCriterion:
    b = platform.brief
    return quality_kill_criterion(quality_history(context.instance, platform), b.thresholds.quality_min_score,
                                  b.kill_criteria.quality_cleaning_days, datetime.now(UTC).replace(tzinfo=None))


def evaluation_report(context: dg.AssetExecutionContext, platform: PlatformResource,
                      feast_store: FeatureStoreResource) -> Iterator[dg.MaterializeResult]:
    """The hold-out report a person reads: primary and secondary metrics with 95% bootstrap intervals,
    paired comparisons with every baseline, kill criteria, cross-validation on small data, calibration (with
    the calibrator saved beside the model), slices, fairness (selection rate, TPR and calibration per group),
    the 50 worst predictions, edge cases, offline-vs-online skew and plots."""
    b = platform.brief
    split, excluded = scored_hold_out(platform, load_split(platform))
    held = _evaluate_hold_out(context, platform, split)
    challenger, scored = held.challenger, held.scored[0]
    calibration = _calibration(platform, split, scored, challenger)
    # What drift triggers rank features by once this model serves (permutation importance for a network).
    importance = record_importance(platform, held.selection.challenger, challenger, split.validation)
    ctx = report_context(b, held.selection, split.test, held.results, calibration=calibration,
                         cross_validation=_cross_validation(platform, split, held.selection.challenger),
                         fairness=_fairness(platform, split.test, scored, held.challenger_fairness),
                         worst_predictions=_error_analysis(platform, split.test, scored),
                         skew=_skew(platform, feast_store, split.test, challenger))
    golden = _golden(platform, challenger, scored.threshold)
    markdown = report_markdown(b, ctx, held.selection, excluded, golden)
    plots = _plots(platform, split.test, held.scored)
    path = write_report(markdown, platform.workspace.reports_dir / "evaluation", plots)
    yield dg.MaterializeResult(asset_key=REPORT, metadata=readable({
        **report_figures(b, held.selection, held.results, ctx, excluded, golden, importance),
        "report": dg.MetadataValue.md(markdown + inline_plots(plots)),  # the UI shows the plots on the asset page
        "path": dg.MetadataValue.path(str(path))}))
    yield from (_table_result(platform, lake_table) for lake_table in EVALUATION_TABLES)


@dataclass(frozen=True)
class _HeldOut:
    """The hold-out evaluation the report is written from: the chosen challenger and its model, every scored
    candidate (the challenger first), the metrics, comparisons and kill criteria, and the challenger's fairness
    assessment (already computed while choosing it)."""

    selection: Selection
    challenger: Any
    scored: list[Candidate]
    results: HoldOutResults
    challenger_fairness: Assessment


def _evaluate_hold_out(context: dg.AssetExecutionContext, platform: PlatformResource,
                       split: SplitFrames) -> _HeldOut:
    """Choose the challenger among the trained candidates, score the hold-out once per model, evaluate it
    against the baselines and kill criteria and write the evaluation's lake tables."""
    trained = {name: load_candidate(model_dir(platform.workspace.models_dir, name))
               for name in candidates(platform.brief)}
    selection, test_scores, assessed = _select(platform, split, trained)
    # The challenger first: a dict keeps each key where it was first inserted.
    models = {name: trained[name] for name in [selection.challenger, *selection.validation]}
    challenger, scored = models[selection.challenger], hold_out_candidates(platform, split, models, test_scores)
    results = evaluate_hold_out(platform.brief, split.train, split.test, scored, challenger.predict_score,
                                _quality_kill(context, platform))
    for lake_table, frame in results.lake_tables().items():
        platform.write_table(lake_table, frame)
    return _HeldOut(selection, challenger, scored, results, assessed[selection.challenger])


def _table_result(platform: PlatformResource, lake_table: tables.Table) -> dg.MaterializeResult:
    """The materialisation of one table the evaluation wrote: its file and row count (read from the file's footer)."""
    path = platform.workspace.table(lake_table)
    rows = pl.scan_parquet(path).select(pl.len()).collect().item()
    return dg.MaterializeResult(asset_key=lake_table.asset_key, metadata={
        "dagster/row_count": rows, "path": dg.MetadataValue.path(str(path))})


@dg.asset_check(asset=REPORT, name="kill_criteria", blocking=True,
                description="The brief's kill criteria on hold-out results and the data-quality history: stop "
                "before registering a model that the rules nearly match, that barely beats random, or whose data "
                "stayed below the quality gate for the brief's days of cleaning.")
def kill_criteria_check(platform: PlatformResource) -> dg.AssetCheckResult:
    kills = platform.read_table(tables.KILL_CRITERIA)
    failed = kills.filter(~pl.col("passed"))
    return dg.AssetCheckResult(
        passed=failed.height == 0,
        metadata=readable({"criteria": dg.MetadataValue.md(table(kills))}),
        description="; ".join(failed["measured"]) if failed.height else "no kill criterion met",
    )


def _table_spec(lake_table: tables.Table, deps: list[str]) -> dg.AssetSpec:
    return dg.AssetSpec(lake_table.asset_key, group_name="evaluation", kinds={"parquet"}, deps=deps,
                        description=f"{lake_table.description} (lake table {lake_table.layer}/{lake_table.name}, "
                                    "written with the evaluation report)")


def build(brief) -> list:
    models = [CANDIDATE_ASSETS[n] for n in candidates(brief)]
    chosen = [tables.CHALLENGER.asset_key]
    # The report and the tables later stages read, written by one step: the tables are assets of their own so that
    # the lineage shows which stage reads which result. The challenger is chosen among the candidates first; the
    # other tables describe the chosen one. (The golden set also comes from the training set, and the kill criteria
    # from the quality history: those edges stay implicit, since a direct edge to a gated asset would add a blocking
    # gate to the evaluation step that it does not have today; see resources/gates.py.)
    specs = [
        dg.AssetSpec(REPORT, group_name="evaluation", kinds={"matplotlib", "markdown"},
                     deps=[asset_names.BASELINE_MODEL, asset_names.RULES_BASELINE, asset_names.ONLINE_FEATURES,
                           *models],
                     description=evaluation_report.__doc__),
        _table_spec(tables.CHALLENGER, models),
        _table_spec(tables.METRICS, [*chosen, asset_names.BASELINE_MODEL, asset_names.RULES_BASELINE]),
        _table_spec(tables.KILL_CRITERIA, [tables.METRICS.asset_key]),
        _table_spec(tables.GOLDEN, chosen),
        _table_spec(tables.GOLDEN_METRICS, [tables.GOLDEN.asset_key]),
        *(_table_spec(t, chosen) for t in (tables.SLICES, tables.EDGE_CASES, tables.FAIRNESS, tables.FAIRNESS_GROUPS)),
    ]
    report = dg.multi_asset(name=REPORT, specs=specs)(evaluation_report)
    return [report, kill_criteria_check]
