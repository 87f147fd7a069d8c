"""The online prediction API: the champion model over features from the Feast online store.

``create_app(settings)`` builds a FastAPI app whose request and response models come from the brief. At
startup it loads the registry's ``champion`` in the background (so ``/health`` answers at once and ``/ready``
says when the model is warm); without a champion, or when loading fails (a file whose SHA-256 differs from the
registry's record included), the brief's rules answer and every response says ``"fallback": true``. Online
features come from :class:`~mlplatform.core.feature_store.OnlineReader` (Feast's online table read directly) on
a worker thread, bounded by the request's timeout and guarded by a circuit breaker; requests that carry their
features explicitly never touch the store. One row of a LightGBM model is scored on the event loop without a
frame (:mod:`mlplatform.serving.row_scoring`, microseconds); batches and other models score on a worker thread.

The app polls the registry: when the ``champion`` alias moves it loads the new version off the event loop and
swaps it in with one assignment, so requests in flight finish on the model they started with. When the
challenger has a traffic share (an A/B test or a canary step), a stable hash of the entity id sends that
share of entities to the ``challenger`` alias. Every answered row goes to the prediction log.
"""

import asyncio
import gc
import logging
import shutil
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Body, FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mlplatform.brief import Brief, load_brief, load_tabular_brief
from mlplatform.core.rollout.assignment import Arm, assign_arm
from mlplatform.core.rollout.prediction_log import prediction_log_dir
from mlplatform.core.rollout.registry import rollout_state
from mlplatform.serving.breaker import CircuitBreaker
from mlplatform.serving.metrics import ServingMetrics
from mlplatform.serving.model_loader import Scorer, load_version, model_name, rules_fallback
from mlplatform.serving.prediction_log import PredictionLog, log_schema
from mlplatform.serving.schemas import (
    INT64_MAX,
    INT64_MIN,
    ErrorBody,
    NotReady,
    ValidationErrorBody,
    api_models,
    entity_key_type,
    feature_frame,
    feature_types,
    polars_type,
)
from mlplatform.settings import MIN_BODY_BYTES, ServingSettings, Settings, Workspace

log = logging.getLogger(__name__)
# Readiness asks the online store for this id: any answer, even "unknown", shows the store works.
_PROBE_ID = 0


@dataclass(frozen=True)
class ServingOptions:
    """Limits of the serving app.

    Attributes:
        timeout_s: budget of one request: the online-store lookup and the scoring share it.
        max_batch: most entities in one ``/predict/batch`` request.
        breaker_failures: consecutive online-store failures (errors or timeouts) that open the circuit.
        breaker_cooldown_s: how long an open circuit refuses lookups before one trial call.
        poll_interval_s: how often the registry is asked whether the champion, the challenger or its traffic
            share changed.
        challenger_share: the challenger's share of entities; None follows the registry (the canary's step).
        log_flush_interval_s: longest a prediction waits in memory before it is written to the log.
        log_flush_rows: buffered predictions that trigger a write at once.
        max_body_bytes: largest request body; a larger one is refused (413) before any of it is parsed. The
            default holds a full batch with every feature given (about 1 KB an entity).
        replay_clock: log the time a request names in its ``X-Replay-Time`` header (ISO 8601) instead of the
            wall clock, so replayed historical traffic meets the labels of its own days (``mlplatform demo
            --live``); off by default, where the header is ignored.
        inference_backend: how one row is scored (:data:`mlplatform.settings.ROW_BACKENDS` or a torch runtime,
            see :func:`mlplatform.serving.row_scoring.row_scorer`).
    """

    timeout_s: float = 1.0
    max_batch: int = 1000
    breaker_failures: int = 5
    breaker_cooldown_s: float = 30.0
    poll_interval_s: float = ServingSettings.registry_poll_s
    challenger_share: float | None = None
    log_flush_interval_s: float = 1.0
    log_flush_rows: int = 10_000
    max_body_bytes: int = ServingSettings.max_body_bytes
    replay_clock: bool = False
    inference_backend: str = "auto"

    def __post_init__(self) -> None:
        if self.challenger_share is not None and not 0 <= self.challenger_share <= 1:
            raise ValueError(f"challenger_share must lie in [0, 1]; got {self.challenger_share}")
        if self.poll_interval_s <= 0 or self.log_flush_interval_s <= 0 or self.log_flush_rows < 1:
            raise ValueError("poll_interval_s and log_flush_interval_s must be > 0 and log_flush_rows >= 1")
        if self.max_batch < 1 or self.max_body_bytes < MIN_BODY_BYTES:
            raise ValueError(f"max_batch must be >= 1 and max_body_bytes >= {MIN_BODY_BYTES}; got "
                             f"{self.max_batch} and {self.max_body_bytes}")

    @classmethod
    def from_settings(cls, serving: ServingSettings) -> "ServingOptions":
        """Defaults, with the serving settings of the environment (:meth:`Settings.from_env`) applied."""
        return cls(poll_interval_s=serving.registry_poll_s, challenger_share=serving.challenger_share,
                   max_body_bytes=serving.max_body_bytes, replay_clock=serving.replay_clock,
                   inference_backend=serving.inference_backend)


