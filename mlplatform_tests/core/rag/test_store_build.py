"""The stores' fast paths give what the plain ones give: the counting BM25 build scores as bm25s's own build,
and the column-major dense store (built or loaded) ranks as a plain row-major product with a full sort."""

import random

import bm25s
import numpy as np

from mlplatform.core.rag.stores import DenseStore, SparseStore, terms

WORDS = [f"term{i}" for i in range(400)] + ["battery", "batteries", "warranty", "the", "a"]


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 40))) + "." for _ in range(n)]


def test_the_counting_bm25_build_scores_every_chunk_as_bm25s_builds_it():
    texts = _texts(600)
    assert any(not terms(t) for t in texts)  # chunks with no term at all are indexed too
    store = SparseStore.build(texts)
    reference = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    reference.index([terms(t) or [""] for t in texts], show_progress=False)
    for question in ["battery warranty", "term3 term17 term3", "batteries", "term399 the", "nothing known here"]:
        ids = [reference.vocab_dict[t] for t in terms(question) if t in reference.vocab_dict]
        expected = reference.get_scores_from_ids(ids) if ids else np.zeros(len(texts), dtype=np.float32)
        np.testing.assert_allclose(store.scores(question), expected, rtol=1e-5, atol=1e-6)


def test_the_dense_store_ranks_as_a_full_sort_of_the_row_major_product_and_saves_column_major(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((5000, 32)).astype(np.float32)
    store = DenseStore(np.ascontiguousarray(vectors))
    store.save(tmp_path)
    loaded = DenseStore.load(tmp_path)
    assert store.vectors.flags.f_contiguous and loaded.vectors.flags.f_contiguous
    mask = rng.random(5000) < 0.3
    for query in rng.standard_normal((20, 32)).astype(np.float32):
        exact = np.argsort(-(vectors @ query), kind="stable")[:10]
        for searched in (store, loaded):
            rows, scores = searched.search(query, 10)
            np.testing.assert_array_equal(rows, exact)
            np.testing.assert_allclose(scores, (vectors @ query)[exact], rtol=1e-5)
            filtered, _ = searched.search(query, 10, mask)
            assert set(filtered) <= set(np.flatnonzero(mask))
            np.testing.assert_array_equal(filtered, [r for r in np.argsort(-(vectors @ query), kind="stable")
                                                     if mask[r]][:10])
