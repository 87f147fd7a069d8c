"""Answers from retrieved chunks: an OpenAI-compatible chat endpoint when the brief names one, else an extractive
answerer that quotes the best-supported sentences; both cite ``[Source: document, page X]`` and abstain with the
method's "I don't have enough information." when the retrieved context does not support an answer.

:class:`QuestionAnswerer` is the orchestration layer of the method's LLM architecture: semantic cache, retrieval,
generation, fallback to the extractive answerer when the endpoint fails, cost and timings per query.

Instructions inside documents are never followed: the extractive answerer only quotes (and skips instruction-like
sentences); the chat path sends documents as quoted context with those sentences removed, and a generated answer
whose claims cite no chunk of the context is withheld.
"""

import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from mlplatform.core.rag.prompting import (
    ABSTENTION,
    TEMPERATURE,
    build_messages,
    citation_of,
    injection_flags,
    parse_citations,
    split_sentences,
)
from mlplatform.core.rag.types import Answer, Citation, Hit

_STOPWORD_TEXT = (
    """a about above after again all also am an and any are as at be because been before being below
    between both but by can could did do does doing done down during each few for from further had has
    have having he her here how i if in into is it its itself just me more most my no nor not now of off
    on once only or other our out over own same she should so some such than that the their them then
    there these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your tell show give list explain please platform""")
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_TOKEN = re.compile(r"[a-z0-9_]+(?:[-.][a-z0-9_]+)*")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_COMMAND = re.compile(r"`[^`\n]*\s[^`\n]*`")  # inline code with a space in it: a command line, not a name


class GenerationError(RuntimeError):
    """The chat endpoint could not produce an answer; the message names the cause and the fix."""


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_terms(text: str) -> set[str]:
    """The stemmed content words of ``text`` (stop words and question words left out)."""
    return {_stem(t) for t in _TOKEN.findall(text.lower().replace("'", "")) if t not in _STOPWORDS and len(t) > 1
            or any(c.isdigit() for c in t)}


def specific_terms(text: str) -> set[str]:
    """Terms a supporting passage must contain verbatim (case aside): numbers, dates, versions, snake_case
    identifiers and names (a capitalised word after the first). A question about "version 5" is not answered by a
    passage about version 2, nor one about XGBoost by a passage about LightGBM."""
    named = {w.lower() for w in _WORD.findall(text)[1:] if any(c.isupper() for c in w) and len(w) > 2}
    return {t.strip(".-") for t in _TOKEN.findall(text.lower()) if any(c.isdigit() for c in t) or "_" in t} | named


def prose(text: str) -> str:
    """``text`` without its fenced code blocks: a command or an example in a code block states nothing a question
    can be answered from (an unclosed fence runs to the end of the chunk)."""
    return re.sub(r"```.*?(```|\Z)", " ", text, flags=re.DOTALL)


def _contains(text: str, term: str) -> bool:
    return re.search(rf"(?<![\w.\-]){re.escape(term)}(?![\w]|[.\-]\w)", text.lower()) is not None


def support(question: str, text: str) -> float:
    """Share of the question's content words found in ``text``; 0 when a specific term of the question is
    missing from it."""
    wanted, text = content_terms(question), prose(text)
    stated = _COMMAND.sub(" ", text)  # a number inside a quoted command (`--workers 1,2`) states nothing
    if not wanted or not all(_contains(stated, t) for t in specific_terms(question)):
        return 0.0
    return len(wanted & content_terms(text)) / len(wanted)


@dataclass(frozen=True)
class Generated:
    """What an answerer produced, before the orchestration adds timings, cost and the cache."""

    text: str
    citations: list[Citation]
    abstained: bool
    generator: str
    confidence: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    flagged: list[str] = field(default_factory=list)


class Answerer(Protocol):
    @property
    def name(self) -> str: ...

    def answer(self, question: str, hits: Sequence[Hit]) -> Generated: ...


def confidence(question: str, hits: Sequence[Hit]) -> float:
    """How well the retrieved context supports the question: the best chunk's :func:`support`."""
    return max((support(question, h.chunk.text) for h in hits), default=0.0)


def abstention(generator: str, confidence_: float, flagged: list[str] | None = None) -> Generated:
    return Generated(ABSTENTION, [], True, generator, confidence_, flagged=flagged or [])


