"""The evaluation report a person reads: a verdict, then tables, then plots.

:func:`render_evaluation_report` turns plain results into Markdown; :func:`write_report` writes it as
``report.md`` next to its PNGs and as one self-contained ``report.html`` (plots embedded as base64), so the
HTML can be mailed or attached to a run without its folder.
"""

import base64
import html
import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from markdown_it import MarkdownIt

from mlplatform.core.calibration import CalibrationSummary
from mlplatform.core.evaluation.cross_validation import CrossValidation
from mlplatform.core.evaluation.error_analysis import ErrorAnalysis
from mlplatform.core.evaluation.fairness_assessment import FairnessReport
from mlplatform.core.evaluation.kill_criteria import KillCriterion
from mlplatform.core.evaluation.skew import SkewComparison
from mlplatform.core.io import write_text_atomic
from mlplatform.core.metrics import higher_is_better

# Slices with fewer hold-out rows than this get a warning: their metrics swing with a handful of rows.
SMALL_SLICE_ROWS = 100

# One recorded row of a table, as ``DataFrame.to_dicts`` gives it.
Row = Mapping[str, Any]


@dataclass(frozen=True)
class HoldOut:
    """The hold-out the report is on."""

    period: str
    """First and last label day (``start .. end``), or the split's description for data without time."""
    rows: int
    positive_rate: float | None = None
    """The share of positive labels (binary tasks)."""


@dataclass(frozen=True)
class ReportContext:
    """What the evaluation report is rendered from. The title, the primary metric and the model's metrics are
    required; an optional section left at None is left out of the report, and a missing number shows as "—".

    Attributes:
        title: the report's subject (the brief's name and how the challenger was chosen).
        primary_metric: the brief's primary metric.
        metrics: the model's hold-out metrics, metric → ``{value, ci_low, ci_high}``.
        task: the task type.
        model_name: the candidate reported on.
        holdout: the hold-out's period, rows and positive rate.
        baselines: shown name → metric → a number or ``{value, ...}``.
        deltas: shown baseline name → metric → model minus baseline.
        kill_criteria: the brief's kill criteria, judged.
        comparisons: rows of :func:`~mlplatform.core.evaluation.hold_out_metrics.baseline_comparison`.
        cross_validation: the challenger's cross-validation, or why it was skipped.
        calibration: the calibration summary (binary tasks).
        slices: ``{dimension, value, n, metrics}`` records.
        fairness: the rule, each protected attribute's assessment and every candidate's verdict.
        worst_predictions: the error analysis of the worst predictions.
        edge_cases: rows of :func:`~mlplatform.core.evaluation.edge_cases.edge_case_probe`.
        scores_used: a sentence: raw or calibrated scores.
        skew: offline-vs-online skew, or why it was not measured.
    """

    title: str
    primary_metric: str
    metrics: Mapping[str, Row]
    task: str | None = None
    model_name: str = "model"
    holdout: HoldOut | None = None
    baselines: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    deltas: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    kill_criteria: Sequence[KillCriterion] = ()
    comparisons: Sequence[Row] | None = None
    cross_validation: CrossValidation | None = None
    calibration: CalibrationSummary | None = None
    slices: Sequence[Row] | None = None
    fairness: FairnessReport | None = None
    worst_predictions: ErrorAnalysis | None = None
    edge_cases: Sequence[Row] | None = None
    scores_used: str | None = None
    skew: SkewComparison | None = None


@dataclass(frozen=True)
class CandidateMetrics:
    """The report's metric parts from the long metric table, for one model against every other candidate."""

    metrics: Mapping[str, Row]
    """The model's metrics: metric → row (``value, ci_low, ci_high``...)."""
    baselines: Mapping[str, Mapping[str, float]]
    """Every other candidate, by shown name: metric → value."""
    deltas: Mapping[str, Mapping[str, float]]
    """Shown name → metric → the model's value minus the other's."""
    shown: Mapping[str, str]
    """Candidate → its shown name."""


_DISPLAY = {"f1": "F1", "macro_f1": "macro-F1", "pr_auc": "PR-AUC", "roc_auc": "ROC-AUC", "mae": "MAE",
            "rmse": "RMSE", "mse": "MSE", "mape": "MAPE", "log_loss": "log loss", "brier": "Brier score",
            "precision": "precision", "recall": "recall", "accuracy": "accuracy", "tpr": "TPR", "ece": "ECE",
            "selection_rate": "selection rate", "observed_rate": "observed rate", "mean_score": "mean score",
            "calibration_p_value": "calibration p", "positive_rate": "positive rate"}

