"""Monitoring on the demo run: a mergeable profile per ingested batch and the drift-over-time dashboard."""

import dagster as dg
import polars as pl
import pytest

from mlplatform.core.ingestion import month_keys
from mlplatform.core.profiling import merge_profiles, profile_summary, read_profile
from mlplatform.settings import Workspace


@pytest.fixture(scope="module")
def ws(demo_run, demo_settings) -> Workspace:
    assert demo_run.outcome.ok, demo_run.outcome.reason
    return Workspace(demo_settings.data_dir, "churn_demo")


def test_every_ingested_batch_has_a_profile_that_merges_into_the_whole_source(ws, demo_settings):
    from mlplatform.brief import load_brief

    brief = load_brief(demo_settings.brief_path)
    months = month_keys(brief.partition_start, brief.partition_end)
    files = sorted((ws.profiles_dir / "batches" / "events").glob("*.bin"))
    assert [f.stem for f in files] == months
    summaries = pl.read_parquet(str(ws.partition("profiles", "batch_events", months[0]).parent / "*.parquet"))
    assert sorted(summaries["batch"].unique()) == months
    merged = {r["column"]: r for r in profile_summary(merge_profiles(read_profile(f) for f in files)).to_dicts()}
    validated = pl.read_parquet(ws.table("validated", "events"))
    # Batches are validated one at a time; together they hold exactly the validated table's rows.
    assert merged["event_id"]["count"] == validated.height
    assert merged["session_minutes"]["null_count"] == validated["session_minutes"].null_count()
    assert merged["session_minutes"]["max"] == validated["session_minutes"].max()
    per_batch = summaries.filter(pl.col("column") == "event_id")["count"].sum()
    assert per_batch == validated.height


def test_drift_over_time_shows_when_the_demo_drifts(ws, demo_settings):
    from mlplatform.brief import load_brief

    brief = load_brief(demo_settings.brief_path)
    by_month = pl.read_parquet(ws.table("monitoring", "drift_by_month"))
    drift = pl.read_parquet(ws.table("monitoring", "drift"))
    assert set(by_month["feature"]) == set(drift["feature"])
    session = by_month.filter(pl.col("feature") == "customer_session_minutes_30d_mean")
    monitored = session.filter(pl.col("period").is_in(["2025-09", "2025-10"]))["psi"]
    training = session.filter(pl.col("period").is_in(["2025-03", "2025-04", "2025-05"]))["psi"]
    # The demo multiplies session minutes by 0.7 from 2025-09: critical every monitored month, calm before.
    assert monitored.min() > brief.thresholds.psi_critical
    assert training.max() < brief.thresholds.psi_warning
    assert (by_month["severity"] == "critical").sum() > 0
    dashboard = ws.reports_dir / "drift" / "psi_over_time.png"
    assert dashboard.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_monitoring_job_leaves_the_batch_profiles_to_ingestion(demo_settings):
    from mlplatform.definitions import build_definitions

    defs = build_definitions(demo_settings)
    graph = defs.resolve_asset_graph()
    batch = graph.get(dg.AssetKey("batch_profiles"))
    assert batch.partitions_def == graph.get(dg.AssetKey("raw_events")).partitions_def
    jobs = {name: {k.to_user_string() for k in defs.resolve_job_def(name).asset_layer.executable_asset_keys}
            for name in ("ingest_job", "monitor_job", "full_run")}
    assert jobs["ingest_job"] == {"raw_events", "batch_profiles"}
    assert "batch_profiles" not in jobs["monitor_job"] | jobs["full_run"]
    assert {"whylogs_profiles", "drift_report", "performance_report"} <= jobs["monitor_job"]


def test_a_batch_that_was_not_ingested_is_named_with_the_fix(tmp_path):
    from mlplatform.brief import DEMO_BRIEF
    from mlplatform.definitions import build_definitions
    from mlplatform.settings import Settings

    defs = build_definitions(Settings(data_dir=tmp_path, brief_path=DEMO_BRIEF))
    with dg.instance_for_test() as instance:
        result = dg.materialize([*defs.assets, *defs.asset_checks], instance=instance, resources=defs.resources,
                                selection=["batch_profiles"], partition_key="2025-03", raise_on_error=False)
    [failure] = result.get_step_failure_events()
    message = str(failure.step_failure_data.error)
    assert "batch 2025-03 of 'events' has not been ingested" in message
    assert "materialise raw_events for partition 2025-03 first" in message


