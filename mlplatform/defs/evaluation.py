"""Stage: the evaluation report on the true hold-out, and the kill criteria (seed phases 1 and 4)."""

import dagster as dg
import numpy as np
import polars as pl

from mlplatform.core.calibration import CALIBRATION_SCHEMA, ECE_THRESHOLD, calibration_summary
from mlplatform.core.evaluation import (
    CV_FOLD_SCHEMA,
    CV_MAX_TRAIN_ROWS,
    Candidate,
    baseline_comparison,
    edge_case_probe,
    error_contrast,
    group_calibration,
    group_fairness,
    kill_criteria,
    lift,
    metric_table,
    random_reference,
    slice_records,
    sliced_metrics,
    temporal_cross_validation,
    worst_predictions,
)
from mlplatform.core.markdown import table
from mlplatform.core.metrics import metric_function
from mlplatform.core.models import choose_challenger, load_candidate
from mlplatform.core.report import calibration_plot, pr_curve_plot, render_evaluation_report, write_report
from mlplatform.core.training import majority_baseline
from mlplatform.core.training import rules_baseline as rules_predictor
from mlplatform.defs.training import CANDIDATE_ASSETS, candidates, load_split, model_features
from mlplatform.resources.platform import PlatformResource

# evaluation/fairness, which the promotion gate and the model card read; new columns go last.
FAIRNESS_SCHEMA = {"attribute": pl.String, "disparate_impact": pl.Float64, "p_value": pl.Float64,
                   "equal_opportunity_gap": pl.Float64, "passed": pl.Boolean,
                   "equal_opportunity_p_value": pl.Float64}
WORST_ROWS = 50  # the seed: inspect the 50 worst predictions by hand
EDGE_CASE_ROWS = 20


def _threshold(platform: PlatformResource, candidate: str) -> float:
    return float(platform.read_table("candidates", candidate)["threshold"][0])


def challenger_name(platform: PlatformResource) -> str:
    """The candidate the evaluation chose (best validation primary metric)."""
    return platform.read_table("evaluation", "challenger")["candidate"][0]


def _validation_primary(platform: PlatformResource, candidate: str) -> float:
    summary = platform.read_table("candidates", candidate).filter(pl.col("split") == "validation")
    return float(summary[platform.brief.metrics.primary][0])


def hold_out_candidates(platform: PlatformResource, split, models: dict) -> list[Candidate]:
    """Every model (name → loaded predictor) and both baselines scored on the test split, models first."""
    b = platform.brief
    test = split.test
    majority = majority_baseline(b.task_type, split.train[b.label.column].to_numpy())
    rules = rules_predictor(b.rules_baseline)
    scored = [Candidate(name, model.predict_score(test), _threshold(platform, name)) for name, model in models.items()]
    return [*scored,
            Candidate("rules", rules.predict_score(test), _threshold(platform, "rules")),
            Candidate("majority", majority.predict_score(test), _threshold(platform, "majority"))]


