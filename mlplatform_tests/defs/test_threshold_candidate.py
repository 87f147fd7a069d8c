"""The per-group threshold candidate (fairness.mitigation threshold_optimizer) as an asset: materialised with its
real upstream (ingestion, quality, features, Feast, training set, LightGBM) on a small generated demo, it
reads the served age band, saves one threshold per band, and selects every band at about the same rate on the
validation rows it was fitted on, where the LightGBM it post-processes does not."""

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from mlplatform.brief import DEMO_BRIEF
from mlplatform.core.datasets import split_training_set
from mlplatform.core.demo_data import AGE_BANDS, generate_demo
from mlplatform.core.evaluation.fairness_assessment import group_fairness
from mlplatform.core.fairness import GROUP_THRESHOLDS_FILE
from mlplatform.core.models import load_candidate
from mlplatform.definitions import build_definitions
from mlplatform.runner import run_graph
from mlplatform.settings import Settings


@pytest.fixture(scope="module")
def materialised(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    generate_demo(data_dir / "inputs" / "churn_demo", n_events=60_000, seed=7)
    # The demo brief, trained quickly: LightGBM's defaults, no torch network.
    text = DEMO_BRIEF.read_text()
    assert "\ntraining:\n" in text
    brief = data_dir / "churn_demo.yaml"
    brief.write_text(text.replace("\ntraining:\n", "\ntraining:\n  tuning_trials: 0\n  torch: false\n"))
    settings = Settings(data_dir=data_dir, brief_path=brief)
    with dg.instance_for_test() as instance:
        outcome = run_graph(settings, instance=instance, progress=lambda _: None, until="training")
        event = instance.get_latest_materialization_event(dg.AssetKey("lgbm_threshold_model"))
    assert outcome.stopped_by is None, outcome.reason
    return settings, build_definitions(settings), event.asset_materialization.metadata


def _impact(model, frame) -> float:
    scores = model.predict_score(frame)
    return group_fairness(frame["age_band"], frame["churned"].to_numpy(), scores >= model.threshold,
                          50).disparate_impact


def test_the_threshold_candidate_saves_one_threshold_per_served_age_band(materialised):
    settings, _, metadata = materialised
    models = settings.data_dir / "churn_demo" / "models"
    saved = json.loads((models / "lightgbm_threshold_optimizer" / GROUP_THRESHOLDS_FILE).read_text())
    assert saved["columns"] == ["customer_age_band"]  # the served feature column, so the API can apply it
    assert saved["constraint"] == "demographic_parity"
    assert sorted(saved["thresholds"]) == AGE_BANDS
    # The young's short sessions raise their scores: parity needs a higher bar for them than for the 65+.
    assert saved["thresholds"]["18-24"] > saved["thresholds"]["65+"]
    assert metadata["group_thresholds"].value == pytest.approx(saved["thresholds"], rel=1e-3)  # rounded to read
    assert metadata["run_id"].value


def test_the_threshold_candidate_selects_the_bands_alike_where_its_base_model_does_not(materialised):
    settings, defs, _ = materialised
    platform = defs.resources["platform"]
    split = split_training_set(platform.brief, platform.read_table("training", "training_set"))
    models = settings.data_dir / "churn_demo" / "models"
    base, mitigated = (load_candidate(models / name) for name in ("lightgbm", "lightgbm_threshold_optimizer"))
    assert _impact(base, split.validation) < 0.8 <= _impact(mitigated, split.validation)
    # Within a band the ranking is the base model's: the shift is one constant per band.
    young = split.validation.filter(split.validation["age_band"] == "18-24")
    shift = base.predict_score(young) - mitigated.predict_score(young)
    inside = (mitigated.predict_score(young) > 0) & (mitigated.predict_score(young) < 1)
    assert np.allclose(shift[inside], shift[inside][0])
    # The candidate's validation and test metrics are recorded like every other candidate's.
    summary = platform.read_table("candidates", "lightgbm_threshold_optimizer")
    assert sorted(summary["split"]) == ["test", "validation"]


def test_without_the_served_age_band_the_candidate_names_what_is_missing(materialised):
    settings, defs, _ = materialised
    platform = defs.resources["platform"]
    split = split_training_set(platform.brief, platform.read_table("training", "training_set"))
    model = load_candidate(Path(settings.data_dir) / "churn_demo" / "models" / "lightgbm_threshold_optimizer")
    with pytest.raises(ValueError, match="customer_age_band"):
        model.predict_score(split.validation.drop("customer_age_band"))
