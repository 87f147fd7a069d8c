"""The ``mlplatform`` command: run the demo or a brief, validate a brief, and show where results are."""

import os
import re
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import NoReturn, TextIO

import typer
import yaml

from mlplatform.brief import (
    DEMO_BRIEF,
    Brief,
    BriefError,
    DocumentsBrief,
    draft_notice,
    load_brief,
    load_tabular_brief,
    placeholder_fields,
)
from mlplatform.core import tables
from mlplatform.core.io import InputError
from mlplatform.settings import BRIEF, DATA_DIR, Settings, SettingsError, Workspace

app = typer.Typer(help="mlplatform: the ML lifecycle as one Dagster lineage graph.", no_args_is_help=True,
                  pretty_exceptions_enable=False)

DataDir = typer.Option(Path("data"), "--data-dir", help="where inputs, the lake, runs and models live")
Wait = typer.Option(0.0, "--wait", help="seconds to wait for another run of the brief on this data directory to "
                    "finish (default: refuse at once)")


def _fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code=2)


def _reports(ws: Workspace) -> list[tuple[str, Path]]:
    """The documents a run writes for people, in reading order."""
    return [("evaluation report", ws.reports_dir / "evaluation" / "report.html"),
            ("model card", ws.reports_dir / "model_card.md"),
            ("ML-system score", ws.reports_dir / "ml_system_score.md"),
            ("cost report", ws.reports_dir / "cost_report.yaml"),
            ("answers report", ws.reports_dir / "rag_report.md"),
            ("QA system card", ws.reports_dir / "rag_system_card.md")]


def _settings(data_dir: Path, brief: Path) -> Settings:
    """This command's data directory and brief; the rest (the profile, serving's settings) from the environment
    (:meth:`Settings.from_env`)."""
    try:
        return replace(Settings.from_env(), data_dir=data_dir.resolve(), brief_path=brief.resolve())
    except SettingsError as exc:
        _fail(str(exc))


def _hide_library_deprecations() -> None:
    """Libraries' deprecation notices about their own internals say nothing to the person running the graph.

    A filter alone does not hold: Feast, imported lazily by the first stage that needs it, puts its own
    ``simplefilter("once", DeprecationWarning)`` in front of every filter. So the display hook drops them."""
    shown = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        if not issubclass(category, DeprecationWarning):
            shown(message, category, filename, lineno, file, line)

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.showwarning = show


def _run(settings: Settings, wait_s: float = 0.0) -> None:
    from mlplatform.core.run_lock import NamespaceLockedError
    from mlplatform.runner import run_graph  # imports Dagster, Feast and MLflow: only when running

    _hide_library_deprecations()
    started = time.perf_counter()
    try:
        outcome = run_graph(settings, wait_s=wait_s)
    except (BriefError, InputError, NamespaceLockedError) as exc:
        _fail(str(exc))
    brief = load_brief(settings.brief_path)
    ws = Workspace(settings.data_dir, brief.name)
    typer.echo(f"\n{'Finished' if outcome.ok else 'Stopped'} in {time.perf_counter() - started:.0f} s.")
    for label, path in _reports(ws):
        if path.exists():  # a run stopped early has not written them
            typer.echo(f"  {label + ':':<18} {path}")
    typer.echo(f"  lineage graph UI:  mlplatform ui --data-dir {settings.data_dir} --brief {settings.brief_path}")
    typer.echo(f"  MLflow UI:         mlflow ui --backend-store-uri {ws.mlflow_uri}")
    if notice := draft_notice(placeholder_fields(brief)):
        typer.secho(notice, fg="yellow")
    if not outcome.ok:
        _fail(f"the run stopped at {outcome.stopped_by}: {(outcome.reason or '').rstrip('.')}.\n"
              "Results so far are kept; fix the cause and run again.")


