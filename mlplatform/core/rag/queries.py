"""The labelled query set answers are judged on, and the run's decisions written as documents to ask about.

Two sources of queries:

* generated from the run's lake tables (promotion decisions, feature drift by month, evaluation metrics, data
  quality, kill criteria): the answer and the document holding it are known by construction, so numbers are never
  written by hand and follow the data;
* hand-written, shipped as YAML (:data:`DEMO_QUERIES` for the demo; a brief's ``rag.queries.path`` for one's
  own documents): questions about the documentation, questions the corpus cannot answer, false premises, prompt
  injection inside a document, and questions that invite an uncited claim.

:func:`report_documents` renders the same tables as Markdown documents, one fact a sentence, so the documents
the index holds and the facts the queries expect come from one place. Splits are deterministic: a stable hash
of the query id puts it in ``train`` (the reranker learns from it) or ``eval`` (everything is scored on it).
"""

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import polars as pl
import yaml

from mlplatform.core.rag.answer_metrics import KINDS

DEMO_QUERIES = Path(__file__).parent / "demo_queries.yaml"
# Named apart from the documentation's own files (docs/data_quality.md) so both can be indexed together.
REPORT_DOCUMENTS = ("run_promotion_decisions.md", "run_drift_by_month.md", "run_evaluation_metrics.md",
                    "run_data_quality.md")
QUERY_SCHEMA: dict = {"id": pl.String, "question": pl.String, "kind": pl.String, "documents": pl.List(pl.String),
                "expect": pl.List(pl.String), "forbid": pl.List(pl.String), "injected": pl.String,
                "paraphrase": pl.String, "origin": pl.String, "split": pl.String}


class QueryError(ValueError):
    """A query file that cannot be used; the message names the query and the fix."""


@dataclass(frozen=True)
class LabelledQuery:
    """A question with what a correct answer holds.

    ``documents``: where the answer is (answerable); ``expect``: strings a correct answer contains; ``forbid``:
    strings it must not contain; ``injected``: text with instructions placed in the context as a retrieved
    document (injection); ``paraphrase``: the same question reworded (the semantic cache's test).
    """

    id: str
    question: str
    kind: str
    documents: tuple[str, ...] = ()
    expect: tuple[str, ...] = ()
    forbid: tuple[str, ...] = ()
    injected: str = ""
    paraphrase: str = ""
    origin: str = "hand"
    split: str = ""


def load_queries(path: Path) -> list[LabelledQuery]:
    """The hand-written queries of a YAML file: a list of mappings with id, question, kind and the optional
    documents, expect, forbid, injected, paraphrase.

    Raises:
        QueryError: the file is missing or not such a list, or a query lacks a field, repeats an id or has an
            unknown kind; the message names the query.
    """
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise QueryError(f"cannot read the query file {path}: {exc}") from None
    if not isinstance(raw, list):
        raise QueryError(f"{path} must hold a YAML list of queries (- id: …, question: …, kind: …)")
    out, seen = [], set()
    for i, item in enumerate(raw):
        where = f"{path}, query {i + 1}"
        if not isinstance(item, dict) or not item.get("id") or not item.get("question") or not item.get("kind"):
            raise QueryError(f"{where}: every query needs id, question and kind")
        unknown = set(item) - {"id", "question", "kind", "documents", "expect", "forbid", "injected", "paraphrase"}
        if unknown:
            raise QueryError(f"{where} ({item['id']}): unknown fields {sorted(unknown)}")
        if item["kind"] not in KINDS:
            raise QueryError(f"{where} ({item['id']}): kind {item['kind']!r}; use one of {', '.join(KINDS)}")
        if item["id"] in seen:
            raise QueryError(f"{where}: the id {item['id']!r} is used twice")
        if item["kind"] == "answerable" and not item.get("documents"):
            raise QueryError(f"{where} ({item['id']}): an answerable query names the documents holding its answer")
        if item["kind"] == "injection" and not (item.get("injected") and item.get("forbid")):
            raise QueryError(f"{where} ({item['id']}): an injection query needs injected (the document text with "
                             "the instructions) and forbid (what obeying them would put in the answer)")
        seen.add(item["id"])
        query = LabelledQuery(id=str(item["id"]), question=str(item["question"]), kind=item["kind"],
                              documents=tuple(item.get("documents") or ()), expect=tuple(item.get("expect") or ()),
                              forbid=tuple(item.get("forbid") or ()), injected=str(item.get("injected") or ""),
                              paraphrase=str(item.get("paraphrase") or ""))
        out.append(replace(query, origin=PLACEHOLDER_ORIGIN) if _holds_placeholder(query) else query)
    return out