_CSS = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
th{background:#f3f3f3}td{font-variant-numeric:tabular-nums}img{max-width:100%}"""


def metric_label(name: str) -> str:
    """How a metric is written for people, e.g. ``pr_auc`` → ``PR-AUC``; unknown names pass through."""
    return _DISPLAY.get(name.lower(), name)


def _value(entry: Any) -> float | None:
    """A metric as a float: a bare number or the ``value`` of a ``{value, ci_low, ci_high}`` mapping."""
    raw = entry.get("value") if isinstance(entry, Mapping) else entry
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return None
    return float(raw)


def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _ci(entry: Any, digits: int = 3) -> str:
    if not isinstance(entry, Mapping) or entry.get("ci_low") is None or entry.get("ci_high") is None:
        return "—"
    return f"[{entry['ci_low']:.{digits}f}, {entry['ci_high']:.{digits}f}]"


def _table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)])


def _verdict(ctx: ReportContext) -> str:
    primary, model = ctx.primary_metric, ctx.model_name
    entry = ctx.metrics.get(primary)
    value = _value(entry)
    label = metric_label(primary)
    if value is None:
        return f"{model} has no {label} on the hold-out: the primary metric is missing."
    sentence = f"{model} {label} {_num(value, 2)}"
    if _ci(entry, 2) != "—":
        sentence += f" {_ci(entry, 2)}"
    baselines: dict[str, float] = {}
    for name, values in ctx.baselines.items():
        if (baseline := _value(values.get(primary))) is not None:
            baselines[name] = baseline
    if baselines:
        pick = min if not higher_is_better(primary) else max
        best = pick(baselines, key=baselines.__getitem__)
        sentence += f" vs {best} {_num(baselines[best], 2)}: {value - baselines[best]:+.2f}"
        if isinstance(entry, Mapping) and entry.get("ci_low") is not None:
            inside = entry["ci_low"] <= baselines[best] <= entry["ci_high"]
            sentence += " (baseline inside the 95% CI)" if inside else " (baseline outside the 95% CI)"
    sentence += "."
    if not higher_is_better(primary):
        sentence += f" Lower {label} is better."
    kills = ctx.kill_criteria
    failed = [k.criterion for k in kills if not k.passed]
    if failed:
        sentence += f" Kill criteria: {len(failed)} of {len(kills)} failed ({'; '.join(failed)})."
    elif kills:
        sentence += f" Kill criteria: all {len(kills)} passed."
    return sentence


def candidate_context(metrics: Sequence[Row], model: str, primary: str,
                      baselines: tuple[str, ...] = ("rules", "majority")) -> CandidateMetrics:
    """The report's metric parts from the long metric table (rows of ``candidate, metric, value, ci_low,
    ci_high``): the model's metrics, every other candidate's values beside it (candidates that are not
    ``baselines`` marked "(not chosen)": they lost on validation, not on this hold-out) and the deltas."""
    by_candidate: dict[str, dict[str, Row]] = {}
    for row in metrics:
        by_candidate.setdefault(row["candidate"], {})[row["metric"]] = row
    if model not in by_candidate or primary not in by_candidate[model]:
        raise ValueError(f"the metric table has no {primary} for {model}; have {sorted(by_candidate)}")
    own = by_candidate.pop(model)
    shown = {name: name if name in baselines else f"{name} (not chosen)" for name in by_candidate}
    others = {shown[name]: {m: r["value"] for m, r in rows.items()} for name, rows in by_candidate.items()}
    deltas = {name: {m: own[m]["value"] - v for m, v in values.items() if m in own and v is not None}
              for name, values in others.items()}
    return CandidateMetrics(metrics=own, baselines=others, deltas=deltas, shown=shown)


