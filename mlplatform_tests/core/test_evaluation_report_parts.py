"""The evaluation report, the promotion gate and the model card assembled by core functions from plain frames."""

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mlplatform.brief import DEMO_BRIEF, Brief, load_brief
from mlplatform.core import tables
from mlplatform.core.datasets import model_features
from mlplatform.core.drift import NOT_APPLICABLE
from mlplatform.core.evaluation.cross_validation import (
    CV_FOLD_SCHEMA,
    CV_MAX_TRAIN_ROWS,
    CrossValidation,
    cross_validate_challenger,
)
from mlplatform.core.evaluation.error_analysis import error_analysis
from mlplatform.core.evaluation.fairness_assessment import AttributeFairness
from mlplatform.core.evaluation.golden import GoldenSummary, golden_evaluation, golden_markdown
from mlplatform.core.evaluation.hold_out_metrics import Candidate
from mlplatform.core.evaluation.hold_out_report import (
    evaluate_hold_out,
    excluded_markdown,
    hold_out_summary,
    report_figures,
)
from mlplatform.core.evaluation.kill_criteria import KillCriterion
from mlplatform.core.evaluation.skew import SkewComparison
from mlplatform.core.holdout import SetApart
from mlplatform.core.metrics import compute_metrics
from mlplatform.core.model_card import card_evidence, golden_description
from mlplatform.core.promotion import decision_table, judge_challenger
from mlplatform.core.report import ReportContext
from mlplatform.core.training import SplitFrames, majority_baseline


@pytest.fixture(scope="module")
def brief() -> Brief:
    return load_brief(DEMO_BRIEF)


def _rows(brief: Brief, n: int, seed: int) -> pl.DataFrame:
    """``n`` labelled rows with every model input of the demo brief, its protected and slice attributes."""
    rng = np.random.default_rng(seed)
    frame = {f: rng.normal(size=n) for f in model_features(brief)}
    frame.update({"customer_plan": rng.choice(["basic", "pro"], n), "customer_region": rng.choice(["n", "s"], n)})
    return pl.DataFrame({
        brief.entity_key: np.arange(n), brief.label.timestamp: [datetime(2024, 1, 1) + timedelta(days=int(d))
                                                                for d in rng.integers(0, 60, n)],
        brief.label.column: (rng.random(n) < 0.3).astype(int), "age_band": rng.choice(["<30", "30+"], n),
        "plan": rng.choice(["basic", "pro"], n), "region": rng.choice(["n", "s"], n), **frame})


def _score(frame: pl.DataFrame) -> np.ndarray:
    """A model that ranks rows by tenure: a real scoring function, not a fixed answer."""
    return 1 / (1 + np.exp(-frame["customer_tenure_days"].cast(pl.Float64).fill_null(0).to_numpy()))


def test_the_hold_out_results_and_the_reports_figures(brief):
    train, test = _rows(brief, 400, 1), _rows(brief, 300, 2)
    y = test[brief.label.column].to_numpy()
    scored = [Candidate("lightgbm", _score(test), 0.5),
              Candidate("rules", np.where(test["customer_tenure_days"].to_numpy() > 1, 1.0, 0.0), 0.5),
              Candidate("majority", majority_baseline("binary", y).predict_score(test), 0.5)]
    quality = KillCriterion("quality", "fine", True)
    results = evaluate_hold_out(brief, train, test, scored, _score, quality)

    intervals = results.metrics.filter(pl.col("ci_low").is_not_null())
    assert set(intervals.filter(pl.col("candidate") == "lightgbm")["metric"]) == {"f1", "pr_auc", "roc_auc"}
    assert set(intervals.filter(pl.col("candidate") == "rules")["metric"]) == {"f1"}
    assert results.headline == pytest.approx(compute_metrics("binary", y, scored[0].scores, 0.5)["f1"])
    assert [k.passed for k in results.kill_criteria][1] is True and len(results.kill_criteria) == 3
    assert results.predictions.height == test.height and results.edge_cases.height > 0
    assert set(results.lake_tables()) == {tables.METRICS, tables.BASELINE_COMPARISON, tables.SLICES,
                                          tables.KILL_CRITERIA, tables.EDGE_CASES, tables.PREDICTIONS}
    assert hold_out_summary(brief, test).positive_rate == pytest.approx(float(y.mean()))

    ctx = ReportContext(title="churn_demo", primary_metric="f1", metrics=results.parts.metrics, calibration=None,
                        cross_validation=CrossValidation("skipped", pl.DataFrame(schema=CV_FOLD_SCHEMA)),
                        skew=SkewComparison(reason="none"),
                        holdout=hold_out_summary(brief, test))
    golden = GoldenSummary(share=0.1, version="v", rows=0, keys=0, metrics={}, not_judged=None)
    figures = report_figures(brief, _Selection(), results, ctx, SetApart(rows=4, entities=2), golden,
                             pl.DataFrame({"feature": ["a", "b"]}))
    rules = results.parts.baselines["rules"]["f1"]
    assert figures["lift_over_rules_f1"] == pytest.approx((results.headline - rules) / abs(rules))
    assert figures["cross_validation"] == "skipped" and "ece" not in figures and "golden_f1" not in figures
    assert figures["test_rows"] == 300 and figures["test_rows_set_apart_quarantined"] == 4
    assert figures["top_features"] == "a, b"


