"""Bring your own data: three datasets that are not the demo, of different shapes, go from `mlplatform init`
to a finished graph with no code change — and leave the artefacts a person reads."""

import re
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from mlplatform.brief import load_brief
from mlplatform.cli import app
from mlplatform.settings import Workspace
from mlplatform_tests.own_datasets import (
    blanked,
    breast_cancer,
    election_survey,
    firm_investment,
    house_prices,
    machine_faults,
    marriage_affairs,
    mauna_loa_co2,
    shop_visits,
)

pytestmark = pytest.mark.slow


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


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """One data directory for every brief of this module: briefs live side by side in their namespaces."""
    return tmp_path_factory.mktemp("shared_data")


def init_and_run(folder: Path, data: Path, target: str, *, torch: bool, data_dir: Path,
                 thresholds: dict | None = None):
    brief_path = folder / "brief.yaml"
    made = invoke("init", data, "--target", target, "--output", brief_path)
    assert made.exit_code == 0, made.stderr
    raw = yaml.safe_load(brief_path.read_text())
    raw["training"] = {"tuning_trials": 3, "torch": torch, "torch_params": {"max_epochs": 5}}  # keep CI quick
    raw["thresholds"] = {**(raw.get("thresholds") or {}), **(thresholds or {})}
    brief_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    ran = invoke("run", "--brief", brief_path, "--data-dir", data_dir)
    brief = load_brief(brief_path)
    return made, ran, brief, Workspace(data_dir.resolve(), brief.name)


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


def test_binary_table_without_time_or_key(tmp_path, data_dir):
    # About 50 buyers per gender reach the hold-out, too few to judge a TPR gap: this brief accepts that as a
    # warning (the default fails closed, see core/test_fairness_gate.py), so the run goes on to the end.
    made, ran, brief, ws = init_and_run(tmp_path, shop_visits(tmp_path), "bought", torch=False, data_dir=data_dir,
                                        thresholds={"fairness_when_not_assessable": "warn"})
    assert "entity key: none found; rows are numbered into 'row_id'" in made.stdout
    metrics = assert_finished_with_artefacts(ran, ws, brief)
    assert metrics["roc_auc"] > 0.7  # the generator's signal is strong; a broken join would sit near 0.5
    # What does not apply to data without time says so instead of failing.
    training = pl.read_parquet(ws.table("training", "training_set"))
    assert training["row_id"].n_unique() == training.height == 4000
    assert set(training["bought"].unique()) == {0, 1}  # 'no'/'yes' became class indices
    assert "gender" in training.columns  # protected: beside the features for fairness, not an input
    assert "row_gender" not in training.columns


def test_multiclass_with_time_and_entity_key(tmp_path, data_dir):
    made, ran, brief, ws = init_and_run(tmp_path, machine_faults(tmp_path), "fault", torch=True, data_dir=data_dir)
    assert "time: 'reading_time'" in made.stdout
    metrics = assert_finished_with_artefacts(ran, ws, brief)
    assert metrics["macro_f1"] > 0.5
    assert (ws.models_dir / "torch").exists()


def test_wide_regression_with_a_unique_id(tmp_path, data_dir):
    made, ran, brief, ws = init_and_run(tmp_path, house_prices(tmp_path), "price", torch=False, data_dir=data_dir)
    assert "task: regression" in made.stdout
    metrics = assert_finished_with_artefacts(ran, ws, brief)
    assert metrics["r2"] > 0.5
    assert len(brief.model_input_columns) == 30


def test_the_briefs_live_side_by_side_in_one_data_directory(data_dir):
    """Run after the three graphs above: each brief kept its own lake, MLflow store, registry and Feast project."""
    names = {"shop_visits", "machine_faults", "house_prices"}
    assert names <= {p.name for p in data_dir.iterdir() if p.is_dir()}
    for name in names:
        ws = Workspace(data_dir.resolve(), name)
        assert ws.table("training", "training_set").exists() and (ws.feast_dir / "registry.db").exists()
        assert ws.mlflow_uri.endswith(f"{name}/mlflow/mlflow.db")
    # One Dagster instance records every brief's runs.
    assert (data_dir / "dagster_home" / "dagster.yaml").exists()


def test_init_refuses_to_overwrite_a_brief(tmp_path):
    data = shop_visits(tmp_path, n=200)
    (tmp_path / "brief.yaml").write_text("keep me")
    result = invoke("init", data, "--target", "bought", "--output", tmp_path / "brief.yaml")
    assert result.exit_code == 2
    assert "exists; pass --force to overwrite it" in result.stderr
    assert (tmp_path / "brief.yaml").read_text() == "keep me"


def test_init_names_an_unknown_target(tmp_path):
    data = shop_visits(tmp_path, n=200)
    result = invoke("init", data, "--target", "nope", "--output", tmp_path / "b.yaml")
    assert result.exit_code == 2
    assert "target column 'nope' is not in" in result.stderr and not (tmp_path / "b.yaml").exists()


def test_validate_checks_the_input_files_with_data_dir(tmp_path):
    data = shop_visits(tmp_path, n=200)
    assert invoke("init", data, "--target", "bought", "--output", tmp_path / "b.yaml").exit_code == 0
    ok = invoke("validate", tmp_path / "b.yaml", "--data-dir", tmp_path)
    assert ok.exit_code == 0 and "shop_visits: 1 file(s), declared columns present" in ok.stdout
    pl.read_csv(data).drop("city").write_csv(data)
    bad = invoke("validate", tmp_path / "b.yaml", "--data-dir", tmp_path)
    assert bad.exit_code == 2 and "lacks the column(s) city" in bad.stderr


