"""The loaded documents as the lake tables rag/documents and rag/segments, and back; what is said when no
document could be read."""

from datetime import date

import polars as pl
import pytest

from mlplatform.core.rag.document_tables import (
    DOCUMENT_SCHEMA,
    SEGMENT_SCHEMA,
    SKIPPED_SCHEMA,
    documents_from_tables,
    documents_table,
    readable_documents,
    segments_table,
    skipped_table,
)
from mlplatform.core.rag.documents import Document, LoadResult, Segment, Skipped

GUIDE = Document("guide.md", "markdown", "Guide", date(2025, 3, 1), "front_matter",
                 (Segment("Install it.", None, "Setup"), Segment("Run it.", None, "Usage")))
MANUAL = Document("docs/manual.pdf", "pdf", "Manual", None, "file_mtime",
                  (Segment("Page one.", 1, None), Segment("Page two.", 2, "Limits"), Segment("More.", 2, "Limits")),
                  pages=2)
EMPTY = Document("empty.txt", "text", "empty", date(2025, 1, 2), "file_mtime", ())


def test_each_document_is_a_row_and_each_segment_a_row_numbered_within_its_document():
    documents = documents_table([GUIDE, MANUAL])
    segments = segments_table([GUIDE, MANUAL])

    assert documents.schema == pl.Schema(DOCUMENT_SCHEMA) and segments.schema == pl.Schema(SEGMENT_SCHEMA)
    assert documents.rows() == [("guide.md", "markdown", "Guide", date(2025, 3, 1), "front_matter", None),
                                ("docs/manual.pdf", "pdf", "Manual", None, "file_mtime", 2)]
    assert segments.select("source", "segment", "page", "section").rows() == [
        ("guide.md", 0, None, "Setup"), ("guide.md", 1, None, "Usage"), ("docs/manual.pdf", 0, 1, None),
        ("docs/manual.pdf", 1, 2, "Limits"), ("docs/manual.pdf", 2, 2, "Limits")]


def test_the_tables_read_back_as_the_documents_in_order_whatever_order_the_segments_are_stored_in():
    documents = [MANUAL, EMPTY, GUIDE]
    shuffled = segments_table(documents).sample(fraction=1.0, shuffle=True, seed=3)

    assert documents_from_tables(documents_table(documents), shuffled) == documents


def test_nothing_loaded_still_gives_tables_with_their_columns():
    assert documents_table([]).schema == pl.Schema(DOCUMENT_SCHEMA) and documents_table([]).height == 0
    assert segments_table([EMPTY]).height == 0
    assert skipped_table([]).schema == pl.Schema(SKIPPED_SCHEMA)


def test_skipped_files_are_listed_with_their_reason():
    skipped = [Skipped("scan.pdf", "no text layer"), Skipped("notes.docx", "unsupported file type .docx")]

    assert skipped_table(skipped).rows() == [("scan.pdf", "no text layer"),
                                             ("notes.docx", "unsupported file type .docx")]


def test_no_readable_document_is_an_error_naming_the_patterns_and_each_skipped_file():
    loaded = LoadResult([], [Skipped("scan.pdf", "no text layer"), Skipped("a.bin", "unsupported file type .bin")])

    with pytest.raises(ValueError, match=r"no readable document under docs, extra/\*\.pdf; skipped: "
                                         r"scan\.pdf: no text layer; a\.bin: unsupported file type \.bin"):
        readable_documents(loaded, ["docs", "extra/*.pdf"])
    assert readable_documents(LoadResult([GUIDE], loaded.skipped), ["docs"]) == [GUIDE]
