from datetime import date

import numpy as np
import polars as pl
import pytest
import yaml

from mlplatform.core.tracking import (
    ExperimentRecord,
    client_for,
    dataset_version,
    download_model_version,
    experiment_id_for,
    get_alias_version,
    log_experiment,
    log_tuning_trials,
    register_model,
    set_alias,
)
from mlplatform.core.training import load_model, save_model, train_lightgbm
from mlplatform.core.tuning import SEARCH_PARAMS, tune_lightgbm

DAY = date(2025, 9, 1)


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    """One SQLite backend for the module: creating it runs MLflow's migrations, which take seconds."""
    root = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{root / 'mlflow.db'}", root / "artifacts"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = rng.normal(size=600)
    frame = pl.DataFrame({"x": x, "plan": rng.choice(["a", "b"], 600), "y": (x + rng.normal(size=600) > 0)})
    model = train_lightgbm("binary", frame[:400], frame[400:], ["x", "plan"], "y")
    return save_model(model, tmp_path_factory.mktemp("model") / "lgbm")


def record(verdict="iterate") -> ExperimentRecord:
    return ExperimentRecord(
        hypothesis="activity predicts churn",
        dataset_version="abc123",
        features_used=["x", "plan"],
        model_type="lightgbm",
        hyperparameters={"learning_rate": np.float64(0.05), "num_leaves": 31},
        training_time_s=1.25,
        primary_metric={"f1": 0.61},
        secondary_metrics={"pr_auc": 0.55, "roc_auc": 0.8},
        baseline_comparison="f1 +0.12 vs rules",
        verdict=verdict,
        notes="first run",
        artifacts={"report": "reports/evaluation.md"},
    )


def test_log_experiment_writes_the_method_template(backend, model_dir, tmp_path, monkeypatch):
    uri, artifacts = backend
    monkeypatch.chdir(tmp_path)  # a stray default ./mlruns would appear here
    run_id = log_experiment(uri, artifacts, "churn_log", record(), model_dir, day=DAY)
    client = client_for(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"learning_rate": "0.05", "num_leaves": "31"}
    assert run.data.metrics == {"f1": 0.61, "pr_auc": 0.55, "roc_auc": 0.8, "training_time_s": 1.25}
    tags = run.data.tags
    assert tags["exp_id"] == "EXP-2025-09-01-001" == run.info.run_name
    assert (tags["verdict"], tags["dataset_version"], tags["model_type"]) == ("iterate", "abc123", "lightgbm")
    assert tags["hypothesis"] == "activity predicts churn"
    assert tags["baseline_comparison"] == "f1 +0.12 vs rules"
    assert run.info.artifact_uri.startswith(artifacts.resolve().as_uri())
    document = yaml.safe_load((artifacts.resolve() / run_id / "artifacts" / "experiment.yaml").read_text())
    experiment = document["experiment"]
    assert experiment["id"] == "EXP-2025-09-01-001"
    assert experiment["metrics"] == {"primary": {"f1": 0.61}, "secondary": {"pr_auc": 0.55, "roc_auc": 0.8}}
    assert experiment["hyperparameters"]["learning_rate"] == 0.05
    assert experiment["features_used"] == ["x", "plan"]
    assert experiment["artifacts"] == {"report": "reports/evaluation.md", "model_path": f"runs:/{run_id}/model",
                                       "pyfunc_model": f"runs:/{run_id}/pyfunc"}
    assert {"dataset_version", "model_type", "training_time", "baseline_comparison", "verdict", "notes"} <= set(
        experiment
    )
    logged = {item.path for item in client.list_artifacts(run_id, "model")}
    assert logged == {"model/model.json", "model/model.txt"}
    assert not (tmp_path / "mlruns").exists()