def _fairness(platform: PlatformResource, test: pl.DataFrame, model: Candidate) -> tuple[list[dict], pl.DataFrame]:
    """Per protected attribute: the gate's verdict, and per group the rates, the primary metric and (binary)
    calibration. Returns the attribute rows and the long per-group table."""
    b, t = platform.brief, platform.brief.thresholds
    y, primary = test[b.label.column].to_numpy(), b.metrics.primary
    one = metric_function(b.task_type, primary, model.threshold)
    attributes, groups = [], []
    for attribute in b.protected_attributes:
        result = group_fairness(test[attribute], y, model.scores >= model.threshold, t.fairness_min_group_size)
        impact, p_value = result["disparate_impact"], result["p_value"]
        # Unassessable (too few rows per group) fails closed; a low ratio fails when it is significant.
        passed = impact is not None and (impact >= t.disparate_impact_min or p_value >= t.fairness_significance)
        frame = test.select(pl.col(attribute).cast(pl.String).alias("group"), pl.col(b.label.column).alias("_y"),
                            pl.Series("_score", model.scores))
        metric = [{"group": g, "primary_value": one(part["_y"].to_numpy(), part["_score"].to_numpy())}
                  for (g,), part in frame.group_by("group", maintain_order=True)]
        rates = result["rates"].join(pl.DataFrame(metric, schema={"group": pl.String, "primary_value": pl.Float64}),
                                     on="group", how="left", nulls_equal=True)
        if b.task_type == "binary":
            calibration = group_calibration(test[attribute], y, model.scores, t.fairness_min_group_size)
            rates = rates.join(calibration.drop("n", "assessed"), on="group", how="left", nulls_equal=True)
        rates = rates.with_columns(pl.lit(attribute).alias("attribute"), pl.lit(primary).alias("primary_metric"),
                                   pl.col("n").cast(pl.Int64))
        groups.append(rates.select("attribute", pl.exclude("attribute")))
        attributes.append({"attribute": attribute, "disparate_impact": impact, "p_value": p_value,
                           "equal_opportunity_gap": result["equal_opportunity_gap"],
                           "equal_opportunity_p_value": result["equal_opportunity_p_value"], "passed": passed,
                           "primary": primary,
                           "groups": [{**g, primary: g["primary_value"]} for g in rates.to_dicts()]})
    return attributes, pl.concat(groups, how="diagonal") if groups else pl.DataFrame()


def _cross_validation(platform: PlatformResource, split, challenger: str) -> tuple[pl.DataFrame, dict]:
    """The seed's rule: cross-validate when the training split is small; else say why not."""
    b = platform.brief
    rows = split.train.height
    if rows >= CV_MAX_TRAIN_ROWS:
        reason = (f"the training split has {rows:,} rows; the seed cross-validates below {CV_MAX_TRAIN_ROWS:,}, "
                  "where one hold-out is too small to trust. At this size the hold-out and its bootstrap intervals "
                  "are the estimate.")
        return pl.DataFrame(schema=CV_FOLD_SCHEMA), {"reason": reason}
    lgbm = load_candidate(platform.workspace.models_dir / "lightgbm")
    folds = temporal_cross_validation(
        b.task_type, pl.concat([split.train, split.validation]), b.label.timestamp, model_features(b), b.label.column,
        b.metrics.primary, lgbm.params, lgbm.best_iteration, lgbm.threshold, seed=b.training.seed)
    if folds.height == 0:
        return folds, {"reason": "train and validation hold a single label timestamp, so no fold can test on "
                                 "later rows than it trains on."}
    stand_in = ("" if challenger == "lightgbm" else f" The challenger is {challenger}; LightGBM stands in for it, "
                "as refitting it per fold would take minutes.")
    reason = (f"The training split has {rows:,} rows (under {CV_MAX_TRAIN_ROWS:,}), so the seed's rule applies: "
              "expanding-window folds over train + validation in time order, each refitting LightGBM with the "
              f"tuned parameters, {lgbm.best_iteration} rounds and threshold {lgbm.threshold:.3f} of the saved model."
              f"{stand_in} The last fold tests on the validation period, on which those were tuned, so it leans "
              "optimistic.")
    return folds, {"reason": reason, "folds": folds.to_dicts(), "mean": folds["value"].mean(),
                   "std": folds["value"].std()}


def _error_analysis(platform: PlatformResource, test: pl.DataFrame, model: Candidate) -> tuple[pl.DataFrame, dict]:
    """The worst predictions with every feature (for the lake) and what the report shows of them."""
    b = platform.brief
    label, features = b.label.column, model_features(b)
    attributes = list(dict.fromkeys([*b.protected_attributes, *b.slice_by]))
    keys = [b.entity_key, b.label.timestamp, *attributes]
    worst = worst_predictions(b.task_type, test, label, model.scores, [*keys, *features], n=WORST_ROWS)
    contrast = error_contrast(test, worst, features)
    if b.task_type == "binary":
        missed = int((worst[label] == 1).sum())
        summary = f"{missed} are positives the model scored low, {worst.height - missed} negatives it scored high."
        error = "|label − score|"
    elif b.task_type == "regression":
        over = int((worst["score"] > worst[label]).sum())
        summary, error = f"{over} over-predictions, {worst.height - over} under-predictions.", "|label − prediction|"
    else:
        summary, error = "", "1 − probability of the true class"
    shown = worst.select("rank", *keys, label, "score", "error", *contrast["feature"].head(3))
    # Midnight timestamps read as dates.
    when = pl.col(b.label.timestamp).cast(pl.String).str.replace(r" 00:00:00(\.0+)?$", "")
    return worst, {"rows": shown.with_columns(when).to_dicts(),
                   "contrast": contrast.to_dicts(), "summary": summary, "error": error}


