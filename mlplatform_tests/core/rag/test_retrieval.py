"""Embedders (LSA, a local model2vec model, an OpenAI-compatible endpoint on 127.0.0.1), the saved index with
filters, hybrid retrieval, the LambdaRank reranker and the retrieval metrics."""

import json
import random
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from mlplatform.core.rag.chunking import chunk_documents
from mlplatform.core.rag.documents import load_documents
from mlplatform.core.rag.embedding import EmbeddingError, load_embedder, make_embedder, normalise
from mlplatform.core.rag.rerank import load_reranker, train_lambdarank
from mlplatform.core.rag.retrieval import Retriever
from mlplatform.core.rag.retrieval_metrics import Judged, evaluate, ndcg_at, query_metrics
from mlplatform.core.rag.stores import Filters, RagIndex, StoreError
from mlplatform.core.rag.types import Chunk, Hit
from mlplatform_tests.core.rag.corpus import write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    queries, root = write_corpus(folder)
    chunks = chunk_documents(load_documents([root]).documents, "recursive", 48, 12)
    index = RagIndex.build(chunks, make_embedder("lsa", dimensions=48))
    index.save(folder / "index")
    judged = [Judged(q["id"], q["question"], frozenset(c.chunk_id for c in chunks if c.document in q["documents"]
                                                       and all(e in c.text for e in q["expect"])),
                     frozenset(q["documents"])) for q in queries]
    random.Random(3).shuffle(judged)
    return folder, chunks, RagIndex.load(folder / "index"), judged


def test_lsa_embedder_saves_and_loads_to_the_same_vectors(tmp_path):
    texts = ["the cat sat on the mat", "dogs chase cats", "markets fell today", "investors sold shares", "a kitten"]
    embedder = make_embedder("lsa", dimensions=3).fit(texts * 3)
    vectors = embedder.encode(texts)
    assert vectors.shape == (5, 3) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    embedder.save(tmp_path)
    assert np.allclose(load_embedder(tmp_path).encode(texts), vectors, atol=1e-6)
    with pytest.raises(EmbeddingError, match="at least 3 chunks"):
        make_embedder("lsa").fit(["one text"])


def test_matryoshka_truncation_keeps_the_first_dimensions_renormalised():
    v = np.array([[3.0, 4.0, 12.0]])
    assert np.allclose(normalise(v, 2), [[0.6, 0.8]])
    with pytest.raises(EmbeddingError, match="exceeds"):
        normalise(v, 4)


def test_model2vec_model_from_a_local_folder(tmp_path):
    from model2vec import StaticModel
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "[PAD]": 1, "cat": 2, "dog": 3, "market": 4, "share": 5}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    vectors = np.random.default_rng(0).normal(size=(len(vocab), 8)).astype(np.float32)
    StaticModel(vectors, tokenizer, normalize=True).save_pretrained(tmp_path / "m2v")
    embedder = make_embedder("model2vec", path=tmp_path / "m2v", truncate_to=4)
    out = embedder.encode(["cat dog", "market share"])
    assert out.shape == (2, 4) and embedder.dim == 4
    embedder.save(tmp_path / "saved")
    assert np.allclose(load_embedder(tmp_path / "saved").encode(["cat dog"]), out[:1])
    with pytest.raises(EmbeddingError, match="does not exist"):
        make_embedder("model2vec", path=tmp_path / "nowhere")


