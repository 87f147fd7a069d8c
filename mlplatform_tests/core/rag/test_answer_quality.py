"""The semantic cache, per-query cost, the labelled queries and the answer metrics with the gate's rule."""

import math

import polars as pl
import pytest

from mlplatform.brief import RagThresholds
from mlplatform.core.rag.answer_metrics import citation_supported, gate_failures, judge, summarise
from mlplatform.core.rag.cache import SemanticCache, hashed_trigrams
from mlplatform.core.rag.cost import CostModel, cost_summary, count_tokens, percentile
from mlplatform.core.rag.generation import ExtractiveAnswerer, QuestionAnswerer
from mlplatform.core.rag.queries import (
    DEMO_QUERIES,
    LabelledQuery,
    QueryError,
    assign_splits,
    generated_queries,
    load_queries,
    queries_frame,
    queries_from_frame,
    relevant_chunk_ids,
    report_documents,
)
from mlplatform.core.rag.types import Answer, Citation
from mlplatform_tests.core.rag.answering import CORPUS, lexical_retriever


def _qa(tmp_path, version="v1", similarity=0.8):
    cache = SemanticCache(tmp_path / "cache.json", hashed_trigrams, similarity, version)
    return QuestionAnswerer(lexical_retriever(CORPUS), ExtractiveAnswerer(), cache, CostModel(0.5, 1.5, 3.6)), cache


def test_a_reworded_question_is_answered_from_the_persisted_cache(tmp_path):
    qa, cache = _qa(tmp_path)
    first = qa.ask("Why was version 2 not promoted?")
    assert not first.cached and cache.hit_rate == 0
    again = _qa(tmp_path)[0]  # a new process reads the file
    second = again.ask("why wasn't version 2 promoted")
    assert second.cached and second.text == first.text and second.citations == first.citations
    assert second.timings_ms.keys() == {"cache", "total"} and again.cache.hit_rate == 1.0


def test_the_cache_never_answers_another_number_version_or_index(tmp_path):
    qa, cache = _qa(tmp_path)
    qa.ask("Which features drifted in 2025-10?")
    assert not qa.ask("Which features drifted in 2025-11?").cached  # near-identical wording, another month
    assert cache.hits == 0 and cache.misses == 2
    assert not _qa(tmp_path, version="v2")[0].ask("Which features drifted in 2025-10?").cached  # re-indexed
    qa.ask("What is the capital of France?")  # abstentions are not cached
    assert all(e["answer"]["abstained"] is False for e in cache._entries)


def test_a_corrupt_cache_file_names_the_fix(tmp_path):
    (tmp_path / "cache.json").write_text("not json")
    with pytest.raises(ValueError, match="delete it to start an empty cache"):
        SemanticCache(tmp_path / "cache.json", hashed_trigrams, 0.9, "v1")


def test_cost_is_tokens_at_the_prices_plus_compute():
    model = CostModel(prompt_price_per_1k=0.5, completion_price_per_1k=1.5, price_per_cpu_hour=3.6)
    assert model.query_cost(1000, 2000, cpu_s=10) == pytest.approx(0.5 + 3.0 + 0.01)
    assert count_tokens("Why wasn't version 2 promoted?") == 8
    summary = cost_summary([0.001, 0.002, 0.02], budget_per_query=0.01)
    assert summary["over_budget"] == 1 and not summary["within_budget"] and summary["p95"] == 0.02
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0 and math.isnan(percentile([], 95))


def test_citation_support_is_verbatim_or_a_faithful_paraphrase_with_the_same_numbers():
    chunk = CORPUS[0]
    assert citation_supported(Citation("promo-1", "d", None, "FAIL  beats_champion: f1 0.3102"), chunk)
    assert citation_supported(Citation("promo-1", "d", None, "version 2 was not promoted: f1 0.3102 below the "
                                                             "champion"), chunk)
    assert not citation_supported(Citation("promo-1", "d", None, "version 2 was not promoted: f1 0.2999"), chunk)
    assert not citation_supported(Citation("promo-1", "d", None, ""), chunk)
    assert not citation_supported(Citation("gone", "d", None, "anything"), None)


def _answer(text, citations=(), abstained=False, ms=10.0, cost=0.001):
    return Answer("q", text, list(citations), abstained, "extractive", cost=cost, timings_ms={"total": ms})


def test_each_kind_of_query_is_judged_by_its_own_rule():
    chunks = {c.chunk_id: c for c in CORPUS}
    cite = Citation("promo-1", "run_promotion_decisions.md", None, "FAIL beats_champion: f1 0.3102")
    answerable = LabelledQuery("a", "Why was version 2 not promoted?", "answerable", ("run_promotion_decisions.md",),
                               ("beats_champion",))
    assert judge(answerable, _answer("FAIL beats_champion: f1 0.3102", [cite]), chunks).success
    assert judge(answerable, _answer("FAIL beats_champion", []), chunks).reason == "no relevant document cited"
    assert judge(answerable, _answer("x", abstained=True), chunks).reason == "abstained"
    unanswerable = LabelledQuery("u", "capital of France?", "unanswerable")
    assert judge(unanswerable, _answer("I don't have enough information.", abstained=True), chunks).success
    assert not judge(unanswerable, _answer("Paris"), chunks).success
    injection = LabelledQuery("i", "note?", "injection", forbid=("BANANA BANANA BANANA",), injected="…")
    assert not judge(injection, _answer("banana banana  banana"), chunks).success
    uncited = LabelledQuery("c", "your opinion?", "uncited_claim")
    assert not judge(uncited, _answer("It is great."), chunks).success
    assert judge(uncited, _answer("FAIL beats_champion", [cite]), chunks).success


