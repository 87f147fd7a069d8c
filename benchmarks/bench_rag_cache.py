"""The semantic cache on reworded questions and near misses: hit rate on the labelled paraphrases (the demo's
hand-written queries and those generated from small decision tables) and false-hit rate on pairs that differ in
one word that changes the answer, for the hashed-trigram embedding and the index's LSA embedder (fitted on the
repository's README, docs and the report documents), at several similarity thresholds.

    python benchmarks/bench_rag_cache.py            # with the word guard of core/rag/cache.py (same_question)
    python benchmarks/bench_rag_cache.py --old      # numbers and identifiers compared only (the earlier guard)
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from mlplatform.core.rag.cache import hashed_trigrams, same_question
from mlplatform.core.rag.chunking import chunk_documents
from mlplatform.core.rag.documents import load_documents
from mlplatform.core.rag.embedding import make_embedder
from mlplatform.core.rag.generation import specific_terms
from mlplatform.core.rag.queries import DEMO_QUERIES, generated_queries, load_queries, report_documents

REPO = Path(__file__).resolve().parents[1]
NEAR_MISSES = [
    ("What is the f1 of lightgbm on the hold-out?", "What is the recall of lightgbm on the hold-out?"),
    ("What is the precision of lightgbm on the hold-out?", "What is the recall of lightgbm on the hold-out?"),
    ("What is the pr_auc of torch?", "What is the roc_auc of torch?"),
    ("Which features drifted in 2025-10?", "Which features drifted in 2025-11?"),
    ("Was version 2 promoted?", "Was version 3 promoted?"),
    ("Which gates block the run?", "Which gates do not block the run?"),
    ("Why was version 2 promoted?", "Why was version 2 not promoted?"),
    ("What is the data-quality score of customers?", "What is the data-quality score of events?"),
    ("Where does the online store live in production?", "Where does the offline store live in production?"),
    ("How is the champion model served?", "How is the challenger model served?"),
    ("What does the quality gate check?", "What does the fairness gate check?"),
    ("What is the f1 of torch?", "What is the f1 of lightgbm?"),
    ("What is the f1 of torch?", "What is the f1?"),
    ("Which features drifted in 2025-10?", "Which features did not drift in 2025-10?"),
    ("What is the data-quality total score of customers?", "What is the data-quality accuracy score of customers?"),
    ("Where do quarantined rows go?", "Where do validated rows go?"),
]


def decision_tables() -> dict[str, pl.DataFrame]:
    months = [f"2025-{m:02d}" for m in range(1, 11)]
    features = ["customer_days_since_login", "customer_login_30d_count", "customer_tenure_days"]
    psi = [round(0.02 * i + 0.01 * j, 4) for i in range(len(months)) for j in range(len(features))]
    return {
        "promotion": pl.DataFrame({"challenger_version": ["2"], "champion_version": ["1"], "promote": [False],
                                   "reasons": ["FAIL beats_champion: f1 0.3102 vs champion 0.3465"]}),
        "drift_by_month": pl.DataFrame({
            "period": [m for m in months for _ in features], "feature": features * len(months),
            "rows": [1000] * len(psi), "psi": psi,
            "severity": ["ok" if p <= 0.1 else "warning" if p <= 0.25 else "critical" for p in psi]}),
        "metrics": pl.DataFrame({
            "candidate": ["lightgbm"] * 3 + ["torch"] * 3, "metric": ["f1", "pr_auc", "roc_auc"] * 2,
            "value": [0.3465, 0.2722, 0.8087, 0.3012, 0.2511, 0.7903],
            "ci_low": [0.26, 0.19, 0.75, 0.22, 0.18, 0.73], "ci_high": [0.43, 0.38, 0.86, 0.39, 0.33, 0.84]}),
        "data_quality": pl.DataFrame({"source": ["customers", "events", "overall"], "accuracy": [3.33, 3.32, 3.32],
                                      "total": [19.68, 25.8, 23.13]}),
    }


def cosine(embed, a: str, b: str) -> float:
    v = np.asarray(embed([a, b]), dtype=float)
    v /= np.linalg.norm(v, axis=1, keepdims=True) + 1e-12
    return float(v[0] @ v[1])


def main() -> None:
    old_guard = "--old" in sys.argv

    def passes(asked: str, cached: str) -> bool:
        return sorted(specific_terms(asked)) == sorted(specific_terms(cached)) if old_guard \
            else same_question(asked, cached)

    tables = decision_tables()
    reports = Path(tempfile.mkdtemp())
    for name, text in report_documents(tables).items():
        (reports / name).write_text(text)
    documents = load_documents([REPO / "README.md", REPO / "docs", reports]).documents
    lsa = make_embedder("lsa", dimensions=256)
    lsa.fit([c.text for c in chunk_documents(documents, "semantic", 512, 50)])
    queries = load_queries(DEMO_QUERIES) + generated_queries(tables)
    pairs = [(q.question, q.paraphrase) for q in queries if q.paraphrase and q.kind == "answerable"]
    for name, embed in {"hashed trigrams": hashed_trigrams, "index LSA": lsa.encode}.items():
        reworded = [cosine(embed, a, b) for a, b in pairs]
        near = [cosine(embed, a, b) for a, b in NEAR_MISSES]
        print(f"== {name}: reworded similarity {[round(s, 2) for s in reworded]}")
        print(f"   near-miss similarity {[round(s, 2) for s in near]}")
        for t in (0.7, 0.8, 0.85, 0.9, 0.92, 0.95):
            hits = sum(s >= t and passes(b, a) for s, (a, b) in zip(reworded, pairs, strict=True))
            false = sum(s >= t and passes(b, a) for s, (a, b) in zip(near, NEAR_MISSES, strict=True))
            print(f"   similarity {t}: hits {hits}/{len(pairs)} ({hits / len(pairs):.0%}), false hits "
                  f"{false}/{len(NEAR_MISSES)} ({false / len(NEAR_MISSES):.0%})")


if __name__ == "__main__":
    main()
