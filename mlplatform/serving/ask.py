"""``POST /ask``: a cited answer to a question over the brief's documents, mounted on the serving app when the
brief has a ``rag`` section.

The index and reranker the graph built (``rag_index``, ``rag_reranker``) are loaded on the first question, off
the event loop; answering runs on a worker thread bounded by the app's request timeout (at least the chat
endpoint's timeout when one is configured). Answers go through the persisted semantic cache under
``<data_dir>/<brief>/rag/answer_cache.json``. Requests, errors and latency are counted by the app's metrics
middleware like every route; this router counts every request by outcome (answered, abstained, cached, error)
in ``mlplatform_ask_answers``.
"""

import asyncio
import logging
import threading
import time
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from mlplatform.brief import AnyBrief
from mlplatform.serving.metrics import Counter
from mlplatform.settings import Settings, Workspace

log = logging.getLogger(__name__)
MAX_QUESTION_CHARS = 2000
INTERACTIVE_S = 3.0
LOAD_TIMEOUT_S = 60.0  # the first question loads the index and reranker


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="the question, in words")


class CitationBody(BaseModel):
    chunk_id: str
    document: str
    page: int | None
    quote: str
    source: str = Field(description="the citation as the answer renders it: [Source: document, page X]")


class AskResponse(BaseModel):
    question: str
    answer: str
    citations: list[CitationBody]
    abstained: bool
    cached: bool
    generator: str
    prompt_tokens: int
    completion_tokens: int
    cost: float
    timings_ms: dict[str, float]


class _Answering:
    """The question answerer, built once (the index load takes a moment) and shared by requests."""

    def __init__(self, settings: Settings, brief: AnyBrief) -> None:
        self.settings, self.brief = settings, brief
        self._answerer: Any = None
        self._lock = threading.Lock()

    def answerer(self) -> Any:
        with self._lock:
            if self._answerer is None:
                from mlplatform.defs.rag_quality import question_answerer
                from mlplatform.resources.platform import PlatformResource

                platform = PlatformResource(data_dir=str(self.settings.data_dir),
                                            brief_path=str(self.settings.brief_path))
                from mlplatform.defs.rag import question_retriever

                workspace = Workspace(self.settings.data_dir, self.brief.name)
                self._answerer = question_answerer(self.brief, workspace, question_retriever(platform),
                                                   answer_cache_path(workspace))
            return self._answerer


def answer_cache_path(workspace: Workspace):
    return workspace.root / "rag" / "answer_cache.json"


def ask_router(settings: Settings, brief: AnyBrief, timeout_s: float, counter: Counter | None = None) -> APIRouter:
    """The ``/ask`` route of ``brief``'s documents. ``counter``: requests by outcome (labelled with one of
    :data:`~mlplatform.serving.metrics.ASK_OUTCOMES`)."""

    def count(outcome: str) -> None:
        if counter is not None:
            counter.labels(outcome).inc()

    answering = _Answering(settings, brief)
    router = APIRouter()
    rag = brief.rag
    # The method: interactive answers within 3 s; a chat endpoint gets its own timeout and a second to spare.
    budget = max(timeout_s, INTERACTIVE_S, rag.generation.timeout_s + 1 if rag and rag.generation.base_url else 0)

    @router.post("/ask", response_model=AskResponse, responses={
        400: {"description": "the body is not UTF-8 text (FastAPI cannot read it as JSON)"},
        413: {"description": "the body exceeds the size limit; nothing was read"},
        422: {"description": "the question is empty or longer than 2000 characters"},
        503: {"description": "the index is not built yet (materialise the rag assets), or the chat endpoint "
                             "failed without a fallback"},
        504: {"description": "no answer within the request timeout"}})
    async def ask(request: AskRequest) -> dict:
        """A cited answer from the brief's documents, or "I don't have enough information." when they do not hold
        one. Instructions found inside documents are never followed."""
        from mlplatform.core.rag.generation import GenerationError

        started = asked = time.perf_counter()
        stage = "loading the index"
        try:
            answerer = await asyncio.wait_for(asyncio.to_thread(answering.answerer), LOAD_TIMEOUT_S)
            asked, stage = time.perf_counter(), f"answering, {budget:g} s"
            answer = await asyncio.wait_for(asyncio.to_thread(answerer.ask, request.question), budget)
        except TimeoutError:
            count("error")
            raise HTTPException(504, f"no answer within the time limit ({stage})") from None
        except ValueError as exc:
            count("error")
            if "question" in str(exc):
                raise HTTPException(422, str(exc)) from None
            raise HTTPException(503, f"question answering is not ready: {exc}") from None
        except (OSError, GenerationError) as exc:  # no index yet, or the endpoint failed without fallback
            count("error")
            log.warning("ask failed: %s", exc)
            raise HTTPException(503, f"question answering is not ready: {exc}") from None
        count("cached" if answer.cached else "abstained" if answer.abstained else "answered")
        return {"question": answer.question, "answer": answer.text, "abstained": answer.abstained,
                "citations": [{"chunk_id": c.chunk_id, "document": c.document, "page": c.page, "quote": c.quote,
                               "source": c.render()} for c in answer.citations],
                "cached": answer.cached, "generator": answer.generator, "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens, "cost": answer.cost,
                "timings_ms": {**answer.timings_ms, "load": (asked - started) * 1000,
                               "request": (time.perf_counter() - started) * 1000}}

    return router
