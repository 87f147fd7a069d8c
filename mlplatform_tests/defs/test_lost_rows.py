"""No row is lost silently on a real run of the graph: non-finite sizes, visits dated after the as-of time and
rows without a label land in the quarantine with their reasons, every row left out of the training set is
counted, and a single-class label stops the run at a gate that names the class before anything trains."""

from datetime import date
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
import yaml

from mlplatform.brief import Thresholds
from mlplatform.core.datasets import golden_members
from mlplatform.runner import run_graph
from mlplatform.settings import Settings, Workspace
from mlplatform_tests.defs.plain_table import write_plain_table_brief

pytestmark = pytest.mark.slow

ROWS = 600
NON_FINITE = {3: "inf", 4: "1e309", 5: "-inf"}  # row number -> size as written
FUTURE = range(10, 30)  # rows dated 2031
UNLABELLED = range(40, 46)  # rows whose price is blank
TEST_END = date(2025, 12, 29)  # rows from here on belong to no split


def write_visits_brief(folder: Path) -> Path:
    """A regression table with a time column (visited_at, Dec 2025) and the injected rows above; its brief
    declares the label nullable, as a drafted brief does for a column with blanks."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    size = rng.normal(size=ROWS)
    rows = pl.DataFrame({
        "visited_at": [f"2025-12-{1 + i % 30:02d} {i % 24:02d}:00:00" for i in range(ROWS)],
        "size": [f"{v:.4f}" for v in size],
        "colour": rng.choice(["red", "blue"], ROWS),
        "price": [f"{v:.2f}" for v in 10 + 3 * size + rng.normal(0, 2.5, ROWS)],
    }).with_row_index("row", offset=1)
    rows = rows.with_columns(
        size=pl.col("row").replace_strict(NON_FINITE, default=pl.col("size"), return_dtype=pl.String),
        visited_at=pl.when(pl.col("row").is_in(list(FUTURE))).then(pl.lit("2031-06-01 12:00:00"))
        .otherwise(pl.col("visited_at")),
        price=pl.when(pl.col("row").is_in(list(UNLABELLED))).then(pl.lit("")).otherwise(pl.col("price")),
    )
    rows.drop("row").write_csv(folder / "visits.csv")
    brief = {
        "name": "visits", "owner": "ml@example.com",
        "problem": {"business_objective": "Price visits", "success_metric": "error", "baseline": "mean",
                    "ml_task_type": "regression", "prediction_target": "price", "prediction_consumer": "batch",
                    "latency_requirement": "batch", "data_available": "one table"},
        "entity": "row", "entity_key": "row_id",
        "partition_start": "2025-12-01", "partition_end": "2026-01-01",
        "sources": {"visits": {"path": "visits.csv", "format": "csv", "row_key": "row_id", "timestamp": "visited_at",
                               "columns": {"visited_at": {"dtype": "datetime"}, "size": {"dtype": "float"},
                                           "colour": {"dtype": "str"},
                                           "price": {"dtype": "float", "nullable": True}}}},
        "label": {"source": "visits", "column": "price", "timestamp": "visited_at", "definition": "the price paid"},
        "features": {"source": "visits"},
        "split": {"validation_start": "2025-12-15", "test_start": "2025-12-22", "test_end": str(TEST_END)},
        "metrics": {"primary": "rmse"},
        "rules_baseline": [{"when": "row_size >= 0", "predict": 12}],
        "thresholds": {"freshness_days": 60, "quality_min_score": 12},
        "training": {"tuning_trials": 0, "torch": False},
    }
    path = folder / "brief.yaml"
    path.write_text(yaml.safe_dump(brief, sort_keys=False))
    return path


def run_until_training(settings: Settings):
    """The real graph through the training stage; the outcome and the training_set materialisation, if any."""
    with dg.instance_for_test() as instance:
        outcome = run_graph(settings, instance=instance, progress=lambda line: None, until="training")
        event = instance.get_latest_materialization_event(dg.AssetKey("training_set"))
    return outcome, (event.asset_materialization.metadata if event else None)


@pytest.fixture(scope="module")
def visits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("visits")
    settings = Settings(data_dir=folder / "data", brief_path=write_visits_brief(folder / "inputs"))
    outcome, metadata = run_until_training(settings)
    return Workspace(settings.data_dir, "visits"), outcome, metadata


def test_bad_rows_are_quarantined_with_their_reasons_and_the_run_trains(visits):
    workspace, outcome, _ = visits
    assert outcome.ok, outcome.reason
    quarantined = pl.read_parquet(workspace.table("quarantine", "visits"))
    reasons = dict(zip(quarantined["row_id"].cast(pl.Int64), quarantined["_reasons"].to_list(), strict=True))

    assert sorted(reasons) == sorted([*NON_FINITE, *FUTURE, *UNLABELLED])
    assert reasons[4] == ["size: '1e309' is not a finite number"]
    assert reasons[10][0].startswith("visited_at: '2031-06-01 12:00:00' is after the as-of time 2026-01-01 00:00")
    assert reasons[40] == ["price: missing label: the row can be neither trained nor evaluated on"]
    valid = pl.read_parquet(workspace.table("validated", "visits"))
    assert valid.height == ROWS - len(reasons) and valid["size"].is_finite().all()


def test_every_row_left_out_of_the_training_set_is_counted(visits):
    workspace, outcome, metadata = visits
    assert outcome.ok, outcome.reason
    counts = dict(pl.read_parquet(workspace.table("training", "row_counts")).select("stage", "rows").iter_rows())
    bad = len(NON_FINITE) + len(FUTURE) + len(UNLABELLED)

    assert counts["label_rows_quarantined"] == bad and counts["label_rows_valid"] == ROWS - bad
    assert counts["label_not_known_yet"] == 0 and counts["training_set"] == ROWS - bad
    parts = ("golden", "train", "validation", "test", "outside_split_windows")
    assert sum(counts[part] for part in parts) == ROWS - bad
    training_set = pl.read_parquet(workspace.table("training", "training_set"))
    golden = golden_members(training_set["row_id"], Thresholds().golden_share)
    late = training_set.filter((pl.col("visited_at").dt.date() >= TEST_END) & ~golden)
    assert counts["outside_split_windows"] == late.height > 0
    assert metadata["rows_label_rows_quarantined"].value == bad
    assert "label_not_known_yet" in metadata["row_counts"].value


def test_a_single_class_label_stops_the_run_at_a_gate_that_names_the_class(tmp_path):
    brief = write_plain_table_brief(tmp_path / "inputs", rows=200)
    shop = tmp_path / "inputs" / "shop.csv"
    pl.read_csv(shop).with_columns(bought=pl.lit(0)).write_csv(shop)
    outcome, training_set = run_until_training(Settings(data_dir=tmp_path / "data", brief_path=brief))

    assert outcome.stopped_by == "gate label_classes"
    assert "label 'bought' has a single class in shop: 0 in all 200 valid rows" in outcome.reason
    assert "Add rows of the other class" in outcome.reason
    assert training_set is None
