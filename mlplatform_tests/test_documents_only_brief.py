"""A documents-only brief (kind rag) end to end: `mlplatform init-rag` on a folder of one's own documents writes a
brief and a labelled-query template that run with no code change; the graph holds only the problem and rag
stages; the gate says DRAFT while the template's placeholders remain; `mlplatform ask` answers with a citation."""

from pathlib import Path

import dagster as dg
import pytest
import yaml
from typer.testing import CliRunner

from mlplatform.brief import DEMO_BRIEF, BriefError, DocumentsBrief, load_brief
from mlplatform.cli import app
from mlplatform.settings import Settings

DOCUMENTS = {
    "billing.md": "# Billing\n\n## Invoices\n\nInvoices are sent on the first day of each month by email.\n\n"
                  "## Refunds\n\nA refund is granted within 30 days of purchase when the widget was not activated. "
                  "Write to the billing team to ask for one.\n",
    "install.md": "# Installing the widget\n\n## Requirements\n\nThe widget needs Python 3.11 and at least 4 GB of "
                  "memory.\n\n## Steps\n\nDownload the archive and run the setup script named setup-widget.\n",
    "support.txt": "Support hours are from 9 to 17 on weekdays. Urgent outages are answered within one hour.\n",
}


def _cli(*args) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def documents_run(tmp_path_factory):
    from mlplatform.runner import run_graph

    root = tmp_path_factory.mktemp("own_docs")
    docs = root / "handbook"
    docs.mkdir()
    for name, text in DOCUMENTS.items():
        (docs / name).write_text(text)
    brief = root / "brief.yaml"
    init_output = _cli("init-rag", docs, "--output", brief)
    settings = Settings(data_dir=root / "data", brief_path=brief)
    progress: list[str] = []
    outcome = run_graph(settings, instance=dg.DagsterInstance.ephemeral(), progress=progress.append)
    return root, brief, init_output, outcome, progress


def test_init_rag_writes_a_documents_only_brief_and_a_placeholder_query_template(documents_run):
    root, brief, output, _, _ = documents_run
    loaded = load_brief(brief)
    assert isinstance(loaded, DocumentsBrief) and loaded.name == "handbook" and not hasattr(loaded, "sources")
    queries = yaml.safe_load((root / "queries.yaml").read_text())
    answerable = [q for q in queries if q["kind"] == "answerable"]
    # drawn from the headings, each naming the document it came from, each marked as a placeholder
    assert {(q["documents"][0], q["question"].split(" about ")[-1].rstrip("?")) for q in answerable} >= {
        ("billing.md", "Refunds"), ("install.md", "Requirements")}
    assert all("CONFIRM" in q["question"] for q in queries)
    assert "queries.yaml" in output and "DRAFT" in output


def test_the_graph_runs_only_the_problem_and_rag_stages(documents_run):
    _, _, _, outcome, progress = documents_run
    assert outcome.ok, (outcome.stopped_by, outcome.reason, progress)
    assert [group for group, _ in outcome.stages] == ["problem", "rag"]


def test_the_gate_says_draft_until_the_placeholder_queries_are_rewritten(documents_run):
    from mlplatform.core import tables
    from mlplatform.resources.platform import PlatformResource

    root, brief, _, _, _ = documents_run
    platform = PlatformResource(data_dir=str(root / "data"), brief_path=str(brief))
    queries = platform.read_table(tables.RAG_QUERIES)
    assert set(queries["origin"]) == {"placeholder"}
    report = (platform.workspace.reports_dir / "rag_report.md").read_text()
    assert "Gate: **DRAFT, not assessable**" in report and "rag.queries (q1" in report


def test_ask_answers_from_the_documents_with_a_citation(documents_run):
    root, brief, _, _, _ = documents_run
    answer = _cli("ask", "How many days after purchase is a refund granted?", "--brief", brief,
                  "--data-dir", root / "data")
    assert "30 days" in answer and "[Source: billing.md]" in answer and "from the cache" not in answer
    # the semantic cache compares questions with the index's embedder: a rewording is answered from it, a question
    # with a content word swapped is not
    reworded = _cli("ask", "After purchase, within how many days is a refund granted?", "--brief", brief,
                    "--data-dir", root / "data")
    assert "from the cache" in reworded and "30 days" in reworded
    swapped = _cli("ask", "How many days after purchase is an invoice sent?", "--brief", brief,
                   "--data-dir", root / "data")
    assert "from the cache" not in swapped
    unknown = _cli("ask", "What is the capital of Peru?", "--brief", brief, "--data-dir", root / "data")
    assert "I don't have enough information." in unknown


def _write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "brief.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_a_tabular_brief_missing_sections_names_them_and_the_documents_only_kind(tmp_path):
    raw = yaml.safe_load(DEMO_BRIEF.read_text())
    del raw["label"], raw["split"]
    with pytest.raises(BriefError, match=r"a tabular brief needs label, split \(missing\).*kind rag"):
        load_brief(_write(tmp_path, raw))


def test_a_documents_only_brief_with_tables_or_without_documents_is_refused(tmp_path):
    with pytest.raises(BriefError, match=r"documents-only brief \(kind rag\) has no tables, but it sets sources"):
        load_brief(_write(tmp_path, {"name": "docs", "owner": "me", "kind": "rag", "sources": {},
                                     "rag": {"documents": ["docs"]}}))
    with pytest.raises(BriefError, match="kind rag answers questions over documents: add rag"):
        load_brief(_write(tmp_path, {"name": "docs", "owner": "me", "kind": "rag"}))
    with pytest.raises(BriefError, match="a tabular brief needs problem, entity"):
        load_brief(_write(tmp_path, {"name": "docs", "owner": "me"}))


def test_a_documents_only_brief_refuses_the_sections_of_a_model_and_an_unknown_kind(tmp_path):
    with pytest.raises(BriefError, match=r"has no tables, but it sets protected_attributes, thresholds"):
        load_brief(_write(tmp_path, {"name": "docs", "owner": "me", "kind": "rag", "protected_attributes": ["a"],
                                     "thresholds": {}, "rag": {"documents": ["docs"]}}))
    with pytest.raises(BriefError, match=r"kind: 'table' is not a kind of brief; use tabular .* or rag"):
        load_brief(_write(tmp_path, {"name": "docs", "owner": "me", "kind": "table"}))


def test_what_needs_a_model_names_the_documents_only_brief_instead_of_failing_inside(tmp_path):
    from mlplatform.brief import load_tabular_brief
    from mlplatform.serving.app import create_app

    brief = _write(tmp_path, {"name": "docs", "owner": "me", "rag": {"documents": ["docs"]}})
    assert isinstance(load_brief(brief), DocumentsBrief)  # kind inferred: rag and no sources
    with pytest.raises(BriefError, match=r"the prediction service needs a tabular brief .* documents-only brief "
                                         r"\(kind rag\); use `mlplatform ask`"):
        create_app(Settings(data_dir=tmp_path / "data", brief_path=brief))
    with pytest.raises(BriefError, match="the live demo needs a tabular brief"):
        load_tabular_brief(brief, "the live demo")
