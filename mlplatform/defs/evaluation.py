"""Stage: the evaluation report on the true hold-out, and the kill criteria (seed phases 1 and 4)."""

import dagster as dg
import numpy as np
import polars as pl

from mlplatform.core.evaluation import (
    Candidate,
    group_fairness,
    kill_criteria,
    lift,
    metric_table,
    random_reference,
    slice_records,
    sliced_metrics,
)
from mlplatform.core.markdown import table
from mlplatform.core.models import choose_challenger, load_candidate
from mlplatform.core.report import calibration_plot, pr_curve_plot, render_evaluation_report, write_report
from mlplatform.core.training import majority_baseline
from mlplatform.core.training import rules_baseline as rules_predictor
from mlplatform.defs.training import CANDIDATE_ASSETS, candidates, load_split
from mlplatform.resources.platform import PlatformResource


def fairness_section(fairness: list[dict], minimum: float, min_group: int, alpha: float) -> str:
    if not fairness:
        return "\n## Fairness\n\nThe brief names no protected attributes.\n"
    parts = ["\n## Fairness\n", f"Disparate-impact ratio (80% rule, minimum {minimum}): lowest group selection "
             f"rate over the highest, among groups with at least {min_group} hold-out rows and a known value. "
             f"A ratio under the minimum fails when Fisher's exact test of the two groups gives p < {alpha}.\n"]
    for row in fairness:
        verdict = "pass" if row["passed"] else "**FAIL**"
        gap, impact = row["equal_opportunity_gap"], row["disparate_impact"]
        shown = ("not assessable (fewer than two groups with enough rows)" if impact is None
                 else f"{impact:.3f}, Fisher p = {row['p_value']:.3g}")
        parts.append(f"**{row['attribute']}**: disparate impact {shown} ({verdict}); "
                     f"equal-opportunity (TPR) gap {'—' if gap is None else f'{gap:.3f}'}\n\n{row['rates']}\n")
    return "\n".join(parts)


def _threshold(platform: PlatformResource, candidate: str) -> float:
    return float(platform.read_table("candidates", candidate)["threshold"][0])


def challenger_name(platform: PlatformResource) -> str:
    """The candidate the evaluation chose (best validation primary metric)."""
    return platform.read_table("evaluation", "challenger")["candidate"][0]


def _validation_primary(platform: PlatformResource, candidate: str) -> float:
    summary = platform.read_table("candidates", candidate).filter(pl.col("split") == "validation")
    return float(summary[platform.brief.metrics.primary][0])


def hold_out_candidates(platform: PlatformResource, split, models: list[str]) -> list[Candidate]:
    """Every model and both baselines scored on the test split, models first."""
    b = platform.brief
    test = split.test
    majority = majority_baseline(b.task_type, split.train[b.label.column].to_numpy())
    rules = rules_predictor(b.rules_baseline)
    scored = [Candidate(name, load_candidate(platform.workspace.models_dir / name).predict_score(test),
                        _threshold(platform, name)) for name in models]
    return [*scored,
            Candidate("rules", rules.predict_score(test), _threshold(platform, "rules")),
            Candidate("majority", majority.predict_score(test), _threshold(platform, "majority"))]


def evaluation_report(platform: PlatformResource) -> dg.MaterializeResult:
    """The hold-out report a person reads: primary and secondary metrics with 95% bootstrap intervals,
    the baselines and a random reference, kill criteria, slices, fairness and plots."""
    b = platform.brief
    split = load_split(platform)
    test, label, primary = split.test, b.label.column, b.metrics.primary
    y = test[label].to_numpy()
    validation = {name: _validation_primary(platform, name) for name in candidates(b)}
    challenger = choose_challenger(validation, primary)
    platform.write_table("evaluation", "challenger", pl.DataFrame(
        {"candidate": [challenger], **{f"validation_{primary}_{n}": [v] for n, v in validation.items()}}))
    models = [challenger, *(n for n in validation if n != challenger)]
    scored = hold_out_candidates(platform, split, models)
    ci_metrics = {c.name: [primary] for c in scored} | {challenger: [primary, *b.metrics.guardrails]}
    metrics = metric_table(b.task_type, y, scored, ci_metrics)
    platform.write_table("evaluation", "metrics", metrics)

    value = {(r["candidate"], r["metric"]): r for r in metrics.iter_rows(named=True)}
    model = value[(challenger, primary)]
    random = random_reference(b.task_type, y, primary)
    kills = kill_criteria(model["value"], value[("rules", primary)]["value"], random, primary, b.kill_criteria)
    platform.write_table("evaluation", "kill_criteria", pl.DataFrame(kills))

    lgbm = scored[0]  # the challenger
    slices = sliced_metrics(b.task_type, test, label, lgbm.scores, lgbm.threshold, b.slice_by)
    platform.write_table("evaluation", "slices", slices)
    fairness = []
    for attribute in b.protected_attributes:
        result = group_fairness(test[attribute], y, lgbm.scores >= lgbm.threshold,
                                b.thresholds.fairness_min_group_size)
        impact, p_value = result["disparate_impact"], result["p_value"]
        # Unassessable (too few rows per group) fails closed; a low ratio fails when it is significant.
        passed = impact is not None and (impact >= b.thresholds.disparate_impact_min
                                         or p_value >= b.thresholds.fairness_significance)
        fairness.append({"attribute": attribute, "disparate_impact": impact, "p_value": p_value,
                         "equal_opportunity_gap": result["equal_opportunity_gap"], "passed": passed,
                         "rates": table(result["rates"])})
    platform.write_table("evaluation", "fairness", pl.DataFrame(
        [{k: v for k, v in f.items() if k != "rates"} for f in fairness],
        schema={"attribute": pl.String, "disparate_impact": pl.Float64, "p_value": pl.Float64,
                "equal_opportunity_gap": pl.Float64, "passed": pl.Boolean}))
    predictions = test.select(b.entity_key, b.label.timestamp, label).with_columns(
        pl.Series("score", lgbm.scores), pl.Series("predicted", (lgbm.scores >= lgbm.threshold).astype(int)))
    platform.write_table("evaluation", "predictions", predictions)

    reports = platform.workspace.reports_dir / "evaluation"
    plots = {}
    if b.task_type == "binary":
        baselines = {c.name: c.scores for c in scored[1:]}
        plots["pr_curve"] = pr_curve_plot(y, lgbm.scores, baselines, reports / "pr_curve.png")
        plots["calibration"] = calibration_plot(y, lgbm.scores, reports / "calibration.png")
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
        "kill_criteria": kills,
        "slices": slice_records(slices),
    }
    markdown = render_evaluation_report(ctx) + fairness_section(
        fairness, b.thresholds.disparate_impact_min, b.thresholds.fairness_min_group_size,
        b.thresholds.fairness_significance)
    path = write_report(markdown, reports, plots)
    return dg.MaterializeResult(metadata={
        "challenger": challenger,
        primary: model["value"],
        f"{primary}_ci": f"[{model['ci_low']:.4f}, {model['ci_high']:.4f}]",
        f"lift_over_rules_{primary}": lift(model["value"], value[("rules", primary)]["value"], primary),
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