@app.command()
def demo(data_dir: Path = DataDir,
         events: int | None = typer.Option(None, help="events to generate (10^4 … 10^7; default 300,000, with --live "
                                    "100,000)"),
         seed: int = typer.Option(7, help="random seed of the demo data"), wait: float = Wait,
         live: bool = typer.Option(False, "--live", help="run the retraining loop by itself: the Dagster daemon, "
                                   "the UI and serving start, and the last months are replayed one by one (their "
                                   "traffic, batches and labels); the data directory is emptied first")) -> None:
    """Generate the churn demo data and materialise the whole graph on it (or, with --live, watch it live)."""
    if live:
        from mlplatform.live_demo import LiveOptions, run_live

        _hide_library_deprecations()
        try:
            run_live(data_dir, LiveOptions(events=events or LiveOptions.events, seed=seed), say=typer.echo)
        except (RuntimeError, TimeoutError) as exc:
            _fail(f"the live demo stopped: {exc}")
        return
    from mlplatform.core.demo_data import generate_demo
    from mlplatform.core.run_lock import NamespaceLockedError, namespace_lock

    events = events or 300_000
    settings = _settings(data_dir, DEMO_BRIEF)
    inputs = settings.data_dir / "inputs" / "churn_demo"
    try:  # held from before the inputs are rewritten: a run reading them must finish first
        with namespace_lock(settings.data_dir / load_brief(DEMO_BRIEF).name, wait):
            typer.echo(f"Generating demo data ({events:,} events) in {inputs} …")
            manifest = generate_demo(inputs, n_events=events, seed=seed)
            typer.echo(f"  {manifest.n_customers:,} customers, {manifest.n_events:,} events, "
                       f"{manifest.n_label_rows:,} labels (positive rate {manifest.positive_rate:.1%})")
            _run(settings, wait)
    except NamespaceLockedError as exc:
        _fail(str(exc))


@app.command()
def run(brief: Path = typer.Option(..., "--brief", help="the brief YAML to run"), data_dir: Path = DataDir,
        wait: float = Wait) -> None:
    """Materialise the whole graph for a brief."""
    validate(brief, data_dir)
    _run(_settings(data_dir, brief), wait)


@app.command()
def validate(brief: Path = typer.Argument(..., help="the brief YAML to check"),
             data_dir: Path | None = typer.Option(None, "--data-dir", help="also check the brief's input files "
                                                  "(their {data_dir}), without running anything")) -> None:
    """Check a brief (and, with --data-dir, that its input files exist and hold the declared columns)."""
    try:
        loaded = load_brief(brief)
    except BriefError as exc:
        _fail(str(exc))
    if isinstance(loaded, DocumentsBrief):
        _validate_documents(loaded, brief, data_dir)
        return
    typer.echo(f"{brief}: valid ({loaded.task_type}, primary metric {loaded.metrics.primary}, "
               f"{len(loaded.sources)} sources)")
    if notice := draft_notice(placeholder_fields(loaded)):
        typer.secho(notice, fg="yellow")
    if data_dir is None:
        return
    from mlplatform.core.ingestion import check_source_files

    for name in loaded.sources:
        try:
            files = check_source_files(loaded.source_path(name, data_dir.resolve(), brief.resolve().parent),
                                       loaded.sources[name])
        except InputError as exc:
            _fail(str(exc))
        typer.echo(f"  {name}: {len(files)} file(s), declared columns present")
        if name == loaded.label.source:
            _warn_about_fairness(loaded, files)


def _validate_documents(loaded: DocumentsBrief, brief: Path, data_dir: Path | None) -> None:
    """A documents-only brief: its documents load, and its labelled queries are read (placeholders named)."""
    from mlplatform.core.rag.documents import DocumentError, load_documents
    from mlplatform.core.rag.queries import PLACEHOLDER_ORIGIN, QueryError, load_queries

    rag = loaded.rag
    where = (data_dir or Path("data")).resolve()
    brief_dir = brief.resolve().parent
    try:
        documents = load_documents([rag.resolve(p, where, brief_dir) for p in rag.documents])
        queries = load_queries(rag.resolve(rag.queries.path, where, brief_dir)) if rag.queries.path else []
    except (DocumentError, QueryError) as exc:
        _fail(str(exc))
    if not documents.documents:
        _fail(f"no readable document under {', '.join(rag.documents)}; supported: .md, .txt, .html, .pdf")
    typer.echo(f"{brief}: valid (question answering over documents: {len(documents.documents)} documents, "
               f"{len(documents.skipped)} skipped, {len(queries)} labelled queries)")
    placeholders = [q.id for q in queries if q.origin == PLACEHOLDER_ORIGIN]
    fields = placeholder_fields(loaded) + ([f"rag.queries ({', '.join(placeholders)})"] if placeholders else [])
    if notice := draft_notice(fields):
        typer.secho(notice, fg="yellow")


def _warn_about_fairness(brief: Brief, files: list[Path]) -> None:
    """Warn, before anything is trained, of a protected attribute whose groups the hold-out cannot fill: the
    promotion gate would fail closed at the end of the run."""
    import polars as pl

    from mlplatform.core.io import read_file
    from mlplatform.core.preflight import fairness_outlooks

    source = brief.sources[brief.label.source]
    wanted = [c for c in (*brief.protected_attributes, brief.label.timestamp, brief.label.column)
              if c in source.file_columns]
    if not set(brief.protected_attributes) & set(wanted):
        return
    rows = pl.concat([read_file(f, source.format, source.table).select(wanted) for f in files])
    for outlook in fairness_outlooks(brief, rows):
        if not outlook.fully_assessable:
            typer.secho(f"  warning: {outlook.describe()}", fg="yellow")


