"""Stage: point-in-time feature tables (method phase 2, feature engineering)."""

import dagster as dg
import polars as pl

from mlplatform.brief import Brief, TableFeatures
from mlplatform.core.feature_names import feature_view_name
from mlplatform.core.features import build_features, feature_columns
from mlplatform.core.markdown import table
from mlplatform.core.readable import readable
from mlplatform.core.table_features import build_table_features
from mlplatform.resources.platform import PlatformResource


def _describe(platform: PlatformResource, features: pl.DataFrame) -> dg.MaterializeResult:
    b = platform.brief
    path = platform.write_table("features", feature_view_name(b.entity), features)
    described = feature_columns(b.features, b.entity)
    catalogue = pl.DataFrame({
        "feature": list(described),
        "description": list(described.values()),
        "null_share": [features[name].null_count() / max(features.height, 1) for name in described],
    })
    return dg.MaterializeResult(metadata=readable({
        "dagster/row_count": features.height,
        "features": len(described),
        "entities": features[b.entity_key].n_unique(),
        "catalogue": dg.MetadataValue.md(table(catalogue)),
        "path": dg.MetadataValue.path(str(path)),
    }))


def _table_features(spec: TableFeatures) -> dg.AssetsDefinition:
    @dg.asset(name="features_daily", group_name="features", deps=["data_quality_report", f"validated_{spec.source}"],
              kinds={"polars", "parquet"})
    def features(platform: PlatformResource) -> dg.MaterializeResult:
        """One row per example: the table's input columns at the row's time (a plain table has no history to
        aggregate, so every value is point-in-time as recorded)."""
        b = platform.brief
        timestamp = b.sources[spec.source].timestamp
        if timestamp is None:
            raise ValueError(f"sources.{spec.source} has no time: give it a timestamp column or observed_at, "
                             "from which each row's feature time comes")
        return _describe(platform, build_table_features(
            platform.read_table("validated", spec.source), spec, entity=b.entity, entity_key=b.entity_key,
            timestamp=timestamp))

    return features


def build(brief: Brief) -> list:
    spec = brief.features
    if isinstance(spec, TableFeatures):
        return [_table_features(spec)]

    @dg.asset(
        group_name="features",
        deps=["data_quality_report", f"validated_{spec.events_source}", f"validated_{spec.entities_source}"],
        kinds={"polars", "parquet"},
    )
    def features_daily(platform: PlatformResource) -> dg.MaterializeResult:
        """One row per entity per day: activity windows, counts, recency and profile attributes, each
        computed only from events strictly before the row's timestamp."""
        b = platform.brief
        timestamp = b.sources[spec.events_source].timestamp
        assert timestamp is not None, "the brief's validation requires a timestamp on features.events_source"
        features = build_features(
            platform.read_table("validated", spec.events_source),
            platform.read_table("validated", spec.entities_source),
            spec, entity=b.entity, entity_key=b.entity_key,
            timestamp=timestamp, start=b.partition_start, end=b.partition_end,
        )
        return _describe(platform, features)

    return [features_daily]