def test_a_duckdb_table_runs_from_init_to_a_finished_graph(tmp_path):
    import duckdb

    database = tmp_path / "warehouse.duckdb"
    rows = pl.read_parquet(house_prices(tmp_path, n=1500, width=6))
    with duckdb.connect(str(database)) as con:
        con.register("rows", rows.to_arrow())
        con.execute("CREATE TABLE houses AS SELECT * FROM rows")
    brief_path = tmp_path / "brief.yaml"
    made = invoke("init", database, "--table", "houses", "--target", "price", "--output", brief_path)
    assert made.exit_code == 0, made.stderr
    raw = yaml.safe_load(brief_path.read_text())
    assert raw["sources"]["houses"]["format"] == "duckdb" and raw["sources"]["houses"]["table"] == "houses"
    raw["training"] = {"tuning_trials": 0, "torch": False}
    brief_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    ran = invoke("run", "--brief", brief_path, "--data-dir", tmp_path / "data")
    brief = load_brief(brief_path)
    metrics = assert_finished_with_artefacts(ran, Workspace((tmp_path / "data").resolve(), brief.name), brief)
    assert metrics["r2"] > 0.5


# Real public tables bundled with scikit-learn and statsmodels (nothing downloaded): init, then run, must end
# with a result or a gate's reason, never a traceback.

def init_then_run(folder: Path, data: Path, target: str, data_dir: Path, edit=None):
    brief_path = folder / "brief.yaml"
    made = invoke("init", data, "--target", target, "--output", brief_path)
    assert made.exit_code == 0, made.stderr
    raw = yaml.safe_load(brief_path.read_text())
    raw["training"] = {"tuning_trials": 0, "torch": False}  # keep CI quick
    if edit:
        edit(raw)
    brief_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return made, invoke("run", "--brief", brief_path, "--data-dir", data_dir), brief_path


def assert_result_or_gate_reason(ran) -> str:
    """The run finished, or a blocking gate stopped it and said why; a step that raised is neither."""
    if ran.exit_code == 0:
        assert "Finished" in ran.stdout
        return "finished"
    assert ran.exit_code == 2 and "the run stopped at gate " in ran.stderr, ran.stdout[-2000:] + ran.stderr
    return ran.stderr.split("the run stopped at gate ")[1].split(":")[0]


def test_a_real_table_with_most_cells_blanked_is_stopped_by_the_quality_gate(tmp_path):
    """58% of breast-cancer measurements blanked: it passed at 24.98/30 when nullable inputs were free."""
    data = blanked(breast_cancer(tmp_path), 0.58, keep=["benign"])
    made, ran, _ = init_then_run(tmp_path, data, "benign", tmp_path / "data")
    assert "MOSTLY EMPTY" in made.stdout
    assert assert_result_or_gate_reason(ran) == "data_quality_gate" or "quality" in ran.stderr
    assert "fails whatever the total" in ran.stderr and "Finished" not in ran.stdout


def test_genuine_predictive_measurements_stop_the_leakage_gate_until_waived(tmp_path):
    made, ran, brief_path = init_then_run(tmp_path, breast_cancer(tmp_path), "benign", tmp_path / "data")
    assert "SUSPICIOUSLY PREDICTIVE" in made.stdout
    assert assert_result_or_gate_reason(ran) == "leakage_no_target_derived_feature"
    assert "allowed_predictive_features" in ran.stderr and "row_worst_perimeter 0.9" in ran.stderr
    flagged = re.findall(r"(row_\w+) 0\.\d{3}", ran.stderr.split("Either fix")[0])
    raw = yaml.safe_load(brief_path.read_text())
    raw["leakage"] = {"allowed_predictive_features": [
        {"feature": f.removeprefix("row_"), "reason": "measured on the biopsy image before diagnosis"}
        for f in flagged]}
    brief_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    again = invoke("run", "--brief", brief_path, "--data-dir", tmp_path / "data")
    assert assert_result_or_gate_reason(again) != "leakage_no_target_derived_feature"
    import dagster as dg

    from mlplatform.runner import instance_for
    from mlplatform.settings import Settings

    instance = instance_for(Settings(data_dir=(tmp_path / "data").resolve(), brief_path=brief_path.resolve()))
    record = instance.get_latest_asset_check_evaluation_record(
        dg.AssetCheckKey(dg.AssetKey("training_set"), "leakage_no_target_derived_feature"))
    evaluation = record.event.dagster_event.event_specific_data
    assert evaluation.passed and evaluation.description.startswith("WAIVED ")
    waived = evaluation.metadata["waived"].value
    assert set(waived) == set(flagged) and all(w["reason"].startswith("measured") for w in waived.values())


@pytest.mark.parametrize(("dataset", "target"), [
    (election_survey, "vote"),  # small (944 rows), a protected attribute (age) the hold-out cannot assess
    (mauna_loa_co2, "co2"),  # time without an entity key; 59 weeks without a reading (label missing)
    (firm_investment, "invest"),  # small (220 rows), a text column, gaps in two inputs
    (marriage_affairs, "rate_marriage"),  # multiclass; its best input (affairs) is 0 for 68% of the rows
])
def test_real_tables_end_with_a_result_or_a_gate_reason(tmp_path, dataset, target):
    made, ran, _ = init_then_run(tmp_path, dataset(tmp_path), target, tmp_path / "data")
    outcome = assert_result_or_gate_reason(ran)
    if dataset is election_survey:  # said before any training, by init and again by run's validation
        assert "fail closed" in made.stdout and "warning: protected attribute 'age'" in ran.stdout
        assert outcome in ("finished", "promotion_gate") or outcome.startswith("leakage")