@app.command()
def init(data: str = typer.Argument(..., help="a CSV/Parquet file, a glob or a folder of them (one table), or a "
                                   "DuckDB database file with --table"),
         target: str = typer.Option(..., "--target", help="the column to predict"),
         table: str | None = typer.Option(None, "--table", help="the table to read when DATA is a DuckDB file"),
         output: Path = typer.Option(Path("brief.yaml"), "--output", help="where to write the draft brief"),
         force: bool = typer.Option(False, "--force", help="overwrite an existing file at --output")) -> None:
    """Profile a dataset and write a draft brief that runs as it is; print what was inferred."""
    from datetime import date

    from mlplatform.core.brief_draft import draft_brief
    from mlplatform.core.io import write_text_atomic

    if output.exists() and not force:
        _fail(f"{output} exists; pass --force to overwrite it, or choose another --output")
    try:
        draft = draft_brief(data, target, brief_dir=output.resolve().parent, today=date.today(), table=table)
    except InputError as exc:
        _fail(str(exc))
    write_text_atomic(draft.text, output)
    try:
        load_brief(output)
    except BriefError as exc:  # a draft that does not validate is our bug; say so rather than hide it
        _fail(f"the draft written to {output} does not validate; please report this:\n{exc}")
    typer.echo(f"Wrote {output}. Inferred:")
    for note in draft.inferences:
        typer.echo(f"  - {note}")
    if draft.waiver_snippet:
        typer.echo(draft.waiver_snippet.rstrip())
    typer.echo(f"Next: read and edit {output}, then `mlplatform run --brief {output}`.")



@app.command("init-rag")
def init_rag(documents: Path = typer.Argument(..., help="a folder of your documents (Markdown, text, HTML, PDF)"),
             output: Path = typer.Option(Path("brief.yaml"), "--output", help="where to write the brief"),
             queries: Path | None = typer.Option(None, "--queries", help="where to write the labelled-query "
                                                 "template (default: queries.yaml beside the brief)"),
             name: str | None = typer.Option(None, "--name", help="the brief's name (default: from the folder)"),
             force: bool = typer.Option(False, "--force", help="overwrite existing files")) -> None:
    """Write a documents-only brief (kind rag) for a folder of documents, and a template of labelled questions
    drawn from their headings; `mlplatform run` then indexes them and `mlplatform ask` answers from them."""
    from mlplatform.core.io import write_text_atomic
    from mlplatform.core.rag.documents import DocumentError, load_documents
    from mlplatform.core.rag.queries import draft_queries

    queries = queries or output.parent / "queries.yaml"
    for path in (output, queries):
        if path.exists() and not force:
            _fail(f"{path} exists; pass --force to overwrite it, or choose another --output / --queries")
    try:
        loaded = load_documents([documents])
    except DocumentError as exc:
        _fail(str(exc))
    if not loaded.documents:
        _fail(f"no readable document under {documents}; supported: .md, .txt, .html, .pdf. Skipped: "
              + "; ".join(f"{s.path}: {s.reason}" for s in loaded.skipped))
    slug = re.sub(r"[^a-z0-9_]+", "_", (name or documents.resolve().name).lower()).strip("_")
    slug = slug if re.fullmatch(r"[a-z][a-z0-9_]{1,40}", slug) else f"docs_{slug}"[:41].rstrip("_")
    brief_dir = output.resolve().parent

    def relative(path: Path) -> str:
        return os.path.relpath(path.resolve(), brief_dir)

    text = (f"# Question answering over the documents in {documents} (kind rag: no tables, no model).\n"
            "# Run: mlplatform run --brief THIS_FILE; ask: mlplatform ask \"...\" --brief THIS_FILE.\n"
            + yaml.safe_dump({"name": slug, "owner": "TODO: who answers for this system", "kind": "rag",
                              "rag": {"documents": [relative(documents)],
                                      "queries": {"path": relative(queries), "generate_from_reports": False}}},
                             sort_keys=False))
    write_text_atomic(draft_queries(loaded.documents), queries)
    write_text_atomic(text, output)
    try:
        load_brief(output)
    except BriefError as exc:  # a brief we wrote that does not validate is our bug; say so rather than hide it
        _fail(f"the brief written to {output} does not validate; please report this:\n{exc}")
    typer.echo(f"Wrote {output} ({len(loaded.documents)} documents, {len(loaded.skipped)} skipped) and the query "
               f"template {queries}.")
    typer.echo(f"Next: rewrite the CONFIRM questions in {queries} (the quality gate says DRAFT until you do), "
               f"fill owner in {output}, then `mlplatform run --brief {output}` and "
               f"`mlplatform ask \"your question\" --brief {output}`.")


