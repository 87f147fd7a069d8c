"""`mlplatform init`'s draft: the guesses it makes from a dataset, and that the draft validates as written."""

from datetime import date

import numpy as np
import polars as pl
import pytest
import yaml

from mlplatform.brief import RandomSplit, Split, load_brief
from mlplatform.core.brief_draft import draft_brief
from mlplatform.core.io import InputError
from mlplatform.core.validation import validate_table
from mlplatform_tests.own_datasets import (
    blanked,
    breast_cancer,
    election_survey,
    firm_investment,
    house_prices,
    machine_faults,
    marriage_affairs,
    shop_visits,
)

TODAY = date(2026, 11, 30)


def drafted(tmp_path, data, target):
    draft = draft_brief(str(data), target, brief_dir=tmp_path, today=TODAY)
    path = tmp_path / "brief.yaml"
    path.write_text(draft.text)
    return load_brief(path), draft


def test_a_table_without_time_or_key_gets_row_numbers_observed_at_and_class_names(tmp_path):
    brief, draft = drafted(tmp_path, shop_visits(tmp_path), "bought")
    source = brief.sources["shop_visits"]
    assert brief.task_type == "binary" and brief.label.classes == ["no", "yes"]  # the rarer value is positive
    assert source.row_key == "row_id" and source.observed_at == TODAY and not brief.has_time
    assert isinstance(brief.split, RandomSplit) and brief.split.stratify
    assert brief.protected_attributes == ["age", "gender"]  # guessed from names, marked for a person
    assert "protected attributes (CONFIRM): age, gender" in draft.text
    assert brief.model_input_columns == ["income", "city", "visits"]
    assert brief.slice_by == ["city"]
    assert source.columns["city"].allowed == ["lille", "lyon", "nice", "paris"]
    assert source.columns["visits"].nullable
    assert brief.metrics.primary == "f1"  # 20-30% positives: balanced enough for F1 in the method's table
    assert brief.sources["shop_visits"].path == "shop_visits.csv"  # relative to the brief's folder


def test_a_table_with_time_and_a_repeated_key_gets_a_temporal_split(tmp_path):
    brief, _ = drafted(tmp_path, machine_faults(tmp_path), "fault")
    source = brief.sources["machine_faults"]
    assert brief.task_type == "multiclass" and brief.label.classes is None  # already 0..k-1
    assert brief.entity_key == "machine_id" and brief.entity == "machine"
    assert source.timestamp == "reading_time" and source.unique == ["machine_id", "reading_time"]
    assert isinstance(brief.split, Split) and brief.has_time
    assert brief.partition_start == date(2025, 1, 1) and brief.partition_end == date(2025, 5, 1)
    assert brief.metrics.primary == "macro_f1"
    # The draft's heuristic splits the strongest input at its median and predicts each side's usual class.
    assert [(r.when, r.predict) for r in brief.rules_baseline] == [
        ("machine_temperature >= 62.928", 2), ("machine_temperature < 62.928", 0), ("machine_temperature IS NULL", 0)]


def test_a_continuous_target_is_regression_with_mae(tmp_path):
    brief, _ = drafted(tmp_path, house_prices(tmp_path, n=500, width=8), "price")
    assert brief.task_type == "regression" and brief.metrics.primary == "mae"
    assert brief.entity_key == "house_id"  # unique integer id: the key
    assert not brief.split.stratify and len(brief.model_input_columns) == 8


def test_rare_positives_make_pr_auc_primary(tmp_path):
    path = tmp_path / "rare.csv"
    pl.DataFrame({"x": list(range(1000)), "fraud": [1 if i % 50 == 0 else 0 for i in range(1000)]}).write_csv(path)
    brief, draft = drafted(tmp_path, path, "fraud")
    assert brief.metrics.primary == "pr_auc" and "positives are 2.0% (< 5%)" in draft.text
    assert brief.label.classes is None


@pytest.mark.parametrize(("target", "message"), [
    ("nope", "target column 'nope' is not in"),
    ("constant", "target column 'constant' has fewer than two distinct values"),
])
def test_a_bad_target_is_named(tmp_path, target, message):
    path = tmp_path / "t.csv"
    pl.DataFrame({"x": [1, 2, 3], "constant": [1, 1, 1]}).write_csv(path)
    with pytest.raises(InputError, match=message):
        draft_brief(str(path), target, brief_dir=tmp_path, today=TODAY)


def test_mixed_formats_are_refused(tmp_path):
    pl.DataFrame({"x": [1]}).write_csv(tmp_path / "a.csv")
    pl.DataFrame({"x": [1]}).write_parquet(tmp_path / "b.parquet")
    with pytest.raises(InputError, match="init reads one format"):
        draft_brief(str(tmp_path), "x", brief_dir=tmp_path, today=TODAY)


def test_the_draft_is_commented_yaml_without_anchors(tmp_path):
    _, draft = drafted(tmp_path, shop_visits(tmp_path, n=300), "bought")
    assert draft.text.startswith("# Draft brief written by `mlplatform init`")
    assert "&id" not in draft.text and "*id" not in draft.text
    assert yaml.safe_load(draft.text)["owner"] == "TODO@example.com"


