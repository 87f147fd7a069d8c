"""Briefs for a plain table (no event history, maybe no time or key): what they derive and what they refuse."""

from datetime import date, datetime

import polars as pl
import pytest
import yaml

from mlplatform.brief import BriefError, load_brief
from mlplatform.core.datasets import known_labels
from mlplatform.core.ingestion import add_derived_columns, check_source_files, ingest
from mlplatform.core.io import InputError
from mlplatform.core.table_features import build_table_features, table_feature_columns
from mlplatform.core.training import random_split

BRIEF = {
    "name": "flowers",
    "owner": "me@example.com",
    "problem": {"business_objective": "o", "success_metric": "m", "baseline": "b", "ml_task_type": "multiclass",
                "prediction_target": "t", "prediction_consumer": "API", "latency_requirement": "batch",
                "data_available": "a table"},
    "entity": "row",
    "entity_key": "row_id",
    "partition_start": "2026-01-01",
    "partition_end": "2026-01-02",
    "sources": {"flowers": {"path": "flowers.csv", "format": "csv", "row_key": "row_id",
                            "observed_at": "2026-01-01",
                            "columns": {"petal": {"dtype": "float"}, "colour": {"dtype": "str"},
                                        "picked": {"dtype": "date"}, "kept": {"dtype": "bool"},
                                        "species": {"dtype": "str", "allowed": ["iris", "rose", "lily"]}}}},
    "label": {"source": "flowers", "column": "species", "timestamp": "observed_at", "definition": "d",
              "classes": ["iris", "rose", "lily"]},
    "features": {"source": "flowers"},
    "split": {"validation_fraction": 0.2, "test_fraction": 0.2},
    "metrics": {"primary": "macro_f1"},
    "rules_baseline": [{"when": "row_petal >= 1", "predict": 1}],
}


def write(tmp_path, change=None):
    raw = yaml.safe_load(yaml.safe_dump(BRIEF, sort_keys=False))
    if change:
        change(raw)
    path = tmp_path / "brief.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_a_plain_table_brief_derives_its_key_time_and_inputs(tmp_path):
    brief = load_brief(write(tmp_path))
    source = brief.sources["flowers"]
    assert brief.is_table and not brief.has_time
    assert source.derived_columns == ["row_id", "observed_at"]
    assert source.timestamp == "observed_at" and source.unique == ["row_id"]
    assert source.file_columns == ["petal", "colour", "picked", "kept", "species"]
    # Dates are not model inputs by default; the key, the time and the label never are.
    assert brief.model_input_columns == ["petal", "colour", "kept"]
    assert "a random 60% of the labelled rows (stratified by class" in brief.split_summary()["train"]


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: r.update(split={"validation_start": "2026-01-01", "test_start": "2026-01-02"}),
     "data without time (a source with observed_at) needs a random split"),
    (lambda r: r["sources"]["flowers"]["columns"]["species"].pop("allowed"),
     "label.classes needs the label column's contract to allow exactly those values"),
    (lambda r: r["sources"]["flowers"].update(observed_at="2027-01-01"),
     "sources.flowers.observed_at must lie in [partition_start, partition_end)"),
    (lambda r: r["sources"]["flowers"]["columns"].update(row_id={"dtype": "int"}),
     "column 'row_id' is derived by the platform; remove it from columns"),
    (lambda r: r["features"].update(columns=["petal", "species"]), "features.columns lists the label 'species'"),
    (lambda r: r["problem"].update(ml_task_type="binary"), "label.classes of a binary brief lists exactly two"),
])
def test_inconsistent_plain_table_briefs_are_refused_with_the_fix(tmp_path, change, message):
    with pytest.raises(BriefError, match="invalid") as error:
        load_brief(write(tmp_path, change))
    assert message in str(error.value)


def test_derived_columns_are_added_as_text_and_numbered_in_file_order(tmp_path):
    source = load_brief(write(tmp_path)).sources["flowers"]
    raw = pl.DataFrame({"petal": ["1.5", "0.2", "3.1"], "species": ["iris", "rose", "lily"]})
    out = add_derived_columns(raw, source)
    assert out["row_id"].to_list() == ["1", "2", "3"]
    assert out["observed_at"].to_list() == ["2026-01-01"] * 3
    assert raw.columns == ["petal", "species"]  # the input frame is not modified