@app.command()
def sql(statement: str = typer.Argument(..., help="one read-only statement: SELECT, WITH, DESCRIBE, SHOW, "
                                         "SUMMARIZE or EXPLAIN of one of those"),
        data_dir: Path = DataDir,
        brief: Path = typer.Option(DEMO_BRIEF, "--brief", help="the brief whose tables to query"),
        limit: int = typer.Option(50, help="rows to print (0: all)"),
        output: Path | None = typer.Option(None, "--output", help="write all rows to a .csv or .parquet file")) -> None:
    """Query the brief's tables (raw, validated, features, training, evaluation …) with DuckDB, read-only.

    The statement can read only the brief's lake folder: it cannot write, install or load extensions, attach
    databases, change settings, or read other files (docs/security.md, "SQL tool").
    """
    import duckdb
    import polars as pl

    from mlplatform.core.warehouse import query, write_result

    try:
        warehouse = Workspace(data_dir.resolve(), load_brief(brief).name).warehouse
        frame = query(warehouse, statement, limit=None if output or not limit else limit)
        if output:
            typer.echo(f"{frame.height:,} rows written to {write_result(frame, output)}")
            return
    except (BriefError, ValueError, FileNotFoundError, duckdb.Error) as exc:
        _fail(str(exc))
    with pl.Config(tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=60):
        typer.echo(frame)

@app.command()
def serve(port: int = typer.Option(8000, help="port to listen on"),
          host: str = typer.Option("127.0.0.1", help="address to bind; 0.0.0.0 to serve beyond this machine"),
          data_dir: Path = DataDir,
          brief: Path = typer.Option(DEMO_BRIEF, "--brief", help="the brief whose champion model to serve")) -> None:
    """Serve the brief's champion model over HTTP (POST /predict, /predict/batch; GET /health, /ready, /metrics)."""
    import uvicorn

    from mlplatform.serving.app import create_app

    try:
        api = create_app(_settings(data_dir, brief))
    except BriefError as exc:
        _fail(str(exc))
    # Ctrl-C or SIGTERM stops accepting connections and lets in-flight requests finish (up to 10 s). No access
    # log: a line per request costs latency, and /metrics counts them.
    uvicorn.run(api, host=host, port=port, timeout_graceful_shutdown=10, access_log=False)


@app.command()
def rollback(data_dir: Path = DataDir,
             brief: Path = typer.Option(DEMO_BRIEF, "--brief", help="the brief whose champion to roll back")) -> None:
    """Restore the previous champion in the model registry; serving apps swap to it on their next poll."""
    from mlplatform.core.rollout.registry import rollback as restore_previous
    from mlplatform.serving.model_loader import model_name

    try:
        loaded = load_tabular_brief(brief, "mlplatform rollback (a champion model)")
        ws = Workspace(data_dir.resolve(), loaded.name)
        if not ws.mlflow_dir.exists():
            _fail(f"no model registry for '{ws.name}' under {ws.data_dir}: run `mlplatform demo` or "
                  "`mlplatform run --brief …` first")
        rolled_back, restored = restore_previous(ws.mlflow_uri, model_name(loaded))
    except (BriefError, LookupError) as exc:
        _fail(str(exc))
    typer.echo(f"{model_name(loaded)}: champion rolled back from version {rolled_back} to version {restored}; "
               "the challenger's traffic share is 0.")


@app.command()
def score(data_dir: Path = DataDir,
          brief: Path = typer.Option(DEMO_BRIEF, "--brief", help="the brief whose score to show")) -> None:
    """Print the ML-system score (the method's 0–100 rubric) that the ml_system_score asset last wrote."""
    import polars as pl

    from mlplatform.core.system_score import render_text, score_from_table

    try:
        ws = Workspace(data_dir.resolve(), load_brief(brief).name)
    except BriefError as exc:
        _fail(str(exc))
    path = ws.table(tables.ML_SYSTEM_SCORE)
    if not path.exists():
        _fail(f"no ML-system score for '{ws.name}' under {ws.data_dir} yet: run `mlplatform demo` or "
              "`mlplatform run --brief …` first, or materialise ml_system_score in the Dagster UI")
    typer.echo(render_text(score_from_table(pl.read_parquet(path))))


