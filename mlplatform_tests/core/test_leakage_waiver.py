"""The single-feature leakage check (checklist item 4) on scikit-learn's breast-cancer table: genuine
measurements that alone reach a hold-out ROC-AUC > 0.95 stop it with a message naming both ways on, and a
waiver in the brief lets them through, recorded as WAIVED with its reason."""

import numpy as np
import polars as pl
import pytest
import yaml

from mlplatform.brief import BriefError, load_brief
from mlplatform.core.leakage import check_no_target_derived_feature
from mlplatform_tests.defs.plain_table import write_plain_table_brief

REASON = "measured on the biopsy image before diagnosis; not computed from it"


@pytest.fixture(scope="module")
def cancer_split() -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    from sklearn.datasets import load_breast_cancer

    frame = pl.from_pandas(load_breast_cancer(as_frame=True).frame)
    frame = frame.rename({c: c.replace(" ", "_") for c in frame.columns})
    test = pl.Series(np.random.default_rng(0).random(frame.height) < 0.3)
    return frame.filter(~test), frame.filter(test), [c for c in frame.columns if c != "target"]


def check(split, allowed=None):
    train, test, features = split
    return check_no_target_derived_feature(train, test, features=features, label="target", task="binary",
                                           threshold=0.95, allowed=allowed)


def test_genuine_but_very_predictive_measurements_stop_the_check_naming_both_ways_on(cancer_split):
    finding = check(cancer_split)
    above = finding.evidence["scores_above_threshold"]
    assert not finding.passed and "worst_perimeter" in above and len(above) >= 3
    assert finding.evidence["flagged"] == list(above) and finding.evidence["waived"] == {}
    assert f"worst_perimeter {above['worst_perimeter']:.3f}" in finding.detail
    assert "drop it, or rebuild it" in finding.detail  # way one: fix the feature
    assert "leakage: {allowed_predictive_features: [{feature: " in finding.detail  # way two: declare it


def test_a_waiver_with_its_reason_lets_each_named_feature_through(cancer_split):
    above = check(cancer_split).evidence["scores_above_threshold"]
    *waived, last = above
    partly = check(cancer_split, {name: REASON for name in waived})
    assert not partly.passed and partly.evidence["flagged"] == [last]
    assert f"WAIVED {waived[0]}" in partly.detail  # the waivers are reported beside what still stops it

    finding = check(cancer_split, {name: REASON for name in above})
    assert finding.passed and finding.evidence["flagged"] == []
    assert finding.evidence["waived"]["worst_perimeter"] == {"score": above["worst_perimeter"], "reason": REASON}
    assert finding.detail.startswith("WAIVED ") and REASON in finding.detail


def test_the_brief_takes_a_waiver_by_column_or_feature_name_and_refuses_one_without_a_reason(tmp_path):
    path = write_plain_table_brief(tmp_path)
    raw = yaml.safe_load(path.read_text())

    def with_waivers(*waivers: dict):
        path.write_text(yaml.safe_dump({**raw, "leakage": {"allowed_predictive_features": list(waivers)}}))
        return load_brief(path)

    brief = with_waivers({"feature": "size", "reason": REASON}, {"feature": "row_colour", "reason": "a fact"})
    assert brief.leakage.allowed(["row_size", "row_colour"], brief.entity) == {"row_size": REASON,
                                                                               "row_colour": "a fact"}
    with pytest.raises(BriefError, match="names weight, which is not a model input"):
        with_waivers({"feature": "weight", "reason": REASON})
    with pytest.raises(BriefError, match="needs its reason written out"):
        with_waivers({"feature": "size", "reason": "TODO: why it is known before the label"})
