"""Blocking gates hold across runs: a child materialised in a later run than its gate's failure is refused, on a
persistent Dagster instance; once the gate passes again, the child runs."""

import json

import dagster as dg
import polars as pl
import pytest

from mlplatform.brief import DEMO_BRIEF
from mlplatform.core.demo_data import generate_demo
from mlplatform.definitions import build_definitions
from mlplatform.resources.gates import blocking_gate_edges
from mlplatform.resources.platform import PlatformResource
from mlplatform.runner import run_graph
from mlplatform.settings import Settings
from mlplatform_tests.defs.test_quality_gate import degrade


@dg.asset
def scores(platform: PlatformResource) -> None:
    platform.write_table("test", "scores", pl.DataFrame({"x": [1, 2, 3]}))


@dg.asset_check(asset=scores, blocking=True)
def scores_gate(platform: PlatformResource) -> dg.AssetCheckResult:
    """Passes while the table holds no negative value."""
    low = platform.read_table("test", "scores")["x"].min()
    return dg.AssetCheckResult(passed=low >= 0, description=f"lowest score {low}")


@dg.asset(deps=[scores])
def report(platform: PlatformResource) -> None:
    platform.write_table("test", "report", platform.read_table("test", "scores"))


def _run_failure(result: dg.ExecuteInProcessResult) -> str:
    error = result.get_run_failure_event().job_failure_data.error
    while error is not None and error.cause is not None:
        error = error.cause
    return error.message if error else ""


def test_a_child_alone_is_refused_after_its_gate_failed_in_an_earlier_run_and_runs_after_it_passes(tmp_path):
    edges = blocking_gate_edges([scores, report], [scores_gate])
    assert edges == [["report", "scores", "scores_gate"]]
    platform = PlatformResource(data_dir=str(tmp_path), brief_path=str(DEMO_BRIEF), gate_edges=json.dumps(edges))
    table = platform.workspace.table("test", "scores")
    everything = [scores, scores_gate, report]
    with dg.instance_for_test() as instance:
        def materialise(selection):
            return dg.materialize(everything, instance=instance, resources={"platform": platform},
                                  selection=selection, raise_on_error=False)

        # Run 1 writes good scores; then bad data arrives and the gate fails in its run (which stops there).
        assert materialise(None).success
        scores_gate_key = dg.AssetCheckKey(dg.AssetKey("scores"), "scores_gate")
        pl.DataFrame({"x": [-5, 2]}).write_parquet(table)
        failed = materialise(dg.AssetSelection.checks(scores_gate_key))
        assert not failed.get_asset_check_evaluations()[0].passed
        # Run 3 materialises the child alone: Dagster's own blocking would let it through; the platform refuses.
        alone = materialise(dg.AssetSelection.assets("report"))
        assert not alone.success
        message = _run_failure(alone)
        assert (f"report needs the blocking gate scores_gate on scores to pass, and its latest evaluation failed in "
                f"run {failed.run_id}: lowest score -5") in message
        assert "materialise scores with its checks" in message
        assert platform.read_table("test", "report")["x"].to_list() == [1, 2, 3]  # run 1's, not the bad rows
        # An unrelated selection is not held up by the gate.
        assert materialise(dg.AssetSelection.assets("scores")).success
        # With the gate in the same run, Dagster judges it there: it passes on the rewritten scores, report runs.
        assert materialise(None).success
        assert materialise(dg.AssetSelection.assets("report")).success


@pytest.mark.slow
def test_features_daily_alone_is_refused_after_the_data_quality_gate_failed(tmp_path):
    clean = tmp_path / "clean" / "inputs" / "churn_demo"
    generate_demo(clean, n_events=10_000, seed=3)
    degrade(clean, tmp_path / "data" / "inputs" / "churn_demo")
    settings = Settings(data_dir=tmp_path / "data", brief_path=DEMO_BRIEF)
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        outcome = run_graph(settings, instance=instance, progress=lambda line: None, until="quality")
        assert outcome.stopped_by == "gate data_quality_gate"
        later = dg.materialize([*defs.assets, *defs.asset_checks], instance=instance, resources=defs.resources,
                               selection=dg.AssetSelection.assets("features_daily"), raise_on_error=False)
    assert not later.success
    assert later.get_asset_materialization_events() == []
    message = _run_failure(later)
    assert "features_daily needs the blocking gate data_quality_gate on data_quality_report to pass" in message
    assert "its latest evaluation failed in run " in message
