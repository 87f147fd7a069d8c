"""The brief's fairness section: waivers and mitigation are validated with one clear error naming the fix."""

import pytest
import yaml

from mlplatform.brief import DEMO_BRIEF, BriefError, load_brief


def _brief(tmp_path, served: bool = True, **fairness):
    raw = yaml.safe_load(DEMO_BRIEF.read_text())
    raw["fairness"] = fairness
    if not served:  # the demo serves age_band for its per-band thresholds; a brief may not
        raw["features"]["entity_attributes"].remove("age_band")
    path = tmp_path / "brief.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_brief(path)


def test_defaults_fail_closed_with_the_method_limits(tmp_path):
    brief = _brief(tmp_path)
    t = brief.thresholds
    assert (t.disparate_impact_min, t.equal_opportunity_max_gap, t.fairness_when_not_assessable) == (0.8, 0.1, "fail")
    assert brief.fairness.mitigation == [] and brief.fairness.waivers == []


def test_a_waiver_needs_a_protected_attribute_and_a_written_reason(tmp_path):
    with pytest.raises(BriefError, match="fairness.waivers names 'gender'"):
        _brief(tmp_path, waivers=[{"attribute": "gender", "metric": "disparate_impact", "reason": "long enough text"}])
    with pytest.raises(BriefError, match="reason"):
        _brief(tmp_path, waivers=[{"attribute": "age_band", "metric": "disparate_impact", "reason": ""}])


def test_threshold_optimizer_needs_the_attribute_served(tmp_path):
    with pytest.raises(BriefError, match=r"serving needs \['age_band'\].*entity_attributes"):
        _brief(tmp_path, served=False, mitigation=["threshold_optimizer"])
    assert _brief(tmp_path, served=False, mitigation=["reweigh"]).fairness.mitigation == ["reweigh"]
