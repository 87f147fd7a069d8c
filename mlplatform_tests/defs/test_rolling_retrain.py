"""Retraining on the latest months: once new labelled months arrive, a rolling split trains the challenger on
newer data and the promotion gate judges it and the champion on the same, newest hold-out."""

import shutil

import dagster as dg
import numpy as np
import polars as pl
import pytest
import yaml

from mlplatform.brief import DEMO_BRIEF
from mlplatform.settings import Settings, Workspace

STAGES = ["training", "evaluation", "registry"]


def _rolling_brief(folder, partition_end: str):
    """The demo brief with a rolling split (6 training months, then one month each), labels known as of
    ``partition_end``, untuned LightGBM only (quick)."""
    raw = yaml.safe_load(DEMO_BRIEF.read_text())
    raw["partition_end"] = partition_end
    raw["split"] = {"rolling": True, "train_months": 6}
    raw["training"] = {"tuning_trials": 0, "torch": False}
    # This test judges which months the hold-out covers; the fairness gate is judged by the demo's own run.
    raw["fairness"]["waivers"] = [{"attribute": "age_band", "metric": metric, "reason": "a one-month rolling hold-out "
                                   "checked for its window only; fairness is gated on the demo's four-month hold-out"}
                                  for metric in ("disparate_impact", "equal_opportunity")]
    path = folder / f"rolling_{partition_end}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _retrain(settings: Settings):
    """Training set to promotion gate (and champion) for ``settings``, in-process; the gate's evaluation."""
    from mlplatform.definitions import build_definitions

    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    keys = [k for k in graph.get_all_asset_keys() if graph.get(k).group_name in STAGES]
    with dg.instance_for_test() as instance:
        result = dg.materialize([*defs.assets, *defs.asset_checks], instance=instance, resources=defs.resources,
                                selection=dg.AssetSelection.assets(*keys) | dg.AssetSelection.checks_for_assets(*keys),
                                raise_on_error=False)
    gates = [e for e in result.get_asset_check_evaluations() if e.check_name == "promotion_gate"]
    assert len(gates) == 1, [str(e.step_failure_data.error) for e in result.get_step_failure_events()]
    return defs, gates[0]


def _hold_out_months(ws: Workspace) -> set[str]:
    dates = pl.read_parquet(ws.table("evaluation", "predictions"))["snapshot_date"]
    return set(dates.dt.strftime("%Y-%m").unique())


@pytest.fixture()
def data_dir(demo_run, demo_settings, tmp_path):
    """The demo's inputs, lake and features with an empty model registry (the runs below make the champion)."""
    target = tmp_path / "data"
    shutil.copytree(demo_settings.data_dir, target, ignore=shutil.ignore_patterns("mlflow", "dagster_home"))
    return target


def test_a_retrain_after_new_labels_is_judged_on_a_newer_hold_out_than_the_champion(data_dir, tmp_path):
    from mlplatform.core.metrics import compute_metrics
    from mlplatform.core.tracking import get_alias_version
    from mlplatform.stage_io import load_champion, load_split, scored_hold_out

    ws = Workspace(data_dir, "churn_demo")
    # Labels known until September: the first model is trained up to July and judged on August.
    _, first_gate = _retrain(Settings(data_dir=data_dir, brief_path=_rolling_brief(tmp_path, "2025-09-01")))
    assert first_gate.passed, first_gate.description
    champion = get_alias_version(ws.mlflow_uri, "churn_demo_model", "champion")
    assert _hold_out_months(ws) == {"2025-08"}

    # Two more labelled months arrive: the same brief now trains up to September and holds out October.
    defs, gate = _retrain(Settings(data_dir=data_dir, brief_path=_rolling_brief(tmp_path, "2025-11-01")))
    assert _hold_out_months(ws) == {"2025-10"}
    split = load_split(defs.resources["platform"])
    assert split.train["snapshot_date"].min().strftime("%Y-%m") == "2025-03"  # the latest 6 months only
    assert split.validation["snapshot_date"].dt.strftime("%Y-%m").unique().to_list() == ["2025-09"]

    # The gate re-scored the champion on that newest hold-out: the same numbers as scoring it here.
    evidence = gate.metadata["evidence"].value
    version, model = load_champion(defs.resources["platform"], defs.resources["tracking"])
    assert version == champion
    scored, _ = scored_hold_out(defs.resources["platform"], split)  # quarantined entities set apart, as the gate
    expected = compute_metrics("binary", scored.test["churned"].to_numpy(), model.predict_score(scored.test),
                               model.threshold)
    for metric in ("f1", "pr_auc", "roc_auc"):
        assert evidence["champion"][metric] == pytest.approx(expected[metric], rel=1e-9), metric
    assert not np.isclose(evidence["champion"]["f1"], evidence["challenger"]["f1"], rtol=1e-9)
    # Promoted or refused, the gate says why.
    promoted = get_alias_version(ws.mlflow_uri, "churn_demo_model", "champion")
    if gate.passed:  # promoted at once, or (monitoring.retrain_rollout: canary, the default) put in a canary
        challenger = get_alias_version(ws.mlflow_uri, "churn_demo_model", "challenger")
        assert gate.description == "promote" and (promoted != champion or challenger not in (None, champion))
    else:
        assert gate.description.startswith("blocked: FAIL") and promoted == champion
