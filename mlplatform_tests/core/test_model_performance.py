"""The performance table's rows: one contract whether drift over time is not measurable, the monitored period's
labels have not arrived yet, or concept drift was measured on them."""

from datetime import datetime

import numpy as np
import polars as pl
import pytest

from mlplatform.core.drift import AWAITING_LABELS, NOT_APPLICABLE, label_drift_chi2, prediction_drift_kl
from mlplatform.core.model_performance import (
    PERFORMANCE_SCHEMA,
    awaiting_labels,
    measured_performance,
    not_applicable_performance,
)

PERIOD = (datetime(2025, 9, 1), datetime(2025, 11, 1))


def test_without_time_the_table_keeps_its_columns_and_says_not_applicable():
    frame = not_applicable_performance("f1")
    assert frame.schema == pl.Schema(PERFORMANCE_SCHEMA)
    assert frame.row(0, named=True) == {**dict.fromkeys(PERFORMANCE_SCHEMA), "metric": "f1",
                                        "severity": NOT_APPLICABLE, "rows": 0}


def test_a_period_without_labels_waits_for_them_and_says_when_they_come():
    frame, facts = awaiting_labels("f1", "3", PERIOD, 30)
    assert frame.schema == pl.Schema(PERFORMANCE_SCHEMA)
    row = frame.row(0, named=True)
    assert (row["severity"], row["champion_version"], row["rows"], row["current"]) == (AWAITING_LABELS, "3", 0, None)
    assert facts["severity"] == AWAITING_LABELS and facts["labelled_rows"] == 0 and facts["champion_version"] == "3"
    assert facts["reason"] == ("no labelled rows between 2025-09-01 and 2025-11-01 yet (labels arrive 30 days after "
                               "their snapshot); concept drift is judged when they arrive, the serving monitor's "
                               "score-shift alert stands in until then")


def test_measured_performance_compares_the_metric_now_with_evaluation_and_training():
    rng = np.random.default_rng(0)
    train_labels, labels = rng.integers(0, 2, 2000), rng.integers(0, 2, 500)
    train_scores, scores = rng.random(2000), np.clip(labels * 0.3 + rng.random(500) * 0.7, 0, 1)
    frame, facts = measured_performance("binary", "f1", "2", evaluated=0.9, labels=labels, scores=scores,
                                        threshold=0.5, train_labels=train_labels, train_scores=train_scores,
                                        max_drop=0.1)
    row = frame.row(0, named=True)
    assert frame.schema == pl.Schema(PERFORMANCE_SCHEMA) and row["rows"] == 500 == facts["labelled_rows"]
    assert row["reference"] == 0.9 and row["current"] == facts["f1_now"] < 0.9 * 0.9
    assert row["severity"] == facts["severity"] == "critical"  # more than 10% below its evaluation
    assert row["relative_drop"] == pytest.approx((0.9 - facts["f1_now"]) / 0.9)
    assert row["prediction_kl"] == pytest.approx(prediction_drift_kl(train_scores, scores))
    assert (row["label_chi2"], row["label_chi2_pvalue"]) == pytest.approx(label_drift_chi2(train_labels, labels))
    assert facts["f1_at_evaluation"] == 0.9 and facts["champion_version"] == "2"
