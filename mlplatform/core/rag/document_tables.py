"""The loaded documents as lake tables (``rag/documents``, ``rag/segments``) and back.

``rag/documents`` holds one row per document (source, kind, title, date and where the date came from, pages);
``rag/segments`` one row per segment (its document's source, its position, text, page and section heading).
Reading them back gives the :class:`~mlplatform.core.rag.documents.Document` objects they were written from.
"""

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from mlplatform.core.rag.documents import Document, LoadResult, Segment, Skipped

DOCUMENT_SCHEMA = {"source": pl.String, "kind": pl.String, "title": pl.String, "date": pl.Date,
                   "date_source": pl.String, "pages": pl.Int64}
SEGMENT_SCHEMA = {"source": pl.String, "segment": pl.Int64, "text": pl.String, "page": pl.Int64,
                  "section": pl.String}
SKIPPED_SCHEMA = {"file": pl.String, "reason": pl.String}


def readable_documents(loaded: LoadResult, patterns: Sequence[str | Path]) -> list[Document]:
    """The documents ``loaded`` from ``patterns``.

    Raises:
        ValueError: none was readable; the message lists the patterns and each skipped file with its reason.
    """
    if not loaded.documents:
        raise ValueError(f"no readable document under {', '.join(map(str, patterns))}; skipped: "
                         + "; ".join(f"{s.path}: {s.reason}" for s in loaded.skipped))
    return loaded.documents


def documents_table(documents: Sequence[Document]) -> pl.DataFrame:
    """One row per document: source, kind, title, date, date_source and pages."""
    return pl.DataFrame([{"source": d.source, "kind": d.kind, "title": d.title, "date": d.date,
                          "date_source": d.date_source, "pages": d.pages} for d in documents], schema=DOCUMENT_SCHEMA)


def segments_table(documents: Sequence[Document]) -> pl.DataFrame:
    """One row per segment of each document, numbered from 0 within its document."""
    return pl.DataFrame([{"source": d.source, "segment": i, "text": s.text, "page": s.page, "section": s.section}
                         for d in documents for i, s in enumerate(d.segments)], schema=SEGMENT_SCHEMA)


def skipped_table(skipped: Sequence[Skipped]) -> pl.DataFrame:
    """One row per file that could not be loaded: the file and the reason."""
    return pl.DataFrame({"file": [s.path for s in skipped], "reason": [s.reason for s in skipped]},
                        schema=SKIPPED_SCHEMA)


def documents_from_tables(documents: pl.DataFrame, segments: pl.DataFrame) -> list[Document]:
    """The documents a :func:`documents_table` and :func:`segments_table` were written from, in the documents
    table's order, each with its segments in their order (a document without segments has none)."""
    by_source: dict[str, list[Segment]] = {}
    for row in segments.sort("source", "segment").iter_rows(named=True):
        by_source.setdefault(row["source"], []).append(Segment(row["text"], row["page"], row["section"]))
    return [Document(r["source"], r["kind"], r["title"], r["date"], r["date_source"],
                     tuple(by_source.get(r["source"], ())), r["pages"]) for r in documents.iter_rows(named=True)]