@pytest.fixture()
def served(demo_run, demo_settings, tmp_path):
    """A copy of the demo's registry and lake, its definitions, and the champion as the serving app loads it."""
    from mlplatform.brief import load_brief
    from mlplatform.core.tracking import get_alias_version
    from mlplatform.definitions import build_definitions
    from mlplatform.serving.model_loader import load_version
    from mlplatform_tests.serving.helpers import copy_namespace

    assert demo_run.outcome.ok, demo_run.outcome.reason
    settings = copy_namespace(demo_settings, tmp_path, ["mlflow", "lake"])
    target = Workspace(tmp_path, "churn_demo")
    version = get_alias_version(target.mlflow_uri, "churn_demo_model", "champion")
    scorer, _ = load_version(load_brief(settings.brief_path), target, version)
    return target, build_definitions(settings), scorer


def _profile_predictions(defs) -> tuple[dict, dg.AssetCheckEvaluation]:
    """prediction_profiles materialised with its prediction_drift check: the metadata and the check's verdict."""
    from mlplatform.defs.monitoring import prediction_drift_check, prediction_profiles

    result = dg.materialize([prediction_profiles, prediction_drift_check], resources=defs.resources)
    [check] = result.get_asset_check_evaluations()
    materialization = result.asset_materializations_for_node("prediction_profiles")[0]
    return {k: v.value for k, v in materialization.metadata.items()}, check


def _serve(target, scorer, features: list[str], days: dict, extra: list[tuple] | None = None) -> None:
    """Write the champion's answers for each day's rows to the prediction log, as the serving app does, then the
    ``extra`` log rows as given."""
    from datetime import UTC, datetime

    from mlplatform.core.rollout.prediction_log import prediction_log_dir
    from mlplatform.serving.prediction_log import PredictionLog, log_schema

    writer = PredictionLog(prediction_log_dir(target), log_schema("customer_id", pl.Int64()), 600, 10**9)
    for day, rows in days.items():
        at = datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)
        answers = scorer.predict(rows)
        writer.append([(at, "r", row["customer_id"], {f: row[f] for f in features}, *answer, "churn_demo_model",
                        scorer.model_version, "champion", False, "ok", 2.0)
                       for row, answer in zip(rows.iter_rows(named=True), answers, strict=True)])
    writer.append(extra or [])
    writer.close()


def test_prediction_profiles_say_when_nothing_was_served(served):
    target, defs, _ = served
    metadata, check = _profile_predictions(defs)
    assert metadata["logged_predictions"] == 0
    assert metadata["prediction_log"].startswith(f"empty: no predictions are logged under {target.root}")
    assert pl.read_parquet(target.table("monitoring", "prediction_drift")).height == 0
    assert check.passed and check.description == "no logged predictions with a model score: nothing to judge"


