"""Retrieval at scale: build the index over N generated chunks with the default embedder (LSA) and BM25, then
time queries (dense, sparse, hybrid) and compare with rank_bm25 and a brute-force numpy search.

    python benchmarks/bench_rag.py --chunks 100000 --queries 200
    python benchmarks/bench_rag.py --chunks 100000 --queries 200 --lancedb   # needs: pip install lancedb

With ``--lancedb`` the dense side is also compared with LanceDB, the embedded vector store considered for it:
exact (flat) search and an IVF-PQ index, with recall@10 against exact search. LanceDB is not a platform
dependency; the benchmark imports it only with the flag.
"""

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

WORDS = [f"w{i}" for i in range(20_000)]


def corpus(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    topics = [rng.sample(WORDS, 40) for _ in range(500)]
    out = []
    for _ in range(n):
        topic = topics[rng.randrange(len(topics))]
        words = [rng.choice(topic) if rng.random() < 0.5 else rng.choice(WORDS) for _ in range(rng.randint(60, 120))]
        out.append(" ".join(words) + ".")
    return out


def p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    from mlplatform.core.rag.embedding import make_embedder
    from mlplatform.core.rag.retrieval import Retriever
    from mlplatform.core.rag.stores import RagIndex, best_of, terms
    from mlplatform.core.rag.types import Chunk

    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--skip-rank-bm25", action="store_true")
    parser.add_argument("--lancedb", action="store_true", help="also time LanceDB (flat and IVF-PQ)")
    args = parser.parse_args()
    texts = corpus(args.chunks)
    chunks = [Chunk(f"c{i}", t, f"doc{i // 20}.md", i % 20, n_tokens=len(t.split())) for i, t in enumerate(texts)]
    print(f"load average before: {os.getloadavg()}")
    started, cpu = time.perf_counter(), time.process_time()
    index = RagIndex.build(chunks, make_embedder("lsa", dimensions=256))
    build_s, build_cpu = time.perf_counter() - started, time.process_time() - cpu
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        index.save(Path(folder) / "index")
        save_s = time.perf_counter() - started
    print(f"index {args.chunks} chunks (LSA 256 + BM25): build {build_s:.1f} s ({build_cpu:.1f} s CPU), save "
          f"{save_s:.1f} s; load average {os.getloadavg()[0]:.1f}")
    rng = random.Random(1)
    questions = [" ".join(rng.sample(texts[rng.randrange(len(texts))].split(), 6)) for _ in range(args.queries)]
    retriever = Retriever(index)
    # Wall time and the process's CPU time per question: on a shared machine the wall time is mostly waiting
    # for a core, the CPU time is what the question costs.
    for mode in ("dense", "sparse", "hybrid"):
        times, cpu_times = [], []
        for q in questions:
            t, cpu = time.perf_counter(), time.process_time()
            retriever.retrieve(q, mode=mode)
            times.append((time.perf_counter() - t) * 1000)
            cpu_times.append((time.process_time() - cpu) * 1000)
        print(f"{mode:7s} retrieve top 10: p50 {p(times, 50):.1f} ms, p95 {p(times, 95):.1f} ms; CPU p50 "
              f"{p(cpu_times, 50):.1f} ms, p95 {p(cpu_times, 95):.1f} ms; load average {os.getloadavg()[0]:.1f}")
    # dense: the store's search against a brute-force numpy baseline (row-major product, full argsort), recall of
    # the store's top 10 against it
    vectors = np.ascontiguousarray(index.dense.vectors)
    qv = index.embedder.encode(questions)
    times_store, times_numpy, overlap = [], [], []
    for v in qv:
        t = time.perf_counter()
        rows, _ = index.dense.search(v, 10)
        times_store.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        exact = np.argsort(-(vectors @ v))[:10]
        times_numpy.append((time.perf_counter() - t) * 1000)
        overlap.append(len(set(rows.tolist()) & set(exact.tolist())) / 10)
    print(f"dense store search p95 {p(times_store, 95):.2f} ms vs numpy row-major + full sort p95 "
          f"{p(times_numpy, 95):.2f} ms; "
          f"recall@10 against exact {statistics.mean(overlap):.3f}")
    t = time.perf_counter()
    sparse_times = []
    for q in questions:
        t = time.perf_counter()
        index.sparse.search(q, 10)
        sparse_times.append((time.perf_counter() - t) * 1000)
    line = f"bm25s search p95 {p(sparse_times, 95):.2f} ms"
    if not args.skip_rank_bm25:
        from rank_bm25 import BM25Okapi

        t = time.perf_counter()
        okapi = BM25Okapi([terms(x) for x in texts])
        okapi_build = time.perf_counter() - t
        okapi_times = []
        for q in questions[:20]:
            t = time.perf_counter()
            best_of(np.asarray(okapi.get_scores(terms(q))), 10)
            okapi_times.append((time.perf_counter() - t) * 1000)
        line += f"; rank_bm25 build {okapi_build:.1f} s, search p95 {p(okapi_times, 95):.0f} ms (20 queries)"
    print(line)
    if args.lancedb:
        lancedb_comparison(vectors, qv, times_store)
    print(f"load average after: {os.getloadavg()}")


def lancedb_comparison(vectors: np.ndarray, queries: np.ndarray, store_ms: list[float]) -> None:
    import lancedb
    import pyarrow as pa

    n, d = vectors.shape
    exact = [set(np.argsort(-(vectors @ q))[:10].tolist()) for q in queries]
    with tempfile.TemporaryDirectory() as folder:
        db = lancedb.connect(folder)
        started = time.perf_counter()
        table = db.create_table("chunks", data=pa.table({
            "row": pa.array(np.arange(n)),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(vectors).ravel()), d)}))
        write_s = time.perf_counter() - started

        def run(nprobes: int | None) -> tuple[list[float], float]:
            times, recall = [], []
            for q, truth in zip(queries, exact, strict=True):
                t = time.perf_counter()
                search = table.search(q).distance_type("dot").limit(10)
                if nprobes:
                    search = search.nprobes(nprobes)
                rows = search.to_arrow().column("row").to_pylist()
                times.append((time.perf_counter() - t) * 1000)
                recall.append(len(set(rows) & truth) / 10)
            return times, statistics.mean(recall)

        flat, flat_recall = run(None)
        started = time.perf_counter()
        table.create_index(metric="dot", index_type="IVF_PQ", num_partitions=256, num_sub_vectors=d // 8)
        index_s = time.perf_counter() - started
        ivf, ivf_recall = run(20)
    print(f"lancedb write {write_s:.1f} s; flat search p50 {p(flat, 50):.1f} / p95 {p(flat, 95):.1f} ms, recall@10 "
          f"{flat_recall:.3f}; IVF-PQ (256 partitions, {d // 8} sub-vectors) build {index_s:.1f} s, nprobes 20 "
          f"p50 {p(ivf, 50):.1f} / p95 {p(ivf, 95):.1f} ms, recall@10 {ivf_recall:.3f}; platform dense store p50 "
          f"{p(store_ms, 50):.1f} / p95 {p(store_ms, 95):.1f} ms, recall@10 1.000")


if __name__ == "__main__":
    main()
