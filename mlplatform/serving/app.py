"""The online prediction API: the champion model over features from the Feast online store.

``create_app(settings)`` builds a FastAPI app whose request and response models come from the brief. At
startup it loads the registry's ``champion`` in the background (so ``/health`` answers at once and ``/ready``
says when the model is warm); without a champion, or when loading fails, the brief's rules answer and every
response says ``"fallback": true``. Online-store lookups are bounded by the request's timeout and guarded by
a circuit breaker; requests that carry their features explicitly never touch the store.
"""

import asyncio
import logging
import shutil
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, FastAPI, HTTPException
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from mlplatform.brief import Brief, load_brief
from mlplatform.serving.breaker import CircuitBreaker
from mlplatform.serving.model_loader import Scorer, load_champion, rules_fallback
from mlplatform.serving.schemas import api_models, feature_frame, feature_types
from mlplatform.settings import Settings, Workspace

log = logging.getLogger(__name__)
# Readiness asks the online store for this id: any answer, even "unknown", shows the store works.
_PROBE_ID = 0
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True)
class ServingOptions:
    """Limits of the serving app.

    Attributes:
        timeout_s: budget of one request: the online-store lookup and the scoring share it.
        max_batch: most entities in one ``/predict/batch`` request.
        breaker_failures: consecutive online-store failures (errors or timeouts) that open the circuit.
        breaker_cooldown_s: how long an open circuit refuses lookups before one trial call.
    """

    timeout_s: float = 1.0
    max_batch: int = 1000
    breaker_failures: int = 5
    breaker_cooldown_s: float = 30.0