def test_a_day_serving_only_high_risk_customers_warns_of_prediction_drift(served):
    from mlplatform.core.datasets import model_features
    from mlplatform.stage_io import load_split

    target, defs, scorer = served
    platform = defs.resources["platform"]
    train = load_split(platform).train
    risk = pl.Series([probability for _, probability in scorer.predict(train)])
    high_risk = train.filter(risk >= risk.quantile(0.8))  # a day whose traffic is the riskiest fifth
    _serve(target, scorer, model_features(platform.brief), {"2025-10-01": train, "2025-10-02": high_risk})
    _, check = _profile_predictions(defs)
    drift = pl.read_parquet(target.table("monitoring", "prediction_drift"))
    kl = dict(zip(drift["period"], drift["kl"], strict=True))
    limit = platform.brief.thresholds.max_prediction_kl
    assert kl["2025-10-01"] < limit < kl["2025-10-02"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.description.startswith(f"prediction drift above KL {limit} on 1 day(s): 2025-10-02 version "
                                         f"{scorer.model_version} (KL {kl['2025-10-02']:.3f}, "
                                         f"{high_risk.height} predictions)")


def test_logged_predictions_are_profiled_per_day_with_prediction_drift_against_training(served):
    from datetime import UTC, datetime

    import numpy as np

    from mlplatform.core.datasets import model_features
    from mlplatform.core.drift import prediction_drift_kl
    from mlplatform.stage_io import load_split

    target, defs, scorer = served
    platform = defs.resources["platform"]
    features = model_features(platform.brief)
    train = load_split(platform).train
    frame = pl.read_parquet(target.table("training", "training_set"))
    drifted = frame.filter(pl.col("snapshot_date").cast(pl.Date) >= platform.brief.monitoring.current_start)
    days = {"2025-10-01": train, "2025-10-02": drifted}
    # The second day also has rules fallbacks and a failed request: profiled, but carrying no model score.
    late = datetime(2025, 10, 2, 13, tzinfo=UTC)
    _serve(target, scorer, features, days, extra=[
        (late, "f", 1, {f: None for f in features}, 1.0, 0.5, "rules", None, "champion", True, "ok", 1.0),
        (late, "e", 2, {f: None for f in features}, None, None, "churn_demo_model", scorer.model_version,
         "champion", False, "error", 1.0)])

    metadata, check = _profile_predictions(defs)
    assert (metadata["logged_predictions"], metadata["days"]) == (train.height + drifted.height + 2, 2)
    summary = pl.read_parquet(target.table("profiles", "predictions"))
    assert summary["day"].unique().sort().to_list() == list(days)
    first = {r["column"]: r for r in summary.filter(pl.col("day") == "2025-10-01").to_dicts()}
    assert set(first) == {*features, "prediction", "probability"}
    assert first["customer_tenure_days"]["mean"] == pytest.approx(train["customer_tenure_days"].mean(), rel=1e-9)
    second = {r["column"]: r for r in summary.filter(pl.col("day") == "2025-10-02").to_dicts()}
    assert (second["probability"]["count"], second["probability"]["null_count"]) == (drifted.height + 2, 1)
    merged = merge_profiles(read_profile(target.profiles_dir / "predictions" / f"{day}.bin") for day in days)
    assert profile_summary(merged).filter(pl.col("column") == "prediction")["count"][0] == metadata[
        "logged_predictions"]

    drift = pl.read_parquet(target.table("monitoring", "prediction_drift"))
    assert drift.select("period", "model_version", "rows").rows() == [
        ("2025-10-01", scorer.model_version, train.height), ("2025-10-02", scorer.model_version, drifted.height)]
    # The reference is what the served version answers on the training rows: served the same rows, KL is 0.
    assert drift["kl"][0] == pytest.approx(0.0, abs=1e-12)
    reference = np.array([probability for _, probability in scorer.predict(train)])
    served_scores = np.array([probability for _, probability in scorer.predict(drifted)])
    assert drift["kl"][1] == pytest.approx(prediction_drift_kl(reference, served_scores), rel=1e-12)
    assert drift["kl"][1] > 0  # the monitored months move the demo's scores a little (KL ~0.007)
    assert check.passed and check.description.startswith("every judged day is within KL 0.1")


def test_a_monitored_period_whose_labels_have_not_arrived_waits_for_them(served):
    """Labels come after their delay: a monitoring run over a batch without labels yet records that it waits
    (the run succeeds, the concept-drift check passes saying so, the performance sensor does not retrain)."""
    from mlplatform.core import tables
    from mlplatform.core.drift import AWAITING_LABELS
    from mlplatform.core.retraining import performance_trigger
    from mlplatform.defs.monitoring import concept_drift_check, performance_report

    target, defs, _ = served
    path = target.table(tables.TRAINING_SET)
    training = pl.read_parquet(path)
    labelled = training.filter(pl.col("snapshot_date") < pl.date(2025, 9, 1))  # the monitored months' labels are late
    labelled.write_parquet(path)
    result = dg.materialize([performance_report, concept_drift_check], resources=defs.resources)
    [check] = result.get_asset_check_evaluations()
    metadata = {k: v.value for k, v in result.asset_materializations_for_node("performance_report")[0].metadata.items()}
    assert metadata["severity"] == AWAITING_LABELS and metadata["labelled_rows"] == 0
    assert metadata["reason"].startswith("no labelled rows between 2025-09-01 and 2025-11-01 yet")
    assert check.passed and check.description.startswith("awaiting labels")
    row = pl.read_parquet(target.table(tables.PERFORMANCE)).row(0, named=True)
    assert performance_trigger(row) is None