def test_experiment_ids_count_up_per_day(backend):
    uri, artifacts = backend
    client = client_for(uri)
    assert experiment_id_for(client, "churn_ids", DAY) == "EXP-2025-09-01-001"  # experiment not created yet
    for expected in ("EXP-2025-09-01-001", "EXP-2025-09-01-002"):
        run_id = log_experiment(uri, artifacts, "churn_ids", record("archived"), None, day=DAY)
        assert client.get_run(run_id).data.tags["exp_id"] == expected
    assert experiment_id_for(client, "churn_ids", date(2025, 9, 2)) == "EXP-2025-09-02-001"
    assert experiment_id_for(client, "churn_ids", DAY) == "EXP-2025-09-01-003"


def test_registry_versions_and_aliases_move(backend, model_dir, tmp_path):
    uri, artifacts = backend
    runs = [log_experiment(uri, artifacts, "churn_registry", record(), model_dir, day=DAY) for _ in range(2)]
    assert get_alias_version(uri, "churn_model", "champion") is None  # no such model yet
    first = register_model(uri, "churn_model", runs[0], "model")
    second = register_model(uri, "churn_model", runs[1], "model")
    assert (first, second) == ("1", "2")
    assert get_alias_version(uri, "churn_model", "champion") is None  # model exists, alias does not
    set_alias(uri, "churn_model", "champion", first)
    set_alias(uri, "churn_model", "challenger", second)
    assert get_alias_version(uri, "churn_model", "champion") == "1"
    set_alias(uri, "churn_model", "champion", second)  # promotion moves the alias
    assert get_alias_version(uri, "churn_model", "champion") == "2"
    assert get_alias_version(uri, "churn_model", "challenger") == "2"
    folder = download_model_version(uri, "churn_model", first, tmp_path / "champion")
    frame = pl.DataFrame({"x": [-1.0, 0.0, 2.0], "plan": ["a", "b", "zzz"]})
    np.testing.assert_allclose(load_model(folder).predict_score(frame), load_model(model_dir).predict_score(frame))


def test_bad_arguments_are_refused(backend):
    uri, artifacts = backend
    with pytest.raises(ValueError, match="verdict must be"):
        log_experiment(uri, artifacts, "churn_bad", record("shipped"), None)
    with pytest.raises(ValueError, match="tracking_uri is empty"):
        client_for("")


def test_dataset_version_ignores_column_and_row_order_but_not_content():
    frame = pl.DataFrame({"id": [1, 2, 3], "x": [0.5, None, 2.0], "s": ["a", "b", None]})
    version = dataset_version(frame)
    assert len(version) == 16
    assert dataset_version(frame.select(["s", "x", "id"]).reverse()) == version
    assert dataset_version(frame.with_columns(pl.col("x").fill_null(0.0))) != version
    assert dataset_version(frame.with_columns(pl.col("id").cast(pl.Float64))) != version
    assert dataset_version(frame.head(2)) != version


def test_file_dataset_version_is_the_frames_computed_once_per_file_version(tmp_path, monkeypatch):
    from mlplatform.core import tracking
    from mlplatform.core.io import write_parquet_atomic

    frame = pl.DataFrame({"id": [3, 1, 2], "x": [0.5, None, 2.0], "s": ["a", "b", None],
                          "at": [date(2025, 1, d) for d in (1, 2, 3)]})
    frame = frame.with_columns(pl.col("at").cast(pl.Datetime("us")))
    path = write_parquet_atomic(frame, tmp_path / "t.parquet")
    # What a reader of the file gets, whether the version comes from the file or from the frame just written.
    assert tracking.file_dataset_version(path) == dataset_version(frame)
    other = write_parquet_atomic(frame, tmp_path / "u.parquet")
    assert tracking.file_dataset_version(other, frame) == tracking.file_dataset_version(path)
    hashed = []
    monkeypatch.setattr(tracking, "dataset_version", lambda f: hashed.append(f) or "v")
    assert tracking.file_dataset_version(path) == dataset_version(frame)  # known: not hashed again
    write_parquet_atomic(frame.head(2), path)  # a rewrite is a new file version
    assert tracking.file_dataset_version(path) == "v" and len(hashed) == 1


