"""The online store materialised one monthly partition at a time, out of order, through real Dagster runs: each
month writes exactly its rows, an older month never overwrites newer values, and the consistency check follows
the months materialised so far. A table without time is materialised whole."""

from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
import yaml

from mlplatform.brief import load_brief
from mlplatform.core.feature_store import feature_service_name, feature_view_name, online_features
from mlplatform.core.table_features import build_table_features
from mlplatform.definitions import resources_for
from mlplatform.defs import feature_store
from mlplatform.resources.platform import FeatureStoreResource, PlatformResource
from mlplatform.settings import Settings
from mlplatform.stage_io import monthly_partitions
from mlplatform_tests.defs.plain_table import write_plain_table_brief

CHECK = dg.AssetCheckKey(dg.AssetKey("online_features"), "online_offline_consistency")
# The months' rows, [start, end); the last month also takes partition_end's midnight.
MONTHS = {"2026-01": (datetime(2026, 1, 1), datetime(2026, 2, 1)),
          "2026-02": (datetime(2026, 2, 1), datetime(2026, 3, 1)),
          "2026-03": (datetime(2026, 3, 1), datetime(2026, 4, 1) + timedelta(microseconds=1))}
# Entities whose only row is on a month's edge: Feb's first instant, Jan's last, partition_end, Jan's first.
EDGES = {41: datetime(2026, 2, 1), 42: datetime(2026, 2, 1) - timedelta(microseconds=1), 43: datetime(2026, 4, 1),
         44: datetime(2026, 1, 1)}


def write_timed_brief(folder: Path) -> Path:
    """A table of customer visits with times (one row per visit, the label on the row) over Jan-Mar 2026."""
    brief = {
        "name": "timed_shop", "owner": "ml@example.com",
        "problem": {"business_objective": "Sell more", "success_metric": "conversion", "baseline": "size rule",
                    "ml_task_type": "binary", "prediction_target": "bought", "prediction_consumer": "API",
                    "latency_requirement": "real-time", "data_available": "one table of visits"},
        "entity": "customer", "entity_key": "customer_id",
        "partition_start": "2026-01-01", "partition_end": "2026-04-01",
        "sources": {"visits": {"path": "visits.csv", "format": "csv", "timestamp": "visited_at",
                               "columns": {"customer_id": {"dtype": "int"}, "visited_at": {"dtype": "datetime"},
                                           "size": {"dtype": "float"}, "colour": {"dtype": "str"},
                                           "bought": {"dtype": "int", "min": 0, "max": 1}}}},
        "label": {"source": "visits", "column": "bought", "timestamp": "visited_at", "definition": "bought or not"},
        "features": {"source": "visits"},
        "split": {"validation_start": "2026-02-01", "test_start": "2026-03-01", "test_end": "2026-04-01"},
        "metrics": {"primary": "f1"},
        "rules_baseline": [{"when": "customer_size >= 0", "predict": 1}],
        "training": {"tuning_trials": 0, "torch": False},
    }
    path = folder / "brief.yaml"
    path.write_text(yaml.safe_dump(brief, sort_keys=False))
    return path


def visits(rng: np.random.Generator, n: int = 400) -> pl.DataFrame:
    """Visits of customers 1-40 at random minutes of Jan-Mar, and one visit each of the edge customers."""
    times = [datetime(2026, 1, 1) + timedelta(minutes=int(m)) for m in rng.integers(0, 90 * 24 * 60, n)]
    return pl.DataFrame({
        "customer_id": [*rng.integers(1, 41, n).tolist(), *EDGES],
        "visited_at": [*times, *EDGES.values()],
        "size": rng.normal(size=n + len(EDGES)).round(4),
        "colour": rng.choice(["red", "blue", "green"], n + len(EDGES)),
        "bought": rng.integers(0, 2, n + len(EDGES)),
    })


def resources_and_assets(brief_path: Path, data_dir: Path) -> tuple[dict, list]:
    settings = Settings(data_dir=data_dir, brief_path=brief_path)
    resources = resources_for(settings)
    return resources, feature_store.build(load_brief(brief_path))


def write_feature_table(platform: PlatformResource, table: pl.DataFrame, timestamp: str) -> pl.DataFrame:
    """The feature table the features stage would write from ``table``."""
    b = platform.brief
    features = build_table_features(table, b.features, entity=b.entity, entity_key=b.entity_key, timestamp=timestamp)
    platform.write_table("features", feature_view_name(b.entity), features)
    return features