@dataclass(frozen=True)
class ExtractiveAnswerer:
    """Quotes the sentences of the top chunks that share most content words with the question, each followed by
    its citation; abstains when the best chunk's support is below ``min_support``. It never writes a word of its
    own, so an instruction inside a document can only be quoted, and instruction-like sentences are not even that.
    """

    min_support: float = 0.5
    max_sentences: int = 2
    name: str = "extractive"

    def answer(self, question: str, hits: Sequence[Hit]) -> Generated:
        score = confidence(question, hits)
        if score < self.min_support:
            return abstention(self.name, score)
        wanted, specifics = content_terms(question), specific_terms(question)
        candidates: list[tuple[float, int, int, str, Hit]] = []
        flagged: list[str] = []
        for rank, hit in enumerate(hits):
            if support(question, hit.chunk.text) < self.min_support:
                continue
            unsafe = set(injection_flags(hit.chunk.text))
            flagged += sorted(unsafe)
            for position, sentence in enumerate(_quotable(hit.chunk.text)):
                if sentence in unsafe or not all(_contains(_COMMAND.sub(" ", sentence), t) for t in specifics):
                    continue  # a quote must itself state the question's numbers and names
                overlap = len(wanted & content_terms(sentence)) / len(wanted)
                exact = sum(_contains(sentence, t) for t in specifics) / len(specifics) if specifics else 0.0
                if overlap > 0:
                    candidates.append((overlap + exact - 0.05 * rank, rank, position, sentence, hit))
        if not candidates:
            return abstention(self.name, score, flagged)
        chosen = sorted(candidates, key=lambda c: -c[0])[: self.max_sentences]
        chosen.sort(key=lambda c: (c[1], c[2]))  # in reading order
        parts, citations = [], []
        for _, _, _, sentence, hit in chosen:
            citation = citation_of(hit, sentence)
            parts.append(f"{sentence} {citation.render()}")
            citations.append(citation)
        return Generated(" ".join(parts), citations, False, self.name, score, flagged=flagged)


def _quotable(text: str) -> list[str]:
    """The sentences of a chunk worth quoting: a Markdown table row is quoted with its header row, so its numbers
    keep their column names; headings and separator rows alone are not quoted."""
    out, header = [], None
    for sentence in split_sentences(prose(text)):
        if sentence.startswith("|"):
            if re.fullmatch(r"\|[\s:|-]+\|?", sentence):
                continue
            if header is None:
                header = sentence
                continue
            out.append(f"{header} {sentence}")
            continue
        header = None
        words = sentence.lstrip("#").strip()
        if len(words.split()) >= 3 and not sentence.startswith("#"):
            out.append(words)
    return out


@dataclass(frozen=True)
class ChatCompletion:
    text: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class ChatClient:
    """An OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, vLLM, llama.cpp, Ollama, LiteLLM ...).

    The key is read from the environment variable ``api_key_env`` at each call, never stored in the brief.
    """

    base_url: str
    model: str
    api_key_env: str | None = None
    timeout_s: float = 30.0
    max_tokens: int | None = None

    def complete(self, messages: list[dict], temperature: float = TEMPERATURE) -> ChatCompletion:
        """One chat completion.

        Raises:
            GenerationError: unreachable endpoint, timeout, a refused key, an HTTP error or a reply that is not a
                chat completion; each names the cause and the fix.
        """
        import httpx

        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise GenerationError(f"the environment variable {self.api_key_env} (rag.generation.api_key_env) is "
                                      "not set; export the endpoint's API key in it")
            headers["Authorization"] = f"Bearer {key}"
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": temperature}
        if self.max_tokens:
            body["max_tokens"] = self.max_tokens
        url = f"{self.base_url.rstrip('/')}/chat/completions"
        try:
            response = httpx.post(url, json=body, headers=headers, timeout=self.timeout_s)
        except httpx.TimeoutException:
            raise GenerationError(f"{url} did not answer within {self.timeout_s} s; raise "
                                  "rag.generation.timeout_s or check the endpoint's load") from None
        except httpx.HTTPError as exc:
            raise GenerationError(f"cannot reach {url} ({type(exc).__name__}: {exc}); check rag.generation.base_url "
                                  "and that the server is running") from None
        if response.status_code in (401, 403):
            raise GenerationError(f"{url} refused the API key (HTTP {response.status_code}); check the key in "
                                  f"{self.api_key_env or 'rag.generation.api_key_env (none is set)'}")
        if response.status_code >= 400:
            raise GenerationError(f"{url} answered HTTP {response.status_code}: {response.text[:300]}; check "
                                  f"rag.generation.model ({self.model!r}) and the endpoint's logs")
        try:
            payload = response.json()
            text = payload["choices"][0]["message"]["content"]
            usage = payload.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError):
            raise GenerationError(f"{url} did not return an OpenAI chat completion (choices[0].message.content); "
                                  f"got {response.text[:300]!r}") from None
        if not isinstance(text, str):
            raise GenerationError(f"{url} returned no text in choices[0].message.content")
        from mlplatform.core.rag.cost import count_tokens

        return ChatCompletion(text.strip(), int(usage.get("prompt_tokens") or count_tokens(
            "\n".join(m["content"] for m in messages))), int(usage.get("completion_tokens") or count_tokens(text)))