def render_evaluation_report(ctx: ReportContext) -> str:
    """The evaluation report as Markdown: verdict, hold-out, metrics vs baselines, the paired comparison with
    each baseline, kill criteria, cross-validation, calibration, slices, fairness, the worst predictions and
    edge cases (the sections the context holds).

    Returns:
        Markdown, starting with a one-line verdict on the primary metric.
    """
    primary, model = ctx.primary_metric, ctx.model_name
    metrics, baselines, deltas = ctx.metrics, ctx.baselines, ctx.deltas
    parts = [f"# Evaluation report: {ctx.title}", f"**Verdict.** {_verdict(ctx)}"]

    holdout = ctx.holdout
    rows = [["task", ctx.task or "—"], ["primary metric", metric_label(primary)],
            ["period", holdout.period if holdout else "—"],
            ["rows", f"{holdout.rows:,}" if holdout else "—"]]
    if holdout and holdout.positive_rate is not None:
        rows.append(["positive rate", f"{holdout.positive_rate:.1%}"])
    parts += ["## Hold-out", _table(["", "value"], rows)]

    header = ["metric", model, "95% CI"]
    for name in baselines:
        header += [name, f"Δ vs {name}"]
    table = []
    names = [primary, *(m for m in metrics if m != primary)]
    for name in names:
        row = [f"**{metric_label(name)}** (primary)" if name == primary else metric_label(name),
               _num(_value(metrics.get(name))), _ci(metrics.get(name))]
        for baseline, values in baselines.items():
            delta = deltas.get(baseline, {}).get(name)
            row += [_num(_value(values.get(name))), "—" if delta is None else f"{delta:+.3f}"]
        table.append(row)
    parts += ["## Metrics", _table(header, table)]
    if ctx.scores_used:
        parts.append(ctx.scores_used)
    if not higher_is_better(primary):
        parts.append(f"Lower {metric_label(primary)} is better; a negative Δ is an improvement.")

    if ctx.comparisons:
        parts += _comparisons(ctx.comparisons, model)

    kills = ctx.kill_criteria
    if kills:
        parts += ["## Kill criteria", _table(
            ["criterion", "measured", "result"],
            [[k.criterion, str(k.measured), "pass" if k.passed else "**FAIL**"] for k in kills])]

    if ctx.cross_validation is not None:
        parts += _cross_validation(ctx.cross_validation, primary)
    if ctx.calibration is not None:
        parts += _calibration(ctx.calibration)

    slices = ctx.slices or []
    if slices:
        slice_metrics = list(dict.fromkeys(m for s in slices for m in s["metrics"]))
        slice_rows = []
        for s in slices:
            flag = " †" if s["n"] < SMALL_SLICE_ROWS else ""
            slice_rows.append([s["dimension"], f"{s['value']}{flag}", f"{s['n']:,}",
                               *(_num(_value(s["metrics"].get(m))) for m in slice_metrics)])
        header = ["dimension", "value", "n", *map(metric_label, slice_metrics)]
        parts += ["## Slices", _table(header, slice_rows)]
        if any(s["n"] < SMALL_SLICE_ROWS for s in slices):
            parts.append(f"† fewer than {SMALL_SLICE_ROWS} hold-out rows: treat these metrics as rough.")
    if ctx.fairness is not None:
        parts += _fairness(ctx.fairness)
    if ctx.worst_predictions is not None:
        parts += _worst(ctx.worst_predictions)
    if ctx.edge_cases:
        parts += ["## Edge cases", "The model scored unusual inputs built from real hold-out rows; a sensible "
                  "answer is a valid score, not an error or NaN.",
                  _table(["case", "rows", "result", "detail"],
                         [[e["case"], str(e["rows"]), "pass" if e["passed"] else "**FAIL**", e["detail"]]
                          for e in ctx.edge_cases])]
    if ctx.skew is not None:
        parts += _skew(ctx.skew)
    return "\n\n".join(parts) + "\n"


def _comparisons(rows: Sequence[Row], model: str) -> list[str]:
    label = metric_label(rows[0]["metric"])
    table = [[r["baseline"], _num(r["model"]), _num(r["baseline_value"]), f"{r['delta']:+.3f}",
              _ci({"ci_low": r["ci_low"], "ci_high": r["ci_high"]}), "yes" if r["significant"] else "no"]
             for r in rows]
    return ["## Comparison with baselines",
            f"{label} difference ({model} − baseline) on the same hold-out rows, with a 95% paired bootstrap "
            "interval; significant when the interval excludes zero.",
            _table(["baseline", model, "baseline value", "Δ", "95% CI of Δ", "significant"], table)]


def _cross_validation(cv: CrossValidation, primary: str) -> list[str]:
    label = metric_label(primary)
    if not cv.ran:
        return ["## Cross-validation", f"Skipped: {cv.reason}"]
    rows = [[str(f["fold"]), f"{f['train_rows']:,}", f"{f['test_rows']:,}", f"{f['test_start']} .. {f['test_end']}",
             _num(f["value"])] for f in cv.folds.iter_rows(named=True)]
    return ["## Cross-validation",
            f"{cv.reason} {label} {_num(cv.mean)} ± {_num(cv.std)} (mean ± standard deviation over "
            f"{len(rows)} folds).",
            _table(["fold", "train rows", "test rows", "test period", label], rows)]


