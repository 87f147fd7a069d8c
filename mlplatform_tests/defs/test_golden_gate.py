"""The golden test set on the demo run: set aside from every split, written and versioned by the evaluation, and
judged by the promotion gate for the challenger and the champion on the same rows."""

import dagster as dg
import polars as pl
import pytest

from mlplatform.settings import Workspace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ws(demo_run, demo_settings) -> Workspace:
    assert demo_run.outcome.ok, "\n".join(demo_run.lines)
    return Workspace(demo_settings.data_dir, "churn_demo")


def test_the_golden_rows_are_every_label_of_the_golden_customers_and_in_no_split(ws, demo_settings):
    from mlplatform.core.datasets import golden_members
    from mlplatform.core.tracking import dataset_version
    from mlplatform.definitions import build_definitions
    from mlplatform.stage_io import load_split

    platform = build_definitions(demo_settings).resources["platform"]
    share = platform.brief.thresholds.golden_share
    training_set = pl.read_parquet(ws.table("training", "training_set"))
    golden = pl.read_parquet(ws.table("evaluation", "golden"))
    assert golden.sort("customer_id", "snapshot_date").equals(
        training_set.filter(golden_members(training_set["customer_id"], share)).sort("customer_id", "snapshot_date"))
    customers = set(golden["customer_id"])
    assert 0.03 < len(customers) / training_set["customer_id"].n_unique() < 0.07
    split = load_split(platform)
    for part in (split.train, split.validation, split.test):
        assert customers.isdisjoint(set(part["customer_id"]))
    metrics = pl.read_parquet(ws.table("evaluation", "golden_metrics"))
    assert set(metrics["metric"]) == {"f1", "pr_auc", "roc_auc"}
    assert metrics["golden_version"].unique().to_list() == [dataset_version(golden)]
    assert "## Golden test set" in (ws.reports_dir / "evaluation" / "report.md").read_text()


def test_the_first_promotion_records_the_golden_metric(ws):
    from mlplatform.core.tracking import client_for

    promotion = pl.read_parquet(ws.table("registry", "promotion")).row(0, named=True)
    golden = pl.read_parquet(ws.table("evaluation", "golden_metrics"))
    version, f1 = golden["golden_version"][0], golden.filter(pl.col("metric") == "f1")["value"][0]
    assert f"NOTE golden set {version} ({golden['rows'][0]} rows): challenger f1 {f1:.4f} recorded, no champion" \
        in promotion["reasons"]
    run_id = pl.read_parquet(ws.table("registry", "challenger"))["run_id"][0]
    run = client_for(ws.mlflow_uri).get_run(run_id)
    assert run.data.tags["golden_set_version"] == version
    assert run.data.metrics["golden_f1"] == pytest.approx(f1, rel=1e-12)


def test_the_gate_scores_the_champion_on_the_same_golden_rows(ws, demo_settings, tmp_path):
    """The same model registered again faces the champion: equal on the golden set, so that condition passes with
    both numbers in the evidence (and the gate refuses it for not beating the champion)."""
    from mlplatform.definitions import build_definitions
    from mlplatform_tests.serving.helpers import copy_namespace

    settings = copy_namespace(demo_settings, tmp_path, ["mlflow", "lake", "models"])
    defs = build_definitions(settings)
    registry = ["model_registry"]
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [*defs.assets, *defs.asset_checks], instance=instance, resources=defs.resources, raise_on_error=False,
            selection=dg.AssetSelection.assets(*registry) | dg.AssetSelection.checks_for_assets(*registry))
    [gate] = [e for e in result.get_asset_check_evaluations() if e.check_name == "promotion_gate"]
    evidence = gate.metadata["evidence"].value
    golden = evidence["golden"]
    assert golden["champion"] == pytest.approx(golden["challenger"], rel=1e-12)
    assert golden["relative_drop"] == pytest.approx(0.0, abs=1e-12) and golden["max_regression"] == 0.05
    assert golden["difference_ci"] == [0.0, 0.0]  # the same scores on every resample
    assert evidence["checks"]["golden_set"] is True
    assert not gate.passed and "FAIL beats_champion" in gate.description
