import base64
import re
from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from mlplatform.core import report
from mlplatform.core.calibration import CalibrationSummary
from mlplatform.core.evaluation.cross_validation import CV_FOLD_SCHEMA, CrossValidation
from mlplatform.core.evaluation.error_analysis import ErrorAnalysis
from mlplatform.core.evaluation.fairness_assessment import AttributeFairness, FairnessReport, FairnessRule
from mlplatform.core.evaluation.kill_criteria import KillCriterion

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def ctx() -> dict:
    return {
        "title": "churn_demo",
        "task": "binary",
        "model_name": "LightGBM",
        "primary_metric": "f1",
        "holdout": report.HoldOut(period="2025-08-01..2025-09-01", rows=12345, positive_rate=0.123),
        "metrics": {"pr_auc": {"value": 0.61, "ci_low": 0.57, "ci_high": 0.65},
                    "f1": {"value": 0.52, "ci_low": 0.48, "ci_high": 0.56}},
        "baselines": {"majority": {"f1": 0.0, "pr_auc": 0.12}, "rules": {"f1": 0.31, "pr_auc": 0.2}},
        "deltas": {"majority": {"f1": 0.52, "pr_auc": 0.49}, "rules": {"f1": 0.21, "pr_auc": 0.41}},
        "kill_criteria": [
            KillCriterion("rules baseline reaches 90% of the model's F1", "60%", True),
            KillCriterion("model beats random by more than 10%", "+310%", True),
        ],
        "slices": [
            {"dimension": "plan", "value": "basic", "n": 5000, "metrics": {"f1": 0.5}},
            {"dimension": "plan", "value": "premium", "n": 42, "metrics": {"f1": 0.7, "pr_auc": 0.3}},
        ],
    }


@pytest.fixture
def scores() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.2).astype(int)
    return y, np.clip(0.2 + 0.3 * (y - 0.2) + rng.normal(0, 0.2, y.size), 0, 1)


def test_verdict_leads_with_the_primary_metric_against_the_best_baseline(ctx):
    markdown = report.render_evaluation_report(report.ReportContext(**ctx))
    lines = markdown.splitlines()
    assert lines[0] == "# Evaluation report: churn_demo"
    assert lines[2].startswith("**Verdict.** LightGBM F1 0.52 [0.48, 0.56] vs rules 0.31: +0.21 ")
    assert "(baseline outside the 95% CI)" in lines[2]
    assert "Kill criteria: all 2 passed." in lines[2]


def test_metrics_table_puts_the_primary_metric_first_with_ci_and_deltas(ctx):
    markdown = report.render_evaluation_report(report.ReportContext(**ctx))
    assert "| metric | LightGBM | 95% CI | majority | Δ vs majority | rules | Δ vs rules |" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("| **F1**") or line.startswith("| PR-AUC")]
    assert rows == ["| **F1** (primary) | 0.520 | [0.480, 0.560] | 0.000 | +0.520 | 0.310 | +0.210 |",
                    "| PR-AUC | 0.610 | [0.570, 0.650] | 0.120 | +0.490 | 0.200 | +0.410 |"]
    assert "| rows | 12,345 |" in markdown and "| positive rate | 12.3% |" in markdown


def test_failed_kill_criteria_are_in_the_verdict_and_the_table(ctx):
    ctx["kill_criteria"][0] = replace(ctx["kill_criteria"][0], passed=False)
    markdown = report.render_evaluation_report(report.ReportContext(**ctx))
    assert "Kill criteria: 1 of 2 failed (rules baseline reaches 90% of the model's F1)." in markdown
    assert "| rules baseline reaches 90% of the model's F1 | 60% | **FAIL** |" in markdown


def test_small_slices_are_flagged(ctx):
    markdown = report.render_evaluation_report(report.ReportContext(**ctx))
    assert "| plan | premium † | 42 | 0.700 | 0.300 |" in markdown
    assert "| plan | basic | 5,000 | 0.500 | — |" in markdown
    assert f"† fewer than {report.SMALL_SLICE_ROWS} hold-out rows" in markdown
    del ctx["slices"]
    assert "## Slices" not in report.render_evaluation_report(report.ReportContext(**ctx))