def _calibration(c: CalibrationSummary) -> list[str]:
    rows = [["hold-out, raw scores", _num(c.ece, 4), _num(c.brier, 4)]]
    text = (f"Expected calibration error (10 equal-width bins) and Brier score. Scores count as miscalibrated "
            f"when the validation ECE exceeds {c.max_ece:g}; it is {c.validation_ece:.4f}")
    if c.calibrated:
        rows.append([f"hold-out, {c.method} calibrator", _num(c.ece_after, 4), _num(c.brier_after, 4)])
        text += (f", so a {c.method} calibrator was fitted on {c.fitted_rows:,} validation rows (isotonic "
                 f"from 1,000 rows, else Platt). It is saved with the model as calibrator.json and registered "
                 "with it, for the probability a prediction reports; the metrics above use the raw scores.")
    else:
        text += ", so no calibrator was fitted."
    return ["## Calibration", text, _table(["scores", "ECE", "Brier"], rows)]


def _fairness(f: FairnessReport) -> list[str]:
    parts = ["## Fairness"]
    if not f.attributes:
        return parts + ["The brief names no protected attributes."]
    rule = f.rule
    parts.append(f"Disparate-impact ratio (80% rule, minimum {rule.disparate_impact_min:g}): lowest group selection "
                 f"rate over the highest, among groups with at least {rule.min_group_size} hold-out rows and a known "
                 "value; a ratio under the minimum FAILS. Equal opportunity: the gap between the highest and lowest "
                 f"true-positive rate, which FAILS above {rule.equal_opportunity_max_gap:g}. Fisher's exact test of "
                 "the two groups is reported beside each, never used to pass. Fewer than two groups large enough: "
                 f"NOT_ASSESSABLE ({rule.when_not_assessable}, as the brief says). A metric the brief "
                 "waives is WAIVED with its reason. Calibration per group: mean predicted probability against the "
                 "observed rate (binomial test), and the group's ECE.")
    if f.candidates is not None and f.candidates.height:
        parts.append("Every candidate on this hold-out (before and after mitigation; a candidate failing the gate "
                     "is not chosen while one passes):")
        parts.append(_table(["candidate", "attribute", "disparate impact", "TPR gap", "status", "primary metric"],
                            [[c["candidate"], c["attribute"], _num(c["disparate_impact"]),
                              _num(c["equal_opportunity_gap"]), c["status"],
                              f"{metric_label(c['primary_metric'])} {_num(c['primary_value'])}"]
                             for c in f.candidates.iter_rows(named=True)]))
    for a in f.attributes:
        if a.applicable is False:
            primary = a.primary or ""
            parts.append(f"**{a.attribute}**: disparate impact and equal opportunity do not apply "
                         f"({a.note}); the primary metric per group is the evidence (pass).")
            rows = [[str(g["group"]) if g["group"] is not None else "unknown",
                     f"{g['n']:,}" + ("" if g["assessed"] else " (not assessed)"), _num(_value(g.get(primary)))]
                    for g in a.groups]
            parts.append(_table(["group", "n", metric_label(primary)], rows))
            continue
        status = a.status if a.status is not None else "PASS" if a.passed else "FAIL"
        parts.append(f"**{a.attribute}**: **{status}** — {a.reason or ''}")
        columns = [c for c in ("selection_rate", "tpr", a.primary, "observed_rate", "mean_score",
                               "calibration_p_value", "ece") if c and any(c in g for g in a.groups)]
        rows = [[str(g["group"]) if g["group"] is not None else "unknown",
                 f"{g['n']:,}" + ("" if g["assessed"] else " (not assessed)"),
                 *(_num(_value(g.get(c))) for c in columns)] for g in a.groups]
        parts.append(_table(["group", "n", *map(metric_label, columns)], rows))
    return parts


_SKEW_PREDICTION = {"binary": "positive-class probability", "multiclass": "predicted class",
                    "regression": "predicted value"}


