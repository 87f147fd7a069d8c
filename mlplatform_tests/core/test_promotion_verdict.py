"""One promotion verdict: the gate's final word (set_verdict) reaches both the run's MLflow tag and its
experiment record, so the model card never shows two."""

from mlplatform.core.tracking import ExperimentRecord, experiment_record, log_experiment, set_verdict
from mlplatform.defs.reporting import promotion_verdict


def _record() -> ExperimentRecord:
    return ExperimentRecord(hypothesis="activity predicts churn", dataset_version="abc123", features_used=["x"],
                            model_type="lightgbm", hyperparameters={"num_leaves": 31}, training_time_s=1.0,
                            primary_metric={"f1": 0.6}, secondary_metrics={}, baseline_comparison="f1 +0.1",
                            verdict="iterate")


def test_the_final_verdict_is_the_same_in_the_tag_and_the_experiment_record(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = log_experiment(uri, tmp_path / "artifacts", "churn", _record(), None)
    assert experiment_record(uri, run_id)["verdict"] == "iterate"  # at training, before the gate decides
    set_verdict(uri, run_id, "promoted")
    record = experiment_record(uri, run_id)
    assert record["verdict"] == "promoted"
    assert record["hypothesis"] == "activity predicts churn" and record["run_id"] == run_id  # the rest is kept
    assert promotion_verdict(uri, run_id).startswith("promoted (experiment ")
    set_verdict(uri, run_id, "archived")  # e.g. a canary aborted later
    assert experiment_record(uri, run_id)["verdict"] == "archived"
    assert promotion_verdict(uri, run_id).startswith("archived")