def test_extra_tags_and_the_final_verdict_are_recorded(backend):
    from mlplatform.core.tracking import set_verdict

    uri, artifacts = backend
    run_id = log_experiment(uri, artifacts, "churn_verdict", record(), None, day=DAY,
                            tags={"dagster_run_id": "abc123"})
    client = client_for(uri)
    assert client.get_run(run_id).data.tags["dagster_run_id"] == "abc123"
    set_verdict(uri, run_id, "promoted")
    assert client.get_run(run_id).data.tags["verdict"] == "promoted"
    with pytest.raises(ValueError, match="verdict must be"):
        set_verdict(uri, run_id, "shipped")


def test_files_named_in_the_record_are_logged_with_the_run(backend, tmp_path):
    from dataclasses import replace

    uri, artifacts = backend
    plot = tmp_path / "confusion_matrix.png"
    plot.write_bytes(b"\x89PNG\r\n\x1a\n")
    run_id = log_experiment(uri, artifacts, "churn_plots",
                            replace(record(), artifacts={"confusion_matrix": str(plot)}), None, day=DAY)
    logged = [a.path for a in client_for(uri).list_artifacts(run_id, "plots")]
    assert logged == ["plots/confusion_matrix.png"]


def test_tuning_trials_become_child_runs_of_the_candidate_run(backend):
    uri, artifacts = backend
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1500, 3))
    frame = pl.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2],
                          "y": (x[:, 0] * x[:, 1] + rng.normal(size=1500) > 0).astype(int)})
    tuned = tune_lightgbm("binary", frame[:1000], frame[1000:], ["x0", "x1", "x2"], "y", primary_metric="pr_auc",
                          n_trials=7, timeout_s=None, storage_url=None, study_name="children", warmup_rounds=0)
    parent = log_experiment(uri, artifacts, "churn_tuning", record(), None, day=DAY)

    child_ids = log_tuning_trials(uri, parent, tuned.new_trials, "pr_auc", SEARCH_PARAMS)

    client = client_for(uri)
    experiment_id, exp_id = client.get_run(parent).info.experiment_id, client.get_run(parent).data.tags["exp_id"]
    children = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent}'")
    assert sorted(run.info.run_id for run in children) == sorted(child_ids)
    by_trial = {int(run.data.tags["optuna_trial"]): run for run in children}
    states = {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}
    for trial in tuned.new_trials.iter_rows(named=True):
        run = by_trial[trial["number"]]
        assert run.info.run_name == f"{exp_id}-trial-{trial['number']:03d}"
        assert run.data.tags["optuna_state"] == trial["state"]
        assert run.info.status == states[trial["state"]]
        assert run.data.params == {name: str(trial[name]) for name in SEARCH_PARAMS}
        if trial["state"] == "COMPLETE":
            assert run.data.metrics["pr_auc"] == pytest.approx(trial["value"])
        else:
            assert "pr_auc" not in run.data.metrics
        assert run.info.end_time - run.info.start_time == pytest.approx(trial["duration_s"] * 1000, abs=2)
    assert {run.info.status for run in children} == {"FINISHED", "KILLED"}  # the data prunes some trials

    with pytest.raises(ValueError, match=r"lacks columns \['started_at'\]"):
        log_tuning_trials(uri, parent, tuned.new_trials.drop("started_at"), "pr_auc", SEARCH_PARAMS)


def test_log_run_records_a_finished_run_in_an_experiment_that_a_copied_data_directory_can_find(tmp_path):
    from mlplatform.core.tracking import ARTIFACT_ROOT_TAG, client_for, log_run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = log_run(uri, tmp_path / "artifacts" / "qa", "qa", "eval", {"top_k": 10}, {"mrr": 0.5})
    again = log_run(uri, tmp_path / "artifacts" / "qa", "qa", "eval", {}, {})
    client = client_for(uri)
    run = client.get_run(run_id)
    assert (run.data.params, run.data.metrics, run.info.status) == ({"top_k": "10"}, {"mrr": 0.5}, "FINISHED")
    experiment = client.get_experiment(run.info.experiment_id)
    assert client.get_run(again).info.experiment_id == experiment.experiment_id
    assert experiment.tags[ARTIFACT_ROOT_TAG] == "artifacts/qa"
