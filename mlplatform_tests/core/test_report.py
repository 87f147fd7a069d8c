import base64
import re

import numpy as np
import pytest

from mlplatform.core import report

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def ctx() -> dict:
    return {
        "brief": "churn_demo",
        "task": "binary",
        "model_name": "LightGBM",
        "primary_metric": "f1",
        "holdout": {"period": "2025-08-01..2025-09-01", "rows": 12345, "positive_rate": 0.123},
        "metrics": {"pr_auc": {"value": 0.61, "ci_low": 0.57, "ci_high": 0.65},
                    "f1": {"value": 0.52, "ci_low": 0.48, "ci_high": 0.56}},
        "baselines": {"majority": {"f1": 0.0, "pr_auc": 0.12}, "rules": {"f1": 0.31, "pr_auc": 0.2}},
        "deltas": {"majority": {"f1": 0.52, "pr_auc": 0.49}, "rules": {"f1": 0.21, "pr_auc": 0.41}},
        "kill_criteria": [
            {"criterion": "rules baseline reaches 90% of the model's F1", "measured": "60%", "passed": True},
            {"criterion": "model beats random by more than 10%", "measured": "+310%", "passed": True},
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
    markdown = report.render_evaluation_report(ctx)
    lines = markdown.splitlines()
    assert lines[0] == "# Evaluation report: churn_demo"
    assert lines[2].startswith("**Verdict.** LightGBM F1 0.52 [0.48, 0.56] vs rules 0.31: +0.21 ")
    assert "(baseline outside the 95% CI)" in lines[2]
    assert "Kill criteria: all 2 passed." in lines[2]


def test_metrics_table_puts_the_primary_metric_first_with_ci_and_deltas(ctx):
    markdown = report.render_evaluation_report(ctx)
    assert "| metric | LightGBM | 95% CI | majority | Δ vs majority | rules | Δ vs rules |" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("| **F1**") or line.startswith("| PR-AUC")]
    assert rows == ["| **F1** (primary) | 0.520 | [0.480, 0.560] | 0.000 | +0.520 | 0.310 | +0.210 |",
                    "| PR-AUC | 0.610 | [0.570, 0.650] | 0.120 | +0.490 | 0.200 | +0.410 |"]
    assert "| rows | 12,345 |" in markdown and "| positive rate | 12.3% |" in markdown


def test_failed_kill_criteria_are_in_the_verdict_and_the_table(ctx):
    ctx["kill_criteria"][0]["passed"] = False
    markdown = report.render_evaluation_report(ctx)
    assert "Kill criteria: 1 of 2 failed (rules baseline reaches 90% of the model's F1)." in markdown
    assert "| rules baseline reaches 90% of the model's F1 | 60% | **FAIL** |" in markdown


def test_small_slices_are_flagged(ctx):
    markdown = report.render_evaluation_report(ctx)
    assert "| plan | premium † | 42 | 0.700 | 0.300 |" in markdown
    assert "| plan | basic | 5,000 | 0.500 | — |" in markdown
    assert f"† fewer than {report.SMALL_SLICE_ROWS} hold-out rows" in markdown
    del ctx["slices"]
    assert "## Slices" not in report.render_evaluation_report(ctx)


def test_lower_is_better_metrics_compare_against_the_lowest_baseline():
    ctx = {"brief": "demand", "task": "regression", "model_name": "LightGBM", "primary_metric": "mae",
           "holdout": {"period": "2025-08", "rows": 900},
           "metrics": {"mae": {"value": 3.1, "ci_low": 2.9, "ci_high": 3.4}},
           "baselines": {"mean": {"mae": 4.2}, "rules": {"mae": 5.0}},
           "deltas": {"mean": {"mae": -1.1}, "rules": {"mae": -1.9}}}
    markdown = report.render_evaluation_report(ctx)
    assert "LightGBM MAE 3.10 [2.90, 3.40] vs mean 4.20: -1.10 (baseline outside the 95% CI). " \
           "Lower MAE is better." in markdown
    assert "positive rate" not in markdown


def test_a_missing_primary_metric_is_said_not_hidden(ctx):
    del ctx["metrics"]["f1"]
    assert "LightGBM has no F1 on the hold-out: the primary metric is missing." in report.render_evaluation_report(ctx)


def test_write_report_embeds_the_plots_in_a_self_contained_html(ctx, scores, tmp_path):
    y, score = scores
    pr = report.pr_curve_plot(y, score, {"rules": (score > 0.4).astype(int)}, tmp_path / "src" / "pr.png",
                              model_name="LightGBM")
    calibration = report.calibration_plot(y, score, tmp_path / "src" / "calibration.png")
    out = tmp_path / "report"
    html_path = report.write_report(report.render_evaluation_report(ctx), out,
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


def test_report_text_cannot_inject_markup(ctx, tmp_path):
    ctx["kill_criteria"][0]["criterion"] = "<script>alert(1)</script>"
    page = report.write_report(report.render_evaluation_report(ctx), tmp_path, {}).read_text()
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
