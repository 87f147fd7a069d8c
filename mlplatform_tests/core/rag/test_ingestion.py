"""Documents load with their metadata, corrupt files are listed as skipped, and chunks never cut a sentence."""

from datetime import date, datetime

import pytest

from mlplatform.core.rag.chunking import chunk_documents, count_tokens, split_sentences
from mlplatform.core.rag.documents import DocumentError, load_documents
from mlplatform_tests.core.rag.minimal_pdf import write_pdf

MARKDOWN = """---
title: Refund policy
date: 2024-03-01
---
# Refunds

Customers may ask for a refund within 30 days, e.g. when the item is broken. Dr. Smith approved the rule in 2023.
The refund takes 3.5 days on average! Refunds go back to the original card.

## Shipping

We ship to 12 countries. Express parcels arrive in two days. Standard parcels take five days.
"""


def test_markdown_html_text_and_pdf_keep_their_metadata(tmp_path):
    (tmp_path / "policy.md").write_text(MARKDOWN)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "guide.html").write_text(
        '<html><head><title>Guide</title><meta name="date" content="2023-05-06"></head><body><h1>Intro</h1>'
        "<p>Hello there. This is <b>bold</b> text.</p><script>var x = 1;</script><h2>Part</h2><p>Second.</p>")
    (tmp_path / "notes.txt").write_text("Plain notes. Two sentences.")
    write_pdf(tmp_path / "manual.pdf", [["Warranty terms apply to all devices.", "The warranty lasts two"],
                                        ["years from purchase."]], title="Manual", created=datetime(2022, 1, 2))
    loaded = load_documents([tmp_path])
    docs = {d.source: d for d in loaded.documents}
    assert set(docs) == {"policy.md", "sub/guide.html", "notes.txt", "manual.pdf"} and not loaded.skipped
    policy = docs["policy.md"]
    assert (policy.title, policy.date, policy.date_source) == ("Refund policy", date(2024, 3, 1), "front_matter")
    assert [s.section for s in policy.segments] == ["Refunds", "Shipping"]
    guide = docs["sub/guide.html"]
    assert (guide.title, guide.date, guide.date_source) == ("Guide", date(2023, 5, 6), "html_meta")
    assert "var x" not in guide.text and [s.section for s in guide.segments] == ["Intro", "Part"]
    assert docs["notes.txt"].date_source == "file_mtime"
    pdf = docs["manual.pdf"]
    assert (pdf.pages, pdf.date, pdf.date_source) == (2, date(2022, 1, 2), "pdf_metadata")
    assert [s.page for s in pdf.segments] == [1, 2]
    # a sentence running over the page break stays whole and cites the page it starts on
    chunks = chunk_documents([pdf], "fixed_size", chunk_size=12, overlap=0)
    assert [(c.page, c.text) for c in chunks] == [(1, "Warranty terms apply to all devices."),
                                                  (1, "The warranty lasts two years from purchase.")]


def test_a_corrupt_pdf_is_skipped_with_its_reason_or_refused_in_strict_mode(tmp_path):
    (tmp_path / "ok.md").write_text("Fine text here.")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj <<")
    (tmp_path / "data.csv").write_text("a,b\n")
    loaded = load_documents([tmp_path])
    assert [d.source for d in loaded.documents] == ["ok.md"]
    reasons = {s.path: s.reason for s in loaded.skipped}
    assert "not a readable PDF" in reasons["broken.pdf"] and "unsupported file type .csv" in reasons["data.csv"]
    with pytest.raises(DocumentError, match="broken.pdf is not a readable PDF"):
        load_documents([tmp_path / "broken.pdf"], strict=True)
    with pytest.raises(DocumentError, match="matches no file"):
        load_documents([str(tmp_path / "*.docx")])
    with pytest.raises(DocumentError, match="does not exist"):
        load_documents([tmp_path / "missing"])


def test_sentences_split_at_ends_not_at_abbreviations_or_decimals():
    assert split_sentences("Use it, e.g. daily. Dr. Smith said 3.5 mm! Is it? yes it is.") == [
        "Use it, e.g. daily.", "Dr. Smith said 3.5 mm!", "Is it? yes it is."]


@pytest.mark.parametrize("strategy", ["fixed_size", "recursive", "semantic"])
def test_chunks_are_whole_sentences_within_size_with_overlap_and_stable_ids(tmp_path, strategy):
    (tmp_path / "policy.md").write_text(MARKDOWN)
    docs = load_documents([tmp_path]).documents
    chunks = chunk_documents(docs, strategy, chunk_size=40, overlap=20)
    sentences = {s for seg in docs[0].segments for p in seg.text.split("\n\n") for s in split_sentences(p)}
    for chunk in chunks:
        parts = [s for p in chunk.text.split("\n\n") for s in split_sentences(p)]
        assert set(parts) <= sentences, chunk.text  # made only of whole sentences
        assert chunk.n_tokens == count_tokens(chunk.text) <= 40
        assert chunk.document == "policy.md" and chunk.date == date(2024, 3, 1)
    assert len({c.chunk_id for c in chunks}) == len(chunks)
    assert [c.chunk_id for c in chunk_documents(docs, strategy, 40, 20)] == [c.chunk_id for c in chunks]
    if strategy != "fixed_size":  # a chunk stays within its section
        assert all(("ship" in c.text) == (c.section == "Shipping") for c in chunks)
    overlapping = [a for a, b in zip(chunks, chunks[1:], strict=False)
                   if a.section == b.section and split_sentences(a.text.split("\n\n")[-1])[-1] in b.text]
    # (semantic chunks here end at topic shifts after one sentence, which is never repeated whole)
    assert overlapping or strategy == "semantic", "consecutive chunks repeat whole sentences up to the overlap"


def test_a_sentence_longer_than_the_size_is_one_chunk_not_cut(tmp_path):
    long = "This sentence " + "goes on and on " * 20 + "until it ends."
    (tmp_path / "a.txt").write_text(f"Short one. {long} Another short one.")
    chunks = chunk_documents(load_documents([tmp_path]).documents, "fixed_size", chunk_size=20, overlap=5)
    assert [c.text for c in chunks] == ["Short one.", long, "Another short one."]


def test_bad_chunking_parameters_are_refused():
    with pytest.raises(ValueError, match="unknown chunking strategy"):
        chunk_documents([], "sliding", 100, 10)
    with pytest.raises(ValueError, match="smaller than chunk_size"):
        chunk_documents([], "fixed_size", 100, 100)
