"""The command line on bad input: each mistake ends in one message that names what is wrong and how to fix it,
a non-zero exit, untouched input files and an undamaged lake."""

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from mlplatform.brief import DEMO_BRIEF
from mlplatform.cli import app
from mlplatform.core import tables
from mlplatform.core.demo_data import generate_demo
from mlplatform.settings import Settings, Workspace

KEPT = "Results so far are kept; fix the cause and run again.\n"


@pytest.fixture(autouse=True)
def environment_untouched():
    """No command writes the platform's or Dagster's variables: each passes its Settings down (mlplatform.settings)."""

    def ours() -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k.startswith(("MLPLATFORM_", "DAGSTER_"))}

    before = ours()
    yield
    assert ours() == before


def invoke(*args: str):
    result = CliRunner().invoke(app, [str(a) for a in args])
    # A handled error exits through typer.Exit; anything else would be a crash with a traceback.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def write_brief(path: Path, change=None) -> Path:
    raw = yaml.safe_load(DEMO_BRIEF.read_text())
    if change:
        change(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_a_bad_setting_is_one_error_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPLATFORM_REGISTRY_POLL_S", "soon")
    result = invoke("serve", "--data-dir", tmp_path)
    assert result.exit_code == 2
    assert result.stderr == "error: MLPLATFORM_REGISTRY_POLL_S='soon': expected a number > 0\n"


# ---------------------------------------------------------------------------------------------------- validate


def test_validate_accepts_the_demo_brief():
    result = invoke("validate", DEMO_BRIEF)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{DEMO_BRIEF}: valid (binary, primary metric f1, 3 sources)\n"


def test_validate_a_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    result = invoke("validate", path)
    assert result.exit_code == 2
    assert result.stderr == (f"error: brief not found: {path}. "
                             "Pass an existing YAML file (e.g. --brief my_brief.yaml).\n")


def test_validate_invalid_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: churn_demo\nproblem: [business_objective\n  owner: me\n")
    result = invoke("validate", path)
    assert result.exit_code == 2
    first, *rest = result.stderr.splitlines()
    assert first == f"error: brief {path} is not valid YAML: while parsing a flow sequence"
    assert "line 2, column 10" in rest[0]  # where the unclosed [ is
    assert "expected ',' or ']', but got ':'" in rest
    assert f'in "{path}"' in rest[0]
    assert rest[-1] == "Fix the indentation or quoting there."


def test_validate_an_empty_brief(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    result = invoke("validate", path)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: brief {path} is empty. Start from the demo brief")


def test_validate_a_list_instead_of_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- name: churn_demo\n- owner: me\n")
    result = invoke("validate", path)
    assert result.exit_code == 2
    assert result.stderr == f"error: brief {path} must be a YAML mapping of fields, got list\n"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda b: b["problem"].pop("business_objective"), "problem.business_objective: is required but missing"),
        (lambda b: b["problem"].update(ml_task_type="clustering"),
         "problem.ml_task_type: Input should be 'binary', 'multiclass' or 'regression'"),
        (lambda b: b["problem"].update(data_gap=b["problem"].pop("data_gaps")),
         "problem.data_gap: is not a known field (check its spelling and indentation)"),
        (lambda b: b["label"].update(source="targets"),
         "label.source names source 'targets', which is not under sources"),
        (lambda b: b["label"].update(column="churn"),
         "label.column names column 'churn', which its source does not declare"),
    ],
    ids=["missing_field", "wrong_type", "misspelt_field", "undeclared_source", "undeclared_column"],
)
def test_validate_names_the_bad_field(tmp_path, change, problem):
    path = write_brief(tmp_path / "brief.yaml", change)
    result = invoke("validate", path)
    assert result.exit_code == 2
    assert result.stderr == f"error: brief {path} is invalid:\n  {problem}\n"


def test_run_with_an_invalid_brief_touches_nothing(tmp_path):
    path = write_brief(tmp_path / "brief.yaml", lambda b: b["problem"].pop("business_objective"))
    result = invoke("run", "--brief", path, "--data-dir", tmp_path / "data")
    assert result.exit_code == 2
    assert result.stderr.endswith("problem.business_objective: is required but missing\n")
    assert not (tmp_path / "data").exists()


# ---------------------------------------------------------------------------------------------------- run


@dataclass
class Demo:
    brief: Path
    inputs: Path
    data_dir: Path

    @property
    def lake(self) -> Path:
        return Workspace(self.data_dir, "churn_demo").root / "lake"

    def run(self):
        return invoke("run", "--brief", self.brief, "--data-dir", self.data_dir)


