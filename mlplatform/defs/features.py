"""Stage: point-in-time feature tables (method phase 2, feature engineering)."""

from collections.abc import Iterable

import dagster as dg
import polars as pl

from mlplatform import asset_names
from mlplatform.brief import Brief, TableFeatures
from mlplatform.core import tables
from mlplatform.core.feature_catalogue import check_schema, feature_catalogue
from mlplatform.core.features import event_columns, feature_blocks, feature_columns
from mlplatform.core.io import write_parquet_frames_atomic
from mlplatform.core.markdown import table
from mlplatform.core.readable import readable
from mlplatform.core.table_features import build_table_features
from mlplatform.resources.platform import PlatformResource


def _describe(platform: PlatformResource, blocks: Iterable[pl.DataFrame]) -> dg.MaterializeResult:
    """Write the feature table from ``blocks`` (disjoint sets of entities, in key order), one block in memory at a
    time, and describe it."""
    b = platform.brief
    described, expected = feature_columns(b.features, b.entity), feature_catalogue(b)
    rows, entities, nulls = 0, 0, dict.fromkeys(described, 0)

    def counted(frame: pl.DataFrame) -> pl.DataFrame:
        nonlocal rows, entities
        check_schema(expected, frame.schema)  # the types every reader of the features relies on
        rows, entities = rows + frame.height, entities + frame[b.entity_key].n_unique()
        for name in described:
            nulls[name] += frame[name].null_count()
        return frame

    target = tables.features(b.entity)
    path = write_parquet_frames_atomic(map(counted, blocks), platform.workspace.table(target))
    platform.register_view(target.view, str(path))
    catalogue = pl.DataFrame({
        "feature": list(described),
        "dtype": [expected[name].dtype for name in described],
        "description": list(described.values()),
        "null_share": [nulls[name] / max(rows, 1) for name in described],
    })
    return dg.MaterializeResult(metadata=readable({
        "dagster/row_count": rows,
        "features": len(described),
        "entities": entities,
        "catalogue": dg.MetadataValue.md(table(catalogue)),
        "path": dg.MetadataValue.path(str(path)),
    }))


@dg.asset(name=asset_names.FEATURE_CATALOGUE, group_name="features", deps=[asset_names.PROBLEM_BRIEF],
          kinds={"polars", "parquet"})
def feature_catalogue_table(platform: PlatformResource) -> dg.MaterializeResult:
    """Every feature the brief defines, known before any data exists: its type, source, description, caveats and
    whether it is a protected attribute. The feature table is checked against it; the feature store, the serving
    API and the model inputs read it."""
    frame = feature_catalogue(platform.brief).frame()
    path = platform.write_table(tables.FEATURE_CATALOGUE, frame)
    return dg.MaterializeResult(metadata=readable({
        "dagster/row_count": frame.height,
        "model_inputs": frame.filter(~pl.col("protected")).height,
        "catalogue": dg.MetadataValue.md(table(frame.drop("kind"))),
        "path": dg.MetadataValue.path(str(path)),
    }))


def _table_features(spec: TableFeatures) -> dg.AssetsDefinition:
    @dg.asset(name=asset_names.FEATURES_DAILY, group_name="features", kinds={"polars", "parquet"},
              deps=[asset_names.DATA_QUALITY_REPORT, asset_names.validated(spec.source), asset_names.FEATURE_CATALOGUE])
    def features(platform: PlatformResource) -> dg.MaterializeResult:
        """One row per example: the table's input columns at the row's time (a plain table has no history to
        aggregate, so every value is point-in-time as recorded)."""
        b = platform.brief
        timestamp = b.sources[spec.source].timestamp
        if timestamp is None:
            raise ValueError(f"sources.{spec.source} has no time: give it a timestamp column or observed_at, "
                             "from which each row's feature time comes")
        return _describe(platform, [build_table_features(
            platform.read_table(tables.validated(spec.source)), spec, entity=b.entity, entity_key=b.entity_key,
            timestamp=timestamp)])

    return features


def build(brief: Brief) -> list:
    spec = brief.features
    if isinstance(spec, TableFeatures):
        return [feature_catalogue_table, _table_features(spec)]

    @dg.asset(
        name=asset_names.FEATURES_DAILY,
        group_name="features",
        deps=[asset_names.DATA_QUALITY_REPORT, asset_names.validated(spec.events_source),
              asset_names.validated(spec.entities_source),
              asset_names.FEATURE_CATALOGUE],
        kinds={"polars", "parquet"},
    )
    def features_daily(platform: PlatformResource) -> dg.MaterializeResult:
        """One row per entity per day: activity windows, counts, recency and profile attributes, each
        computed only from events strictly before the row's timestamp."""
        b = platform.brief
        timestamp = b.sources[spec.events_source].timestamp
        assert timestamp is not None, "the brief's validation requires a timestamp on features.events_source"
        # Only the event columns the features read; the table is built and written one block of entities at a
        # time (core.features.feature_blocks), so memory follows the block, not the number of entities.
        events = platform.scan_table(tables.validated(spec.events_source)).select(
            event_columns(spec, entity_key=b.entity_key, timestamp=timestamp)).collect()
        return _describe(platform, feature_blocks(
            events, platform.read_table(tables.validated(spec.entities_source)),
            spec, entity=b.entity, entity_key=b.entity_key,
            timestamp=timestamp, start=b.partition_start, end=b.partition_end,
        ))

    return [feature_catalogue_table, features_daily]