def test_source_files_are_checked_by_their_headers(tmp_path):
    source = load_brief(write(tmp_path)).sources["flowers"]
    good = tmp_path / "good.csv"
    good.write_text("petal,colour,picked,kept,species\n1.0,red,2026-01-01,true,iris\n")
    assert check_source_files(str(good), source) == [good]
    bad = tmp_path / "bad.csv"
    bad.write_text("petal,species\n1.0,iris\n")
    with pytest.raises(InputError, match="lacks the column.s. colour, picked, kept"):
        check_source_files(str(bad), source)


def test_table_features_are_the_rows_own_columns_at_the_row_time(tmp_path):
    brief = load_brief(write(tmp_path))
    table = pl.DataFrame({"row_id": [2, 1], "observed_at": [datetime(2026, 1, 1)] * 2, "petal": [0.5, 2.0],
                          "colour": ["red", None], "kept": [True, False], "species": ["rose", "iris"]})
    features = build_table_features(table, brief.features, entity="row", entity_key="row_id",
                                    timestamp="observed_at")
    assert list(table_feature_columns(brief.features, "row")) == ["row_petal", "row_colour", "row_kept"]
    assert features.columns == ["row_id", "event_timestamp", "created_timestamp", "row_petal", "row_colour",
                                "row_kept"]
    assert features["row_id"].to_list() == [1, 2]
    assert features.row(0, named=True)["row_petal"] == 2.0 and features.row(1, named=True)["row_colour"] == "red"


def test_class_names_become_class_indices_in_brief_order():
    labels = pl.DataFrame({"row_id": [1, 2, 3], "observed_at": [date(2026, 1, 1)] * 3,
                           "species": ["lily", "iris", "rose"]})
    known = known_labels(labels, entity_key="row_id", timestamp="observed_at", label="species", delay_days=0,
                         as_of=datetime(2026, 1, 2), classes=["iris", "rose", "lily"])
    assert dict(zip(known["row_id"], known["species"], strict=True)) == {1: 2, 2: 0, 3: 1}


def test_random_split_is_seeded_disjoint_and_stratified():
    frame = pl.DataFrame({"i": range(1000), "y": [1 if i % 10 == 0 else 0 for i in range(1000)]})
    split = random_split(frame, "y", validation_fraction=0.2, test_fraction=0.2, stratify_by_label=True, seed=3)
    again = random_split(frame, "y", validation_fraction=0.2, test_fraction=0.2, stratify_by_label=True, seed=3)
    other = random_split(frame, "y", validation_fraction=0.2, test_fraction=0.2, stratify_by_label=True, seed=4)
    parts = [split.train, split.validation, split.test]
    assert [p.height for p in parts] == [600, 200, 200]
    assert sorted(pl.concat(parts)["i"].to_list()) == list(range(1000))
    assert [p["y"].mean() for p in parts] == [0.1, 0.1, 0.1]  # every part keeps the 10% positive share
    assert split.test["i"].to_list() == again.test["i"].to_list() != other.test["i"].to_list()


def test_random_split_refuses_an_empty_part():
    frame = pl.DataFrame({"y": [0, 1, 0]})
    with pytest.raises(ValueError, match="the validation split is empty .3 labelled rows."):
        random_split(frame, "y", validation_fraction=0.1, test_fraction=0.1, stratify_by_label=False, seed=0)


def test_a_duckdb_table_is_a_source(tmp_path):
    import duckdb

    database = tmp_path / "shop.duckdb"
    with duckdb.connect(str(database)) as con:
        con.execute("CREATE TABLE flowers AS SELECT 1.5 AS petal, 'red' AS colour, DATE '2026-01-01' AS picked, "
                    "true AS kept, 'iris' AS species")

    def to_duckdb(raw):
        raw["sources"]["flowers"].update(path=str(database), format="duckdb", table="flowers")

    source = load_brief(write(tmp_path, to_duckdb)).sources["flowers"]
    assert check_source_files(str(database), source) == [database]
    frame = ingest([database], "duckdb", source.file_columns, source.table)
    assert frame.row(0, named=True) == {"petal": "1.5", "colour": "red", "picked": "2026-01-01", "kept": "true",
                                        "species": "iris", "_source_file": "shop.duckdb"}
    with pytest.raises(InputError, match="has no table 'trees' .it has: flowers."):
        ingest([database], "duckdb", source.file_columns, "trees")


def test_a_duckdb_source_must_name_its_table(tmp_path):
    with pytest.raises(BriefError, match="a duckdb source names its table"):
        load_brief(write(tmp_path, lambda raw: raw["sources"]["flowers"].update(format="duckdb")))