class _Selection:
    challenger, decision = "lightgbm", "chosen"


def test_rows_set_apart_are_reported_only_when_there_are_some():
    assert excluded_markdown(SetApart(rows=0, entities=0)) == ""
    text = excluded_markdown(SetApart(rows=1200, entities=40, positives=3, source="customers"))
    assert "1,200 hold-out rows (40 entities, 3 positive)" in text and "`customers`" in text


def test_the_golden_set_is_scored_and_described(brief):
    golden = _rows(brief, 200, 3)
    metrics, summary = golden_evaluation(brief, golden, _Predictor(), 0.5)
    expected = compute_metrics("binary", golden[brief.label.column].to_numpy(), _score(golden), 0.5)
    assert summary.metrics == {m: expected[m] for m in ("f1", "pr_auc", "roc_auc")}
    assert metrics["rows"].to_list() == [200] * 3 and summary.keys == 200
    assert summary.not_judged is None  # both classes have the brief's 30 rows
    assert golden_evaluation(brief, golden.head(20), _Predictor(), 0.5)[1].not_judged  # neither has
    text = golden_markdown(summary, "f1", 0.05)
    assert "200 labelled rows of 200 keys" in text and "falls more than 5% below it" in text

    empty, nothing = golden_evaluation(brief, golden.head(0), _Predictor(), 0.5)
    assert empty.height == 0 and nothing.metrics == {} and nothing.not_judged is None
    assert "Disabled" in golden_markdown(replace(nothing, share=0), "f1", 0.05)


class _Predictor:
    def predict_score(self, frame: pl.DataFrame) -> np.ndarray:
        return _score(frame)


def _metric_rows(values: dict[str, float]) -> pl.DataFrame:
    return pl.DataFrame([{"candidate": c, "metric": m, "value": v, "ci_low": v - 0.02, "ci_high": v + 0.02}
                         for c, v in values.items() for m in ("f1", "pr_auc", "roc_auc")])


def test_the_gate_judges_the_registered_candidate_under_the_briefs_thresholds(brief):
    fairness = [AttributeFairness("age_band", passed=True, status="PASS", reason="PASS")]
    arguments = {"size_mb": 1.0, "latency_ms": 1.0, "fairness": fairness, "golden": None}
    better = judge_challenger(brief, _metric_rows({"lightgbm": 0.6, "rules": 0.4, "majority": 0.0}), "lightgbm",
                              None, **arguments)
    assert better.promote, better.reasons
    worse = judge_challenger(brief, _metric_rows({"lightgbm": 0.3, "rules": 0.4, "majority": 0.0}), "lightgbm",
                             None, **arguments)
    assert not worse.promote and any(r.startswith("FAIL") and "rules" in r for r in worse.reasons)
    row = decision_table("3", None, worse).row(0, named=True)
    assert row["challenger_version"] == "3" and row["promote"] is False and row["reasons"].startswith(
        worse.reasons[0])


