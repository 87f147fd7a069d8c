"""`mlplatform init` and `mlplatform validate` on real tables nobody here wrote (bundled with scikit-learn and
statsmodels): each ends with a brief or a reason, and says before any training what a gate would stop."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlplatform.cli import app
from mlplatform_tests.own_datasets import breast_cancer, election_survey, marriage_affairs


def invoke(*args) -> object:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_init_survives_a_zero_heavy_feature(tmp_path: Path):
    made = invoke("init", marriage_affairs(tmp_path), "--target", "rate_marriage", "--output", tmp_path / "b.yaml")
    assert made.exit_code == 0, made.stderr
    assert "split at the median of affairs" in made.stdout


def test_init_prints_too_predictive_inputs_with_the_waiver_to_fill(tmp_path: Path):
    made = invoke("init", breast_cancer(tmp_path), "--target", "benign", "--output", tmp_path / "b.yaml")
    assert made.exit_code == 0, made.stderr
    assert "SUSPICIOUSLY PREDICTIVE" in made.stdout and "worst_perimeter" in made.stdout
    assert "#   allowed_predictive_features:" in made.stdout


@pytest.mark.parametrize("min_group", [None, 20])
def test_validate_warns_of_a_protected_attribute_the_hold_out_cannot_assess(tmp_path: Path, min_group):
    brief = tmp_path / "b.yaml"
    made = invoke("init", election_survey(tmp_path), "--target", "vote", "--output", brief)
    assert made.exit_code == 0 and "fail closed" in made.stdout
    if min_group:  # a threshold the five age bands (≈27 hold-out rows each) reach, though not in positives
        brief.write_text(brief.read_text() + f"thresholds: {{fairness_min_group_size: {min_group}}}\n")
    checked = invoke("validate", brief, "--data-dir", tmp_path)
    assert checked.exit_code == 0, checked.stderr
    assert "warning: protected attribute 'age': expected hold-out rows per group" in checked.stdout
    assert ("disparate-impact ratio cannot be assessed" in checked.stdout) == (min_group is None)
    assert "equal-opportunity (TPR) gap cannot be assessed" in checked.stdout
