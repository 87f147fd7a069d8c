"""The dashboard windows over the prediction log: counts, error rate, latency, scores, proxies and the metric."""

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from mlplatform.core.prediction_windows import BATCH_ARM, Reference, hourly_metric, prediction_windows
from mlplatform_tests.core.monitoring_logs import AS_OF, frame, log_rows


def _windows(log: pl.DataFrame, **kwargs) -> dict[str, dict]:
    table = prediction_windows(log, AS_OF, task="binary", primary="f1", **kwargs)
    return {row["window"]: row for row in table.iter_rows(named=True)}


def test_each_window_counts_only_its_own_span_with_the_end_excluded():
    log = frame(log_rows(3, at=AS_OF - timedelta(minutes=10))
                + log_rows(5, at=AS_OF - timedelta(hours=5), start_id=100)
                + log_rows(7, at=AS_OF - timedelta(days=3), start_id=200)
                + log_rows(11, at=AS_OF - timedelta(days=8), start_id=300)
                + log_rows(2, at=AS_OF, start_id=400)            # at the as-of time: after the window
                + log_rows(4, at=AS_OF - timedelta(hours=1), start_id=500))  # exactly one hour back: inside
    windows = _windows(log)
    assert [windows[w]["requests"] for w in ("1h", "1d", "7d")] == [7, 12, 19]
    assert windows["1h"]["requests_per_second"] == pytest.approx(7 / 3600)


def test_error_rate_and_latency_percentiles_are_over_online_requests():
    rows = (log_rows(97, latency_ms=10.0) + log_rows(2, status="error", latency_ms=50.0, start_id=1000)
            + log_rows(1, status="timeout", latency_ms=1000.0, start_id=2000)
            + log_rows(500, arm=BATCH_ARM, latency_ms=0.01, start_id=5000))  # batch rows: not online traffic
    one = _windows(frame(rows))["1h"]
    assert (one["requests"], one["errors"], one["batch_predictions"]) == (100, 3, 500)
    assert one["error_rate"] == pytest.approx(0.03)
    # Sorted request latencies: 97 x 10, 2 x 50, 1 x 1000; each percentile is an observed latency (the next one
    # up from q * (n - 1)), so p99 of 100 requests is the 100th.
    assert (one["latency_p50_ms"], one["latency_p95_ms"], one["latency_p99_ms"]) == (10.0, 10.0, 1000.0)


def test_a_batch_request_counts_once_for_latency():
    rows = log_rows(1, latency_ms=5.0) + log_rows(1, latency_ms=5.0, start_id=1)
    batch = log_rows(50, latency_ms=400.0, start_id=10)
    for row in batch:
        row["request_id"] = "one-batch-request"
    one = _windows(frame(rows + batch))["1h"]
    assert (one["requests"], one["predictions"]) == (3, 52)
    assert one["latency_p50_ms"] == 5.0 and one["latency_p99_ms"] == 400.0


def test_scores_and_proxies_against_the_reference():
    rows = log_rows(60, probability=0.8, prediction=1) + log_rows(40, probability=0.2, start_id=100) \
        + log_rows(10, version=None, probability=0.9, prediction=1, start_id=500)  # the rules fallback
    reference = Reference(scores=np.linspace(0.0, 0.4, 1000), positive_rate=0.1)
    one = _windows(frame(rows), reference=reference)["1h"]
    assert one["scored"] == 100
    assert one["mean_score"] == pytest.approx(0.56)
    assert one["positive_rate"] == pytest.approx(0.6)
    assert one["positive_rate_shift"] == pytest.approx(0.5)
    assert one["mean_score_shift"] == pytest.approx(0.56 - 0.2)
    assert one["score_psi"] > 1.0
    same = _windows(frame(log_rows(1000, probability=0.2)), reference=Reference(np.full(1000, 0.2), 0.0))["1h"]
    assert same["score_psi"] == pytest.approx(0.0)


def test_the_primary_metric_only_where_labels_arrived():
    rows = (log_rows(10, prediction=1, probability=0.9, label=1) + log_rows(10, prediction=1, probability=0.9,
                                                                          label=0, start_id=10)
            + log_rows(30, prediction=0, probability=0.1, start_id=20))  # no label yet
    one = _windows(frame(rows), label="churned")["1h"]
    assert (one["labelled"], one["primary_metric"]) == (20, "f1")
    assert one["primary_value"] == pytest.approx(2 / 3)  # precision 0.5, recall 1
    assert one["label_positive_rate"] == pytest.approx(0.5)
    assert _windows(frame(rows))["1h"]["primary_value"] is None


def test_an_empty_log_gives_zero_counts_and_null_rates():
    windows = _windows(pl.DataFrame(), reference=Reference(np.ones(10)))
    assert [windows[w]["requests"] for w in ("1h", "1d", "7d")] == [0, 0, 0]
    assert windows["7d"]["error_rate"] is None and windows["7d"]["score_psi"] is None


def test_the_as_of_time_must_carry_its_zone():
    with pytest.raises(ValueError, match="timezone-aware"):
        prediction_windows(pl.DataFrame(), AS_OF.replace(tzinfo=None), task="binary", primary="f1")


def test_hourly_metric_is_per_whole_hour_ending_at_the_as_of_time():
    rows = log_rows(4, prediction=1, label=1, at=AS_OF - timedelta(minutes=30)) \
        + log_rows(4, prediction=1, label=0, at=AS_OF - timedelta(hours=2, minutes=30), start_id=10)
    hourly = hourly_metric(frame(rows), AS_OF, task="binary", primary="f1", label="churned", hours=3)
    assert hourly["end"].to_list()[-1] == AS_OF
    assert hourly["labelled"].to_list() == [4, 0, 4]
    assert hourly["value"].to_list() == [0.0, None, 1.0]