def evaluation_report(platform: PlatformResource) -> dg.MaterializeResult:
    """The hold-out report a person reads: primary and secondary metrics with 95% bootstrap intervals,
    paired comparisons with every baseline, kill criteria, cross-validation on small data, calibration,
    slices, fairness (selection rate, TPR and calibration per group), the 50 worst predictions, edge cases
    and plots."""
    b = platform.brief
    split = load_split(platform)
    test, label, primary = split.test, b.label.column, b.metrics.primary
    y = test[label].to_numpy()
    validation = {name: _validation_primary(platform, name) for name in candidates(b)}
    challenger = choose_challenger(validation, primary)
    platform.write_table("evaluation", "challenger", pl.DataFrame(
        {"candidate": [challenger], **{f"validation_{primary}_{n}": [v] for n, v in validation.items()}}))
    models = {name: load_candidate(platform.workspace.models_dir / name)
              for name in [challenger, *(n for n in validation if n != challenger)]}
    scored = hold_out_candidates(platform, split, models)
    model = scored[0]  # the challenger
    ci_metrics = {c.name: [primary] for c in scored} | {challenger: [primary, *b.metrics.guardrails]}
    metrics = metric_table(b.task_type, y, scored, ci_metrics)
    platform.write_table("evaluation", "metrics", metrics)
    comparisons = baseline_comparison(b.task_type, primary, y, model, scored[1:])
    platform.write_table("evaluation", "baseline_comparison", comparisons)

    value = {(r["candidate"], r["metric"]): r for r in metrics.iter_rows(named=True)}
    headline = value[(challenger, primary)]
    random = random_reference(b.task_type, y, primary)
    kills = kill_criteria(headline["value"], value[("rules", primary)]["value"], random, primary, b.kill_criteria)
    platform.write_table("evaluation", "kill_criteria", pl.DataFrame(kills))

    slices = sliced_metrics(b.task_type, test, label, model.scores, model.threshold, b.slice_by)
    platform.write_table("evaluation", "slices", slices)
    fairness, groups = _fairness(platform, test, model)
    platform.write_table("evaluation", "fairness", pl.DataFrame(
        [{k: f[k] for k in FAIRNESS_SCHEMA} for f in fairness], schema=FAIRNESS_SCHEMA))
    platform.write_table("evaluation", "fairness_groups", groups)
    predictions = test.select(b.entity_key, b.label.timestamp, label).with_columns(
        pl.Series("score", model.scores), pl.Series("predicted", (model.scores >= model.threshold).astype(int)))
    platform.write_table("evaluation", "predictions", predictions)

    folds, cross_validation = _cross_validation(platform, split, challenger)
    platform.write_table("evaluation", "cross_validation", folds)
    calibration = None
    if b.task_type == "binary":
        calibration = calibration_summary(split.validation[label].to_numpy(),
                                          models[challenger].predict_score(split.validation), y, model.scores,
                                          max_ece=ECE_THRESHOLD)
        platform.write_table("evaluation", "calibration", pl.DataFrame([calibration], schema=CALIBRATION_SCHEMA))
    worst, error_analysis = _error_analysis(platform, test, model)
    platform.write_table("evaluation", "worst_predictions", worst)
    edge_cases = edge_case_probe(models[challenger].predict_score, test.head(EDGE_CASE_ROWS), model_features(b),
                                 b.task_type)
    platform.write_table("evaluation", "edge_cases", edge_cases)

    reports = platform.workspace.reports_dir / "evaluation"
    plots = {}
    if b.task_type == "binary":
        baselines = {c.name: c.scores for c in scored[1:]}
        plots["pr_curve"] = pr_curve_plot(y, model.scores, baselines, reports / "pr_curve.png")
        plots["calibration"] = calibration_plot(y, model.scores, reports / "calibration.png")
    by_candidate: dict[str, dict] = {}
    for (name, metric), row in value.items():
        by_candidate.setdefault(name, {})[metric] = row
    model_metrics = by_candidate.pop(challenger)
    # Other candidates appear beside the baselines, marked: they lost on validation, not on this hold-out.
    shown = {name: name if name in ("rules", "majority") else f"{name} (not chosen)" for name in by_candidate}
    baselines = {shown[name]: {m: r["value"] for m, r in rows.items()} for name, rows in by_candidate.items()}
    ctx = {
        "brief": f"{b.name} (challenger {challenger}, chosen on validation {primary}: "
                 + ", ".join(f"{n} {v:.4f}" for n, v in validation.items()) + ")",
        "task": b.task_type,
        "model_name": challenger,
        "primary_metric": primary,
        "holdout": {"period": f"{b.split.test_start} .. {b.split.test_end or 'end'}", "rows": test.height,
                    "positive_rate": float(np.mean(y)) if b.task_type == "binary" else None},
        "metrics": model_metrics,
        "baselines": baselines | {"random": {primary: random}},
        "deltas": {name: {m: model_metrics[m]["value"] - v for m, v in vals.items()}
                   for name, vals in baselines.items()},
        "comparisons": comparisons.with_columns(pl.col("baseline").replace(shown)).to_dicts(),
        "kill_criteria": kills,
        "cross_validation": cross_validation,
        "calibration": calibration,
        "slices": slice_records(slices),
        "fairness": {"minimum": b.thresholds.disparate_impact_min, "min_group": b.thresholds.fairness_min_group_size,
                     "alpha": b.thresholds.fairness_significance, "attributes": fairness},
        "worst_predictions": error_analysis,
        "edge_cases": edge_cases.to_dicts(),
    }
    markdown = render_evaluation_report(ctx)
    path = write_report(markdown, reports, plots)
    return dg.MaterializeResult(metadata={
        "challenger": challenger,
        primary: headline["value"],
        f"{primary}_ci": f"[{headline['ci_low']:.4f}, {headline['ci_high']:.4f}]",
        f"lift_over_rules_{primary}": lift(headline["value"], value[("rules", primary)]["value"], primary),
        **({"ece": calibration["ece"], "calibrated": calibration["calibrated"]} if calibration else {}),
        **({f"cv_{primary}_mean": cross_validation["mean"], f"cv_{primary}_std": cross_validation["std"]}
           if "folds" in cross_validation else {"cross_validation": "skipped"}),
        "test_rows": test.height,
        "report": dg.MetadataValue.md(markdown),
        "path": dg.MetadataValue.path(str(path)),
    })


@dg.asset_check(asset="evaluation_report", name="kill_criteria", blocking=True,
                description="The brief's kill criteria on hold-out results: stop before registering a model "
                "that the rules nearly match or that barely beats random.")
def kill_criteria_check(platform: PlatformResource) -> dg.AssetCheckResult:
    kills = platform.read_table("evaluation", "kill_criteria")
    failed = kills.filter(~pl.col("passed"))
    return dg.AssetCheckResult(
        passed=failed.height == 0,
        metadata={"criteria": dg.MetadataValue.md(table(kills))},
        description="; ".join(failed["measured"]) if failed.height else "no kill criterion met",
    )


def build(brief) -> list:
    report = dg.asset(group_name="evaluation", kinds={"matplotlib", "markdown"},
                      deps=["baseline_model", "rules_baseline", *(CANDIDATE_ASSETS[n] for n in candidates(brief))],
                      )(evaluation_report)
    return [report, kill_criteria_check]
