"""The retrieval stage materialised with Dagster on a small manual corpus: documents, chunks, index, reranker and
the retrieval evaluation with its check, tracked in MLflow."""

from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from mlplatform.brief import DEMO_BRIEF
from mlplatform.settings import Settings
from mlplatform_tests.core.rag.corpus import write_corpus, write_queries
from mlplatform_tests.core.rag.minimal_pdf import write_pdf


@pytest.fixture(scope="module")
def rag_run(tmp_path_factory):
    from mlplatform.core.rag.queries import assign_splits, load_queries, queries_frame
    from mlplatform.definitions import resources_for
    from mlplatform.defs import rag
    from mlplatform.resources.platform import PlatformResource

    root = tmp_path_factory.mktemp("rag")
    queries, manuals = write_corpus(root)
    (manuals / "broken.pdf").write_bytes(b"%PDF-1.4\nnot really a pdf")
    write_pdf(manuals / "recall_notice.pdf", [["Recall notice for the Vega Heater.", "Units sold in 2023 must be"],
                                              ["returned to the shop for a free repair."]])
    queries_path = write_queries(root / "queries.yaml", queries)
    raw = yaml.safe_load(DEMO_BRIEF.read_text())
    raw["rag"] = {"documents": [str(manuals)], "chunking": {"strategy": "recursive", "chunk_size": 64, "overlap": 16},
                  "embedding": {"kind": "lsa", "dimensions": 32},
                  "queries": {"path": str(queries_path), "generate_from_reports": False}}
    brief_path = root / "brief.yaml"
    brief_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    settings = Settings(data_dir=root / "data", brief_path=brief_path)
    resources = resources_for(settings)
    platform: PlatformResource = resources["platform"]
    # the labelled queries, as the answer stage's rag_queries asset writes them
    split = assign_splits(load_queries(queries_path), 0.5, 0)
    platform.write_table("rag", "queries", queries_frame(split))
    assets = rag.build(platform.brief)
    result = dg.materialize(assets, resources=resources, instance=dg.DagsterInstance.ephemeral(),
                            raise_on_error=False)
    return result, platform


def _meta(result, key: str) -> dict:
    events = result.asset_materializations_for_node(key)
    return {k: v.value for k, v in events[-1].metadata.items()}


def test_every_asset_materialises_and_the_check_runs(rag_run):
    result, _ = rag_run
    assert result.success
    checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    assert set(checks) == {"rerank_improves_precision"}


def test_documents_keep_metadata_and_list_the_corrupt_pdf(rag_run):
    result, platform = rag_run
    meta = _meta(result, "rag_documents")
    assert meta["documents"] == 17 and meta["skipped"] == 1
    assert "broken.pdf" in meta["skipped_files"]
    documents = platform.read_table("rag", "documents")
    pdf = documents.filter(pl.col("source") == "recall_notice.pdf").row(0, named=True)
    assert pdf["kind"] == "pdf" and pdf["pages"] == 2 and pdf["date_source"] == "file_mtime"
    manual = documents.filter(pl.col("source") == "zephyr_kettle.md").row(0, named=True)
    assert manual["date_source"] == "front_matter" and str(manual["date"]) == "2024-01-01"


def test_chunks_are_whole_sentences_with_section_and_page(rag_run):
    _, platform = rag_run
    chunks = platform.read_table("rag", "chunks")
    assert chunks["chunk_id"].n_unique() == chunks.height
    for text in chunks["text"]:
        assert text[0].isupper() or text[0] in "-*", text
        assert text.rstrip()[-1] in ".!?:", text
    warranty = chunks.filter(pl.col("text").str.contains("warranty of the Zephyr Kettle"))
    assert warranty["section"].to_list() == ["Warranty"] and warranty["document"][0] == "zephyr_kettle.md"
    recall = chunks.filter(pl.col("document") == "recall_notice.pdf")
    assert recall["text"].str.contains("must be returned to the shop").any() and recall["page"].to_list()[0] == 1


def test_retrieval_eval_compares_four_retrievers_and_tracks_them(rag_run):
    result, platform = rag_run
    frame = platform.read_table("rag", "retrieval_metrics")
    assert sorted(frame["retriever"].unique()) == ["dense", "hybrid", "hybrid+rerank", "sparse"]
    chunk = {r["retriever"]: r for r in frame.filter(pl.col("relevance") == "chunk").iter_rows(named=True)}
    assert all(r["queries"] > 10 for r in chunk.values())
    assert chunk["hybrid+rerank"]["ndcg@10"] >= chunk["hybrid"]["ndcg@10"]
    assert chunk["hybrid"]["recall@10"] > 0.8
    from mlplatform.core.tracking import client_for

    run = client_for(platform.workspace.mlflow_uri).get_run(_meta(result, "rag_retrieval_eval")["mlflow_run_id"])
    assert run.data.params["rerank"] == "lambdarank"
    assert run.data.metrics["hybrid_rerank_chunk_ndcg_at_10"] == pytest.approx(chunk["hybrid+rerank"]["ndcg@10"])


def test_question_retriever_serves_the_saved_index_and_reranker(rag_run):
    from mlplatform.defs.rag import question_retriever

    _, platform = rag_run
    hits = question_retriever(platform)("How long is the titan drill guaranteed?")
    assert len(hits) == 3 and hits[0].retriever == "rerank"
    assert hits[0].chunk.document == "titan_drill.md" and "years" in hits[0].chunk.text
    assert (Path(platform.workspace.models_dir) / "rag_index" / "manifest.json").exists()


def test_the_code_location_builds_the_stage_only_for_a_brief_with_rag(rag_run, tmp_path):
    from mlplatform.definitions import build_definitions

    _, platform = rag_run
    mine = {"rag_documents", "rag_chunks", "rag_index", "rag_reranker", "rag_retrieval_eval"}
    graph = build_definitions(Settings(data_dir=tmp_path, brief_path=Path(platform.brief_path))).resolve_asset_graph()
    rag_group = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).group_name == "rag"}
    assert mine <= rag_group
    plain = yaml.safe_load(DEMO_BRIEF.read_text())
    plain.pop("rag", None)
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(plain, sort_keys=False))
    graph = build_definitions(Settings(data_dir=tmp_path, brief_path=tmp_path / "plain.yaml")).resolve_asset_graph()
    assert not mine & {k.to_user_string() for k in graph.get_all_asset_keys()}
