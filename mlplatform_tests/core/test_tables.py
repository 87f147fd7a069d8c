"""The lake's table catalogue: one name per table, the lake's functions take a Table or a layer and name alike,
and no module spells a table name outside the catalogue."""

from pathlib import Path

import polars as pl
import pytest

from mlplatform.brief import DEMO_BRIEF
from mlplatform.core import tables
from mlplatform.core.feature_names import entity_column, feature_view_name
from mlplatform.core.model_families import MODEL_FAMILIES, registered_model_name
from mlplatform.resources.platform import PlatformResource
from mlplatform.settings import Workspace
from mlplatform_tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = [value for value in vars(tables).values() if isinstance(value, tables.Table)]


def test_each_catalogued_table_has_its_own_name_view_and_description():
    assert len({(t.layer, t.name) for t in CATALOGUE}) == len(CATALOGUE)
    assert len({t.asset_key for t in CATALOGUE}) == len(CATALOGUE)
    assert all(t.description for t in CATALOGUE)
    assert tables.TRAINING_SET.view == tables.TRAINING_SET.asset_key == "training_training_set"


def test_named_tables_follow_the_lake_layout():
    assert tables.validated("events") == tables.Table("validated", "events", tables.validated("events").description)
    assert (tables.features("customer").layer, tables.features("customer").name) == ("features",
                                                                                    feature_view_name("customer"))
    assert (tables.batch_profile("events").layer, tables.batch_profile("events").name) == ("profiles", "batch_events")
    assert (tables.candidate("torch").layer, tables.candidate("torch").name) == ("candidates", "torch")


def test_the_workspace_takes_a_table_or_its_layer_and_name(tmp_path):
    ws = Workspace(tmp_path, "demo")
    assert ws.table(tables.TRAINING_SET) == ws.table("training", "training_set") == (
        tmp_path / "demo" / "lake" / "training" / "training_set.parquet")
    assert ws.partition(tables.raw("events"), "2025-01") == ws.partition("raw", "events", "2025-01") == (
        tmp_path / "demo" / "lake" / "raw" / "events" / "2025-01.parquet")
    with pytest.raises(TypeError):
        ws.table("training")
    with pytest.raises(TypeError):
        ws.table(tables.TRAINING_SET, "training_set")


def test_the_lake_reads_what_it_wrote_under_either_spelling(tmp_path):
    platform = PlatformResource(data_dir=str(tmp_path), brief_path=str(DEMO_BRIEF))
    frame = pl.DataFrame({"candidate": ["lightgbm"], "value": [0.5]})
    platform.write_table(tables.METRICS, frame)
    assert platform.read_table("evaluation", "metrics").equals(frame)
    platform.write_partition(tables.FEATURE_IMPORTANCE, "run1", frame)
    platform.write_partition("evaluation", "feature_importance", "run2", frame.with_columns(value=pl.lit(0.25)))
    assert sorted(platform.read_table(tables.FEATURE_IMPORTANCE)["value"].to_list()) == [0.25, 0.5]


def test_appended_rows_go_after_the_table_and_the_first_rows_create_it(tmp_path):
    platform = PlatformResource(data_dir=str(tmp_path), brief_path=str(DEMO_BRIEF))
    first = platform.append_rows(tables.COST_HISTORY, pl.DataFrame({"run": [1], "usd": [0.5]}))
    assert first.to_dict(as_series=False) == {"run": [1], "usd": [0.5]}
    both = platform.append_rows(tables.COST_HISTORY, pl.DataFrame({"run": [2], "usd": [0.25]}))
    assert both["run"].to_list() == [1, 2] and platform.read_table(tables.COST_HISTORY).equals(both)


def test_model_families_and_names_in_one_place():
    assert [f.name for f in MODEL_FAMILIES] == ["lightgbm", "torch", "lightgbm_reweighed",
                                                "lightgbm_threshold_optimizer"]
    assert len({f.asset for f in MODEL_FAMILIES}) == len(MODEL_FAMILIES)
    assert all(f.folder == f.name for f in MODEL_FAMILIES)
    # The model card names every family a challenger can come from (a mitigated one included).
    assert [f.model_type for f in MODEL_FAMILIES][:2] == ["LightGBM", "torch MLP with categorical embeddings"]
    assert all(f.model_type for f in MODEL_FAMILIES)
    assert registered_model_name("churn_demo") == "churn_demo_model"
    assert entity_column("customer", "plan") == "customer_plan"


def test_no_module_spells_a_lake_table_name_outside_the_catalogue():
    stats = load_script("lineage_stats")
    files = sorted(p for p in (ROOT / "mlplatform").rglob("*.py") if p != stats.CATALOGUE)
    layers, names, counter = stats.table_literals(files)
    assert (layers, names) == (0, 0), f"literal table names: {dict(counter)}; use mlplatform.core.tables"
