"""Stage: the Feast feature store: registry, offline store over the feature tables, online store."""

from datetime import datetime, time

import dagster as dg
import polars as pl

from mlplatform.core.feature_store import (
    apply_feature_store,
    feast_objects,
    feature_service_name,
    feature_view_name,
    materialize_online,
    online_offline_mismatches,
)
from mlplatform.core.feature_store import online_features as read_online
from mlplatform.core.markdown import table as table_md
from mlplatform.resources.platform import FeatureStoreResource, PlatformResource


@dg.asset(group_name="feature_store", deps=["features_daily"], kinds={"feast"})
def feature_store(platform: PlatformResource, feast_store: FeatureStoreResource) -> dg.MaterializeResult:
    """Feast entities, feature views and the model's feature service applied to the registry, with each
    feature's description, dtype, source, owner, created date and known issues."""
    b = platform.brief
    table_path = platform.workspace.table("features", feature_view_name(b.entity))
    schema = {name: str(dtype) for name, dtype in pl.read_parquet_schema(table_path).items()}
    objects = feast_objects(table_path, b.features, project=b.name, entity=b.entity, entity_key=b.entity_key,
                            owner=b.owner, feature_table_schema=schema)
    store = feast_store.store()
    apply_feature_store(store, objects)
    views = store.list_feature_views()
    return dg.MaterializeResult(metadata={
        "project": b.name,
        "feature_views": [v.name for v in views],
        "features": sum(len(v.features) for v in views),
        "feature_services": [s.name for s in store.list_feature_services()],
        "repo": dg.MetadataValue.path(str(platform.workspace.feast_dir)),
    })


@dg.asset(group_name="feature_store", deps=["feature_store"], kinds={"feast", "sqlite"})
def online_features(platform: PlatformResource, feast_store: FeatureStoreResource) -> dg.MaterializeResult:
    """The latest feature values per entity, materialised into the online store for serving."""
    b = platform.brief
    start, end = (datetime.combine(d, time()) for d in (b.partition_start, b.partition_end))
    materialize_online(feast_store.store(), start, end)
    return dg.MaterializeResult(metadata={"window_start": start.isoformat(), "window_end": end.isoformat(),
                                          "online_store": feast_store.online_store})


@dg.asset_check(asset="online_features", name="online_offline_consistency",
                description="For a sample of entities, the online store serves exactly the latest offline "
                "feature values (the seed's offline-vs-online skew check).")
def online_offline_consistency(platform: PlatformResource, feast_store: FeatureStoreResource) -> dg.AssetCheckResult:
    b = platform.brief
    table = platform.read_table("features", feature_view_name(b.entity))
    ids = table[b.entity_key].unique().sort().sample(min(200, table[b.entity_key].n_unique()), seed=0).to_list()
    start, end = (datetime.combine(d, time()) for d in (b.partition_start, b.partition_end))
    online = read_online(feast_store.store(), ids, feature_service_name(b.name))
    mismatches = online_offline_mismatches(online, table, entity_key=b.entity_key, start=start, end=end)
    return dg.AssetCheckResult(
        passed=mismatches.height == 0,
        metadata={"entities_sampled": len(ids), "mismatches": mismatches.height,
                  "examples": dg.MetadataValue.md(table_md(mismatches.head(20)))},
        description=f"{mismatches.height} mismatching values over {len(ids)} sampled entities",
    )


def build(brief) -> list:
    return [feature_store, online_features, online_offline_consistency]
