"""Stage: raw ingestion. Input files are copied into the lake as text, unchanged; monthly batches are partitions."""

import dagster as dg

from mlplatform.brief import Brief
from mlplatform.core.ingestion import add_derived_columns, batch_files, ingest
from mlplatform.resources.platform import PlatformResource


def monthly_partitions(brief: Brief) -> dg.MonthlyPartitionsDefinition:
    return dg.MonthlyPartitionsDefinition(
        start_date=brief.partition_start.strftime("%Y-%m"), end_date=brief.partition_end.strftime("%Y-%m"), fmt="%Y-%m"
    )


def _raw_asset(name: str, brief: Brief) -> dg.AssetsDefinition:
    source = brief.sources[name]
    partitioned = source.batches == "monthly"

    @dg.asset(
        name=f"raw_{name}",
        group_name="ingestion",
        kinds={"parquet"},
        partitions_def=monthly_partitions(brief) if partitioned else None,
        description=f"Source `{name}` as ingested ({source.format}), every value kept as text, with the file "
        "each row came from. " + ("One partition per monthly batch of files." if partitioned else ""),
    )
    def raw(context: dg.AssetExecutionContext, platform: PlatformResource) -> dg.MaterializeResult:
        key = context.partition_key if partitioned else None
        files = batch_files(platform.source_path(name), key)
        frame = add_derived_columns(ingest(files, source.format, source.file_columns), source)
        if partitioned:
            path = platform.write_partition("raw", name, key, frame)
        else:
            path = platform.write_table("raw", name, frame)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": frame.height,
                "files": [f.name for f in files],
                "path": dg.MetadataValue.path(str(path)),
            }
        )

    return raw


def build(brief: Brief) -> list[dg.AssetsDefinition]:
    return [_raw_asset(name, brief) for name in brief.sources]