class _Metrics:
    """Prometheus metrics in a registry of their own, so several apps can live in one process (tests)."""

    def __init__(self, circuit_open: Callable[[], bool]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("mlplatform_http_requests", "HTTP requests", ["endpoint", "status"],
                                registry=self.registry)
        self.errors = Counter("mlplatform_http_errors", "HTTP responses with status >= 400", ["endpoint", "status"],
                              registry=self.registry)
        self.latency = Histogram("mlplatform_http_request_duration_seconds", "Time to answer a request",
                                 ["endpoint"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.predictions = Counter("mlplatform_predictions", "Rows scored, per model version",
                                   ["model_name", "model_version", "fallback"], registry=self.registry)
        gauge = Gauge("mlplatform_online_store_circuit_open", "1 while the online-store circuit is open",
                      registry=self.registry)
        gauge.set_function(lambda: float(circuit_open()))


class _MetricsMiddleware:
    """Counts every HTTP request by route template (never the raw path, which would explode the labels)."""

    def __init__(self, app: Any, metrics: _Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # stays 500 when the app raises before responding

        async def send_and_record(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(endpoint, str(status)).inc()
            if status >= 400:
                self.metrics.errors.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)


class _Serving:
    """What the endpoints share: the scorer, the online store and its circuit breaker."""

    def __init__(self, brief: Brief, workspace: Workspace, options: ServingOptions) -> None:
        self.brief, self.workspace, self.options = brief, workspace, options
        self.types = feature_types(brief)
        self.breaker = CircuitBreaker(options.breaker_failures, options.breaker_cooldown_s)
        self.scorer: Scorer | None = None  # set once loaded and warmed; replaced whole, never mutated
        self.load_error: str | None = None
        self.fallback_reason: str | None = None
        self.store_answered = False
        self._store: Any = None
        self._download: Path | None = None

    def load(self) -> None:
        """Load and warm the champion (else the rules) and probe the online store; never raises."""
        try:
            scorer, self._download = load_champion(self.brief, self.workspace)
            self._warm(scorer)
        except Exception as exc:  # no champion, a registry error, unreadable files: the rules answer instead
            log.warning("serving the rules fallback: %s", exc)
            self.fallback_reason = str(exc)
            scorer = rules_fallback(self.brief)
            try:
                self._warm(scorer)
            except Exception as rules_exc:  # a rule that cannot be evaluated on the features
                self.load_error = f"the rules fallback cannot score: {rules_exc}"
                log.error(self.load_error)
                return
        try:
            self._lookup([_PROBE_ID])
            self.breaker.record_success()
            self.store_answered = True
        except Exception as exc:  # /ready retries the probe and reports the cause
            log.warning("the online store did not answer at startup: %s", exc)
            self.breaker.record_failure()
        self.scorer = scorer

    def _warm(self, scorer: Scorer) -> None:
        # One all-missing row pays the first-call costs (LightGBM, polars SQL) before any client does.
        scorer.predict(feature_frame([{}], self.types))

    def close(self) -> None:
        if self._download is not None:
            shutil.rmtree(self._download, ignore_errors=True)

    def _lookup(self, ids: list[int]) -> dict[int, dict | None]:
        """Features per id from the online store; None for an id the store has no features of."""
        # Feast is slow to import: only the loading thread pays for it, not create_app.
        from feast import FeatureStore

        from mlplatform.core.feature_store import feast_config, feature_service_name, online_features

        if self._store is None:  # opened on first use, so a store that failed to open is retried
            self._store = FeatureStore(config=feast_config(self.workspace.feast_dir, self.brief.name))
        columns = online_features(self._store, ids, feature_service_name(self.brief.name))
        rows: dict[int, dict | None] = {}
        for i, entity_id in enumerate(ids):
            row = {name: columns[name][i] for name in self.types}
            rows[entity_id] = row if any(value is not None for value in row.values()) else None
        return rows

    async def online(self, ids: list[int], deadline: float) -> dict[int, dict | None]:
        """``_lookup`` within the request's deadline, through the circuit breaker.

        Raises:
            HTTPException: 503 while the circuit is open or when the store fails, 504 when it is too slow.
        """
        if not self.breaker.allow():
            raise HTTPException(503, f"the online store failed {self.breaker.failures} times in a row; not asking "
                                     f"it for {self.breaker.retry_in():.0f} s more. Send 'features' explicitly.")
        try:
            found = await _within(deadline, self._lookup, ids)
        except TimeoutError:
            self.breaker.record_failure()
            raise HTTPException(504, f"the online store did not answer within {self.options.timeout_s} s") from None
        except asyncio.CancelledError:  # the trial call of a half-open circuit must not stay pending
            self.breaker.record_failure()
            raise
        except Exception as exc:
            self.breaker.record_failure()
            log.warning("online store lookup failed: %s", exc)
            raise HTTPException(503, f"the online store failed: {exc}") from None
        self.breaker.record_success()
        return found


async def _within(deadline: float, func: Callable, *args: Any) -> Any:
    """Run blocking ``func`` on a worker thread; TimeoutError if it has not finished by ``deadline``."""
    return await asyncio.wait_for(asyncio.to_thread(func, *args), max(0.0, deadline - time.perf_counter()))


def create_app(settings: Settings, options: ServingOptions | None = None) -> FastAPI:
    """The serving app of ``settings``' brief and data directory.

    The brief is read here, because the request and response models are generated from it; the model and
    the online store are opened when the app starts.

    Raises:
        BriefError: the brief cannot be loaded.
    """
    options = options or ServingOptions()
    brief = load_brief(settings.brief_path)
    serving = _Serving(brief, Workspace(settings.data_dir, brief.name), options)
    metrics = _Metrics(lambda: serving.breaker.is_open)
    request_model, response_model, batch_model = api_models(brief)
    key = brief.entity_key

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        loading = asyncio.create_task(asyncio.to_thread(serving.load))
        yield
        await loading  # a load still running finishes first: its download is then removed
        serving.close()

    app = FastAPI(title=f"{brief.name} predictions", version="1", lifespan=lifespan,
                  description=f"{brief.problem.prediction_target}. Model: the registry's champion of "
                              f"{brief.name}; the brief's rules answer when it is unavailable.")
    app.add_middleware(_MetricsMiddleware, metrics=metrics)

    async def predict_rows(items: list, started: float) -> list[dict]:
        scorer = serving.scorer
        if scorer is None:
            raise HTTPException(503, serving.load_error or "the model is still loading; poll /ready")
        deadline = started + options.timeout_s
        wanted = sorted({getattr(item, key) for item in items if item.features is None})
        found = await serving.online(wanted, deadline) if wanted else {}
        unknown = [entity_id for entity_id in wanted if found[entity_id] is None]
        if unknown:
            raise HTTPException(404, f"no online features for {key} {unknown[:20]}: unknown, or not seen within the "
                                     f"last {brief.features.ttl_days} days. Send 'features' explicitly.")
        rows = [item.features.model_dump() if item.features else found[getattr(item, key)] for item in items]
        try:
            outputs = await _within(deadline, scorer.predict, feature_frame(rows, serving.types))
        except TimeoutError:
            raise HTTPException(504, f"scoring did not finish within {options.timeout_s} s") from None
        metrics.predictions.labels(scorer.model_name, scorer.model_version or "none", str(scorer.fallback)).inc(
            len(items))
        latency_ms = (time.perf_counter() - started) * 1000
        return [{key: getattr(item, key), "prediction": prediction, "probability": probability,
                 "model_name": scorer.model_name, "model_version": scorer.model_version,
                 "fallback": scorer.fallback, "latency_ms": latency_ms}
                for item, (prediction, probability) in zip(items, outputs, strict=True)]

    @app.post("/predict", response_model=response_model)
    async def predict(item: request_model) -> dict:
        """Score one entity: its features from the online store, or the ones the request gives."""
        return (await predict_rows([item], time.perf_counter()))[0]

    @app.post("/predict/batch", response_model=batch_model)
    async def predict_batch(
        items: Annotated[list[request_model], Body(min_length=1, max_length=options.max_batch)],
    ) -> dict:
        """Score up to ``max_batch`` entities with one online-store lookup."""
        started = time.perf_counter()
        predictions = await predict_rows(items, started)
        return {"predictions": predictions, "latency_ms": (time.perf_counter() - started) * 1000}

    @app.get("/health")
    async def health() -> dict:
        """The process is alive (says nothing about the model)."""
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        """200 once the model (or the rules fallback) is loaded and warm and the online store answers."""
        scorer = serving.scorer
        if scorer is None:
            return _not_ready(serving.load_error or "loading the model")
        if not serving.store_answered:
            try:
                await serving.online([_PROBE_ID], time.perf_counter() + options.timeout_s)
            except HTTPException as exc:
                return _not_ready(exc.detail)
            serving.store_answered = True
        if serving.breaker.is_open:
            return _not_ready(f"the online store circuit is open for {serving.breaker.retry_in():.0f} s more")
        return JSONResponse({"ready": True, "model_name": scorer.model_name, "model_version": scorer.model_version,
                             "fallback": scorer.fallback, "fallback_reason": serving.fallback_reason})

    @app.get("/metrics")
    async def prometheus() -> Response:
        """Prometheus text format: requests, errors and latency per endpoint, rows scored per model version."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _not_ready(reason: str) -> JSONResponse:
    return JSONResponse({"ready": False, "reason": reason}, status_code=503)