@dataclass(frozen=True)
class _Models:
    """What answers now: replaced whole (one assignment) when the registry changes, never mutated."""

    champion: Scorer
    challenger: Scorer | None = None
    challenger_share: float = 0.0
    downloads: dict[str, Path] = field(default_factory=dict)  # version -> its folder

    def arm_of(self, entity_id: object) -> Arm:
        if self.challenger is None or self.challenger_share <= 0:
            return "champion"
        return assign_arm(entity_id, self.challenger_share, self.champion.model_name)

    def scorer(self, arm: Arm) -> Scorer:
        return self.challenger if arm == "challenger" and self.challenger is not None else self.champion


class _MetricsMiddleware:
    """Counts every HTTP request by route template (never the raw path, which would explode the labels)."""

    def __init__(self, app: Any, metrics: ServingMetrics) -> None:
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


REPLAY_TIME_HEADER = "X-Replay-Time"
_replayed_time: ContextVar[datetime | None] = ContextVar("replayed_time", default=None)


class _ReplayClockMiddleware:
    """Takes a request's time from its ``X-Replay-Time`` header (ISO 8601; naive means UTC): a replayed request
    is logged at the moment it stands for. A header that is no time is a 400."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        raw = dict(scope.get("headers") or []).get(REPLAY_TIME_HEADER.lower().encode()) \
            if scope["type"] == "http" else None
        if raw is None:
            await self.app(scope, receive, send)
            return
        try:
            moment = datetime.fromisoformat(raw.decode())
        except ValueError:
            await JSONResponse({"detail": f"{REPLAY_TIME_HEADER} must be an ISO 8601 time"},
                               status_code=400)(scope, receive, send)
            return
        token = _replayed_time.set(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
        try:
            await self.app(scope, receive, send)
        finally:
            _replayed_time.reset(token)


class _BodyLimitMiddleware:
    """Refuses (413) a request body over ``limit`` bytes before it is parsed: at once when its Content-Length
    says so, else as soon as the bytes streamed in (chunked) pass the limit. So no client can make the app parse
    megabytes of JSON on the event loop, which stalls every other request (``/health`` included)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    def _too_large(self) -> str:
        return (f"the request body exceeds {self.limit} bytes; send smaller batches (or raise "
                "MLPLATFORM_MAX_BODY_BYTES)")

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await JSONResponse({"detail": self._too_large()}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                # FastAPI re-raises an HTTPException met while reading the body: the client gets this 413.
                raise HTTPException(413, self._too_large())
            return message

        await self.app(scope, receive_within_limit, send)


async def _validation_error(_: Any, exc: Exception) -> JSONResponse:
    """422 naming each invalid field (the first 20) without echoing what was sent: a default FastAPI 422
    repeats every input value, so a large bad batch came back as megabytes."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    detail = [{"loc": [part if isinstance(part, int) else _clip(str(part), 100) for part in error["loc"]],
               "msg": _clip(str(error["msg"]), 300), "type": str(error["type"])} for error in errors[:20]]
    return JSONResponse({"detail": detail, "errors": len(errors)}, status_code=422)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _exact_int64_bounds(node: Any) -> Any:
    """``node`` (an OpenAPI document) with the Int64 bounds of integer fields written exactly: FastAPI's schema
    model holds bounds as floats, and float(2**63 - 1) is 2**63, a value the API refuses."""
    if isinstance(node, list):
        return [_exact_int64_bounds(item) for item in node]
    if not isinstance(node, dict):
        return node
    exact = {key: _exact_int64_bounds(value) for key, value in node.items()}
    if exact.get("type") == "integer":
        for key, bound in (("maximum", INT64_MAX), ("minimum", INT64_MIN)):
            if isinstance(exact.get(key), float) and exact[key] == float(bound):
                exact[key] = bound
    return exact


class _Serving:
    """What the endpoints share: the models, the online store with its circuit breaker, the prediction log."""

    def __init__(self, brief: Brief, workspace: Workspace, options: ServingOptions, tracking_uri: str | None = None,
                 feature_store_config: Any = None) -> None:
        self.brief, self.workspace, self.options = brief, workspace, options
        # The run's stores: by default the local profile's, under the data directory (see create_app).
        self.tracking_uri = tracking_uri or workspace.mlflow_uri
        self.feature_store_config = feature_store_config
        self.types = feature_types(brief)
        self.breaker = CircuitBreaker(options.breaker_failures, options.breaker_cooldown_s)
        self.models: _Models | None = None  # set once loaded and warmed
        self.load_error: str | None = None
        self.fallback_reason: str | None = None
        self.store_answered = False
        self.on_swap: Callable[[Arm], None] = lambda arm: None
        self._reader: Any = None  # an OnlineReader, once the online store has been opened
        self._refresh_lock = threading.Lock()  # one registry refresh at a time; close() waits for it
        self._closed = False

    def load(self) -> None:
        """Probe (and so open) the online store, then load and warm the champion (else the rules); never raises.

        The store first: what opening it allocates is then frozen with the models (see :func:`_freeze_heap`).
        """
        try:
            self._lookup([_PROBE_ID])
            self.breaker.record_success()
            self.store_answered = True
        except Exception as exc:  # /ready retries the probe and reports the cause
            log.warning("the online store did not answer at startup: %s", exc)
            self.breaker.record_failure()
        self.refresh()

    def refresh(self) -> None:
        """Follow the registry: load what the ``champion`` and ``challenger`` aliases and the traffic share name
        now, then swap it in whole. A version that fails to load leaves the current one serving; never raises."""
        with self._refresh_lock:
            if self._closed:
                return
            current = self.models
            downloads = dict(current.downloads) if current else {}
            name = model_name(self.brief)
            try:
                state = rollout_state(self.tracking_uri, name)
                missing = f"the registry at {_without_password(self.tracking_uri)} has no 'champion' alias on {name}"
            except Exception as exc:  # no registered model yet, or the registry is down
                state, missing = None, f"the registry has no 'champion' of {name}: {exc}"
            champion = self._champion(state.champion if state else None, current, downloads, missing)
            if champion is None:
                return
            share = self.options.challenger_share
            if share is None:
                share = state.challenger_share if state else (current.challenger_share if current else 0.0)
            wanted = state.challenger if state and share > 0 else None
            challenger = None
            if wanted not in (None, champion.model_version):
                challenger = current.challenger if current else None
                if challenger is None or challenger.model_version != wanted:
                    challenger = self._load(wanted, downloads, "challenger" if current else None)
            kept = {champion.model_version, challenger.model_version if challenger else None}
            if current is None or champion is not current.champion or challenger is not current.challenger:
                _freeze_heap()  # before the new models answer, so no request waits for the collection
            self.models = _Models(champion, challenger, share if challenger else 0.0,
                                  {v: p for v, p in downloads.items() if v in kept})
        for version, path in downloads.items():
            if version not in kept:  # requests still scoring on an old model hold it in memory, not on disk
                shutil.rmtree(path, ignore_errors=True)

    def _champion(self, wanted: str | None, current: "_Models | None", downloads: dict[str, Path],
                  missing: str) -> Scorer | None:
        """The champion to serve: ``wanted`` once loaded; else what serves now; else the rules."""
        serving = current.champion if current else None
        if wanted is None:  # no alias (or no registry answer): keep serving what serves
            return serving or self._rules(missing)
        if serving is not None and serving.model_version == wanted:
            return serving
        loaded = self._load(wanted, downloads, "champion" if current else None)
        if loaded is not None:
            self.fallback_reason = None
            return loaded
        return serving or self._rules(f"champion version {wanted} could not be loaded: {self.load_error}")

    def _load(self, version: str, downloads: dict[str, Path], swap: Arm | None) -> Scorer | None:
        """Download, load and warm one registered version (``swap``: the arm it replaces a model of); None, with
        the cause in ``load_error``, on failure."""
        try:
            scorer, downloads[version] = load_version(self.brief, self.workspace, version, self.tracking_uri,
                                                       self.options.inference_backend)
            self._warm(scorer)
        except Exception as exc:  # a registry error, unreadable files: the caller keeps what it has
            log.warning("could not load version %s of %s: %s", version, model_name(self.brief), exc)
            self.load_error = str(exc)
            return None
        self.load_error = None
        if swap is not None:
            self.on_swap(swap)
        return scorer

    def _rules(self, reason: str) -> Scorer | None:
        log.warning("serving the rules fallback: %s", reason)
        self.fallback_reason = reason
        scorer = rules_fallback(self.brief)
        try:
            self._warm(scorer)
        except Exception as rules_exc:  # a rule that cannot be evaluated on the features
            self.load_error = f"the rules fallback cannot score: {rules_exc}"
            log.error(self.load_error)
            return None
        return scorer

    def _warm(self, scorer: Scorer) -> None:
        # An all-missing row pays the first-call costs (LightGBM, polars SQL) of both paths before any client does.
        scorer.predict(feature_frame([{}], self.types))
        scorer.predict_rows([{}], self.types)

    def close(self) -> None:
        """Stop following the registry and remove the downloaded models (waits for a refresh in progress)."""
        with self._refresh_lock:
            self._closed = True
            for path in (self.models.downloads.values() if self.models else []):
                shutil.rmtree(path, ignore_errors=True)

    def _lookup(self, ids: list[int]) -> dict[int, dict | None]:
        """Features per id from the online store; None for an id the store has no features of."""
        if self._reader is None:  # opened on first use, so a store that failed to open is retried
            # Feast is slow to import: only the loading thread pays for it, not create_app.
            from mlplatform.core.feast_import import feast
            from mlplatform.core.feature_store import OnlineReader, feast_config, feature_service_name

            config = self.feature_store_config or feast_config(self.workspace.feast_dir, self.brief.name)
            store = feast.FeatureStore(config=config)
            self._reader = OnlineReader(store, feature_service_name(self.brief.name))
        columns = self._reader.read(ids)
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


def _freeze_heap() -> None:
    """Collect garbage once, then exclude every object alive now (libraries, the loaded models) from later
    collections: a full collection of the loaded process scans ~0.5M objects (~0.3 s here, a p99 stall every
    few thousand requests); after freezing, collections scan only what requests allocate."""
    gc.collect()
    gc.freeze()


async def _within(deadline: float, func: Callable, *args: Any) -> Any:
    """Run blocking ``func`` on a worker thread; TimeoutError if it has not finished by ``deadline``."""
    return await asyncio.wait_for(asyncio.to_thread(func, *args), max(0.0, deadline - time.perf_counter()))


def _without_password(uri: str) -> str:
    """``uri`` with its password masked: the registry's address appears in /ready and in the logs."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def create_app(settings: Settings, options: ServingOptions | None = None, tracking_uri: str | None = None,
               feature_store_config: Any = None) -> FastAPI:
    """The serving app of ``settings``' brief and data directory.

    The brief is read here, because the request and response models are generated from it; the model and
    the online store are opened when the app starts.

    Args:
        settings: the brief and the data directory.
        options: limits; by default :meth:`ServingOptions.from_settings` of ``settings.serving``.
        tracking_uri: the MLflow registry to serve from; None for the local profile's SQLite store under the
            data directory.
        feature_store_config: the Feast ``RepoConfig`` of the online store (e.g. the production profile's Redis
            and SQL registry); None for the local profile's files under the data directory.

    Raises:
        BriefError: the brief cannot be loaded.
    """
    options = options or ServingOptions.from_settings(settings.serving)
    brief = load_tabular_brief(settings.brief_path, "the prediction service")
    workspace = Workspace(settings.data_dir, brief.name)
    serving = _Serving(brief, workspace, options, tracking_uri, feature_store_config)
    metrics = ServingMetrics(lambda: serving.breaker.is_open)
    serving.on_swap = lambda arm: metrics.swaps.labels(arm).inc()
    models_of_api = api_models(brief)
    request_model = models_of_api.request
    key = brief.entity_key

    async def follow_registry() -> None:
        await asyncio.to_thread(serving.load)
        while True:
            await asyncio.sleep(options.poll_interval_s)
            await asyncio.to_thread(serving.refresh)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        prediction_log = PredictionLog(prediction_log_dir(workspace), log_schema(key, polars_type(entity_key_type(
            brief))), options.log_flush_interval_s, options.log_flush_rows, metrics.dead_letters.inc)
        app.state.prediction_log = prediction_log
        follower = asyncio.create_task(follow_registry())
        yield
        follower.cancel()
        # A load or refresh still running on its thread finishes first; its downloads are then removed.
        await asyncio.to_thread(serving.close)
        await asyncio.to_thread(prediction_log.close)

    app = FastAPI(title=f"{brief.name} predictions", version="1", lifespan=lifespan,
                  description=f"{brief.problem.prediction_target}. Model: the registry's champion of "
                              f"{brief.name} (and its challenger for the share of entities an A/B test or canary "
                              "gives it); the brief's rules answer when no model is available.")
    # The last added runs first: the metrics see every answer, the 413s of the body limit included.
    app.add_middleware(_BodyLimitMiddleware, limit=options.max_body_bytes)
    app.add_middleware(_MetricsMiddleware, metrics=metrics)
    if options.replay_clock:
        app.add_middleware(_ReplayClockMiddleware)
    app.add_exception_handler(RequestValidationError, _validation_error)
    if brief.rag is not None:  # POST /ask: cited answers over the brief's documents
        from mlplatform.serving.ask import ask_router

        app.include_router(ask_router(settings, brief, options.timeout_s, metrics.answers))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _exact_int64_bounds(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    def score(models: _Models, arms: list[Arm], rows: list[dict]) -> list[tuple]:
        """``(prediction, probability)`` per row, each row scored by its arm's model (one frame per arm)."""
        outputs: list[tuple] = [()] * len(rows)
        for arm in set(arms):
            at = [i for i, a in enumerate(arms) if a == arm]
            scored = models.scorer(arm).predict_rows([rows[i] for i in at], serving.types)
            for i, output in zip(at, scored, strict=True):
                outputs[i] = output
        return outputs

    def not_found(unknown: list) -> str:
        return (f"no online features for {key} {unknown[:20]}: unknown, or not seen within the last "
                f"{brief.features.ttl_days} days. Send 'features' explicitly.")

    async def predict_rows(items: list, started: float, partial: bool) -> list[dict]:
        """One answer per item, in order. An item whose entity the online store does not know is a 404 of the
        whole request, or (``partial``) a ``not_found`` row while the others are scored."""
        models = serving.models  # this request's models, even if a swap happens while it runs
        if models is None:
            raise HTTPException(503, serving.load_error or "the model is still loading; poll /ready")
        deadline = started + options.timeout_s
        wanted = sorted({getattr(item, key) for item in items if item.features is None})
        found = await serving.online(wanted, deadline) if wanted else {}
        online = {entity_id: row for entity_id, row in found.items() if row is not None}
        unknown = [entity_id for entity_id in wanted if entity_id not in online]
        if unknown and not partial:
            raise HTTPException(404, not_found(unknown))
        known = [item for item in items if item.features is not None or getattr(item, key) in online]
        answers = await score_known(models, known, online, started, deadline)
        answers.reverse()  # popped in request order below
        rows = []
        for item in items:
            entity_id = getattr(item, key)
            if item.features is None and entity_id not in online:
                arm = models.arm_of(entity_id)
                scorer = models.scorer(arm)
                rows.append({key: entity_id, "status": "not_found", "detail": not_found([entity_id]),
                             "prediction": None, "probability": None, "model_name": scorer.model_name,
                             "model_version": scorer.model_version, "fallback": scorer.fallback, "arm": arm,
                             "latency_ms": (time.perf_counter() - started) * 1000})
            else:
                rows.append(answers.pop())
        return rows

    async def score_known(models: _Models, items: list, online: dict, started: float,
                          deadline: float) -> list[dict]:
        """Score and log ``items`` (each with its features given or found online); one answer per item."""
        if not items:
            return []
        ids = [getattr(item, key) for item in items]
        rows = [item.features.model_dump() if item.features else online[entity_id] for item, entity_id in
                zip(items, ids, strict=True)]
        arms = [models.arm_of(entity_id) for entity_id in ids]
        request_time, request_id = _replayed_time.get() or datetime.now(UTC), PredictionLog.request_id()

        def record(outputs: list[tuple], status: str) -> float:
            latency_ms = (time.perf_counter() - started) * 1000
            app.state.prediction_log.append([
                (request_time, request_id, entity_id, row, *(output or (None, None)), scorer.model_name,
                 scorer.model_version, arm, scorer.fallback, status, latency_ms)
                for entity_id, row, arm, output, scorer in zip(
                    ids, rows, arms, outputs, (models.scorer(arm) for arm in arms), strict=True)])
            return latency_ms

        try:
            if len(rows) == 1 and models.scorer(arms[0]).score_row is not None:
                outputs = score(models, arms, rows)  # microseconds: a worker thread would cost more than it saves
            else:
                outputs = await _within(deadline, score, models, arms, rows)
        except TimeoutError:
            record([()] * len(rows), "timeout")
            raise HTTPException(504, f"scoring did not finish within {options.timeout_s} s") from None
        except Exception as exc:
            record([()] * len(rows), "error")
            log.exception("scoring failed")
            raise HTTPException(500, f"scoring failed: {exc}") from None
        latency_ms = record(outputs, "ok")
        answers = []
        for entity_id, arm, (prediction, probability) in zip(ids, arms, outputs, strict=True):
            scorer = models.scorer(arm)
            metrics.predictions.labels(scorer.model_name, scorer.model_version or "none", str(scorer.fallback),
                                       arm).inc()
            answers.append({key: entity_id, "status": "ok", "prediction": prediction, "probability": probability,
                            "model_name": scorer.model_name, "model_version": scorer.model_version,
                            "fallback": scorer.fallback, "arm": arm, "latency_ms": latency_ms})
        return answers

    refusals: dict[int | str, dict[str, Any]] = {
        400: {"model": ErrorBody, "description": "the body is not UTF-8 text (FastAPI cannot read it as JSON)"},
        413: {"model": ErrorBody, "description": "the body exceeds the size limit; nothing was read"},
        422: {"model": ValidationErrorBody, "description": "a field breaks the contract; nothing was scored"},
        500: {"model": ErrorBody, "description": "the model failed to score; logged with status error"},
        503: {"model": ErrorBody, "description": "the model is loading, or the online store's circuit is open or "
                                                "the store failed; send 'features' explicitly"},
        504: {"model": ErrorBody, "description": "the online store or the model did not answer in time"}}

    # FastAPI validates the body against the annotation, which must be the request model built from the brief at
    # run time; mypy cannot use a class held in a variable as a type, hence the two valid-type ignores.
    @app.post("/predict", response_model=models_of_api.response, responses={
        **refusals, 404: {"model": ErrorBody, "description": "the online store has no features of this entity"}})
    async def predict(item: request_model) -> dict:  # type: ignore[valid-type]
        """Score one entity: its features from the online store, or the ones the request gives."""
        answer = (await predict_rows([item], time.perf_counter(), partial=False))[0]
        del answer["status"]  # always ok here: a single unknown entity is a 404
        return answer

    @app.post("/predict/batch", response_model=models_of_api.batch, responses=refusals)
    async def predict_batch(
        items: Annotated[list[request_model], Body(min_length=1, max_length=options.max_batch)],  # type: ignore[valid-type]
    ) -> dict:
        """Score up to ``max_batch`` entities with one online-store lookup.

        An entity the online store does not know does not fail the batch: its row has ``status: not_found``
        (and no prediction) while the others are scored; the answer is 200 and ``not_found`` counts such rows.
        """
        started = time.perf_counter()
        predictions = await predict_rows(items, started, partial=True)
        return {"predictions": predictions, "not_found": sum(row["status"] == "not_found" for row in predictions),
                "latency_ms": (time.perf_counter() - started) * 1000}

    @app.get("/health")
    async def health() -> dict:
        """The process is alive (says nothing about the model)."""
        return {"status": "ok"}

    @app.get("/ready", responses={200: {"description": "the model and the online store answer"},
                                  503: {"model": NotReady, "description": "not ready, with the reason"}})
    async def ready() -> JSONResponse:
        """200 once the model (or the rules fallback) is loaded and warm and the online store answers."""
        models = serving.models
        if models is None:
            return _not_ready(serving.load_error or "loading the model")
        if not serving.store_answered:
            try:
                await serving.online([_PROBE_ID], time.perf_counter() + options.timeout_s)
            except HTTPException as exc:
                return _not_ready(exc.detail)
            serving.store_answered = True
        if serving.breaker.is_open:
            return _not_ready(f"the online store circuit is open for {serving.breaker.retry_in():.0f} s more")
        champion, challenger = models.champion, models.challenger
        return JSONResponse({"ready": True, "model_name": champion.model_name, "model_version": champion.model_version,
                             "fallback": champion.fallback, "fallback_reason": serving.fallback_reason,
                             "challenger_version": challenger.model_version if challenger else None,
                             "challenger_share": models.challenger_share})

    @app.get("/metrics")
    async def prometheus() -> Response:
        """Prometheus text format: requests, errors and latency per endpoint, rows scored per model version and
        arm, model swaps."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def app_from_env() -> FastAPI:
    """:func:`create_app` of :meth:`Settings.from_env`, for an ASGI server that starts each worker process
    from an import string, e.g. ``uvicorn mlplatform.serving.app:app_from_env --factory --workers 2``
    (``MLPLATFORM_DATA_DIR`` and ``MLPLATFORM_BRIEF`` say what to serve). Under ``MLPLATFORM_PROFILE=production``
    the registry and the online store are the profile's (``MLPLATFORM_MLFLOW_URI``, ``MLPLATFORM_REDIS``,
    ``MLPLATFORM_FEAST_REGISTRY``).

    Raises:
        SettingsError: a variable's value is not allowed, or the production profile's endpoints are missing.
    """
    settings = Settings.from_env()
    if settings.endpoints is None:
        return create_app(settings)
    from mlplatform.core.feature_store import feast_config

    brief, endpoints = load_brief(settings.brief_path), settings.endpoints
    config = feast_config(Workspace(settings.data_dir, brief.name).feast_dir, brief.name, "redis",
                          endpoints.redis, endpoints.feast_registry)
    return create_app(settings, tracking_uri=endpoints.mlflow_uri, feature_store_config=config)


def _not_ready(reason: str) -> JSONResponse:
    return JSONResponse({"ready": False, "reason": reason}, status_code=503)
