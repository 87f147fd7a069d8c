"""The model-family registry: each family saves and loads through what the registry names, a saved folder is
loaded by the family whose marker it holds, and the training stage generates one candidate asset per family."""

import numpy as np
import pytest

from mlplatform import asset_names
from mlplatform.core.fairness import GroupThresholdModel, GroupThresholds
from mlplatform.core.model_families import (
    FAMILIES_BY_NAME,
    LIGHTGBM,
    LIGHTGBM_REWEIGHED,
    LIGHTGBM_THRESHOLD_OPTIMIZER,
    MITIGATION_CANDIDATES,
    MODEL_FAMILIES,
    SAVED_FORMS,
    TORCH,
    model_dir,
)
from mlplatform.core.models import load_candidate
from mlplatform.core.selection import DEEP_CANDIDATES, SIMPLE_REFERENCE
from mlplatform_tests.core.test_pyfunc import TEST, train


def _group_threshold_model() -> GroupThresholdModel:
    base = train("lightgbm", "binary")
    groups = GroupThresholds(["plan"], {"basic": 0.3, "premium": 0.7}, 0.5, "demographic_parity")
    return GroupThresholdModel(base, groups, LIGHTGBM_THRESHOLD_OPTIMIZER.name)


@pytest.mark.parametrize("family", [LIGHTGBM, TORCH, LIGHTGBM_REWEIGHED, LIGHTGBM_THRESHOLD_OPTIMIZER],
                         ids=lambda f: f.name)
def test_each_family_saves_and_loads_through_the_registry(family, tmp_path):
    model = (_group_threshold_model() if family is LIGHTGBM_THRESHOLD_OPTIMIZER
             else train("torch" if family is TORCH else "lightgbm", "binary"))
    folder = family.save(model, family.directory(tmp_path))
    assert folder == tmp_path / family.name == model_dir(tmp_path, family.name)
    assert (folder / family.artifact).is_file()
    for loaded in (family.load(folder), load_candidate(folder)):  # its own loader, and the marker's dispatch
        assert type(loaded) is type(model)
        np.testing.assert_allclose(loaded.predict_score(TEST), model.predict_score(TEST), rtol=1e-5, atol=1e-6)


def test_a_folder_without_a_family_s_marker_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no saved model"):
        load_candidate(tmp_path)
    with pytest.raises(KeyError):
        model_dir(tmp_path, "majority")  # a baseline is not a model family: it has no folder


def test_the_registry_is_consistent():
    assert [f.name for f in MODEL_FAMILIES] == list(FAMILIES_BY_NAME)
    assert len({f.asset for f in MODEL_FAMILIES}) == len(MODEL_FAMILIES)
    assert {f.asset for f in MODEL_FAMILIES} <= {v for k, v in vars(asset_names).items() if k.isupper()}
    assert set(SAVED_FORMS) <= set(MODEL_FAMILIES)
    # every family's saved folder is recognised, by its own marker or a saved form sharing its loader
    assert all(any(f.artifact == s.artifact and f.loader == s.loader for s in SAVED_FORMS) for f in MODEL_FAMILIES)
    mitigations = dict(MITIGATION_CANDIDATES)
    assert mitigations == {"reweigh": LIGHTGBM_REWEIGHED.name, "threshold_optimizer": LIGHTGBM_THRESHOLD_OPTIMIZER.name}
    reference, deep = SIMPLE_REFERENCE, set(DEEP_CANDIDATES)
    assert reference == LIGHTGBM.name
    assert deep == {TORCH.name}


def test_the_training_stage_generates_one_candidate_asset_per_family():
    from mlplatform.defs import training

    assert set(training.FITS) == set(FAMILIES_BY_NAME)
    for family in MODEL_FAMILIES:
        asset = training.CANDIDATES[family.name]
        assert asset.key.to_user_string() == family.asset
        assert {key.to_user_string() for key in asset.dependency_keys} == {family.starts_from}
        assert set(asset.specs_by_key[asset.key].kinds) == set(family.kinds)
        # described by its family's fit, as the hand-written asset was by its docstring
        assert asset.descriptions_by_key[asset.key].split() == training.FITS[family.name].__doc__.split()