def _skew(k: SkewComparison) -> list[str]:
    parts = ["## Offline-vs-online skew"]
    if k.summary is None or k.rows is None:
        return parts + [f"Not measured: {k.reason}"]
    s, shown = k.summary, _SKEW_PREDICTION.get(k.task, "prediction")
    parts.append(
        f"For {s.entities} sampled hold-out entities, the features the Feast online store serves (the online "
        f"path: the latest feature row of the materialised window {k.window}) against the same feature row read "
        f"from the offline feature table (the offline path the training set is joined from), and the model's "
        f"{shown} from each. One row by both paths, so any difference is skew: **{s.skewed} of "
        f"{s.entities} entities differ**, largest prediction difference "
        f"{_num(s.max_prediction_difference, 4)}.")
    parts.append(
        f"Second comparison, the training set itself: each entity's latest hold-out row against the online "
        f"features. Only where that row is the online row (same row: {s.same_row} entities; "
        f"{s.same_row_skewed} of them differ) must they agree; for the other {s.newer_online_row} the online "
        f"row is newer than the hold-out row, so differences there are the entities "
        f"changing over time (mean prediction difference "
        f"{_num(s.newer_online_row_mean_prediction_difference, 4)}), not skew. Every row is in the lake table "
        "evaluation/skew; the 20 below are the most different (skew first, then change since the hold-out row).")
    header = ["entity", "online row", "features differing", "offline prediction", "online prediction",
              "difference", "hold-out row", "hold-out prediction", "hold-out difference"]
    rows = []
    for r in k.rows.iter_rows(named=True):
        key = next(iter(r))
        rows.append([str(r[key]), str(r["online_row_time"]),
                     f"{r['features_differing']}" + (f" ({r['differing'][:80]})" if r["differing"] else ""),
                     _num(r["offline_prediction"], 4), _num(r["online_prediction"], 4),
                     _num(r["prediction_difference"], 4),
                     f"{r['offline_row_time']}" + (" (same row)" if r["same_row"] else ""),
                     _num(r["holdout_prediction"], 4), _num(r["holdout_prediction_difference"], 4)])
    return parts + [_table(header, rows)]


def _worst(w: ErrorAnalysis) -> list[str]:
    rows = w.rows
    parts = ["## Error analysis: the worst predictions",
             f"The {rows.height} hold-out rows with the largest error ({w.error}), worst first; every feature of "
             f"them is in the lake table evaluation/worst_predictions. {w.summary}".rstrip()]
    contrast = w.contrast
    if contrast.height:
        parts.append("Features where these rows differ most from the whole hold-out (difference of means in "
                     "hold-out standard deviations):")
        parts.append(_table(["feature", "worst rows mean", "hold-out mean", "difference (SD)"],
                            [[c["feature"], _num(c["worst_mean"]), _num(c["holdout_mean"]),
                              f"{c['std_difference']:+.2f}"] for c in contrast.iter_rows(named=True)]))
    if rows.height:
        parts.append(_table(rows.columns, [[_num(v) if isinstance(v, float) else "—" if v is None else str(v)
                                            for v in r] for r in rows.iter_rows()]))
    return parts


def _plots_section(plots: Mapping[str, Path], source: Mapping[str, str]) -> str:
    if not plots:
        return ""
    return "\n\n## Plots\n\n" + "\n\n".join(f"### {title}\n\n![{title}]({source[title]})" for title in plots)


def inline_plots(plots: Mapping[str, Path]) -> str:
    """The "Plots" section with each PNG embedded as a ``data:`` URI: Markdown that shows the plots with no file
    beside it (Dagster's UI renders such images in a Markdown metadata value)."""
    return _plots_section(plots, {title: _data_uri(Path(png)) for title, png in plots.items()})