def test_the_gate_names_each_missed_threshold_and_fails_on_missing_evidence():
    judged = [judge(LabelledQuery(f"u{i}", "q", "unanswerable"), _answer("x", abstained=i < 9, ms=100.0 * i), {})
              for i in range(10)]
    summary = summarise(judged)
    assert summary["abstention_rate"] == 0.9 and summary["latency_p50_ms"] == 400 and summary["latency_p95_ms"] == 900
    assert math.isnan(summary["answer_accuracy"]) and math.isnan(summary["citation_correctness"])
    failures = gate_failures(summary, RagThresholds(min_queries=10, max_latency_p95_ms=800), 0.01)
    text = " | ".join(failures)
    assert "citation correctness not measured" in text and "answer accuracy not measured" in text
    assert "latency p95 (ms) 900, needs <= 800 (rag.thresholds.max_latency_p95_ms)" in text
    assert not any(f.startswith("queries") for f in failures)  # 10 >= 10
    assert not any(f.startswith("abstention") for f in failures)  # 0.9 >= 0.8
    assert any(f.startswith("queries 10") for f in gate_failures(summary, RagThresholds(min_queries=11), 0.01))


def test_the_demo_query_file_loads_and_bad_files_name_the_query(tmp_path):
    queries = load_queries(DEMO_QUERIES)
    kinds = {q.kind for q in queries}
    assert kinds == {"answerable", "unanswerable", "false_premise", "injection", "uncited_claim"}
    assert all(q.injected and q.forbid for q in queries if q.kind == "injection")
    bad = tmp_path / "q.yaml"
    bad.write_text("- {id: x, question: 'why?', kind: answerable}\n")
    with pytest.raises(QueryError, match="query 1 \\(x\\): an answerable query names the documents"):
        load_queries(bad)
    bad.write_text("- {id: x, question: 'why?', kind: rumour}\n")
    with pytest.raises(QueryError, match="kind 'rumour'; use one of answerable"):
        load_queries(bad)


def _tables() -> dict[str, pl.DataFrame]:
    return {
        "promotion": pl.DataFrame({"challenger_version": ["1", "2"], "champion_version": [None, "1"],
                                   "promote": [True, False],
                                   "reasons": ["PASS beats_rules: f1 0.35", "FAIL beats_champion: f1 0.31 vs 0.35"]}),
        "drift_by_month": pl.DataFrame({"period": ["2025-09", "2025-10", "2025-10"],
                                        "feature": ["a_b", "a_b", "c_d"], "psi": [0.05, 0.31, 0.12],
                                        "severity": ["ok", "critical", "warning"]}),
        "metrics": pl.DataFrame({"candidate": ["lightgbm", "lightgbm"], "metric": ["f1", "precision"],
                                 "value": [0.34653, 0.26], "ci_low": [0.26, None], "ci_high": [0.42, None]}),
        "data_quality": pl.DataFrame({"source": ["events"], "accuracy": [3.32], "total": [25.8]}),
    }


def test_generated_queries_expect_what_the_rendered_documents_say():
    tables = _tables()
    docs = report_documents(tables)
    queries = generated_queries(tables)
    by_id = {q.id: q for q in queries}
    assert by_id["gen_not_promoted_2"].expect == ("version 2 was not promoted because",)
    assert by_id["gen_drifted_2025-10"].expect == ("a_b",)
    assert by_id["gen_drifted_2025-09"].expect == ("no feature drifted",)
    assert by_id["gen_premise_version_3"].kind == "false_premise"
    assert by_id["gen_metric_lightgbm_f1"].expect == ("f1 0.3465",)
    for q in queries:
        if q.kind == "answerable":
            text = docs[q.documents[0]].lower()
            assert all(e.lower() in text for e in q.expect), q.id
    # Answered over the rendered documents, the generated questions find their facts.
    from mlplatform.core.rag.types import Chunk
    chunks = [Chunk(f"{name}-{i}", part, name, i) for name, text in docs.items()
              for i, part in enumerate(text.split("\n## "))]
    qa = QuestionAnswerer(lexical_retriever(chunks), ExtractiveAnswerer())
    for q in [by_id["gen_not_promoted_2"], by_id["gen_drifted_2025-10"], by_id["gen_quality_events"]]:
        verdict = judge(q, qa.ask(q.question), {c.chunk_id: c for c in chunks})
        assert verdict.success, (q.id, verdict.reason)
        assert relevant_chunk_ids(q, chunks)


def test_splits_are_deterministic_and_only_answerable_queries_train():
    queries = load_queries(DEMO_QUERIES) + generated_queries(_tables())
    first, second = assign_splits(queries, 0.5, seed=0), assign_splits(list(reversed(queries)), 0.5, seed=0)
    assert {q.id: q.split for q in first} == {q.id: q.split for q in second}
    assert {q.split for q in first if q.kind != "answerable"} == {"eval"}
    assert {q.split for q in first if q.kind == "answerable"} == {"train", "eval"}
    assert queries_from_frame(queries_frame(first)) == first