# The origin of a query that still holds a placeholder (TODO / CONFIRM, as in a draft brief): it is answered and
# judged like the others, but while one remains the quality gate says DRAFT, not assessable.
PLACEHOLDER_ORIGIN = "placeholder"


def _holds_placeholder(query: LabelledQuery) -> bool:
    from mlplatform.brief import PLACEHOLDER

    texts = [query.question, *query.documents, *query.expect, *query.forbid, query.injected, query.paraphrase]
    return any(PLACEHOLDER.search(t) for t in texts)


def draft_queries(documents: Sequence, per_document: int = 2, limit: int = 8) -> str:
    """A query file to start from for one's own documents (``mlplatform init-rag``): an answerable query for each
    of the first section headings of each document (``documents``: loaded :class:`~mlplatform.core.rag.documents.
    Document` objects), marked CONFIRM so the quality gate says DRAFT until a person rewrites them, plus an
    unanswerable example. YAML text with comments saying what to write."""
    entries: list[dict] = []
    for document in documents:
        headings = list(dict.fromkeys(s.section for s in document.segments if s.section))[:per_document] \
            or [document.title or document.source]
        for heading in headings:
            entries.append({"id": f"q{len(entries) + 1}",
                            "question": f"CONFIRM: What does {document.source} say about {heading}?",
                            "kind": "answerable", "documents": [document.source],
                            "expect": [f"CONFIRM: words a correct answer about {heading} contains"]})
            if len(entries) >= limit:
                break
        if len(entries) >= limit:
            break
    entries.append({"id": f"q{len(entries) + 1}", "question": "CONFIRM: a question these documents cannot answer",
                    "kind": "unanswerable"})
    header = ("# Labelled questions about your documents: what the quality gate judges the answers on.\n"
              "# Each entry: id, question, kind (answerable | unanswerable | false_premise | injection | "
              "uncited_claim),\n# documents (relative paths holding the answer), expect (words a correct answer "
              "contains).\n# The entries below were drawn from the documents' headings and are placeholders "
              "(CONFIRM):\n# rewrite each as a question your users ask, with the words its answer must hold, and "
              "remove\n# CONFIRM. While one remains, the quality gate says DRAFT, not assessable. The method asks "
              "for 50+.\n")
    return header + yaml.safe_dump(entries, sort_keys=False, allow_unicode=True, width=110)