class _Embeddings(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - the http.server hook's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body["model"] != "tiny":
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b'{"error": "model not found"}')
            return
        data = [{"index": i, "embedding": [len(t), t.count("a") + 1.0, 1.0]} for i, t in enumerate(body["input"])]
        payload = json.dumps({"data": list(reversed(data)), "auth": self.headers.get("Authorization")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_openai_compatible_endpoint_on_a_local_server():
    server = HTTPServer(("127.0.0.1", 0), _Embeddings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1"
        embedder = make_embedder("openai", url=url, model="tiny")
        out = embedder.encode(["aa", "b" * 5])
        expected = normalise(np.array([[2.0, 3.0, 1.0], [5.0, 1.0, 1.0]]))
        assert np.allclose(out, expected) and embedder.dim == 3  # rows back in input order
        with pytest.raises(EmbeddingError, match="HTTP 404.*model not found"):
            make_embedder("openai", url=url, model="other").encode(["x"])
    finally:
        server.shutdown()
        server.server_close()  # the port closed: a request is refused at once (an open one waits for the timeout)
    with pytest.raises(EmbeddingError, match="cannot be reached"):
        make_embedder("openai", url=url, model="tiny").encode(["x"])


def test_filters_restrict_both_stores_and_hybrid(corpus):
    _, _, index, _ = corpus
    retriever = Retriever(index)
    only = Filters(sources=("zephyr*",))
    for mode in ("dense", "sparse", "hybrid"):
        hits = retriever.retrieve("warranty years", mode=mode, filters=only)
        assert hits and {h.chunk.document for h in hits} == {"zephyr_kettle.md"}
    dated = retriever.retrieve("warranty", filters=Filters(date_from=date(2024, 3, 1), date_to=date(2024, 4, 30)))
    assert hits and all(date(2024, 3, 1) <= h.chunk.date <= date(2024, 4, 30) for h in dated)
    section = retriever.retrieve("delivered", filters=Filters(sections=("Shipping",)))
    assert {h.chunk.section for h in section} == {"Shipping"} and len(section) == 10


def test_the_saved_index_answers_like_the_built_one_and_rejects_a_foreign_folder(corpus, tmp_path):
    folder, chunks, index, _ = corpus
    built = RagIndex.build(chunks, make_embedder("lsa", dimensions=48))
    question = "When will my nova toaster order arrive?"
    assert [h.chunk.chunk_id for h in Retriever(built).retrieve(question)] == \
        [h.chunk.chunk_id for h in Retriever(index).retrieve(question)]
    with pytest.raises(StoreError, match="holds no index"):
        RagIndex.load(tmp_path)


def test_hybrid_and_the_trained_reranker_beat_what_they_combine(corpus, tmp_path):
    _, _, index, judged = corpus
    train, held_out = judged[:32], judged[32:]
    retriever = Retriever(index)
    reranker = train_lambdarank(retriever, train, top_k=10)
    reranker.save(tmp_path / "rr")
    loaded = load_reranker(tmp_path / "rr")
    rows = {r["retriever"]: r for r in evaluate({
        "dense": lambda q: retriever.retrieve(q, mode="dense"),
        "sparse": lambda q: retriever.retrieve(q, mode="sparse"),
        "hybrid": lambda q: retriever.retrieve(q),
        "hybrid+rerank": lambda q: loaded.rerank(q, retriever.candidates(q), 3),
    }, held_out, levels=["chunk"])}
    assert rows["hybrid"]["recall@10"] >= 0.9
    assert rows["hybrid+rerank"]["precision@3"] >= rows["hybrid"]["precision@3"]
    assert rows["hybrid+rerank"]["recall@1"] > rows["hybrid"]["recall@1"]
    assert np.allclose(loaded.scores("q", retriever.candidates("warranty")),
                       reranker.scores("q", retriever.candidates("warranty")))


def test_metrics_by_chunk_and_by_document():
    def hit(cid, doc, rank):
        return Hit(Chunk(cid, "t", doc, 0), 1.0, rank, "dense")

    hits = [hit("a1", "a", 1), hit("b1", "b", 2), hit("a2", "a", 3)]
    query = Judged("q", "?", frozenset({"b1", "a2"}), frozenset({"b"}))
    by_chunk = query_metrics(hits, query, "chunk")
    assert by_chunk["recall@1"] == 0 and by_chunk["recall@3"] == 1 and by_chunk["mrr"] == 0.5
    assert by_chunk["ndcg@10"] == pytest.approx(ndcg_at([0, 1, 1], 2))
    assert by_chunk["precision@3"] == pytest.approx(2 / 3)
    by_document = query_metrics(hits, query, "document")
    assert by_document["recall@3"] == 1 and by_document["precision@3"] == pytest.approx(1 / 3)


def test_lambdarank_is_kept_only_where_it_beats_the_hybrid_order_on_the_training_queries(corpus):
    from mlplatform.core.rag.rerank import LambdaRankReranker, RetrievalOrder, choose_reranker

    _, _, index, judged = corpus
    retriever = Retriever(index)
    reranker, decision = choose_reranker(retriever, judged[:32])
    assert isinstance(reranker, LambdaRankReranker) and decision["chosen"] == "lambdarank"
    assert decision["cv_ndcg@3_lambdarank"] > decision["cv_ndcg@3_hybrid"]
    kept, why = choose_reranker(retriever, judged[:1])
    assert isinstance(kept, RetrievalOrder) and why["chosen"] == "none" and "needs 2 or more" in why["reason"]
    # where the hybrid order is already right, nothing can beat it: the hybrid order is kept
    solved = [q for q in judged if (hits := retriever.retrieve(q.question, top_k=3))
              and hits[0].chunk.chunk_id in q.relevant_chunks and len(q.relevant_chunks) == 1]
    kept, why = choose_reranker(retriever, solved[:6])
    assert isinstance(kept, RetrievalOrder) and "does not beat the hybrid order" in why["reason"]
