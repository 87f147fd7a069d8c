"""The dashboard's absolute alerts at their boundaries, label drift, and one notice per alert opened."""

import json
from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from mlplatform.brief import DEMO_BRIEF, load_brief
from mlplatform.core.alerts import (
    Alert,
    AlertPolicy,
    breach_span,
    dispatch,
    label_drift,
    policy_for,
    primary_metric_alert,
    primary_threshold_for,
    slo_alerts,
)
from mlplatform.core.prediction_windows import Reference, hourly_metric, prediction_windows
from mlplatform_tests.core.monitoring_logs import AS_OF, frame, log_rows

POLICY = AlertPolicy(max_error_rate=0.01, latency_slo_ms={"p99": 100.0}, min_requests=100,
                     primary_metric="f1", primary_threshold=0.5)


def _alerts(rows: list[dict], policy: AlertPolicy = POLICY) -> dict[str, Alert]:
    windows = prediction_windows(frame(rows), AS_OF, task="binary", primary="f1")
    return {a.name: a for a in slo_alerts(windows, policy)}


@pytest.mark.parametrize(("errors", "fires"), [(1, False), (2, True)])
def test_error_rate_alerts_above_one_percent_not_at_it(errors, fires):
    alerts = _alerts(log_rows(100 - errors) + log_rows(errors, status="error", start_id=1000))
    assert ("error_rate" in alerts) is fires
    if fires:
        alert = alerts["error_rate"]
        assert (alert.severity, alert.observed, alert.threshold, alert.window) == ("critical", 0.02, 0.01, "1h")


@pytest.mark.parametrize(("slowest", "fires"), [(100.0, False), (100.5, True)])
def test_p99_latency_alerts_above_the_slo_not_at_it(slowest, fires):
    alerts = _alerts(log_rows(99, latency_ms=20.0) + log_rows(1, latency_ms=slowest, start_id=1000))
    assert ("latency_p99" in alerts) is fires
    if fires:
        assert alerts["latency_p99"].observed == slowest and alerts["latency_p99"].threshold == 100.0


def test_p50_and_p95_are_judged_when_the_brief_sets_them():
    policy = AlertPolicy(latency_slo_ms={"p50": 15.0, "p95": 500.0, "p99": 1000.0}, min_requests=10)
    assert set(_alerts(log_rows(100, latency_ms=20.0), policy)) == {"latency_p50"}


def test_too_few_requests_in_the_hour_are_judged_on_the_day():
    rows = log_rows(10, status="error") + log_rows(95, at=AS_OF - timedelta(hours=5), start_id=1000)
    alert = _alerts(rows)["error_rate"]
    assert alert.window == "1d" and alert.observed == pytest.approx(10 / 105)
    assert _alerts(log_rows(50, status="error")) == {}  # under 100 requests in every window: nothing judged


def test_scores_far_from_training_warn_as_a_proxy():
    policy = AlertPolicy(max_score_psi=0.25, min_scored=200)
    windows = prediction_windows(frame(log_rows(300, probability=0.9)), AS_OF, task="binary", primary="f1",
                                 reference=Reference(np.linspace(0, 0.5, 1000), 0.1))
    shift = {a.name: a for a in slo_alerts(windows, policy)}["prediction_shift"]
    assert shift.severity == "warning" and shift.observed > 0.25


def _hours(values: list[float | None]) -> pl.DataFrame:
    """An hourly metric series ending at AS_OF, oldest first."""
    rows = []
    for back, value in zip(range(len(values), 0, -1), values, strict=True):
        start = AS_OF - timedelta(hours=back)
        rows.append({"start": start, "end": start + timedelta(hours=1), "labelled": 0 if value is None else 10,
                     "value": value})
    return pl.DataFrame(rows)


def test_primary_metric_alerts_after_24_hours_under_the_threshold_not_23():
    assert primary_metric_alert(_hours([0.9] + [0.4] * 23), POLICY) is None
    alert = primary_metric_alert(_hours([0.9] + [0.4] * 24), POLICY)
    assert alert is not None and alert.window == "24h" and alert.observed == 0.4 and alert.threshold == 0.5


def test_hours_without_labels_neither_break_nor_extend_the_breach():
    assert breach_span(_hours([0.4] * 10 + [None] * 4 + [0.4] * 10), 0.5, True) == timedelta(hours=24)
    assert breach_span(_hours([0.4] * 20 + [None] * 5), 0.5, True) == timedelta(hours=20)
    assert breach_span(_hours([0.4] * 30 + [0.5]), 0.5, True) == timedelta(0)  # at the threshold: not under
    assert breach_span(_hours([0.6] * 30), 0.5, higher_is_better=False) == timedelta(hours=30)  # an error metric


