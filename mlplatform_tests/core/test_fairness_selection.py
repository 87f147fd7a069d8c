"""Model selection reads the fairness gate: a candidate that fails it is not the challenger while one passes."""

from mlplatform.core.selection import choose_challenger

VALIDATION = {"lightgbm": 0.42, "torch": 0.45, "lightgbm_reweighed": 0.40}


def test_a_candidate_failing_fairness_is_not_chosen_while_a_passing_one_exists():
    unfair = {"torch": "age_band: FAIL disparate impact 0.558", "lightgbm": "age_band: FAIL disparate impact 0.62"}
    selection = choose_challenger(VALIDATION, "f1", train_rows=50_000, margin=0.01, unfair=unfair)
    assert selection.challenger == "lightgbm_reweighed"
    assert "fails the fairness gate" in selection.excluded["torch"] and "0.558" in selection.decision


def test_when_no_candidate_passes_fairness_the_usual_rule_chooses_and_the_gate_refuses_later():
    unfair = dict.fromkeys(VALIDATION, "age_band: FAIL")
    assert choose_challenger(VALIDATION, "f1", train_rows=50_000, margin=0.01, unfair=unfair).challenger == "torch"
    assert choose_challenger(VALIDATION, "f1", train_rows=50_000, margin=0.01).challenger == "torch"