def _data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def write_report(markdown: str, out_dir: Path, plots: Mapping[str, Path]) -> Path:
    """Write ``report.md`` (PNGs copied next to it) and a self-contained ``report.html``.

    Args:
        markdown: the report, e.g. from :func:`render_evaluation_report`.
        out_dir: folder to write into; created if missing.
        plots: title → PNG file; each is appended under "Plots" in that order.

    Returns:
        The path of ``report.html``.

    Raises:
        FileNotFoundError: a plot file does not exist.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    local = {}
    for title, png in plots.items():
        png = Path(png)
        target = out_dir / png.name
        if target.resolve() != png.resolve():
            shutil.copyfile(png, target)
        local[title] = png.name
    write_text_atomic(markdown + _plots_section(plots, local), out_dir / "report.md")
    # Raw HTML off: criteria and slice values are data, and must not become markup.
    renderer = MarkdownIt("commonmark", {"html": False}).enable("table")
    body = renderer.render(markdown + inline_plots(plots))
    title = html.escape(next((line[2:] for line in markdown.splitlines() if line.startswith("# ")), "Report"))
    page = (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{_CSS}</style></head>\n<body>\n{body}</body></html>\n")
    return write_text_atomic(page, out_dir / "report.html")


def pr_curve_plot(
    y_true: np.ndarray,
    y_score: np.ndarray,
    baselines: Mapping[str, np.ndarray],
    path: Path,
    *,
    model_name: str = "model",
) -> Path:
    """Precision-recall curves of the model and each baseline, with the no-skill line at the prevalence.

    Args:
        y_true: 0/1 labels of the hold-out.
        y_score: the model's scores for the positive class.
        baselines: name → scores (or 0/1 predictions) of each baseline on the same rows.
        path: PNG to write.
        model_name: legend name of the model.
    """
    # sklearn.metrics takes seconds to import; only the plots need it, not the report or the model card.
    from matplotlib.figure import Figure
    from sklearn.metrics import average_precision_score, precision_recall_curve

    y_true = np.asarray(y_true)
    # A bare Figure renders with Agg and touches no pyplot global state, so it is safe in any thread.
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    for name, scores in {model_name: y_score, **baselines}.items():
        scores = np.asarray(scores)
        if np.unique(scores).size <= 2:
            # Hard 0/1 predictions (a rules baseline) have one operating point, not a curve.
            predicted = scores >= 0.5
            precision = float(y_true[predicted].mean()) if predicted.any() else 0.0
            recall = float(predicted[y_true == 1].mean())
            label = f"{name} (P {precision:.3f}, R {recall:.3f})"
            ax.plot(recall, precision, marker="D", linestyle="", label=label)
            continue
        precision_curve, recall_curve, _ = precision_recall_curve(y_true, scores)
        ap = average_precision_score(y_true, scores)
        ax.step(recall_curve, precision_curve, where="post", label=f"{name} (AP {ap:.3f})")
    prevalence = float(y_true.mean())
    ax.axhline(prevalence, color="grey", linestyle=":", label=f"no skill ({prevalence:.3f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall")
    ax.legend(loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def calibration_plot(y_true: np.ndarray, y_score: np.ndarray, path: Path, *, bins: int = 10) -> Path:
    """Reliability diagram (observed positive rate per score decile) above a histogram of the scores.

    Args:
        y_true: 0/1 labels of the hold-out.
        y_score: predicted probabilities of the positive class, in [0, 1].
        path: PNG to write.
        bins: number of quantile bins.
    """
    from matplotlib.figure import Figure
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss

    y_true, y_score = np.asarray(y_true), np.asarray(y_score, dtype=float)
    observed, predicted = calibration_curve(y_true, y_score, n_bins=bins, strategy="quantile")
    fig = Figure(figsize=(6, 6))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    top.plot(predicted, observed, marker="o", label="model")
    top.set(ylabel="observed positive rate", ylim=(0, 1),
            title=f"Calibration (Brier {brier_score_loss(y_true, y_score):.4f})")
    top.legend(loc="upper left")
    bottom.hist(y_score, bins=50, range=(0, 1), color="tab:blue")
    bottom.set(xlabel="predicted probability", ylabel="rows", xlim=(0, 1))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def importance_plot(importance: dict[str, float], path: Path, *, top: int = 20) -> Path:
    """Horizontal bars of the ``top`` features by importance (LightGBM gain), largest on top."""
    from matplotlib.figure import Figure

    ranked = sorted(importance.items(), key=lambda item: item[1])[-top:]
    fig = Figure(figsize=(7, 0.3 * len(ranked) + 1.2))
    axes = fig.subplots()
    axes.barh([name for name, _ in ranked], [value for _, value in ranked], color="tab:blue")
    axes.set(xlabel="total gain", title=f"Feature importance (top {len(ranked)})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def confusion_matrix_plot(y_true: np.ndarray, y_pred: np.ndarray, path: Path, *, title: str) -> Path:
    """The binary confusion matrix with counts in each cell."""
    from matplotlib.figure import Figure

    y_true, y_pred = np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int)
    counts = np.array([[np.sum((y_true == t) & (y_pred == p)) for p in (0, 1)] for t in (0, 1)])
    fig = Figure(figsize=(4.5, 4))
    axes = fig.subplots()
    axes.imshow(counts, cmap="Blues")
    for (row, col), value in np.ndenumerate(counts):
        axes.text(col, row, f"{value:,}", ha="center", va="center",
                  color="white" if value > counts.max() / 2 else "black")
    axes.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["0", "1"], yticklabels=["0", "1"],
             xlabel="predicted", ylabel="actual", title=title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
