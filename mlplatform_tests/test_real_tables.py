"""Bring your own data, beyond the three shapes of test_own_data.py: a DuckDB table, and real public tables bundled with
scikit-learn and statsmodels (nothing downloaded), each from `mlplatform init` to a finished run or a gate's reason.
Each test has a data directory of its own (test_own_data.py's three graphs share one), so under `make test` this file
is a group of its own and runs on another worker beside that one."""

import re
from pathlib import Path

import polars as pl
import pytest
import yaml

from mlplatform.brief import load_brief
from mlplatform.settings import Workspace
from mlplatform_tests.cli_runs import assert_finished_with_artefacts, invoke, restore_environment  # noqa: F401
from mlplatform_tests.own_datasets import (
    blanked,
    breast_cancer,
    election_survey,
    firm_investment,
    house_prices,
    marriage_affairs,
    mauna_loa_co2,
)

pytestmark = pytest.mark.slow


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