def latest_in(features: pl.DataFrame, months: list[str]) -> dict[int, dict]:
    """Each customer's latest feature row among the rows of ``months``."""
    inside = pl.any_horizontal([pl.col("event_timestamp").is_between(*MONTHS[m], closed="left") for m in months])
    latest = features.filter(inside).sort("event_timestamp").group_by("customer_id").last()
    return {row["customer_id"]: row for row in latest.iter_rows(named=True)}


def check_of(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


@pytest.fixture
def timed(tmp_path) -> tuple[dict, list, pl.DataFrame]:
    resources, assets = resources_and_assets(write_timed_brief(tmp_path), tmp_path / "data")
    features = write_feature_table(resources["platform"], visits(np.random.default_rng(5)), "visited_at")
    return resources, assets, features


def test_a_timed_brief_materialises_the_online_store_by_month(timed):
    resources, assets, _ = timed
    online = assets[1]
    assert online.key == dg.AssetKey("online_features")
    assert online.partitions_def == monthly_partitions(resources["platform"].brief)
    assert online.partitions_def.get_partition_keys() == list(MONTHS)


def test_months_materialised_out_of_order_leave_the_newest_values_online_and_the_check_follows(timed):
    resources, assets, features = timed
    platform: PlatformResource = resources["platform"]
    feast_store: FeatureStoreResource = resources["feast_store"]
    service = feature_service_name(platform.brief.name)
    ids = list(range(1, 45))
    with dg.instance_for_test() as instance:
        dg.materialize(assets, instance=instance, resources=resources, selection=["feature_store"])
        done: list[str] = []
        for month in ("2026-03", "2026-01", "2026-02"):
            result = dg.materialize(assets, instance=instance, resources=resources, partition_key=month,
                                    selection=dg.AssetSelection.assets("online_features"))
            in_month = latest_in(features, [month])
            online_before = latest_in(features, done) if done else {}
            newer = {key for key, row in online_before.items()
                     if key in in_month and row["event_timestamp"] > in_month[key]["event_timestamp"]}
            done.append(month)

            metadata = result.asset_materializations_for_node("online_features")[0].metadata
            assert metadata["entities_in_window"].value == len(in_month)
            assert metadata["entities_kept_newer"].value == len(newer)
            assert metadata["entities_written"].value == len(in_month) - len(newer)
            online = online_features(feast_store.store(), ids, service)
            expected = latest_in(features, done)
            for name in ("customer_size", "customer_colour"):
                assert online[name] == [expected.get(key, {}).get(name) for key in ids], (month, name)
            check = check_of(result)
            if done == ["2026-03", "2026-01"]:  # February is missing below the newest month: the check says so
                assert not check.passed and check.metadata["mismatches"].value > 0
                assert "| 41 |" in check.metadata["examples"].value
            else:
                assert check.passed, check.metadata["examples"].value
        assert online["customer_size"][ids.index(43)] is not None, "partition_end's midnight is in the last month"

        # The offline table changes under the online store: every sampled customer's size differs.
        features.with_columns(pl.col("customer_size") + 1).write_parquet(
            platform.workspace.table("features", feature_view_name(platform.brief.entity)))
        check = check_of(dg.materialize(assets, instance=instance, resources=resources,
                                        selection=dg.AssetSelection.checks(CHECK)))
    assert not check.passed and check.metadata["mismatches"].value == len(ids)


def test_a_table_without_time_is_materialised_whole(tmp_path):
    brief_path = write_plain_table_brief(tmp_path / "plain", rows=50)
    resources, assets = resources_and_assets(brief_path, tmp_path / "data")
    platform: PlatformResource = resources["platform"]
    table = pl.read_csv(brief_path.parent / "shop.csv").with_row_index("row_id", offset=1).with_columns(
        pl.col("row_id").cast(pl.Int64), observed_at=pl.lit(datetime(2026, 1, 1)))
    features = write_feature_table(platform, table, "observed_at")
    with dg.instance_for_test() as instance:
        result = dg.materialize(assets, instance=instance, resources=resources,
                                selection=dg.AssetSelection.assets("feature_store", "online_features"))
    assert assets[1].partitions_def is None
    metadata = result.asset_materializations_for_node("online_features")[0].metadata
    assert metadata["entities_written"].value == 50
    assert check_of(result).passed, check_of(result).metadata["examples"].value
    online = online_features(resources["feast_store"].store(), features["row_id"].to_list(),
                             feature_service_name("plain_shop"))
    assert online["row_size"] == features["row_size"].to_list()
