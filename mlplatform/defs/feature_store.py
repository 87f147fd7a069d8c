"""Stage: the Feast feature store: registry, offline store over the feature tables, online store."""

import warnings
from datetime import date, datetime, time, timedelta

import dagster as dg
import polars as pl

from mlplatform import asset_names
from mlplatform.brief import Brief
from mlplatform.core import tables
from mlplatform.core.feature_names import feature_service_name, feature_view_name
from mlplatform.core.markdown import table as table_md
from mlplatform.core.readable import readable
from mlplatform.resources.platform import FeatureStoreResource, PlatformResource
from mlplatform.stage_io import monthly_partitions


@dg.asset(name=asset_names.FEATURE_STORE, group_name="feature_store",
          deps=[asset_names.FEATURE_CATALOGUE, asset_names.FEATURES_DAILY], kinds={"feast"})
def feature_store(platform: PlatformResource, feast_store: FeatureStoreResource) -> dg.MaterializeResult:
    """Feast entities, feature views and the model's feature service applied to the registry, with each
    feature's description, dtype, source, owner, created date and known issues."""
    from mlplatform.core.feature_catalogue import feature_catalogue
    from mlplatform.core.feature_store import apply_feature_store, feast_objects

    b = platform.brief
    table_path = platform.workspace.table(tables.features(b.entity))
    objects = feast_objects(table_path, b.features, catalogue=feature_catalogue(b), project=b.name, entity=b.entity,
                            entity_key=b.entity_key, owner=b.owner)
    store = feast_store.store()
    apply_feature_store(store, objects)
    views = store.list_feature_views()
    return dg.MaterializeResult(metadata=readable({
        "project": b.name,
        "feature_views": [v.name for v in views],
        "features": sum(len(v.features) for v in views),
        "feature_services": [s.name for s in store.list_feature_services()],
        "repo": dg.MetadataValue.path(str(platform.workspace.feast_dir)),
    }))


# DuckDB's memory for the offline store's latest-row reads while materialising (the rest spills to disk).
OFFLINE_READ_MEMORY = "1500MB"


def online_partitions(brief: Brief) -> dg.MonthlyPartitionsDefinition | None:
    """The online store is materialised one month at a time, the raw batches' partitions; a table without time
    (every row at ``observed_at``) has no months to split and is materialised whole, unpartitioned."""
    return monthly_partitions(brief) if brief.has_time else None


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time())


def _window(brief: Brief, context: dg.AssetExecutionContext) -> tuple[datetime, datetime]:
    """The rows a run materialises, ``[start, end]`` with both ends inclusive as Feast takes them.

    A partition is its month, ``[first day, first day of the next month)``: it ends one microsecond (the feature
    table's resolution) before the next one starts, so months neither overlap nor leave a gap. The last month
    also takes the rest up to and including ``partition_end`` (daily feature rows reach that midnight). A run of a
    range of months (a backfill, or the runner's one run over all of them) takes them as one window: each entity's
    latest row in the range is what writing the months oldest first would leave online. A run without partitions
    takes the brief's whole range, ``[partition_start, partition_end]``.
    """
    first, last = _midnight(brief.partition_start), _midnight(brief.partition_end)
    partitions = context.assets_def.partitions_def
    if partitions is None or not (context.has_partition_key or context.has_partition_key_range):
        return first, last
    window = context.partition_time_window
    start = max(first, window.start.replace(tzinfo=None))
    if context.partition_keys[-1] == partitions.get_last_partition_key():
        return start, last
    return start, window.end.replace(tzinfo=None) - timedelta(microseconds=1)


def _online_features(brief: Brief) -> dg.AssetsDefinition:
    partitions = online_partitions(brief)
    with warnings.catch_warnings():  # backfill_policy is marked beta in Dagster 1.13
        warnings.simplefilter("ignore", dg.BetaWarning)

        @dg.asset(name=asset_names.ONLINE_FEATURES, group_name="feature_store", deps=[asset_names.FEATURE_STORE],
                  kinds={"feast", "sqlite"}, partitions_def=partitions,
                  backfill_policy=dg.BackfillPolicy.single_run() if partitions is not None else None)
        def online_features(context: dg.AssetExecutionContext, platform: PlatformResource,
                            feast_store: FeatureStoreResource) -> dg.MaterializeResult:
            """The latest feature values per entity, materialised into the online store for serving, one month
            per partition (a run of several months writes their latest rows at once); an older month materialised
            after a newer one leaves the newer values online."""
            from mlplatform.core.feature_store import materialize_online

            start, end = _window(platform.brief, context)
            written = materialize_online(feast_store.store(), start, end, memory_limit=OFFLINE_READ_MEMORY,
                                         temp_directory=platform.workspace.root / "duckdb_tmp")
            return dg.MaterializeResult(metadata=readable({
                "window_start": start.isoformat(), "window_end": end.isoformat(),
                "entities_in_window": written.entities, "entities_written": written.written,
                "entities_kept_newer": written.kept_newer, "online_store": feast_store.online_store,
            }))

    return online_features


@dg.asset_check(asset=asset_names.ONLINE_FEATURES, name="online_offline_consistency",
                description="For a sample of entities, the online store serves exactly the latest offline feature "
                "values up to the end of the newest window materialised, from the start of the first (the method's "
                "offline-vs-online skew check); a month missing below the newest one shows as mismatches.")
def online_offline_consistency(platform: PlatformResource, feast_store: FeatureStoreResource) -> dg.AssetCheckResult:
    from mlplatform.core.feature_store import materialised_span, online_offline_mismatches
    from mlplatform.core.feature_store import online_features as read_online

    b = platform.brief
    scan = platform.scan_table(tables.features(b.entity))
    keys = scan.select(pl.col(b.entity_key).unique()).collect(engine="streaming")[b.entity_key].sort()
    ids = keys.sample(min(200, keys.len()), seed=0).to_list()
    table = scan.filter(pl.col(b.entity_key).is_in(ids)).collect(engine="streaming")  # the sampled entities' rows
    store = feast_store.store()
    span = materialised_span(store, feature_view_name(b.entity))
    if span is None:
        return dg.AssetCheckResult(passed=False, description="no window has been materialised into the online "
                                   "store yet: materialise online_features first")
    start, end = span
    online = read_online(store, ids, feature_service_name(b.name))
    mismatches = online_offline_mismatches(online, table, entity_key=b.entity_key, start=start, end=end)
    return dg.AssetCheckResult(
        passed=mismatches.height == 0,
        metadata=readable({"entities_sampled": len(ids), "mismatches": mismatches.height,
                           "window": f"{start.isoformat()} .. {end.isoformat()}",
                           "examples": dg.MetadataValue.md(table_md(mismatches.head(20)))}),
        description=f"{mismatches.height} mismatching values over {len(ids)} sampled entities",
    )


def build(brief: Brief) -> list:
    return [feature_store, _online_features(brief), online_offline_consistency]
