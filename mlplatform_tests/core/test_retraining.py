import json
import threading
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer

import polars as pl
import pytest
from pydantic import ValidationError

from mlplatform.brief import Split
from mlplatform.core.retraining import (
    SplitDates,
    drift_trigger,
    fit_rows_version,
    fitted_on,
    notify,
    performance_trigger,
    record_fit_rows,
    rolling_split_dates,
    split_dates,
)
from mlplatform.core.training import SplitFrames

DRIFT = pl.DataFrame({"feature": ["a", "b", "c", "d"], "psi": [0.05, 0.22, 0.40, 0.15]})
IMPORTANCE = {"a": 10.0, "b": 8.0, "c": 0.5, "d": 5.0}


def test_drift_on_a_top_feature_triggers_with_the_features_named():
    trigger = drift_trigger(DRIFT, IMPORTANCE, top_n=2, threshold=0.2)
    assert trigger is not None and trigger.kind == "drift"
    assert "b (0.22)" in trigger.reason and "c" not in trigger.reason


def test_drift_only_outside_the_top_features_does_not_trigger():
    assert drift_trigger(DRIFT.filter(pl.col("feature") != "b"), IMPORTANCE, top_n=2, threshold=0.2) is None


def test_psi_at_the_threshold_does_not_trigger():
    assert drift_trigger(DRIFT, IMPORTANCE, top_n=4, threshold=0.40) is None


def test_only_critical_concept_drift_triggers():
    base = {"metric": "f1", "reference": 0.5, "current": 0.45, "relative_drop": 0.1}
    assert performance_trigger({**base, "severity": "critical"}).kind == "performance"
    assert performance_trigger({**base, "severity": "warning"}) is None


def test_notify_appends_and_posts_to_the_webhook(tmp_path):
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.handle_request)
    thread.start()
    log = tmp_path / "notifications.jsonl"
    entry = notify(log, {"status": "succeeded"}, f"http://127.0.0.1:{server.server_port}/hook")
    thread.join(5)
    server.server_close()
    assert entry["webhook_status"] == 204
    assert received[0]["status"] == "succeeded"
    notify(log, {"status": "failed"})
    assert [json.loads(line)["status"] for line in log.read_text().splitlines()] == ["succeeded", "failed"]


def test_a_failing_webhook_is_recorded_not_raised(tmp_path):
    entry = notify(tmp_path / "n.jsonl", {"status": "failed"}, "http://127.0.0.1:9/unreachable")
    assert "webhook_error" in entry
    assert json.loads((tmp_path / "n.jsonl").read_text())["webhook_error"]


def test_top_features_are_ranked_over_the_whole_model_not_the_report():
    importance = {f"f{i}": float(100 - i) for i in range(12)}
    drift = pl.DataFrame({"feature": ["f0", "f11"], "psi": [0.01, 0.9]})  # f11 is 12th by importance
    assert drift_trigger(drift, importance, top_n=10, threshold=0.2) is None


def test_rolling_windows_count_whole_months_back_from_the_latest_label():
    assert rolling_split_dates(date(2025, 10, 1), train_months=6, validation_months=1, test_months=1) == SplitDates(
        date(2025, 3, 1), date(2025, 9, 1), date(2025, 10, 1), date(2025, 11, 1))
    # Mid-month labels anchor at their month; windows cross the year boundary; no train_months keeps all.
    assert rolling_split_dates(date(2026, 2, 17), train_months=None, validation_months=2, test_months=3) == \
        SplitDates(None, date(2025, 10, 1), date(2025, 12, 1), date(2026, 3, 1))
    assert rolling_split_dates(date(2025, 12, 31), train_months=12, validation_months=1, test_months=1) == \
        SplitDates(date(2024, 11, 1), date(2025, 11, 1), date(2025, 12, 1), date(2026, 1, 1))


def test_split_dates_are_fixed_or_follow_the_newest_label():
    fixed = Split(validation_start=date(2025, 7, 1), test_start=date(2025, 8, 1), test_end=date(2025, 9, 1))
    times = pl.Series([datetime(2025, 2, 1), datetime(2025, 8, 1)])
    assert split_dates(fixed, times) == SplitDates(None, date(2025, 7, 1), date(2025, 8, 1), date(2025, 9, 1))
    rolling = Split(rolling=True, train_months=3)
    assert split_dates(rolling, times) == SplitDates(date(2025, 4, 1), date(2025, 7, 1), date(2025, 8, 1),
                                                     date(2025, 9, 1))
    # New labelled months move every window forward, for Date columns as for Datetime ones.
    newer = pl.Series([date(2025, 2, 1), date(2025, 10, 1)])
    assert split_dates(rolling, newer).test_start == date(2025, 10, 1)
    with pytest.raises(ValueError, match="no labelled rows"):
        split_dates(rolling, pl.Series([], dtype=pl.Date))
    with pytest.raises(ValueError, match="dates or datetimes"):
        split_dates(rolling, pl.Series([20250801]))


@pytest.mark.parametrize(("fields", "message"), [
    ({"rolling": True, "test_start": "2025-08-01"}, "split.rolling computes test_start"),
    ({"validation_start": "2025-07-01", "test_start": "2025-08-01", "test_months": 2}, "rolling split only"),
    ({"validation_start": "2025-07-01"}, "validation_start and test_start"),
    ({"validation_start": "2025-08-01", "test_start": "2025-08-01"}, "before test_start"),
    ({"rolling": True, "train_months": 0}, "greater than 0"),
])
def test_a_split_is_either_fixed_or_rolling(fields, message):
    with pytest.raises(ValidationError, match=message):
        Split.model_validate(fields)


def test_fit_rows_version_names_the_rows_a_model_is_fitted_on():
    rows = pl.DataFrame({"id": [1, 2, 3, 4], "x": [0.5, None, 2.0, 3.0], "y": [0, 1, 0, 1]})
    train, validation, test = rows[:2], rows[2:3], rows[3:]
    version = fit_rows_version(SplitFrames(train, validation, test))
    assert version == fit_rows_version(SplitFrames(train.reverse(), validation, test))  # row order aside
    assert version == fit_rows_version(SplitFrames(train, validation, rows))  # the test part only judges
    assert version != fit_rows_version(SplitFrames(train[:1], rows[1:3], test))  # a row moved to validation
    assert version != fit_rows_version(SplitFrames(train.with_columns(x=pl.lit(0.5)), validation, test))  # a value


def test_a_version_is_fitted_on_the_rows_recorded_at_registration_and_an_untagged_one_on_none(tmp_path):
    from mlplatform.core.tracking import client_for

    uri, name = f"sqlite:///{tmp_path / 'mlflow.db'}", "model"
    client = client_for(uri)
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, source=(tmp_path / "model").as_uri())
    rows = pl.DataFrame({"id": [1, 2, 3, 4], "x": [0.5, 1.5, 2.0, 3.0], "y": [0, 1, 0, 1]})
    split = SplitFrames(rows[:2], rows[2:3], rows[3:])
    record_fit_rows(uri, name, "1", split)
    assert fitted_on(uri, name, "1", split)
    assert fitted_on(uri, name, "1", SplitFrames(split.train, split.validation, rows))  # only the test part grew
    assert not fitted_on(uri, name, "1", SplitFrames(rows[:3], rows[3:], rows[3:]))  # a newer labelled row fits
    assert not fitted_on(uri, name, "2", split)  # registered without the tag: unknown, so a retrain may run
