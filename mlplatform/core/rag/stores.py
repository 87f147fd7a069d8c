"""The indexes retrieval searches: dense vectors and sparse BM25, behind one store interface, saved together.

Dense store: exact inner-product search over a float32 matrix held in memory (memory-mapped when loaded), chosen
by measurement (benchmarks/bench_rag.py --lancedb, 10^5 chunks of 256 dimensions): it answered several times
faster than LanceDB's exact search, with recall 1.0 by construction, where LanceDB's IVF-PQ index was faster
still but found 1 in 10 of the exact top 10 untuned; docs/scale_out.md gives the path past one machine
(pgvector or Qdrant).

Sparse store: BM25 (Lucene's variant) with bm25s, whose precomputed sparse score matrix answers a query with a
few column sums; it is compared with rank_bm25 in the benchmark.

Metadata filters (sources by name or glob, sections, a date range) become one boolean mask over the chunks that
both stores apply before ranking, so a filtered search returns the best ``k`` of the chunks that pass.

An index folder holds the chunk table (Parquet), the embedder, the dense vectors and the BM25 arrays, and a
manifest; it is written all or nothing (``write_model_folder``): a failure leaves the previous index in place.
"""

import fnmatch
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Protocol

import numpy as np

from mlplatform.core.rag.chunking import STOPWORDS
from mlplatform.core.rag.embedding import Embedder, load_embedder
from mlplatform.core.rag.types import Chunk

_WORD = re.compile(r"\w\w+")
MANIFEST = "manifest.json"
FORMAT_VERSION = 1


class StoreError(ValueError):
    """An index that cannot be built, searched or loaded; the message names the cause and the fix."""


def terms(text: str) -> list[str]:
    """The sparse index's tokens: lower-case words of two or more characters, stop words out, plurals folded."""
    words = _WORD.findall(text.lower())
    found = list(map(_FOLDED.get, words))
    if None in found:  # words not seen before: fold them once
        found = [_fold(w) if t is None else t for w, t in zip(words, found, strict=True)]
    return [t for t in found if t]


_FOLDED: dict[str, str] = {}


def _fold(word: str) -> str:
    """A word's term ("" for a stop word), remembered: corpora repeat words, so each is folded once."""
    term = word
    if word in STOPWORDS:
        term = ""
    elif len(word) > 4 and word.endswith("ies"):
        term = word[:-3] + "y"
    elif len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        term = word[:-1]
    if len(_FOLDED) < 1_000_000:
        _FOLDED[word] = term
    return term


def index_text(chunk: Chunk) -> str:
    """What both stores index for a chunk: its section heading (context the text itself may lack) and its text."""
    return f"{chunk.section}\n{chunk.text}" if chunk.section else chunk.text


@dataclass(frozen=True)
class Filters:
    """Metadata filters: chunks from these sources (relative paths or glob patterns), under these section
    headings, dated within [date_from, date_to]. Empty fields do not filter; a chunk without a date fails a date
    filter."""

    sources: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None

    @property
    def empty(self) -> bool:
        return not (self.sources or self.sections or self.date_from or self.date_to)


@dataclass
class ChunkTable:
    """The chunks an index holds, with the columns filters read as arrays."""

    chunks: list[Chunk]
    documents: np.ndarray = field(init=False)
    sections: np.ndarray = field(init=False)
    dates: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.documents = np.array([c.document for c in self.chunks], dtype=object)
        self.sections = np.array([c.section or "" for c in self.chunks], dtype=object)
        self.dates = np.array([c.date or np.datetime64("NaT") for c in self.chunks], dtype="datetime64[D]")

    def __len__(self) -> int:
        return len(self.chunks)

    def mask(self, filters: Filters | None) -> np.ndarray | None:
        """Which chunks pass ``filters`` (None: all of them, no mask)."""
        if filters is None or filters.empty:
            return None
        keep = np.ones(len(self.chunks), dtype=bool)
        if filters.sources:
            names = set(self.documents.tolist())
            allowed = {n for n in names for p in filters.sources if n == p or fnmatch.fnmatchcase(n, p)}
            keep &= np.isin(self.documents, list(allowed))
        if filters.sections:
            keep &= np.isin(self.sections, list(filters.sections))
        if filters.date_from is not None:
            keep &= self.dates >= np.datetime64(filters.date_from, "D")
        if filters.date_to is not None:
            keep &= self.dates <= np.datetime64(filters.date_to, "D")
        return keep

    def save(self, path: Path) -> None:
        import polars as pl

        from mlplatform.core.io import write_parquet_atomic

        schema = {"chunk_id": pl.String, "text": pl.String, "document": pl.String, "position": pl.Int64,
                  "page": pl.Int64, "section": pl.String, "date": pl.Date, "n_tokens": pl.Int64}
        frame = pl.DataFrame([{"chunk_id": c.chunk_id, "text": c.text, "document": c.document,
                               "position": c.position, "page": c.page, "section": c.section, "date": c.date,
                               "n_tokens": c.n_tokens} for c in self.chunks], schema=schema)
        write_parquet_atomic(frame, path)

    @classmethod
    def load(cls, path: Path) -> "ChunkTable":
        from mlplatform.core.io import read_parquet_verified

        return cls(chunks_from_rows(read_parquet_verified(path).to_dicts()))


