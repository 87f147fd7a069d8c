"""What the evaluation and reporting stages leave in MLflow and the lake, on the shared demo graph run."""

import json
from pathlib import Path

import polars as pl
import pytest

from mlplatform.core.calibration import load_calibrator
from mlplatform.core.tracking import client_for, download_model_version
from mlplatform.settings import Workspace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ws(demo_settings) -> Workspace:
    return Workspace(demo_settings.data_dir, "churn_demo")


def test_the_registered_version_carries_the_calibrator_exactly_when_one_was_fitted(demo_run, ws, tmp_path):
    calibration = pl.read_parquet(ws.table("evaluation", "calibration")).row(0, named=True)
    registered = pl.read_parquet(ws.table("registry", "challenger")).row(0, named=True)
    folder = download_model_version(ws.mlflow_uri, "churn_demo_model", registered["version"], tmp_path)
    calibrator = load_calibrator(folder)
    assert (calibrator is not None) == calibration["calibrated"]
    if calibrator is not None:
        assert calibrator.method == calibration["method"] and calibrator.fitted_rows == calibration["fitted_rows"]
        scores = pl.read_parquet(ws.table("evaluation", "predictions"))["score"].to_numpy()
        mapped = calibrator.transform(scores)
        assert ((mapped >= 0) & (mapped <= 1)).all()


def test_the_model_card_is_an_artifact_of_the_model_run_and_the_version_points_to_it(demo_run, ws, tmp_path):
    registered = pl.read_parquet(ws.table("registry", "challenger")).row(0, named=True)
    client = client_for(ws.mlflow_uri)
    version = client.get_model_version("churn_demo_model", registered["version"])
    uri = version.tags["model_card"]
    assert uri == f"runs:/{registered['run_id']}/model_card/model_card.md" and uri in version.description
    local = Path(client.download_artifacts(registered["run_id"], "model_card", str(tmp_path)))
    assert (local / "model_card.md").read_text() == (ws.reports_dir / "model_card.md").read_text()
    card = json.loads((local / "model_card.json").read_text())
    assert card["model_card"]["version"] == str(registered["version"])
    golden = pl.read_parquet(ws.table("evaluation", "golden_metrics"))
    values = ", ".join(f"{m} {v:.4f}" for m, v in golden.select("metric", "value").iter_rows())
    listed = [d for d in card["model_card"]["evaluation"]["datasets"] if d.startswith("golden test set")]
    assert listed == [f"golden test set: {golden['rows'][0]:,} rows of keys never trained or tuned on (version "
                      f"{golden['golden_version'][0]}); {values}"]


def test_skew_table_finds_no_skew_between_the_offline_and_online_copy_of_a_row(demo_run, ws):
    skew = pl.read_parquet(ws.table("evaluation", "skew"))
    assert skew.height == 200
    assert (skew["features_differing"] == 0).all(), skew.filter(pl.col("features_differing") > 0).head()
    assert (skew["prediction_difference"] < 1e-9).all()
    # Hold-out rows older than the online row differ: the comparison can see a difference when there is one.
    assert (skew.filter(~pl.col("same_row"))["holdout_features_differing"] > 0).any()
    report = (ws.reports_dir / "evaluation" / "report.md").read_text()
    assert "## Offline-vs-online skew" in report and "0 of 200 entities differ" in report
    assert "use the model's raw scores" in report


def test_the_promotion_gate_judges_fairness_itself(demo_run, ws):
    reasons = pl.read_parquet(ws.table("registry", "promotion"))["reasons"][0]
    assert "fairness_age_band" in reasons