def test_lower_is_better_metrics_compare_against_the_lowest_baseline():
    ctx = {"title": "demand", "task": "regression", "model_name": "LightGBM", "primary_metric": "mae",
           "holdout": report.HoldOut(period="2025-08", rows=900),
           "metrics": {"mae": {"value": 3.1, "ci_low": 2.9, "ci_high": 3.4}},
           "baselines": {"mean": {"mae": 4.2}, "rules": {"mae": 5.0}},
           "deltas": {"mean": {"mae": -1.1}, "rules": {"mae": -1.9}}}
    markdown = report.render_evaluation_report(report.ReportContext(**ctx))
    assert "LightGBM MAE 3.10 [2.90, 3.40] vs mean 4.20: -1.10 (baseline outside the 95% CI). " \
           "Lower MAE is better." in markdown
    assert "positive rate" not in markdown


def test_a_missing_primary_metric_is_said_not_hidden(ctx):
    del ctx["metrics"]["f1"]
    markdown = report.render_evaluation_report(report.ReportContext(**ctx))
    assert "LightGBM has no F1 on the hold-out: the primary metric is missing." in markdown


def test_write_report_embeds_the_plots_in_a_self_contained_html(ctx, scores, tmp_path):
    y, score = scores
    pr = report.pr_curve_plot(y, score, {"rules": (score > 0.4).astype(int)}, tmp_path / "src" / "pr.png",
                              model_name="LightGBM")
    calibration = report.calibration_plot(y, score, tmp_path / "src" / "calibration.png")
    out = tmp_path / "report"
    html_path = report.write_report(report.render_evaluation_report(report.ReportContext(**ctx)), out,
                                    {"Precision-recall": pr, "Calibration": calibration})

    assert html_path == out / "report.html"
    assert sorted(p.name for p in out.iterdir()) == ["calibration.png", "pr.png", "report.html", "report.md"]
    markdown = (out / "report.md").read_text()
    assert "![Precision-recall](pr.png)" in markdown and "![Calibration](calibration.png)" in markdown

    page = html_path.read_text()
    assert "<title>Evaluation report: churn_demo</title>" in page and "<table>" in page
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == 2 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert base64.b64decode(sources[0].split(",", 1)[1]) == pr.read_bytes()


def test_inline_plots_embed_each_png_as_markdown_the_ui_renders(scores, tmp_path):
    y, score = scores
    pr = report.pr_curve_plot(y, score, {}, tmp_path / "pr.png", model_name="LightGBM")
    calibration = report.calibration_plot(y, score, tmp_path / "calibration.png")
    section = report.inline_plots({"Precision-recall": pr, "Calibration": calibration})
    images = re.findall(r"!\[([^\]]+)\]\(data:image/png;base64,([^)]+)\)", section)
    assert [title for title, _ in images] == ["Precision-recall", "Calibration"]
    assert [base64.b64decode(data) for _, data in images] == [pr.read_bytes(), calibration.read_bytes()]
    assert report.inline_plots({}) == ""


def test_report_text_cannot_inject_markup(ctx, tmp_path):
    ctx["kill_criteria"][0] = replace(ctx["kill_criteria"][0], criterion="<script>alert(1)</script>")
    page = report.write_report(report.render_evaluation_report(report.ReportContext(**ctx)), tmp_path, {}).read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_plots_are_pngs(scores, tmp_path):
    y, score = scores
    for path in (report.pr_curve_plot(y, score, {}, tmp_path / "pr.png"),
                 report.calibration_plot(y, score, tmp_path / "calibration.png")):
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 10_000