def chunks_from_rows(rows: Sequence[dict]) -> list[Chunk]:
    """Chunks from table rows with the columns :meth:`ChunkTable.save` writes (e.g. read back from the lake)."""
    return [Chunk(chunk_id=row["chunk_id"], text=row["text"], document=row["document"], position=int(row["position"]),
                  page=row.get("page"), section=row.get("section"), date=row.get("date"),
                  n_tokens=int(row.get("n_tokens") or 0)) for row in rows]


def best_of(scores: np.ndarray, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indexes and scores of the ``k`` highest ``scores`` (among ``mask``), best first; ties by index."""
    if mask is not None:
        candidates = np.flatnonzero(mask)
        scores = scores[candidates]
    else:
        candidates = None
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    part = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    order = part[np.lexsort((part, -scores[part]))]
    best = order if candidates is None else candidates[order]
    return best.astype(np.int64), scores[order]


class Store(Protocol):
    """A searchable index over the chunks of a :class:`ChunkTable`, row for row."""

    name: str

    def __len__(self) -> int: ...

    def scores(self, query) -> np.ndarray:
        """One score per chunk for ``query`` (a vector for dense, a question for sparse)."""

    def search(self, query, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]: ...

    def save(self, folder: Path) -> None: ...


_BLAS = None


def _one_blas_thread():
    """A context holding BLAS to one thread (threadpoolctl's controller is made once: entering costs ~10 µs)."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]  # no py.typed marker

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


class DenseStore:
    """Exact inner-product (cosine, vectors being unit length) search over all vectors.

    The vectors are held column-major (each dimension's values contiguous, saved that way too), where OpenBLAS's
    matrix-vector product reads 10^5 x 256 float32 (100 MB) about 2.5 times faster than from row-major rows (p50
    12-16 ms against 30-39 ms, one thread, load 9). The product runs on one BLAS thread: it is memory-bound, and on
    a busy two-core machine (load 15) OpenBLAS's two spinning threads made it slower; concurrent questions are
    served by concurrent requests, not by threads inside one product.
    """

    name = "dense"

    def __init__(self, vectors: np.ndarray) -> None:
        if vectors.ndim != 2:
            raise StoreError(f"dense vectors must be a 2-D array, got shape {vectors.shape}")
        self.vectors = np.asfortranarray(vectors, dtype=np.float32)  # no copy when already so (a loaded index)

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def scores(self, query: np.ndarray) -> np.ndarray:
        query = np.asarray(query, dtype=np.float32).ravel()
        if query.shape[0] != self.vectors.shape[1]:
            raise StoreError(f"the query vector has {query.shape[0]} dimensions, the index {self.vectors.shape[1]}; "
                             "query with the embedder the index was built with")
        with _one_blas_thread():
            return self.vectors @ query

    def search(self, query: np.ndarray, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        query = np.asarray(query, dtype=np.float32).ravel()
        if mask is not None:
            rows = np.flatnonzero(mask)
            with _one_blas_thread():
                filtered = self.vectors[rows] @ query
            index, scores = best_of(filtered, k)
            return rows[index], scores
        return best_of(self.scores(query), k)

    def save(self, folder: Path) -> None:
        np.save(folder / "dense_vectors.npy", self.vectors)  # column-major on disk: np.load maps it back so

    @classmethod
    def load(cls, folder: Path) -> "DenseStore":
        return cls(np.load(folder / "dense_vectors.npy", mmap_mode="r"))


class SparseStore:
    """BM25 over :func:`terms` with bm25s (k1 1.5, b 0.75, Lucene's IDF)."""

    name = "sparse"

    def __init__(self, bm25, n: int) -> None:
        self._bm25 = bm25
        self._n = n
        self._vocab: dict[str, int] = bm25.vocab_dict

    @classmethod
    def build(cls, texts: Sequence[str]) -> "SparseStore":
        tokens = [terms(text) or [""] for text in texts]
        bm25 = _counting_bm25()(k1=1.5, b=0.75, method="lucene")
        bm25.index(tokens, show_progress=False)
        return cls(bm25, len(tokens))

    def __len__(self) -> int:
        return self._n

    def scores(self, query: str) -> np.ndarray:
        ids = [self._vocab[t] for t in terms(query) if t in self._vocab and t != ""]
        if not ids:
            return np.zeros(self._n, dtype=np.float32)
        return np.asarray(self._bm25.get_scores_from_ids(ids), dtype=np.float32)

    def search(self, query: str, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        scores = self.scores(query)
        hit = scores > 0
        index, values = best_of(scores, k, hit if mask is None else (mask & hit))
        return index, values

    def save(self, folder: Path) -> None:
        self._bm25.save(str(folder / "bm25"), show_progress=False)

    @classmethod
    def load(cls, folder: Path, n: int) -> "SparseStore":
        import bm25s

        return cls(bm25s.BM25.load(str(folder / "bm25"), mmap=True, show_progress=False), n)


def _tokens_as_given(tokens: list[str]) -> list[str]:
    return tokens


def _counting_bm25():
    """bm25s's ``BM25`` whose index is built from a term-count matrix with array operations, overriding the build
    step bm25s documents as replaceable: its own loops over documents in Python took 7 of the index's 23 CPU
    seconds at 10^5 chunks. Same Lucene scores (tested against bm25s's build); searching, saving and loading are
    bm25s's own."""
    import bm25s
    from sklearn.feature_extraction.text import CountVectorizer

    class CountingBM25(bm25s.BM25):
        def build_index_from_tokens(self, corpus_tokens, show_progress=True, leave_progress=False):
            if self.method != "lucene":
                raise StoreError(f"the counting BM25 build implements the lucene variant only, not {self.method}")
            counter = CountVectorizer(analyzer=_tokens_as_given, lowercase=False, dtype=np.float32)
            counts = counter.fit_transform(corpus_tokens).tocsc()  # documents x terms, a column per term
            n_docs = counts.shape[0]
            lengths = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
            frequency = np.diff(counts.indptr).astype(np.float64)  # documents holding each term
            idf = np.log(1 + (n_docs - frequency + 0.5) / (frequency + 0.5))
            tf = counts.data.astype(np.float64)
            norm = self.k1 * ((1 - self.b) + self.b * lengths[counts.indices] / lengths.mean())
            terms_of_entries = np.repeat(np.arange(counts.shape[1]), np.diff(counts.indptr))
            data = (idf[terms_of_entries] * tf / (norm + tf)).astype(self.dtype)
            scores = {"data": data, "indices": counts.indices.astype(self.int_dtype),
                      "indptr": counts.indptr, "num_docs": n_docs}
            vocab = {term: i for i, term in enumerate(counter.get_feature_names_out().tolist())}
            self.nonoccurrence_array = None  # as bm25s's build sets it for the lucene variant
            return scores, vocab

    return CountingBM25


@dataclass
class RagIndex:
    """Chunks with their embedder, dense and sparse stores; row ``i`` of every store is ``table.chunks[i]``."""

    table: ChunkTable
    embedder: Embedder
    dense: DenseStore
    sparse: SparseStore
    manifest: dict = field(default_factory=dict)

    @classmethod
    def build(cls, chunks: list[Chunk], embedder: Embedder, *, fit: bool = True,
              batch_size: int = 8192) -> "RagIndex":
        """Fit ``embedder`` on the chunks (``fit``), embed them and build both stores.

        Raises:
            StoreError: no chunks, or two chunks with one id.
        """
        if not chunks:
            raise StoreError("there are no chunks to index; check rag.documents (no document had text)")
        ids = [c.chunk_id for c in chunks]
        if len(set(ids)) != len(ids):
            raise StoreError("two chunks share one chunk id; chunk ids must be unique (rebuild the chunks)")
        texts = [index_text(c) for c in chunks]
        if fit:
            vectors = embedder.fit_encode(texts)
        else:
            vectors = np.vstack([embedder.encode(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)])
        manifest = {"format": FORMAT_VERSION, "chunks": len(chunks), "dim": int(vectors.shape[1]),
                    "embedder": embedder.kind, "documents": len({c.document for c in chunks})}
        return cls(ChunkTable(chunks), embedder, DenseStore(vectors), SparseStore.build(texts), manifest)

    def __len__(self) -> int:
        return len(self.table)

    def save(self, folder: Path) -> Path:
        """Write the index to ``folder`` all or nothing."""
        from mlplatform.core.atomic import write_model_folder

        def write(staging: Path) -> None:
            self.table.save(staging / "chunks.parquet")
            self.embedder.save(staging / "embedder")
            self.dense.save(staging)
            self.sparse.save(staging)
            (staging / MANIFEST).write_text(json.dumps(self.manifest, indent=1))

        return write_model_folder(Path(folder), write)

    @classmethod
    def load(cls, folder: Path) -> "RagIndex":
        folder = Path(folder)
        manifest_path = folder / MANIFEST
        if not manifest_path.exists():
            raise StoreError(f"{folder} holds no index ({MANIFEST} is missing); build it (materialize rag_index)")
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != FORMAT_VERSION:
            raise StoreError(f"{folder} is an index of format {manifest.get('format')}, this version reads "
                             f"{FORMAT_VERSION}; rebuild it")
        table = ChunkTable.load(folder / "chunks.parquet")
        dense = DenseStore.load(folder)
        if len(dense) != len(table):
            raise StoreError(f"{folder} is inconsistent: {len(table)} chunks but {len(dense)} vectors; rebuild it")
        return cls(table, load_embedder(folder / "embedder"), dense, SparseStore.load(folder, len(table)), manifest)
