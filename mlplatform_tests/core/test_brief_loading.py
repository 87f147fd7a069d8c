"""Loading a brief: parsed once per content, so a sensor tick or a stage asking again costs no YAML parse, while
an edited file is always read afresh."""

import pytest
import yaml

from mlplatform.brief import DEMO_BRIEF, BriefError, load_brief


def test_the_same_file_gives_the_same_brief_and_an_edit_is_seen_at_once(tmp_path):
    path = tmp_path / "brief.yaml"
    path.write_text(DEMO_BRIEF.read_text())
    first = load_brief(path)
    assert load_brief(path) is first  # unchanged content: validated once
    raw = yaml.safe_load(DEMO_BRIEF.read_text())
    raw["owner"] = "someone-else"
    path.write_text(yaml.safe_dump(raw))
    edited = load_brief(path)
    assert edited is not first and edited.owner == "someone-else" and first.owner != "someone-else"
    path.write_text("name: [unclosed")
    with pytest.raises(BriefError, match="not valid YAML"):
        load_brief(path)
    path.write_text(DEMO_BRIEF.read_text())
    assert load_brief(path) is first


def test_a_brief_read_from_another_path_names_that_path_in_its_errors(tmp_path):
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text("kind: nonsense\n")
        with pytest.raises(BriefError, match=name):
            load_brief(tmp_path / name)
