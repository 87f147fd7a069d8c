"""A copied or moved data directory's Feast store reads the copy's feature tables, not the original's."""

import shutil
from datetime import timedelta
from pathlib import Path

import feast
import numpy as np
import polars as pl

from mlplatform.core.feature_store import (
    PATH_IN_NAMESPACE_TAG,
    apply_feature_store,
    feast_config,
    feast_objects,
    feature_service_name,
    feature_view_name,
    historical_features,
    materialize_online,
    online_features,
    open_feature_store,
)
from mlplatform.settings import Workspace
from mlplatform_tests.core.shop_features import CATALOGUE, SPEC, T0

SERVICE = feature_service_name("shop")
COUNT = "customer_login_7d_count"


def _feature_table() -> pl.DataFrame:
    """One row per customer 1-3 per day over five days."""
    rng = np.random.default_rng(0)
    days = [T0 + timedelta(days=d) for d in range(5)]
    rows = [(key, day) for key in (1, 2, 3) for day in days]
    n = len(rows)
    return pl.DataFrame({
        "customer_id": [key for key, _ in rows],
        "event_timestamp": [day for _, day in rows],
        "created_timestamp": [day for _, day in rows],
        "customer_minutes_7d_sum": rng.random(n) * 100,
        "customer_minutes_7d_mean": rng.random(n),
        COUNT: rng.integers(0, 9, n),
        "customer_days_since_login": rng.random(n) * 10,
        "customer_plan": rng.choice(["basic", "premium"], n),
        "customer_tenure_days": rng.integers(0, 400, n),
    })


def _objects(ws: Workspace) -> list:
    return feast_objects(ws.table("features", feature_view_name("customer")), SPEC, catalogue=CATALOGUE,
                         project="shop", entity="customer", entity_key="customer_id", owner="team@example.com")


def _applied_namespace(root: Path) -> tuple[Workspace, pl.DataFrame]:
    """A namespace as the platform lays it out: the feature table under lake/, the Feast repo under feast/."""
    ws = Workspace(root, "shop")
    table = _feature_table()
    path = ws.table("features", feature_view_name("customer"))
    path.parent.mkdir(parents=True)
    table.write_parquet(path)
    apply_feature_store(open_feature_store(feast_config(ws.feast_dir, "shop")), _objects(ws))
    return ws, table


def _copy(original: Workspace, data_dir: Path) -> Workspace:
    shutil.copytree(original.data_dir, data_dir)
    return Workspace(data_dir, "shop")


def _entity_rows() -> pl.DataFrame:
    return pl.DataFrame({"customer_id": [1, 2, 3], "event_timestamp": [T0 + timedelta(days=4)] * 3})


def _registered_path(ws: Workspace) -> str:
    store = feast.FeatureStore(config=feast_config(ws.feast_dir, "shop"))
    return store.get_feature_view(feature_view_name("customer")).batch_source.path


def test_a_copied_data_directory_reads_and_materialises_its_own_feature_table(tmp_path):
    original, table = _applied_namespace(tmp_path / "data")
    copy = _copy(original, tmp_path / "copy" / "data")
    changed = table.with_columns(pl.col(COUNT) + 1000)
    changed.write_parquet(copy.table("features", feature_view_name("customer")))

    store = open_feature_store(feast_config(copy.feast_dir, "shop"))
    offline = historical_features(store, _entity_rows(), SERVICE)
    materialize_online(store, T0, T0 + timedelta(days=4))
    online = online_features(store, [1, 2, 3], SERVICE)

    expected = changed.filter(pl.col("event_timestamp") == T0 + timedelta(days=4)).sort("customer_id")[COUNT]
    assert offline[COUNT].to_list() == expected.to_list()
    assert online[COUNT] == expected.to_list()
    assert min(expected) >= 1000
    # The original's registry still reads the original's table.
    assert _registered_path(original) == str(original.table("features", feature_view_name("customer")).resolve())
    original_offline = historical_features(open_feature_store(feast_config(original.feast_dir, "shop")),
                                           _entity_rows(), SERVICE)
    assert max(original_offline[COUNT]) < 1000


def test_a_moved_data_directory_reads_its_feature_table_after_the_original_is_gone(tmp_path):
    original, table = _applied_namespace(tmp_path / "data")
    moved = _copy(original, tmp_path / "moved" / "data")
    shutil.rmtree(original.data_dir)

    store = open_feature_store(feast_config(moved.feast_dir, "shop"))

    out = historical_features(store, _entity_rows(), SERVICE)
    expected = table.filter(pl.col("event_timestamp") == T0 + timedelta(days=4)).sort("customer_id")[COUNT]
    assert out[COUNT].to_list() == expected.to_list()
    assert materialize_online(store, T0, T0 + timedelta(days=4)).written == 3
    # Re-applying in the moved directory keeps the sources where they are.
    apply_feature_store(store, _objects(moved))
    assert _registered_path(moved) == str(moved.table("features", feature_view_name("customer")).resolve())


def test_a_registry_applied_before_the_tag_is_tagged_in_place_then_moves(tmp_path):
    ws = Workspace(tmp_path / "data", "shop")
    table = _feature_table()
    path = ws.table("features", feature_view_name("customer"))
    path.parent.mkdir(parents=True)
    table.write_parquet(path)
    feast.FeatureStore(config=feast_config(ws.feast_dir, "shop")).apply(_objects(ws))  # untagged
    open_feature_store(feast_config(ws.feast_dir, "shop"))
    source = feast.FeatureStore(config=feast_config(ws.feast_dir, "shop")).get_data_source(
        f"{feature_view_name('customer')}_source")
    assert source.tags[PATH_IN_NAMESPACE_TAG] == "lake/features/customer_daily_features.parquet"

    moved = _copy(ws, tmp_path / "moved" / "data")
    shutil.rmtree(ws.data_dir)
    out = historical_features(open_feature_store(feast_config(moved.feast_dir, "shop")), _entity_rows(), SERVICE)
    assert out[COUNT].null_count() == 0


def test_a_registry_outside_the_repo_is_not_rewritten(tmp_path):
    """Production's registry is a shared database: opening the store from a copy must not repoint it."""
    original, _ = _applied_namespace(tmp_path / "data")
    copy = _copy(original, tmp_path / "copy" / "data")
    shared = tmp_path / "shared" / "registry.db"
    shared.parent.mkdir()
    shutil.move(copy.feast_dir / "registry.db", shared)

    store = open_feature_store(feast_config(copy.feast_dir, "shop", registry=f"sqlite:///{shared}"))

    assert store.get_feature_view(feature_view_name("customer")).batch_source.path == str(
        original.table("features", feature_view_name("customer")).resolve())