def _labelled_hours(hours: int) -> pl.DataFrame:
    """``hours`` hours before AS_OF, each with 9 labelled answers at F1 0.4 (one hit, three false alarms)."""
    rows = []
    for back in range(1, hours + 1):
        at = AS_OF - timedelta(hours=back) + timedelta(minutes=30)
        rows += (log_rows(1, at=at, prediction=1, label=1, start_id=back * 100)
                 + log_rows(3, at=at, prediction=1, label=0, start_id=back * 100 + 10)
                 + log_rows(5, at=at, prediction=0, label=0, start_id=back * 100 + 20))
    return hourly_metric(frame(rows), AS_OF, task="binary", primary="f1", label="churned", hours=48)


def test_primary_metric_alert_from_a_labelled_log():
    alert = primary_metric_alert(_labelled_hours(24), POLICY)
    assert alert is not None and alert.observed == pytest.approx(0.4) and alert.window == "24h"
    assert primary_metric_alert(_labelled_hours(23), POLICY) is None


def test_no_threshold_no_primary_metric_alert():
    policy = AlertPolicy(primary_threshold=None)
    assert primary_metric_alert(_hours([0.0] * 48), policy) is None


def test_label_drift_needs_a_significant_and_large_shift():
    rng = np.random.default_rng(0)
    reference = (rng.random(5000) < 0.10).astype(int)
    drifted = label_drift(reference, (rng.random(2000) < 0.20).astype(int), "binary", POLICY, "7d")
    assert drifted.alert is not None and drifted.alert.name == "label_drift"
    assert drifted.shift == pytest.approx(0.10, abs=0.02) and drifted.p_value < 0.05
    small = label_drift(reference, (rng.random(200_000) < 0.12).astype(int), "binary", POLICY, "7d")
    assert small.p_value < 0.05 and small.alert is None  # significant, but a 2-point move is under the 5 allowed
    few = label_drift(reference, np.array([0] * 24 + [1] * 6), "binary", POLICY, "7d")  # 20%, but of 30 labels
    assert few.p_value > 0.05 and few.alert is None
    nothing = label_drift(reference, np.array([], dtype=int), "binary", POLICY, "7d")
    assert nothing.alert is None and nothing.current_rows == 0


def test_label_drift_of_a_regression_target_is_its_psi():
    rng = np.random.default_rng(1)
    moved = label_drift(rng.normal(0, 1, 4000), rng.normal(1.5, 1, 1000), "regression", POLICY, "7d")
    assert moved.alert is not None and moved.shift > 0.25
    assert label_drift(rng.normal(0, 1, 4000), rng.normal(0, 1, 1000), "regression", POLICY, "7d").alert is None


def test_the_brief_sets_the_policy():
    brief = load_brief(DEMO_BRIEF)
    policy = policy_for(brief, primary_threshold_for(brief, 0.6))
    assert policy.latency_slo_ms == {"p99": brief.thresholds.max_latency_ms}
    assert policy.max_error_rate == 0.01 and policy.primary_threshold == pytest.approx(0.6 * 0.95)
    assert primary_threshold_for(brief, None) is None


def test_an_open_alert_is_sent_once_and_its_resolution_once(tmp_path):
    state, log = tmp_path / "alerts.json", tmp_path / "notifications.jsonl"
    error = Alert("error_rate", "critical", 0.02, 0.01, "1h", "2 of 100 failed")
    first = dispatch(state, log, [error], AS_OF, scope="serving")
    again = dispatch(state, log, [error], AS_OF + timedelta(minutes=5), scope="serving")
    other = dispatch(state, log, [], AS_OF, scope="labels")  # another scope never resolves this one
    resolved = dispatch(state, log, [], AS_OF + timedelta(minutes=10), scope="serving")
    assert [e["status"] for e in first] == ["opened"] and again == [] and other == []
    assert [(e["status"], e["name"]) for e in resolved] == [("resolved", "error_rate")]
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["event"], e["status"], e["scope"]) for e in lines] == [("alert", "opened", "serving"),
                                                                      ("alert", "resolved", "serving")]
    assert lines[0]["observed"] == 0.02 and lines[0]["threshold"] == 0.01 and lines[0]["window"] == "1h"


def test_a_severity_change_is_sent_again(tmp_path):
    state, log = tmp_path / "alerts.json", tmp_path / "notifications.jsonl"
    dispatch(state, log, [Alert("x", "warning", 1, 0, "1h", "m")], AS_OF)
    sent = dispatch(state, log, [Alert("x", "critical", 2, 0, "1h", "m")], AS_OF)
    assert [(e["status"], e["severity"]) for e in sent] == [("opened", "critical")]


def test_alerts_reach_the_webhook(tmp_path):
    import http.server
    import threading

    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the standard library's name
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        sent = dispatch(tmp_path / "s.json", tmp_path / "n.jsonl",
                        [Alert("latency_p99", "critical", 150.0, 100.0, "1h", "slow")], AS_OF, url)
    finally:
        server.shutdown()
    assert sent[0]["webhook_status"] == 204
    assert [(r["name"], r["status"]) for r in received] == [("latency_p99", "opened")]