def test_plots_reject_bad_inputs(scores, tmp_path):
    y, score = scores
    with pytest.raises(ValueError):
        report.calibration_plot(y, score * 5, tmp_path / "calibration.png")  # not probabilities
    with pytest.raises(ValueError):
        report.pr_curve_plot(y, score[:-1], {}, tmp_path / "pr.png")


@pytest.fixture
def deep(ctx) -> dict:
    """The report context with every optional section of the deeper evaluation."""
    group = {"group": "18-24", "n": 129, "assessed": True, "selection_rate": 0.124, "tpr": 0.375, "f1": 0.25,
             "observed_rate": 0.062, "mean_score": 0.084, "calibration_p_value": 0.43, "ece": 0.047}
    return ctx | {
        "comparisons": [
            {"baseline": "rules", "metric": "f1", "model": 0.52, "baseline_value": 0.31, "delta": 0.21,
             "ci_low": 0.12, "ci_high": 0.3, "significant": True},
            {"baseline": "lightgbm (not chosen)", "metric": "f1", "model": 0.52, "baseline_value": 0.55,
             "delta": -0.03, "ci_low": -0.08, "ci_high": 0.02, "significant": False}],
        "cross_validation": CrossValidation("Small data.", pl.DataFrame(
            [{"fold": 1, "train_rows": 1318, "test_rows": 1208, "test_start": "2025-03-01", "test_end": "2025-03-01",
              "value": 0.353}, {"fold": 2, "train_rows": 2526, "test_rows": 1208, "test_start": "2025-04-01",
                                "test_end": "2025-04-01", "value": 0.389}], schema=CV_FOLD_SCHEMA)),
        "calibration": CalibrationSummary(validation_ece=0.09, ece=0.081, brier=0.07, max_ece=0.05, calibrated=True,
                                          method="platt", fitted_rows=900, ece_after=0.012, brier_after=0.062),
        "fairness": FairnessReport(FairnessRule(0.8, 50, 0.05), [AttributeFairness(
            "age_band", disparate_impact=0.466, p_value=0.082, equal_opportunity_gap=0.371,
            equal_opportunity_p_value=0.0527, passed=False, primary="f1", status="FAIL",
            reason="FAIL disparate impact 0.466, under the minimum 0.8 (Fisher p = 0.082, reported only); FAIL "
                   "equal-opportunity (TPR) gap 0.371, over the maximum 0.1 (Fisher p = 0.0527, reported only)",
            groups=(group, group | {"group": None, "n": 17, "assessed": False}))],
            candidates=pl.DataFrame([{"candidate": "lightgbm", "attribute": "age_band", "disparate_impact": 0.466,
                                      "equal_opportunity_gap": 0.371, "status": "FAIL", "primary_metric": "f1",
                                      "primary_value": 0.52},
                                     {"candidate": "lightgbm_reweighed", "attribute": "age_band",
                                      "disparate_impact": 0.83, "equal_opportunity_gap": 0.08, "status": "PASS",
                                      "primary_metric": "f1", "primary_value": 0.5}])),
        "worst_predictions": ErrorAnalysis(
            error="|label − score|", summary="2 are positives the model scored low.",
            contrast=pl.DataFrame([{"feature": "tickets", "worst_mean": 4.0, "holdout_mean": 1.0,
                                    "std_difference": 2.5}]),
            rows=pl.DataFrame([{"rank": 1, "customer_id": 7, "label": 1, "score": 0.01, "error": 0.99,
                                "plan": None}])),
        "edge_cases": [{"case": "all features missing", "rows": 20, "passed": True, "detail": "scores 0.1 .. 0.1"},
                       {"case": "unseen categories", "rows": 20, "passed": False, "detail": "raised KeyError: x"}],
    }


def test_baseline_comparison_section_says_whether_each_difference_is_significant(deep):
    markdown = report.render_evaluation_report(report.ReportContext(**deep))
    assert "| baseline | LightGBM | baseline value | Δ | 95% CI of Δ | significant |" in markdown
    assert "| rules | 0.520 | 0.310 | +0.210 | [0.120, 0.300] | yes |" in markdown
    assert "| lightgbm (not chosen) | 0.520 | 0.550 | -0.030 | [-0.080, 0.020] | no |" in markdown
    assert markdown.index("## Comparison with baselines") < markdown.index("## Kill criteria")


