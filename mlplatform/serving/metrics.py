"""The serving app's Prometheus metrics: held in the memory of the app that counts them, exported through a
registry of its own.

Why not prometheus_client's ``Counter`` and ``Histogram``: where they keep their values is decided once per
process, when prometheus_client is first imported. Feast sets ``PROMETHEUS_MULTIPROC_DIR`` (to a temporary
folder of its own) before it imports prometheus_client, and from then on every metric of the process is kept in
files keyed by metric name and labels, not by app: a second app in the process (the cost report's timed app
during a graph run, the tests) starts from the counts of the first and overwrites them. A registry per app does
not help; the storage is shared below it. These metrics never touch those files, whatever the environment says.

Multiprocess mode is deliberately not used. ``mlplatform serve`` runs one app in one uvicorn process; to scale
out, run more such processes (replicas), each scraped on its own ``/metrics``, and sum them in PromQL. Should one
server ever fork several workers of the app (``gunicorn -w N``), each worker's ``/metrics`` reports that worker
only; aggregating them would need prometheus_client's ``MultiProcessCollector`` over a folder owned by that one
app (never Feast's folder, which every library of the process writes to).
"""

import bisect
import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
ASK_OUTCOMES = ("answered", "abstained", "cached", "error")  # what became of each POST /ask


class _Labelled:
    """A metric's series keyed by label values. One lock guards them: requests count on the event loop, model
    swaps and the prediction log on threads of their own."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self._lock = threading.Lock()

    def _key(self, labelvalues: Sequence[object]) -> tuple[str, ...]:
        if len(labelvalues) != len(self.labelnames):
            raise ValueError(f"{self.name} takes the labels {list(self.labelnames)}; got {list(labelvalues)}")
        return tuple(str(value) for value in labelvalues)


class Counter(_Labelled):
    """A monotonic count per label values (exported as ``<name>_total``)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, documentation, labelnames)
        self._counts: dict[tuple[str, ...], float] = {} if labelnames else {(): 0.0}

    def labels(self, *labelvalues: object) -> "_CounterSeries":
        """The series of these label values, exported (at 0) from now on."""
        key = self._key(labelvalues)
        with self._lock:
            self._counts.setdefault(key, 0.0)
        return _CounterSeries(self, key)

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` to the count of a counter without labels."""
        self._add(self._key(()), amount)

    def _add(self, key: tuple[str, ...], amount: float) -> None:
        if amount < 0:
            raise ValueError(f"{self.name} only counts up; got an increment of {amount}")
        with self._lock:
            self._counts[key] = self._counts.get(key, 0.0) + amount

    def collect(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            counts = sorted(self._counts.items())
        for key, count in counts:
            family.add_metric(list(key), count)
        return family


@dataclass(frozen=True)
class _CounterSeries:
    counter: Counter
    key: tuple[str, ...]

    def inc(self, amount: float = 1.0) -> None:
        self.counter._add(self.key, amount)


@dataclass
class _Observations:
    """One histogram series: how many values fell at or below each bound (and above the last), and their sum."""

    in_bucket: list[int]
    total: float = 0.0


class Histogram(_Labelled):
    """Observed values per label values, counted in cumulative ``le`` buckets as Prometheus expects."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]) -> None:
        super().__init__(name, documentation, labelnames)
        self.bounds = tuple(sorted(buckets))
        self._series: dict[tuple[str, ...], _Observations] = {}

    def labels(self, *labelvalues: object) -> "_HistogramSeries":
        return _HistogramSeries(self, self._key(labelvalues))

    def _observe(self, key: tuple[str, ...], value: float) -> None:
        bucket = bisect.bisect_left(self.bounds, value)  # the first bound >= value: Prometheus' "le"
        with self._lock:
            series = self._series.setdefault(key, _Observations([0] * (len(self.bounds) + 1)))
            series.in_bucket[bucket] += 1
            series.total += value

    def collect(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        names = [floatToGoString(bound) for bound in self.bounds] + ["+Inf"]
        with self._lock:
            snapshot = sorted((key, list(s.in_bucket), s.total) for key, s in self._series.items())
        for key, in_bucket, total in snapshot:
            family.add_metric(list(key), list(zip(names, itertools.accumulate(in_bucket), strict=True)), total)
        return family


@dataclass(frozen=True)
class _HistogramSeries:
    histogram: Histogram
    key: tuple[str, ...]

    def observe(self, value: float) -> None:
        self.histogram._observe(self.key, value)


class ServingMetrics:
    """Everything one serving app counts, and the registry its ``/metrics`` endpoint exports."""

    def __init__(self, circuit_open: Callable[[], bool]) -> None:
        """
        Args:
            circuit_open: whether the online-store circuit is open now (read at each scrape).
        """
        self.circuit_open = circuit_open
        self.requests = Counter("mlplatform_http_requests", "HTTP requests", ["endpoint", "status"])
        self.errors = Counter("mlplatform_http_errors", "HTTP responses with status >= 400", ["endpoint", "status"])
        self.latency = Histogram("mlplatform_http_request_duration_seconds", "Time to answer a request",
                                 ["endpoint"], LATENCY_BUCKETS)
        self.predictions = Counter("mlplatform_predictions", "Rows scored, per model version and arm",
                                   ["model_name", "model_version", "fallback", "arm"])
        self.swaps = Counter("mlplatform_model_swaps", "Models swapped in after the registry changed", ["arm"])
        for arm in ("champion", "challenger"):  # exported at 0 from the start, so a rate() sees the first swap
            self.swaps.labels(arm)
        self.dead_letters = Counter("mlplatform_prediction_log_dead_letter_rows",
                                    "Prediction log rows that could not be written, kept in its dead-letter file")
        self.answers = Counter("mlplatform_ask_answers", "POST /ask requests by outcome", ["outcome"])
        for outcome in ASK_OUTCOMES:  # exported at 0 from the start, like the swaps
            self.answers.labels(outcome)
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def collect(self) -> Iterator[Metric]:
        """Every metric family with its values now (the registry calls this at each scrape)."""
        for counted in (self.requests, self.errors, self.latency, self.predictions, self.swaps, self.dead_letters,
                        self.answers):
            yield counted.collect()
        yield GaugeMetricFamily("mlplatform_online_store_circuit_open", "1 while the online-store circuit is open",
                                value=float(self.circuit_open()))