# Real tables nobody here wrote (shipped by scikit-learn and statsmodels): what init must not get wrong.

def test_a_zero_heavy_best_feature_splits_above_its_median(tmp_path):
    """Affairs are 0 for 68% of the women: splitting at the median (0) left no row below it, and init crashed."""
    brief, draft = drafted(tmp_path, marriage_affairs(tmp_path), "rate_marriage")
    whens = [r.when for r in brief.rules_baseline]
    assert whens[:2] == ["row_affairs > 0", "row_affairs <= 0"]
    assert "split at the median of affairs" in draft.text


def test_mostly_empty_columns_are_named_with_their_share_not_made_nullable_silently(tmp_path):
    data = blanked(breast_cancer(tmp_path), 0.58, keep=["benign"])
    brief, draft = drafted(tmp_path, data, "benign")
    assert brief.sources["breast_cancer_blanked"].columns["mean_area"].nullable  # allowed, and said so:
    header = draft.text.split("\nname:")[0]
    assert "MOSTLY EMPTY" in header and "mean_area 65%" in header and "completeness" in header


def test_a_junk_cell_is_no_level_and_leaves_a_numeric_column_numeric(tmp_path):
    junk = "x" * 1_000_000
    frame = pl.read_csv(firm_investment(tmp_path))
    frame = frame.with_columns(pl.col(c).cast(pl.String) for c in ("value", "firm")).with_columns(
        value=pl.when(pl.int_range(pl.len()) == 7).then(pl.lit(junk)).otherwise(pl.col("value")),
        firm=pl.when(pl.int_range(pl.len()) == 9).then(pl.lit(junk)).otherwise(pl.col("firm")))
    path = tmp_path / "ledger.csv"
    frame.write_csv(path)
    brief, draft = drafted(tmp_path, path, "invest")
    columns = brief.sources["ledger"].columns
    assert columns["value"].dtype == "float"
    assert columns["firm"].allowed is not None and junk not in columns["firm"].allowed
    assert len(columns["firm"].allowed) == 11  # the eleven firms
    assert "'value': typed as a number" in draft.text and "1,000,000 characters" in draft.text
    assert len(draft.text) < 20_000  # the junk is quoted, not copied
    # The contract quarantines the two junk rows and keeps every other.
    result = validate_table(pl.read_csv(path, infer_schema=False).with_columns(row_id=pl.int_range(1, 221)
                            .cast(pl.String), observed_at=pl.lit(TODAY.isoformat())), "ledger", brief.sources["ledger"])
    assert result.quarantined.height == 2 and result.valid.height == 218


def test_inputs_that_alone_predict_the_label_are_flagged_with_a_waiver_to_fill(tmp_path):
    brief, draft = drafted(tmp_path, breast_cancer(tmp_path), "benign")
    header = draft.text.split("\nname:")[0]
    assert "SUSPICIOUSLY PREDICTIVE" in header and "worst_perimeter 0.9" in header
    assert "#   - {feature: worst_perimeter, reason:" in draft.waiver_snippet
    # Uncommented, with the reasons written, the snippet makes a valid brief.
    waiver = "\n".join(line[2:] for line in draft.waiver_snippet.splitlines()[1:]).replace(
        "TODO: why it is known before the label and not computed from it", "measured on the biopsy image")
    (tmp_path / "brief.yaml").write_text(draft.text + waiver)
    assert load_brief(tmp_path / "brief.yaml").leakage.allowed_predictive_features[0].feature == "worst_perimeter"


def test_a_protected_attribute_too_small_for_the_hold_out_is_said_up_front(tmp_path):
    _, draft = drafted(tmp_path, election_survey(tmp_path), "vote")  # 944 voters, age in five bands
    note = next(n for n in draft.inferences if n.startswith("protected attribute 'age'"))
    assert "expected hold-out rows per group" in note and "fail closed" in note
    assert "< 33 ≈27" in note


def test_groups_with_rows_enough_but_positives_too_few_warn_of_the_tpr_gap(tmp_path):
    """1,000 rows per gender reach ~140 hold-out rows each (a ratio can be judged), but a 10% positive rate leaves
    ~14 positives per group: the equal-opportunity gap cannot be, and init says so before any training."""
    rng = np.random.default_rng(3)
    n = 2000
    path = tmp_path / "offers.csv"
    pl.DataFrame({"spend": rng.gamma(2.0, 30.0, n).round(2), "gender": np.repeat(["f", "m"], n // 2),
                  "accepted": (rng.random(n) < 0.1).astype(int)}).write_csv(path)
    _, draft = drafted(tmp_path, path, "accepted")
    note = next(n for n in draft.inferences if n.startswith("protected attribute 'gender'"))
    assert "positives: " in note and "fail closed" in note
    assert "equal-opportunity (TPR) gap cannot be assessed" in note
    assert "disparate-impact ratio cannot be assessed" not in note