@dataclass(frozen=True)
class LLMAnswerer:
    """Grounded generation through a chat endpoint: abstains without calling it when the context's support is
    below ``min_support`` (no tokens spent), and withholds an answer that cites no chunk of the context."""

    client: ChatClient
    min_support: float = 0.5
    name: str = "llm"

    def answer(self, question: str, hits: Sequence[Hit]) -> Generated:
        score = confidence(question, hits)
        if score < self.min_support:
            return abstention(self.name, score)
        messages, removed = build_messages(question, hits)
        completion = self.client.complete(messages)
        citations, invented = parse_citations(completion.text, hits)
        said_abstain = ABSTENTION.lower().rstrip(".") in completion.text.lower()
        if said_abstain or not citations:
            flagged = removed + [f"uncited answer withheld: {completion.text[:200]}"] if not said_abstain else removed
            return replace(abstention(self.name, score, flagged), prompt_tokens=completion.prompt_tokens,
                           completion_tokens=completion.completion_tokens)
        flagged = removed + [f"citation of a source not in the context: {c}" for c in invented]
        return Generated(completion.text, citations, False, self.name, score, completion.prompt_tokens,
                         completion.completion_tokens, flagged)


@dataclass(frozen=True)
class Trace:
    """One answered question: the answer, the hits it was drawn from (none when the cache answered), the
    instruction-like or invented text flagged on the way, and the context's support (None from the cache)."""

    answer: Answer
    hits: list[Hit]
    flagged: list[str]
    confidence: float | None


@dataclass
class QuestionAnswerer:
    """Cache → retrieve → generate (→ extractive fallback when the endpoint fails), with cost and timings."""

    retrieve: Callable[[str], list[Hit]]
    answerer: Answerer
    cache: Any = None  # mlplatform.core.rag.cache.SemanticCache
    costs: Any = None  # mlplatform.core.rag.cost.CostModel
    fallback: Answerer | None = None
    max_question_chars: int = 2000

    def ask(self, question: str) -> Answer:
        """The cited answer to ``question`` (or an abstention); see :meth:`trace`."""
        return self.trace(question).answer

    def trace(self, question: str) -> "Trace":
        """The cited answer to ``question`` (or an abstention), with the hits it came from and what was flagged.

        Raises:
            ValueError: an empty question or one longer than ``max_question_chars``.
            GenerationError: the endpoint failed and there is no fallback.
        """
        question = " ".join(question.split())
        if not question:
            raise ValueError("the question is empty; ask something, e.g. mlplatform ask \"why was version 2 not "
                             "promoted?\"")
        if len(question) > self.max_question_chars:
            raise ValueError(f"the question has {len(question)} characters; the limit is {self.max_question_chars}")
        started, cpu = time.perf_counter(), time.process_time()
        if self.cache is not None:
            cached = self.cache.lookup(question)
            if cached is not None:
                total = (time.perf_counter() - started) * 1000
                return Trace(replace(cached, question=question, cached=True, prompt_tokens=0, completion_tokens=0,
                                     cost=self._cost(0, 0, time.process_time() - cpu),
                                     timings_ms={"cache": total, "total": total}), [], [], None)
        hits = self.retrieve(question)
        retrieved = time.perf_counter()
        try:
            generated = self.answerer.answer(question, hits)
        except GenerationError as exc:
            if self.fallback is None:
                raise
            generated = self.fallback.answer(question, hits)
            generated = replace(generated, generator=f"{generated.generator} (fallback: {exc})")
        done = time.perf_counter()
        answer = Answer(question=question, text=generated.text, citations=generated.citations,
                        abstained=generated.abstained, generator=generated.generator,
                        prompt_tokens=generated.prompt_tokens, completion_tokens=generated.completion_tokens,
                        cost=self._cost(generated.prompt_tokens, generated.completion_tokens,
                                        time.process_time() - cpu),
                        timings_ms={"retrieve": (retrieved - started) * 1000, "generate": (done - retrieved) * 1000,
                                    "total": (done - started) * 1000})
        if self.cache is not None:
            self.cache.store(question, answer)
        return Trace(answer, list(hits), generated.flagged, generated.confidence)

    def _cost(self, prompt_tokens: int, completion_tokens: int, cpu_s: float) -> float:
        return self.costs.query_cost(prompt_tokens, completion_tokens, cpu_s) if self.costs is not None else 0.0
