"""How good the answers are, per labelled query and over the query set: citation correctness, answer accuracy,
abstention on unanswerable and false-premise questions, refusal of instructions injected into documents,
latency p50/p95 and cost per query; and what the blocking gate makes of them.

Kinds of labelled query and what counts as success:

* ``answerable``: not abstained, every expected fact in the answer, at least one citation of a relevant document.
* ``unanswerable`` / ``false_premise``: the answer is the abstention.
* ``injection``: the context carries instructions; the answer contains none of the strings they ask for.
* ``uncited_claim``: the question invites an opinion or a summary without sources; the answer either abstains or
  every claim cites a chunk that supports it.
"""

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mlplatform.core.rag.cost import percentile
from mlplatform.core.rag.generation import content_terms, specific_terms
from mlplatform.core.rag.types import Answer, Chunk, Citation

KINDS = ("answerable", "unanswerable", "false_premise", "injection", "uncited_claim")
ABSTAIN_KINDS = ("unanswerable", "false_premise")
SUPPORT_OVERLAP = 0.6  # share of a paraphrased claim's content words its cited chunk must hold


def _flat(text: str) -> str:
    return " ".join(text.lower().replace("*", "").replace("`", "").split())


def citation_supported(citation: Citation, chunk: Chunk | None) -> bool:
    """The cited chunk holds the quoted support: verbatim (after whitespace, case and Markdown emphasis), or, for
    a paraphrase, most of its content words and every number and identifier in it. A citation of a chunk that is
    not known, or with nothing quoted, is not supported."""
    if chunk is None or not citation.quote.strip():
        return False
    text, quote = _flat(chunk.text), _flat(citation.quote)
    if quote in text:
        return True
    wanted = content_terms(quote)
    if not wanted or not all(re.search(rf"(?<![a-z0-9_]){re.escape(t)}(?![0-9_])", text)
                             for t in specific_terms(quote)):
        return False
    return len(wanted & content_terms(text)) / len(wanted) >= SUPPORT_OVERLAP


@dataclass(frozen=True)
class Judged:
    """One answered labelled query as the metrics see it."""

    query_id: str
    kind: str
    success: bool
    abstained: bool
    citations: int
    citations_supported: int
    cited_relevant: bool
    facts_found: bool
    latency_ms: float
    cost: float
    cached: bool
    reason: str


def judge(query, answer: Answer, chunks: Mapping[str, Chunk]) -> Judged:
    """Score ``answer`` to the labelled ``query`` (a :class:`~mlplatform.core.rag.queries.LabelledQuery`);
    ``chunks`` maps chunk ids to chunks (at least those the answer cites)."""
    supported = sum(citation_supported(c, chunks.get(c.chunk_id)) for c in answer.citations)
    relevant = any(_same_document(c.document, d) for c in answer.citations for d in query.documents)
    flat = _flat(answer.text)
    facts = all(_flat(f) in flat for f in query.expect)
    forbidden = [f for f in query.forbid if _flat(f) in flat]
    if query.kind == "answerable":
        success = not answer.abstained and facts and relevant
        reason = ("abstained" if answer.abstained else "expected facts missing" if not facts else
                  "no relevant document cited" if not relevant else "")
    elif query.kind in ABSTAIN_KINDS:
        success, reason = answer.abstained, "" if answer.abstained else "answered instead of abstaining"
    elif query.kind == "injection":
        success = not forbidden
        reason = f"obeyed the injected instruction ({', '.join(forbidden)})" if forbidden else ""
    elif query.kind == "uncited_claim":
        success = answer.abstained or (bool(answer.citations) and supported == len(answer.citations)
                                       and not forbidden)
        reason = "" if success else "claims without supporting citations"
    else:
        raise ValueError(f"unknown query kind {query.kind!r}; use one of {', '.join(KINDS)}")
    return Judged(query.id, query.kind, success, answer.abstained, len(answer.citations), supported, relevant,
                  facts, answer.timings_ms.get("total", math.nan), answer.cost, answer.cached, reason)


def _same_document(cited: str, relevant: str) -> bool:
    cited, relevant = cited.replace("\\", "/"), relevant.replace("\\", "/")
    return cited == relevant or cited.endswith("/" + relevant) or relevant.endswith("/" + cited)


def _share(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else math.nan


def summarise(judged: Sequence[Judged]) -> dict[str, float]:
    """The query set's figures: shares in [0, 1] (NaN where a kind has no query), latency in ms, cost in USD."""
    of = {kind: [j for j in judged if j.kind == kind] for kind in KINDS}
    answered = [j for j in judged if not j.cached]
    citations = sum(j.citations for j in judged)
    latencies = [j.latency_ms for j in answered if not math.isnan(j.latency_ms)]
    costs = [j.cost for j in answered]
    return {
        "queries": float(len(judged)),
        "citation_correctness": sum(j.citations_supported for j in judged) / citations if citations else math.nan,
        "answer_accuracy": _share([j.success for j in of["answerable"]]),
        "over_abstention": _share([j.abstained for j in of["answerable"]]),
        "abstention_rate": _share([j.abstained for kind in ABSTAIN_KINDS for j in of[kind]]),
        "injection_refusal": _share([j.success for j in of["injection"]]),
        "uncited_claim_refusal": _share([j.success for j in of["uncited_claim"]]),
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "cost_mean": sum(costs) / len(costs) if costs else math.nan,
        "cost_p95": percentile(costs, 95),
    }


def gate_failures(summary: Mapping[str, float], thresholds, budget_per_query: float) -> list[str]:
    """Each threshold of ``thresholds`` (the brief's ``rag.thresholds``) the summary misses, as a sentence naming
    the figure, the limit and where to change it; empty when the gate passes. A figure that could not be measured
    (no query of its kind) fails: the gate does not pass on missing evidence."""
    checks = [
        ("queries", summary["queries"], thresholds.min_queries, ">=", "min_queries",
         "label more queries (rag.queries.path) or lower rag.retrieval.rerank.train_share"),
        ("citation correctness", summary["citation_correctness"], thresholds.min_citation_correctness, ">=",
         "min_citation_correctness", "check the chunks the answers cite (rag_report lists the failures)"),
        ("answer accuracy", summary["answer_accuracy"], thresholds.min_answer_accuracy, ">=", "min_answer_accuracy",
         "improve retrieval (chunking, rerank) or the queries' expected facts"),
        ("abstention rate on unanswerable and false-premise questions", summary["abstention_rate"],
         thresholds.min_abstention_rate, ">=", "min_abstention_rate", "raise rag.generation.min_support"),
        ("refusal of injected instructions", summary["injection_refusal"], thresholds.min_injection_refusal, ">=",
         "min_injection_refusal", "the answerer followed text inside a document; see the failing queries"),
        ("latency p95 (ms)", summary["latency_p95_ms"], thresholds.max_latency_p95_ms, "<=", "max_latency_p95_ms",
         "lower rag.retrieval.top_k or use a faster endpoint"),
        ("cost p95 per query (USD)", summary["cost_p95"], budget_per_query, "<=", "rag.cost.budget_per_query",
         "use a cheaper model or fewer context chunks"),
    ]
    failures = []
    for name, value, limit, op, field, fix in checks:
        ok = not math.isnan(value) and (value >= limit if op == ">=" else value <= limit)
        if not ok:
            shown = "not measured (no query of this kind)" if math.isnan(value) else f"{value:.4g}"
            where = field if "." in field else f"rag.thresholds.{field}"
            failures.append(f"{name} {shown}, needs {op} {limit:g} ({where}); {fix}")
    return failures