def test_cross_validation_section_shows_folds_or_why_it_was_skipped(deep):
    markdown = report.render_evaluation_report(report.ReportContext(**deep))
    assert "Small data. F1 0.371 ± 0.025 (mean ± standard deviation over 2 folds)." in markdown
    assert "| 1 | 1,318 | 1,208 | 2025-03-01 .. 2025-03-01 | 0.353 |" in markdown
    deep["cross_validation"] = CrossValidation("the training split has 50,000 rows",
                                               pl.DataFrame(schema=CV_FOLD_SCHEMA))
    markdown = report.render_evaluation_report(report.ReportContext(**deep))
    assert "## Cross-validation\n\nSkipped: the training split has 50,000 rows" in markdown
    assert "| fold |" not in markdown


def test_calibration_section_reports_before_and_after(deep):
    markdown = report.render_evaluation_report(report.ReportContext(**deep))
    assert "| hold-out, raw scores | 0.0810 | 0.0700 |" in markdown
    assert "| hold-out, platt calibrator | 0.0120 | 0.0620 |" in markdown
    assert "fitted on 900 validation rows" in markdown and "saved with the model as calibrator.json" in markdown
    deep["calibration"] = replace(deep["calibration"], validation_ece=0.02, calibrated=False, method=None,
                                  ece_after=None)
    markdown = report.render_evaluation_report(report.ReportContext(**deep))
    assert "no calibrator was fitted" in markdown and "calibrator |" not in markdown


def test_fairness_section_has_tpr_and_calibration_per_group(deep):
    markdown = report.render_evaluation_report(report.ReportContext(**deep))
    assert "**age_band**: **FAIL** — FAIL disparate impact 0.466, under the minimum 0.8 (Fisher p = 0.082, " \
           "reported only)" in markdown and "(pass)" not in markdown
    assert "| lightgbm | age_band | 0.466 | 0.371 | FAIL | F1 0.520 |" in markdown  # before/after mitigation
    assert "| lightgbm_reweighed | age_band | 0.830 | 0.080 | PASS | F1 0.500 |" in markdown
    assert ("| group | n | selection rate | TPR | F1 | observed rate | mean score | calibration p | ECE |"
            in markdown)
    assert "| 18-24 | 129 | 0.124 | 0.375 | 0.250 | 0.062 | 0.084 | 0.430 | 0.047 |" in markdown
    assert "| unknown | 17 (not assessed) |" in markdown
    deep["fairness"] = replace(deep["fairness"], attributes=[])
    assert "The brief names no protected attributes." in report.render_evaluation_report(report.ReportContext(**deep))


def test_worst_predictions_and_edge_cases_are_shown(deep):
    markdown = report.render_evaluation_report(report.ReportContext(**deep))
    assert "## Error analysis: the worst predictions" in markdown
    assert "The 1 hold-out rows with the largest error (|label − score|)" in markdown
    assert "2 are positives the model scored low." in markdown
    assert "| tickets | 4.000 | 1.000 | +2.50 |" in markdown
    assert "| rank | customer_id | label | score | error | plan |" in markdown
    assert "| 1 | 7 | 1 | 0.010 | 0.990 | — |" in markdown
    assert "| unseen categories | 20 | **FAIL** | raised KeyError: x |" in markdown
    assert "| all features missing | 20 | pass | scores 0.1 .. 0.1 |" in markdown


def test_importance_and_confusion_plots_are_pngs(tmp_path):
    from mlplatform.core.report import confusion_matrix_plot, importance_plot

    bars = importance_plot({f"f{i}": float(i) for i in range(30)}, tmp_path / "importance.png", top=5)
    cells = confusion_matrix_plot(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]), tmp_path / "cm.png", title="t")
    for path in (bars, cells):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