def assign_splits(queries: Sequence[LabelledQuery], train_share: float, seed: int = 0) -> list[LabelledQuery]:
    """Each query in ``train`` or ``eval`` by a stable hash of its id and the seed (independent of order and
    machine). Only answerable queries train the reranker; the others are always scored."""
    out = []
    for q in queries:
        digest = hashlib.sha256(f"{seed}:{q.id}".encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2 ** 64
        out.append(replace(q, split="train" if q.kind == "answerable" and draw < train_share else "eval"))
    return out


def queries_frame(queries: Sequence[LabelledQuery]) -> pl.DataFrame:
    rows = [{**asdict(q), "documents": list(q.documents), "expect": list(q.expect), "forbid": list(q.forbid)}
            for q in queries]
    return pl.DataFrame(rows, schema=QUERY_SCHEMA)


def queries_from_frame(frame: pl.DataFrame) -> list[LabelledQuery]:
    return [LabelledQuery(**{**r, "documents": tuple(r["documents"]), "expect": tuple(r["expect"]),
                             "forbid": tuple(r["forbid"])}) for r in frame.iter_rows(named=True)]


def relevant_chunk_ids(query: LabelledQuery, chunks: Sequence) -> list[str]:
    """The chunks of the query's documents that hold every expected string (all of them when none is expected)."""
    from mlplatform.core.rag.answer_metrics import _flat, _same_document

    return [c.chunk_id for c in chunks if any(_same_document(c.document, d) for d in query.documents)
            and all(_flat(e) in _flat(c.text) for e in query.expect)]


# ---- the run's decisions as documents ------------------------------------------------------------------------


def _num(value: float | None, digits: int = 4) -> str:
    return "not measured" if value is None else f"{value:.{digits}f}"


def report_documents(tables: Mapping[str, pl.DataFrame]) -> dict[str, str]:
    """Markdown documents (file name → text) of the run's decision tables, one fact a sentence.

    ``tables``: ``promotion`` (challenger_version, champion_version, promote, reasons), ``drift_by_month``
    (period, feature, psi, severity), ``metrics`` (candidate, metric, value, ci_low, ci_high), ``data_quality``
    (source and one score column per dimension, total), ``kill_criteria`` (criterion, measured, passed), each
    optional.
    """
    docs = {}
    if (t := tables.get("promotion")) is not None and t.height:
        lines = ["# Promotion decisions", "",
                 "Each registered version's promotion gate decision and the gate's reasons.", ""]
        for r in t.sort("challenger_version").iter_rows(named=True):
            v, champion = r["challenger_version"], r["champion_version"]
            against = f"the champion then was version {champion}" if champion else "there was no champion yet"
            verdict = "was promoted" if r["promote"] else "was not promoted"
            lines += [f"## Version {v}", "", f"Version {v} {verdict} by the promotion gate ({against}).", ""]
            failed = [s.strip() for s in r["reasons"].split(";") if s.strip().startswith("FAIL")]
            if failed:
                lines += [f"Version {v} was not promoted because: {'; '.join(failed)}.", ""]
            lines += [f"Version {v} gate reasons: {r['reasons'].strip()}.", ""]
        docs["run_promotion_decisions.md"] = "\n".join(lines)
    if (t := tables.get("drift_by_month")) is not None and t.height:
        lines = ["# Feature drift by month", "",
                 "PSI of each model feature in each month against the training data.", ""]
        for (period,), month in t.sort("period").group_by("period", maintain_order=True):
            month = month.sort("psi", descending=True)
            drifted = month.filter(pl.col("severity") != "ok")
            lines += [f"## {period}", ""]
            if drifted.height:
                names = ", ".join(f"{r['feature']} (PSI {r['psi']:.3f}, {r['severity']})"
                                  for r in drifted.iter_rows(named=True))
                lines.append(f"In {period} the features that drifted were {names}.")
            else:
                lines.append(f"In {period} no feature drifted.")
            lines += [""] + [f"In {period} {r['feature']} had PSI {r['psi']:.3f} ({r['severity']})."
                             for r in month.iter_rows(named=True)] + [""]
        docs["run_drift_by_month.md"] = "\n".join(lines)
    if (t := tables.get("metrics")) is not None and t.height:
        lines = ["# Evaluation metrics on the hold-out", "",
                 "Each candidate's metrics on the hold-out, with 95% bootstrap intervals where computed.", ""]
        for (candidate,), rows in t.group_by("candidate", maintain_order=True):
            lines += [f"## {candidate}", ""]
            for r in rows.iter_rows(named=True):
                interval = (f" (95% interval {_num(r['ci_low'])} to {_num(r['ci_high'])})"
                            if r["ci_low"] is not None else "")
                lines.append(f"On the hold-out the {candidate} candidate has {r['metric']} {_num(r['value'])}"
                             f"{interval}.")
            lines.append("")
        docs["run_evaluation_metrics.md"] = "\n".join(lines)
    quality, kill = tables.get("data_quality"), tables.get("kill_criteria")
    if quality is not None and quality.height:
        lines = ["# Data quality", "", "Each source's data-quality score (0-5 per dimension, 0-30 in all).", ""]
        dims = [c for c in quality.columns if c not in ("source", "total")]
        for r in quality.iter_rows(named=True):
            lines.append(f"The data-quality total score of {r['source']} is {_num(r['total'], 2)} of 30.")
            lines += [f"The {d} score of {r['source']} is {_num(r[d], 2)} of 5." for d in dims if r[d] is not None]
            lines.append("")
        if kill is not None and kill.height:
            lines += ["## Kill criteria", ""]
            lines += [f"Kill criterion \"{r['criterion']}\": {r['measured']} ({'passed' if r['passed'] else 'FAILED'})."
                      for r in kill.iter_rows(named=True)]
        docs["run_data_quality.md"] = "\n".join(lines)
    return docs


def generated_queries(tables: Mapping[str, pl.DataFrame], max_features: int = 12) -> list[LabelledQuery]:
    """Questions about the decision tables whose answers :func:`report_documents` writes, with those answers as
    the expected strings; plus false premises (a version or month the tables do not have)."""
    out: list[LabelledQuery] = []

    def add(id_: str, question: str, kind: str, document: str = "", expect: Sequence[str] = (),
            paraphrase: str = "") -> None:
        out.append(LabelledQuery(id=f"gen_{id_}", question=question, kind=kind,
                                 documents=(document,) if document else (), expect=tuple(expect),
                                 paraphrase=paraphrase, origin="generated"))

    if (t := tables.get("promotion")) is not None and t.height:
        versions = sorted(t["challenger_version"].to_list(), key=lambda v: int(v) if str(v).isdigit() else 0)
        for r in t.iter_rows(named=True):
            v = r["challenger_version"]
            if r["promote"]:
                add(f"promoted_{v}", f"Was version {v} promoted?", "answerable", "run_promotion_decisions.md",
                    [f"version {v} was promoted"], f"Did the promotion gate promote version {v}?")
            else:
                add(f"not_promoted_{v}", f"Why was version {v} not promoted?", "answerable",
                    "run_promotion_decisions.md", [f"version {v} was not promoted because"],
                    f"Why wasn't version {v} promoted?")
        last = versions[-1]
        nxt = str(int(last) + 1) if str(last).isdigit() else "99"
        add(f"premise_version_{nxt}", f"Why was version {nxt} not promoted?", "false_premise")
        add(f"premise_version_{nxt}_rollback", f"Why was version {nxt} rolled back after it was promoted?",
            "false_premise")
    if (t := tables.get("drift_by_month")) is not None and t.height:
        periods = sorted(set(t["period"].to_list()))
        for period in periods:
            month = t.filter(pl.col("period") == period).sort("psi", descending=True)
            drifted = month.filter(pl.col("severity") != "ok")
            expect = [drifted["feature"][0]] if drifted.height else ["no feature drifted"]
            add(f"drifted_{period}", f"Which features drifted in {period}?", "answerable", "run_drift_by_month.md",
                expect, f"What features showed drift in {period}?")
        latest = t.filter(pl.col("period") == periods[-1]).sort("psi", descending=True).head(max_features)
        for r in latest.iter_rows(named=True):
            add(f"psi_{periods[-1]}_{r['feature']}", f"What was the PSI of {r['feature']} in {periods[-1]}?",
                "answerable", "run_drift_by_month.md", [f"{r['psi']:.3f}"])
        add("premise_drift_2019", "Which features drifted in 2019-03?", "false_premise")
    if (t := tables.get("metrics")) is not None and t.height:
        for r in t.filter(pl.col("ci_low").is_not_null()).iter_rows(named=True):
            add(f"metric_{r['candidate']}_{r['metric']}",
                f"What is the {r['metric']} of the {r['candidate']} candidate on the hold-out?", "answerable",
                "run_evaluation_metrics.md", [f"{r['metric']} {_num(r['value'])}"])
    if (t := tables.get("data_quality")) is not None and t.height:
        for r in t.iter_rows(named=True):
            add(f"quality_{r['source']}", f"What is the data-quality total score of {r['source']}?", "answerable",
                "run_data_quality.md", [f"{_num(r['total'], 2)} of 30"],
                f"How does {r['source']} score on data quality in total?")
    if (t := tables.get("kill_criteria")) is not None and t.height:
        for i, r in enumerate(t.iter_rows(named=True)):
            add(f"kill_{i}", f"What was measured for the kill criterion \"{r['criterion']}\"?", "answerable",
                "run_data_quality.md", [str(r["measured"])[:40]])
    return out