@app.command()
def report(data_dir: Path = DataDir,
           brief: Path = typer.Option(DEMO_BRIEF, "--brief", help="the brief whose reports to show"),
           show: str = typer.Option("", help="print one report: evaluation | card | score | cost | answers | "
                                                 "qa_card")) -> None:
    """List the reports the last run wrote (evaluation report, model card, score, cost), or print one."""
    try:
        ws = Workspace(data_dir.resolve(), load_brief(brief).name)
    except BriefError as exc:
        _fail(str(exc))
    reports = _reports(ws)
    if show:
        names = {"evaluation": 0, "card": 1, "score": 2, "cost": 3, "answers": 4, "qa_card": 5}
        if show not in names:
            _fail(f"--show must be one of {', '.join(names)}, got '{show}'")
        label, path = reports[names[show]]
        if show == "evaluation":
            path = path.with_name("report.md")
        if not path.exists():
            _fail(f"no {label} at {path} yet: run `mlplatform demo` or `mlplatform run --brief …` first")
        typer.echo(path.read_text())
        return
    found = [(label, path) for label, path in reports if path.exists()]
    if not found:
        _fail(f"no reports for '{ws.name}' under {ws.data_dir} yet: run `mlplatform demo` or "
              "`mlplatform run --brief …` first")
    for label, path in found:
        typer.echo(f"{label + ':':<19} {path}")


@app.command()
def ui(data_dir: Path = DataDir,
       brief: Path = typer.Option(DEMO_BRIEF, "--brief", help="the brief whose graph to show"),
       port: int = typer.Option(3000, help="port of the Dagster UI")) -> None:
    """Start the Dagster UI (`dagster dev`) on the brief's graph and the instance the CLI's runs use."""
    import shutil
    import sys

    try:
        load_brief(brief)
    except BriefError as exc:
        _fail(str(exc))
    settings = _settings(data_dir, brief)
    from mlplatform.runner import instance_for

    instance_for(settings)  # creates the instance folder (telemetry off) that the CLI's runs are recorded in
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent)) or shutil.which("dagster")
    if dagster is None:
        _fail("the dagster command is not installed in this environment; run `make install` first")
    # The code location's interface is its process's environment (mlplatform.definitions.defs).
    env = {**os.environ, "DAGSTER_HOME": str(settings.data_dir / "dagster_home"),
           DATA_DIR: str(settings.data_dir), BRIEF: str(settings.brief_path)}
    typer.echo(f"Dagster UI on http://127.0.0.1:{port} for {settings.brief_path.name} (Ctrl-C stops it)")
    os.execve(dagster, [dagster, "dev", "-m", "mlplatform.definitions", "-p", str(port)], env)


@app.command()
def ask(question: str = typer.Argument(..., help="the question, in quotes"), data_dir: Path = DataDir,
        brief: Path = typer.Option(DEMO_BRIEF, "--brief", help="the brief whose documents to ask")) -> None:
    """Answer a question from the brief's documents (its rag section) with citations, cost and timings; says
    "I don't have enough information." when they do not hold the answer."""
    try:
        loaded = load_brief(brief)
    except BriefError as exc:
        _fail(str(exc))
    if loaded.rag is None:
        _fail(f"{brief} has no rag section; add rag: documents: [folders or files] and run the graph")
    settings = _settings(data_dir, brief)
    from mlplatform.core.rag.generation import GenerationError
    from mlplatform.defs.rag import question_retriever
    from mlplatform.defs.rag_quality import question_answerer
    from mlplatform.resources.platform import PlatformResource
    from mlplatform.serving.ask import answer_cache_path

    ws = Workspace(settings.data_dir, loaded.name)
    platform = PlatformResource(data_dir=str(settings.data_dir), brief_path=str(settings.brief_path))
    try:
        qa = question_answerer(loaded, ws, question_retriever(platform), answer_cache_path(ws))
        answer = qa.ask(question)
    except (ValueError, OSError, GenerationError) as exc:
        _fail(f"{exc}\nBuild the index first: mlplatform run --brief {brief} (or the demo), then ask again.")
    typer.echo(answer.text)
    for citation in answer.citations:
        typer.echo(f"  {citation.render()}  chunk {citation.chunk_id}")
    timings = ", ".join(f"{k} {v:.0f} ms" for k, v in answer.timings_ms.items())
    typer.secho(f"({answer.generator}{', from the cache' if answer.cached else ''}; {timings}; "
                f"{answer.prompt_tokens}+{answer.completion_tokens} tokens; ${answer.cost:.6f})", dim=True)