def test_the_cards_evidence_comes_from_the_lake_tables(brief):
    train = _rows(brief, 50, 4)
    metrics = _metric_rows({"lightgbm": 0.6, "rules": 0.4})
    golden = pl.DataFrame({"metric": ["f1"], "value": [0.61], "golden_version": ["abc"], "rows": [120]})
    evidence = card_evidence(
        brief, "lightgbm", train, metrics=metrics, slices=pl.DataFrame(),
        fairness=pl.DataFrame({"attribute": ["age_band"], "passed": [True]}),
        drift=pl.DataFrame({"feature": ["x"], "psi": [0.0], "severity": [NOT_APPLICABLE]}),
        quality_points=[10.0, 10.0, 10.0], dataset_version="v1", golden_metrics=golden)
    assert set(evidence.metrics) == {"f1", "pr_auc", "roc_auc"} and evidence.metrics["f1"]["value"] == 0.6
    assert evidence.fairness == {"age_band": AttributeFairness("age_band", passed=True)} and evidence.drift is None
    assert evidence.training_rows == 50 and evidence.model_type == "LightGBM"
    assert evidence.datasets[-1].startswith("golden test set: 120 rows") and "f1 0.6100" in evidence.datasets[-1]
    first, last = evidence.date_range
    assert first == train[brief.label.timestamp].min().date() and last == train[brief.label.timestamp].max().date()
    disabled = brief.model_copy(update={"thresholds": brief.thresholds.model_copy(update={"golden_share": 0})})
    assert golden_description(disabled, golden) == []


def test_cross_validation_is_skipped_on_a_large_training_split_without_loading_the_model(brief):
    big = _rows(brief, CV_MAX_TRAIN_ROWS, 5)
    cv = cross_validate_challenger(brief, SplitFrames(big, big.head(10), big.head(10)), "lightgbm",
                                   Path("/nonexistent/model"))
    assert cv.folds.schema == pl.Schema(CV_FOLD_SCHEMA) and cv.folds.height == 0
    assert f"{CV_MAX_TRAIN_ROWS:,} rows" in cv.reason and not cv.ran


def test_error_analysis_keeps_the_worst_rows_and_shows_what_sets_them_apart(brief):
    test = _rows(brief, 200, 6)
    worst, shown = error_analysis(brief, test, _score(test), n=10)
    assert worst.height == 10 and worst["rank"].to_list() == list(range(1, 11))
    assert worst["error"].is_sorted(descending=True)
    assert set(model_features(brief)) <= set(worst.columns) and shown.rows.height == 10
    assert shown.rows.columns[-3:] == shown.contrast["feature"].head(3).to_list()


def test_the_training_sets_row_counts_follow_labels_then_the_split(tmp_path):
    from mlplatform.core.datasets import attribute_keys, attributes_source, training_row_counts
    from mlplatform_tests.defs.plain_table import write_plain_table_brief

    table_brief = load_brief(write_plain_table_brief(tmp_path))
    at = datetime(2024, 6, 1)
    frame = pl.DataFrame({"row_id": range(1, 501), "observed_at": [at] * 500, "bought": [0, 1] * 250})
    attributes = frame.select("row_id", "observed_at").head(490)  # ten rows lost their attribute row
    counts = dict(training_row_counts(table_brief, frame, attributes, quarantined=4, valid=520, known=500,
                                      as_of=at).select("stage", "rows").iter_rows())
    assert counts["label_rows_quarantined"] == 4 and counts["label_not_known_yet"] == 20
    assert counts["entity_without_valid_row"] == 10 and counts["train"] + counts["validation"] + counts["test"] \
        + counts["golden"] + counts["outside_split_windows"] == 500
    assert attribute_keys(table_brief) == ["row_id", "observed_at"]
    assert attributes_source(table_brief) == table_brief.features.source


def test_the_demo_attaches_attributes_from_its_entities_once_per_entity(brief):
    from mlplatform.core.datasets import attribute_keys, attributes_source

    assert attribute_keys(brief) == [brief.entity_key]
    assert attributes_source(brief) == brief.features.entities_source


def test_the_tuning_note_names_the_trials_and_the_best_value():
    from mlplatform.core.tuning import TuningResult, tuning_note

    tuned = TuningResult(best_params={}, best_value=0.61234, n_trials_done=3,
                         trials=pl.DataFrame({"number": [0, 1, 2, 3, 4]}), best_iteration=10)
    assert tuning_note(tuned, "f1") == "Optuna: 3 trials this run (5 in the study), best validation f1 0.6123"


def test_an_attribute_fairness_row_is_the_fairness_tables_columns_in_order():
    from mlplatform.defs.evaluation import FAIRNESS_SCHEMA

    row = AttributeFairness("age_band", passed=True, primary="f1", groups=({"group": "a"},)).row()
    assert list(row) == list(FAIRNESS_SCHEMA)  # the promotion gate's evidence quotes rows in the table's order
    assert AttributeFairness.from_row({**row, "extra": 1}) == AttributeFairness("age_band", passed=True)
