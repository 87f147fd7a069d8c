"""The CLI's runs belong to the graph's named jobs, so the UI's Jobs and Runs pages list them with their history."""

import dagster as dg

from mlplatform.brief import DEMO_BRIEF
from mlplatform.core.demo_data import generate_demo
from mlplatform.definitions import build_definitions
from mlplatform.runner import PARTITION_NAME_TAG, job_for, run_graph
from mlplatform.settings import Settings


def test_each_selection_runs_under_the_job_that_holds_it(tmp_path):
    defs = build_definitions(Settings(tmp_path, DEMO_BRIEF))
    assert job_for(defs, {dg.AssetKey("raw_events")}).name == "ingest_job"
    assert job_for(defs, {dg.AssetKey("problem_brief"), dg.AssetKey("model_card")}).name == "full_run"
    # A selection no named job holds whole (a batch with the stage after it) has no job: an unnamed run.
    assert job_for(defs, {dg.AssetKey("raw_events"), dg.AssetKey("problem_brief")}) is None


def test_the_cli_runs_are_runs_of_full_run_and_ingest_job(tmp_path):
    generate_demo(tmp_path / "inputs" / "churn_demo", n_events=10_000, seed=7)
    with dg.instance_for_test() as instance:
        outcome = run_graph(Settings(tmp_path, DEMO_BRIEF), instance=instance, progress=lambda _: None,
                            until="ingestion")
        assert outcome.ok, outcome.reason
        runs = instance.get_runs()
        assert {run.job_name for run in runs} == {"full_run", "ingest_job"}
        batches = [run for run in runs if run.job_name == "ingest_job"]
        # One run per monthly batch, each tagged with its partition, so the UI shows it on the partition's page.
        assert batches and all(PARTITION_NAME_TAG in run.tags or any("range_start" in tag for tag in run.tags)
                               for run in batches)
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
