"""The cost report's YAML: the template's key order, text as written, the same text returned as on disk."""

import yaml

from mlplatform.core.cost import write_cost_yaml


def test_the_cost_document_is_written_in_its_order_with_its_text_unescaped_and_reads_back_equal(tmp_path):
    document = {"ml_costs": {"training": {"per_run_usd": 0.0012, "runs_per_month": 4.35}},
                "storage": {"lake_gb": 0.25}, "verdict": "within budget — 0.4 % of 50 €"}

    body, path = write_cost_yaml(document, tmp_path / "reports" / "ml_costs.yaml")

    assert path == tmp_path / "reports" / "ml_costs.yaml" and path.read_text() == body
    assert yaml.safe_load(body) == document
    assert list(yaml.safe_load(body)) == ["ml_costs", "storage", "verdict"]  # not sorted
    assert "— 0.4 % of 50 €" in body


def test_rewriting_replaces_the_previous_report(tmp_path):
    write_cost_yaml({"verdict": "over budget"}, tmp_path / "ml_costs.yaml")

    body, path = write_cost_yaml({"verdict": "within budget"}, tmp_path / "ml_costs.yaml")

    assert yaml.safe_load(path.read_text()) == {"verdict": "within budget"} == yaml.safe_load(body)
    assert [p.name for p in tmp_path.iterdir()] == ["ml_costs.yaml"]  # no temporary file left behind
