"""Running the CLI in process on a dataset that is not the demo: `init`, then `run`, and what a finished run leaves
(shared by the bring-your-own-data tests)."""

import polars as pl
import pytest
from typer.testing import CliRunner

from mlplatform.cli import app
from mlplatform.settings import Workspace


@pytest.fixture(autouse=True)
def restore_environment(monkeypatch):
    """The CLI points os.environ at its brief; setting then deleting makes monkeypatch put back what was there."""
    for key in ("MLPLATFORM_DATA_DIR", "MLPLATFORM_BRIEF", "DAGSTER_HOME"):
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)


def invoke(*args) -> object:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def assert_finished_with_artefacts(ran, ws: Workspace, brief) -> dict:
    assert ran.exit_code == 0, ran.stdout + ran.stderr
    assert "Finished" in ran.stdout
    report = (ws.reports_dir / "evaluation" / "report.md").read_text()
    assert brief.metrics.primary in report
    card = (ws.reports_dir / "model_card.md").read_text()
    assert brief.problem.ml_task_type in card
    metrics = pl.read_parquet(ws.table("evaluation", "metrics"))
    assert metrics.filter(pl.col("metric") == brief.metrics.primary).height > 0
    return {row["metric"]: row["value"] for row in metrics.filter(pl.col("candidate") == metrics["candidate"][0])
            .iter_rows(named=True)}
