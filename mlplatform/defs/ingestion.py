"""Stage: raw ingestion. Input files are copied into the lake as text, unchanged; monthly batches are partitions."""

from datetime import datetime

import dagster as dg
import polars as pl

from mlplatform import asset_names
from mlplatform.brief import Brief
from mlplatform.core import tables
from mlplatform.core.ingestion import add_derived_columns, batch_files, ingest
from mlplatform.core.quality import MAX_POINTS, data_as_of, freshness_need_days, newest_time, time_column, timeliness
from mlplatform.core.readable import readable
from mlplatform.core.validation import parse_column
from mlplatform.resources.platform import PlatformResource
from mlplatform.stage_io import monthly_partitions

FRESHNESS = "freshness"


def _freshness(frame: pl.DataFrame, name: str, column: str, brief: Brief, as_of: datetime) -> dg.AssetCheckResult:
    """How old the newest ``column`` (the source's event time) of a raw batch is at ``as_of``, against the
    source's freshness need."""
    values = parse_column(frame[column], brief.sources[name].columns[column].dtype)
    need = freshness_need_days(brief, name)
    score = timeliness(newest_time(values), column, as_of, need)
    newest = values.max()
    return dg.AssetCheckResult(
        check_name=FRESHNESS,
        passed=score.points == MAX_POINTS,
        severity=dg.AssetCheckSeverity.WARN,
        description=score.detail,
        metadata=readable({"newest": str(newest), "as_of": f"{as_of:%Y-%m-%d %H:%M}",
                           "age_days": round(score.measurement, 2),
                           "need_days": need, "timeliness_points": score.points, "rows": frame.height,
                           "unreadable_or_missing": values.null_count(), "fix": score.fix}),
    )


def _raw_asset(name: str, brief: Brief) -> dg.AssetsDefinition:
    source = brief.sources[name]
    partitioned = source.batches == "monthly"
    timestamp = time_column(source)  # a table without time has no freshness to check

    @dg.asset(
        name=asset_names.raw(name),
        group_name="ingestion",
        deps=[asset_names.PROBLEM_BRIEF],  # the brief names the source's files, format and columns
        kinds={"parquet"},
        partitions_def=monthly_partitions(brief) if partitioned else None,
        check_specs=[dg.AssetCheckSpec(
            FRESHNESS, asset=asset_names.raw(name),
            description=f"The newest {timestamp} is at most the brief's freshness need old (plus the label "
            "delay for labels) at the data's as-of point: the end of the brief's partition range, or of the month "
            "for a monthly batch. WARN only: the quality score's timeliness is what gates.")]
        if timestamp else None,
        description=f"Source `{name}` as ingested ({source.format}), every value kept as text, with the file "
        "each row came from. " + ("One partition per monthly batch of files." if partitioned else ""),
    )
    def raw(context: dg.AssetExecutionContext, platform: PlatformResource) -> dg.MaterializeResult:
        key = context.partition_key if partitioned else None
        files = batch_files(platform.source_path(name), key)
        frame = add_derived_columns(ingest(files, source.format, source.file_columns, source.table), source)
        if partitioned:
            path = platform.write_partition(tables.raw(name), context.partition_key, frame)
        else:
            path = platform.write_table(tables.raw(name), frame)
        # A monthly batch is judged at the end of its month; the last one's end is the score's as-of point.
        as_of = min(context.partition_time_window.end.replace(tzinfo=None), data_as_of(brief)) if partitioned \
            else data_as_of(brief)
        return dg.MaterializeResult(
            metadata=readable({
                "dagster/row_count": frame.height,
                "files": [f.name for f in files],
                "path": dg.MetadataValue.path(str(path)),
            }),
            check_results=[_freshness(frame, name, timestamp, brief, as_of)] if timestamp else [],
        )

    return raw


def build(brief: Brief) -> list[dg.AssetsDefinition]:
    return [_raw_asset(name, brief) for name in brief.sources]
