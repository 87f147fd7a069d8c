"""The challenger follows the method's model guide: LightGBM unless a more complex model wins by the margin,
and no deep model below 10,000 training rows unless the brief allows it."""

import pytest

from mlplatform.brief import Thresholds, Training
from mlplatform.core.selection import choose_challenger


def test_a_gain_within_the_margin_keeps_the_simpler_model():
    # The demo's case: torch 0.0027 F1 above LightGBM on validation, on plenty of rows.
    chosen = choose_challenger({"lightgbm": 0.4100, "torch": 0.4127}, "f1", train_rows=50_000, margin=0.01)
    assert chosen.challenger == "lightgbm"
    assert "+0.0027" in chosen.decision and "complexity_margin (0.01" in chosen.decision


def test_the_margin_boundary_is_strict():
    at = choose_challenger({"lightgbm": 0.5, "torch": 0.5125}, "f1", train_rows=50_000, margin=0.0125)
    above = choose_challenger({"lightgbm": 0.5, "torch": 0.5126}, "f1", train_rows=50_000, margin=0.0125)
    assert (at.challenger, above.challenger) == ("lightgbm", "torch")
    tie = choose_challenger({"lightgbm": 0.5, "torch": 0.5}, "f1", train_rows=50_000, margin=0.0)
    assert tie.challenger == "lightgbm"


def test_the_margin_follows_the_metrics_direction():
    assert choose_challenger({"lightgbm": 3.0, "torch": 2.5}, "mae", train_rows=50_000,
                             margin=0.1).challenger == "torch"
    assert choose_challenger({"lightgbm": 3.0, "torch": 2.95}, "mae", train_rows=50_000,
                             margin=0.1).challenger == "lightgbm"
    assert choose_challenger({"lightgbm": 3.0, "torch": 3.5}, "mae", train_rows=50_000,
                             margin=0.0).challenger == "lightgbm"


def test_no_deep_model_below_ten_thousand_rows_unless_the_brief_allows_it():
    scores = {"lightgbm": 0.40, "torch": 0.60}
    small = choose_challenger(scores, "f1", train_rows=9_999, margin=0.01)
    assert small.challenger == "lightgbm"
    assert "9,999 training rows" in small.excluded["torch"]
    assert choose_challenger(scores, "f1", train_rows=10_000, margin=0.01).challenger == "torch"
    assert choose_challenger(scores, "f1", train_rows=9_999, margin=0.01,
                             allow_deep_below_10k=True).challenger == "torch"


def test_another_complex_candidate_needs_the_margin_too_and_the_best_winner_is_chosen():
    scores = {"lightgbm": 0.40, "torch": 0.45, "lightgbm_mitigated": 0.47}
    assert choose_challenger(scores, "f1", train_rows=50_000, margin=0.01).challenger == "lightgbm_mitigated"
    assert choose_challenger({"lightgbm": 0.40, "lightgbm_mitigated": 0.405}, "f1", train_rows=50_000,
                             margin=0.01).challenger == "lightgbm"


def test_the_table_records_every_candidate_and_the_rule_inputs():
    chosen = choose_challenger({"lightgbm": 0.40, "torch": 0.60}, "f1", train_rows=5_000, margin=0.01)
    rows = {r["candidate"]: r for r in chosen.table().to_dicts()}
    assert rows["lightgbm"]["chosen"] and not rows["torch"]["chosen"]
    assert rows["torch"]["gain_over_lightgbm"] == pytest.approx(0.20)
    assert not rows["torch"]["eligible"] and rows["torch"]["train_rows"] == 5_000
    assert chosen.table()["candidate"][0] == "lightgbm"  # the challenger first: challenger_name reads row 0
    assert "## Model selection" in chosen.markdown()


def test_nothing_to_choose_is_one_clear_error():
    with pytest.raises(ValueError, match="no trained candidate"):
        choose_challenger({}, "f1", train_rows=1, margin=0.0)
    with pytest.raises(ValueError, match="allow_deep_below_10k"):
        choose_challenger({"torch": 0.5}, "f1", train_rows=100, margin=0.0)


def test_the_brief_defaults_are_the_guides():
    assert Thresholds().complexity_margin == 0.01
    assert Training().allow_deep_below_10k is False
