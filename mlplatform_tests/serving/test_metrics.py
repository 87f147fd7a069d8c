"""The serving app's metrics belong to the app: a second app in the process starts from zero, even after Feast
switched prometheus_client to multiprocess mode (as it does when imported first, in a graph run or a test
session); and what ``/metrics`` exports follows Prometheus' conventions (cumulative ``le`` buckets)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mlplatform.serving.metrics import LATENCY_BUCKETS, ServingMetrics

REPO = Path(__file__).resolve().parents[2]

# Run in a fresh interpreter: prometheus_client picks its storage when first imported, so only a process that
# imports feast first (which sets PROMETHEUS_MULTIPROC_DIR) shows what a graph run or a test session sees.
TWO_APPS = """
import json, sys
from pathlib import Path
import feast  # noqa: F401  (first, as in a graph run: it sets PROMETHEUS_MULTIPROC_DIR)
from prometheus_client import values
from mlplatform.brief import DEMO_BRIEF
from mlplatform.serving.app import ServingOptions, create_app
from mlplatform.settings import Settings
from mlplatform_tests.serving.helpers import metric, serving

def app(name):
    return create_app(Settings(data_dir=Path(sys.argv[1]) / name, brief_path=DEMO_BRIEF), ServingOptions())

def health_count(running):
    return metric(running.client, "mlplatform_http_requests_total", endpoint="/health", status="200")

with serving(app("first")) as first:
    for _ in range(3):
        first.client.get("/health")
    with serving(app("second")) as second:
        second.client.get("/health")
        first.client.get("/health")
        print(json.dumps({"multiprocess": values.ValueClass._multiprocess, "first": health_count(first),
                          "second": health_count(second)}))
"""


def test_a_second_app_in_the_process_counts_only_its_own_requests_in_feasts_multiprocess_mode(tmp_path):
    env = {name: value for name, value in os.environ.items()
           if name.upper() not in ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", TWO_APPS, str(tmp_path)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["multiprocess"] is True, "feast no longer switches prometheus_client: this test shows nothing"
    assert counts == {"multiprocess": True, "first": 4.0, "second": 1.0}


def _samples(metrics: ServingMetrics) -> dict[tuple[str, frozenset], float]:
    text = generate_latest(metrics.registry).decode()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_latency_is_exported_in_cumulative_le_buckets_with_its_sum_and_count():
    metrics = ServingMetrics(lambda: False)
    for seconds in (0.001, 0.004, 0.004, 3.0):  # on a bound (le is inclusive), inside one, past the last
        metrics.latency.labels("/predict").observe(seconds)
    samples = _samples(metrics)

    def bucket(le: str) -> float:
        return samples[("mlplatform_http_request_duration_seconds_bucket",
                        frozenset({"endpoint": "/predict", "le": le}.items()))]

    assert [bucket(le) for le in ("0.001", "0.0025", "0.005", "2.5", "+Inf")] == [1, 1, 3, 3, 4]
    assert len([name for name, _ in samples if name.endswith("_bucket")]) == len(LATENCY_BUCKETS) + 1
    endpoint = frozenset({"endpoint": "/predict"}.items())
    assert samples[("mlplatform_http_request_duration_seconds_count", endpoint)] == 4
    assert samples[("mlplatform_http_request_duration_seconds_sum", endpoint)] == pytest.approx(3.009)


def test_counters_start_at_zero_per_app_and_the_circuit_gauge_is_read_at_each_scrape():
    open_now = [False]
    first, second = ServingMetrics(lambda: open_now[0]), ServingMetrics(lambda: False)
    first.predictions.labels("churn_demo_model", "3", False, "champion").inc()
    first.dead_letters.inc(5)
    samples, other = _samples(first), _samples(second)
    assert samples[("mlplatform_predictions_total", frozenset({
        "model_name": "churn_demo_model", "model_version": "3", "fallback": "False", "arm": "champion"}.items()))] == 1
    assert samples[("mlplatform_prediction_log_dead_letter_rows_total", frozenset())] == 5
    assert other[("mlplatform_prediction_log_dead_letter_rows_total", frozenset())] == 0
    assert not [name for name, _ in other if name == "mlplatform_predictions_total"]
    assert {labels: value for (name, labels), value in other.items() if name == "mlplatform_model_swaps_total"} == {
        frozenset({"arm": "champion"}.items()): 0, frozenset({"arm": "challenger"}.items()): 0}
    assert samples[("mlplatform_online_store_circuit_open", frozenset())] == 0
    open_now[0] = True
    assert _samples(first)[("mlplatform_online_store_circuit_open", frozenset())] == 1


def test_a_counter_refuses_to_count_down_or_the_wrong_labels():
    metrics = ServingMetrics(lambda: False)
    with pytest.raises(ValueError, match="only counts up"):
        metrics.dead_letters.inc(-1)
    with pytest.raises(ValueError, match=r"takes the labels \['arm'\]"):
        metrics.swaps.labels("champion", "extra")
