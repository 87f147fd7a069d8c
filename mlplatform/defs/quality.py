"""Stage: contracts, quarantine and the 30-point data-quality gate (seed phase 2)."""

from dataclasses import asdict
from datetime import datetime, time

import dagster as dg
import polars as pl

from mlplatform.brief import Brief
from mlplatform.core.markdown import table
from mlplatform.core.quality import DimensionScore, QualityReport, combine, score_source
from mlplatform.core.validation import validate_table
from mlplatform.resources.platform import PlatformResource


def _dimensions(report: QualityReport) -> pl.DataFrame:
    return pl.DataFrame([{"source": report.source, **asdict(d)} for d in report.dimensions])


def _validation_asset(name: str, brief: Brief) -> dg.AssetsDefinition:
    source = brief.sources[name]

    @dg.multi_asset(
        name=f"validate_{name}",
        group_name="quality",
        specs=[
            dg.AssetSpec(f"validated_{name}", deps=[f"raw_{name}"], kinds={"pandera", "parquet"},
                         description=f"Rows of `{name}` that meet the contract, typed and deduplicated."),
            dg.AssetSpec(f"quarantined_{name}", deps=[f"raw_{name}"], kinds={"parquet"},
                         description=f"Rows of `{name}` that broke the contract, as ingested, with the "
                         "failed checks and the source file."),
        ],
        check_specs=[dg.AssetCheckSpec(
            f"{name}_contract", asset=f"validated_{name}",
            description=f"Every row of `{name}` meets its pandera contract. WARN when rows were quarantined "
            "(they are kept with their reasons).")],
    )
    def validate(platform: PlatformResource):
        b = platform.brief
        raw = platform.read_table("raw", name)
        result = validate_table(raw, name, source)
        is_label = name == b.label.source
        valid_path = platform.write_table("validated", name, result.valid)
        quarantine_path = platform.write_table("quarantine", name, result.quarantined)
        score = score_source(
            name, raw.height, result, timestamp=source.timestamp,
            as_of=datetime.combine(b.partition_end, time()),
            # labels are only ever as fresh as their delay allows
            freshness_days=b.thresholds.freshness_days + (b.label.delay_days if is_label else 0),
            label=result.valid[b.label.column] if is_label else None,
            features_for_relevance=None, min_score=b.thresholds.quality_min_score, task_type=b.task_type,
        )
        platform.write_table("quality", name, _dimensions(score))
        counts = {k: int(v) for k, v in result.counts.items()}
        failures = {k: int(v) for k, v in result.failures_by_check.items()}
        yield dg.MaterializeResult(
            asset_key=f"validated_{name}",
            metadata={"dagster/row_count": result.valid.height, **counts, "quality_total": score.total,
                      "path": dg.MetadataValue.path(str(valid_path))},
        )
        yield dg.MaterializeResult(
            asset_key=f"quarantined_{name}",
            metadata={"dagster/row_count": result.quarantined.height, "failures_by_check": failures,
                      "path": dg.MetadataValue.path(str(quarantine_path))},
        )
        yield dg.AssetCheckResult(
            check_name=f"{name}_contract",
            asset_key=f"validated_{name}",
            passed=result.quarantined.height == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={**counts, "failures_by_check": failures,
                      "examples": dg.MetadataValue.md(table(result.quarantined, max_rows=5))},
        )

    return validate


def _quality_report_asset(brief: Brief) -> dg.AssetsDefinition:
    @dg.asset(group_name="quality", deps=[f"validated_{name}" for name in brief.sources], kinds={"polars"})
    def data_quality_report(platform: PlatformResource) -> dg.MaterializeResult:
        """The seed's six-dimension data-quality score (0–5 each, total /30) per source and overall."""
        b = platform.brief
        reports = []
        for name in b.sources:
            rows = platform.read_table("quality", name).drop("source").iter_rows(named=True)
            dims = [DimensionScore(**row) for row in rows]
            total = sum(d.points for d in dims)
            reports.append(QualityReport(name, dims, total, total >= b.thresholds.quality_min_score,
                                         b.thresholds.quality_min_score))
        overall = combine(reports, b.thresholds.quality_min_score)
        detail = _dimensions(overall)
        summary = pl.DataFrame([{"source": r.source, **{d.name: d.points for d in r.dimensions}, "total": r.total}
                                for r in [*reports, overall]])
        path = platform.write_table("reports", "data_quality", summary)
        platform.write_table("reports", "data_quality_overall", detail)
        return dg.MaterializeResult(metadata={
            "total": overall.total,
            "min_score": overall.min_score,
            "passed": overall.passed,
            "scores": dg.MetadataValue.md(table(summary)),
            "overall": dg.MetadataValue.md(table(detail.drop("source"))),
            "path": dg.MetadataValue.path(str(path)),
        })

    return data_quality_report


@dg.asset_check(asset="data_quality_report", blocking=True,
                description="Stops everything downstream when the data-quality total is below the brief's "
                "minimum (18/30 by default).")
def data_quality_gate(platform: PlatformResource) -> dg.AssetCheckResult:
    detail = platform.read_table("reports", "data_quality_overall").sort("points")
    total = float(detail["points"].sum())
    minimum = platform.brief.thresholds.quality_min_score
    weakest = detail.row(0, named=True)
    return dg.AssetCheckResult(
        passed=total >= minimum,
        metadata={"total": total, "min_score": minimum, "fix_first": f"{weakest['name']}: {weakest['fix']}",
                  "dimensions": dg.MetadataValue.md(table(detail.drop("source")))},
        description=f"data quality {total:.1f}/30 against a minimum of {minimum}",
    )


def build(brief: Brief) -> list:
    return [*[_validation_asset(name, brief) for name in brief.sources], _quality_report_asset(brief),
            data_quality_gate]