@pytest.fixture
def demo(tmp_path) -> Demo:
    """The demo brief on a small generated demo, with its inputs outside the data directory."""
    inputs = tmp_path / "inputs"
    generate_demo(inputs, n_events=20_000)

    def point_at_inputs(raw: dict) -> None:
        for source in raw["sources"].values():
            source["path"] = source["path"].replace("{data_dir}/inputs/churn_demo", str(inputs))

    return Demo(write_brief(tmp_path / "brief.yaml", point_at_inputs), inputs, tmp_path / "data")


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def files(folder: Path) -> list[str]:
    """Every file under ``folder``, hidden ones (an atomic write's leftovers) included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_run_without_the_input_folder(demo):
    (demo.inputs / "events").rename(demo.inputs / "events_elsewhere")
    before = digests(demo.inputs)
    result = demo.run()
    assert result.exit_code == 2
    # The inputs are checked before anything runs: no lake, no Dagster run (and no variable set: the fixture).
    assert result.stderr == (
        f"error: no input files found at {demo.inputs}/events/*.parquet. "
        "Check the source path in the brief, or run the demo data generator (`mlplatform demo`) first.\n"
    )
    assert files(demo.lake) == []
    assert digests(demo.inputs) == before
    assert not (demo.data_dir / "dagster_home").exists()


def test_run_with_a_column_missing_from_an_events_file(demo):
    broken = demo.inputs / "events" / "2025-02.parquet"
    frame = pl.read_parquet(broken).drop("amount")
    frame.write_parquet(broken)
    before = digests(demo.inputs)
    result = demo.run()
    assert result.exit_code == 2
    assert result.stderr == (f"error: {broken} lacks the column(s) amount declared in the brief (it has "
                             f"{', '.join(frame.columns)}). Fix the file, or update the source's columns in the "
                             "brief.\n")
    assert files(demo.lake) == []  # nothing ran
    assert digests(demo.inputs) == before


def test_run_with_a_truncated_parquet_file(demo):
    broken = demo.inputs / "events" / "2025-02.parquet"
    truncate(broken)
    before = digests(demo.inputs)
    result = demo.run()
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: cannot read {broken} as parquet: ")
    assert result.stderr.endswith("Replace the file with a valid parquet file or fix the source format in the "
                                  "brief.\n")
    assert files(demo.lake) == []
    assert digests(demo.inputs) == before


def test_a_failed_run_does_not_damage_what_was_materialised(demo):
    from mlplatform.runner import run_graph

    with dg.instance_for_test() as instance:
        outcome = run_graph(Settings(demo.data_dir, demo.brief), instance=instance, progress=lambda _: None,
                            until="quality")
    assert outcome.ok, outcome.reason
    assert [stage for stage, _ in outcome.stages] == ["problem", "ingestion", "quality"]
    assert {"validated/events.parquet", "quarantine/events.parquet", "reports/data_quality.parquet"} <= set(
        files(demo.lake))
    # Everything past raw ingestion: the layers a failed re-run must leave as they were.
    kept = [demo.lake / f for f in files(demo.lake) if not f.startswith("raw/")]
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in kept}

    broken = demo.inputs / "events" / "2025-02.parquet"
    truncate(broken)
    inputs = digests(demo.inputs)
    # The file breaks after the CLI's input check (or under `dagster dev`): the raw asset itself fails.
    with dg.instance_for_test() as instance:
        outcome = run_graph(Settings(demo.data_dir, demo.brief), instance=instance, progress=lambda _: None)
    assert not outcome.ok and outcome.stopped_by == "step raw_events"
    assert outcome.reason.startswith(f"cannot read {broken} as parquet")
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in kept} == before
    assert not [f for f in files(demo.lake) if Path(f).name.startswith(".")]  # no half-written temporary files
    assert digests(demo.inputs) == inputs


def test_sql_queries_the_lake_read_only(demo_run, demo_settings, tmp_path):
    data = demo_settings.data_dir
    result = invoke("sql", "SELECT count(*) AS n FROM training_training_set", "--data-dir", data)
    assert result.exit_code == 0, result.stderr
    rows = pl.read_parquet(Workspace(data, "churn_demo").table(tables.TRAINING_SET)).height
    assert f"{rows}" in result.stdout and rows > 0
    out = tmp_path / "metrics.csv"
    exported = invoke("sql", "SELECT * FROM evaluation_metrics", "--data-dir", data, "--output", out)
    assert exported.exit_code == 0 and out.exists()
    refused = invoke("sql", "DROP VIEW evaluation_metrics", "--data-dir", data)
    assert refused.exit_code == 2
    assert refused.stderr.startswith("error: DROP statements are refused: the warehouse is read-only.")
    assert invoke("sql", "SELECT count(*) FROM evaluation_metrics", "--data-dir", data).exit_code == 0


def test_report_lists_and_prints_what_the_run_wrote(demo_run, demo_settings, tmp_path):
    listed = invoke("report", "--data-dir", demo_settings.data_dir)
    assert listed.exit_code == 0, listed.stderr
    assert "evaluation report:" in listed.stdout and "model_card.md" in listed.stdout
    card = invoke("report", "--data-dir", demo_settings.data_dir, "--show", "card")
    assert card.exit_code == 0 and card.stdout.startswith("# Model card: churn_demo_model")
    missing = invoke("report", "--data-dir", tmp_path)
    assert missing.exit_code == 2
    assert missing.stderr.startswith("error: no reports for 'churn_demo'")
    wrong = invoke("report", "--data-dir", demo_settings.data_dir, "--show", "nope")
    assert wrong.exit_code == 2 and "--show must be one of evaluation, card, score, cost" in wrong.stderr


def test_library_deprecations_stay_off_the_terminal_after_a_library_resets_the_filters():
    """Feast's import puts ``simplefilter("once", DeprecationWarning)`` in front of every filter; the run's
    terminal must still show no library deprecation notice, and still show other warnings."""
    import warnings

    from mlplatform.cli import _hide_library_deprecations

    shown: list[type[Warning]] = []
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, category, *rest, **named: shown.append(category)  # the terminal
        _hide_library_deprecations()
        warnings.simplefilter("once", DeprecationWarning)  # what `import feast` does
        warnings.warn("InitResourceContext.dagster_run is deprecated", DeprecationWarning, stacklevel=1)
        warnings.warn("a warning meant for the user", UserWarning, stacklevel=1)
    assert shown == [UserWarning]
