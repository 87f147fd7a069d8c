"""Stage: contracts, quarantine and the 30-point data-quality gate (method phase 2)."""

from dataclasses import asdict

import dagster as dg
import polars as pl

from mlplatform import asset_names
from mlplatform.brief import Brief
from mlplatform.core import tables
from mlplatform.core.markdown import table
from mlplatform.core.quality import (
    DimensionScore,
    QualityReport,
    combine,
    completeness_columns,
    data_as_of,
    feature_signals,
    freshness_need_days,
    not_applicable,
    relevance,
    relevance_candidates,
    relevance_points,
    relevance_sample,
    report_of,
    score_source,
    time_column,
    with_relevance,
)
from mlplatform.core.readable import readable
from mlplatform.core.validation import single_class_problem, validate_table_to_parquet
from mlplatform.resources.platform import PlatformResource

RELEVANCE_SCHEMA = {"source": pl.String, "feature": pl.String, "signal": pl.Float64, "measure": pl.String,
                    "rows": pl.Int64, "points": pl.Float64}
TOP_FEATURES = 5  # per source, in the UI; the lake table keeps them all


def _dimensions(report: QualityReport) -> pl.DataFrame:
    return pl.DataFrame([{"source": report.source, **asdict(d)} for d in report.dimensions],
                        schema_overrides={"points": pl.Float64})


def _report(platform: PlatformResource, dimensions: pl.DataFrame, source: str) -> QualityReport:
    rows = dimensions.drop("source").iter_rows(named=True)
    return report_of(source, [DimensionScore(**row) for row in rows], platform.brief.thresholds.quality_min_score)


def _not_candidates(brief: Brief, name: str) -> set[str]:
    """Columns of a source that are never relevance candidates: keys, times, the label, protected attributes."""
    source = brief.sources[name]
    return {brief.entity_key, brief.label.column, brief.label.timestamp, *brief.protected_attributes,
            *source.unique, *([source.timestamp] if source.timestamp else [])}


def _validation_asset(name: str, brief: Brief) -> dg.AssetsDefinition:
    source = brief.sources[name]

    @dg.multi_asset(
        name=f"validate_{name}",
        group_name="quality",
        specs=[
            dg.AssetSpec(asset_names.validated(name), deps=[asset_names.raw(name)], kinds={"pandera", "parquet"},
                         description=f"Rows of `{name}` that meet the contract, typed and deduplicated."),
            dg.AssetSpec(asset_names.quarantined(name), deps=[asset_names.raw(name)], kinds={"parquet"},
                         description=f"Rows of `{name}` that broke the contract, as ingested, with the "
                         "failed checks and the source file."),
        ],
        check_specs=[dg.AssetCheckSpec(
            f"{name}_contract", asset=asset_names.validated(name),
            description=f"Every row of `{name}` meets its pandera contract. WARN when rows were quarantined "
            "(they are kept with their reasons).")],
    )
    def validate(platform: PlatformResource):
        b = platform.brief
        is_label = name == b.label.source
        # Streamed: validation reads the raw table in row slices and writes each slice's valid rows as it goes, so
        # a large source is never whole in memory; the result keeps only the columns the score reads.
        # Events after the brief's as-of are quarantined, as are label rows without a label.
        keep = [column for column in (time_column(source), b.label.column if is_label else None) if column]
        validated = tables.validated(name)
        valid_path = platform.workspace.table(validated)
        result = validate_table_to_parquet(platform.scan_table(tables.raw(name)), name, source, valid_path,
                                           keep=keep, as_of=data_as_of(b), label=b.label.column if is_label else None)
        platform.register_view(validated.view, str(valid_path))
        quarantine_path = platform.write_table(tables.quarantine(name), result.quarantined)
        score = score_source(
            name, result.counts["raw"], result, timestamp=time_column(source), as_of=data_as_of(b),
            freshness_days=freshness_need_days(b, name),
            label=result.valid[b.label.column] if is_label else None,
            # relevance needs the label joined to this source: data_quality_report measures it
            features_for_relevance=None, min_score=b.thresholds.quality_min_score, task_type=b.task_type,
            input_columns=completeness_columns(b, name),
        )
        platform.write_table(tables.quality(name), _dimensions(score))
        counts = {k: int(v) for k, v in result.counts.items()}
        failures = {k: int(v) for k, v in result.failures_by_check.items()}
        yield dg.MaterializeResult(
            asset_key=asset_names.validated(name),
            metadata=readable({"dagster/row_count": result.counts["valid"], **counts,
                               "quality_before_relevance": score.summary,
                               "path": dg.MetadataValue.path(str(valid_path))}),
        )
        yield dg.MaterializeResult(
            asset_key=asset_names.quarantined(name),
            metadata=readable({"dagster/row_count": result.quarantined.height, "failures_by_check": failures,
                               "path": dg.MetadataValue.path(str(quarantine_path))}),
        )
        yield dg.AssetCheckResult(
            check_name=f"{name}_contract",
            asset_key=asset_names.validated(name),
            passed=result.quarantined.height == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata=readable({**counts, "failures_by_check": failures,
                               "examples": dg.MetadataValue.md(table(result.quarantined, max_rows=5))}),
        )

    return validate


def _relevance(platform: PlatformResource, sample: pl.DataFrame, name: str) -> tuple[DimensionScore, pl.DataFrame]:
    """One source's relevance for the label, measured on the label sample, and each candidate's signal."""
    b = platform.brief
    is_label = name == b.label.source
    source_rows = sample if is_label else platform.read_table(tables.validated(name))
    candidates, basis = relevance_candidates(
        sample, source_rows, is_label_source=is_label, entity_key=b.entity_key, label_timestamp=b.label.timestamp,
        timestamp=time_column(b.sources[name]), exclude=_not_candidates(b, name))
    if candidates is None:
        fix = (f"Nothing to change if {name} holds no model inputs; otherwise give it a {b.entity_key} column and "
               "value columns so it can be joined to the label.")
        return not_applicable("relevance", basis, fix), pl.DataFrame(schema=RELEVANCE_SCHEMA)
    signals = feature_signals(candidates, sample[b.label.column], b.task_type)
    frame = pl.DataFrame([{"source": name, **asdict(s), "points": relevance_points(s.signal)} for s in signals],
                         schema=RELEVANCE_SCHEMA)
    return relevance(signals, basis), frame


def _quality_report_asset(brief: Brief) -> dg.AssetsDefinition:
    @dg.asset(name=asset_names.DATA_QUALITY_REPORT, group_name="quality",
              deps=[asset_names.validated(name) for name in brief.sources], kinds={"polars"})
    def data_quality_report(platform: PlatformResource) -> dg.MaterializeResult:
        """The method's six-dimension data-quality score (0–5 each, total /30) per source and overall, with
        relevance measured on a seeded sample of labelled rows joined to each source."""
        b = platform.brief
        sample = relevance_sample(platform.read_table(tables.validated(b.label.source)), b.label.column,
                                  seed=b.training.seed)
        reports, signals = [], []
        for name in b.sources:
            dimension, features = _relevance(platform, sample, name)
            scores = platform.read_table(tables.quality(name))
            reports.append(with_relevance(_report(platform, scores, name), dimension))
            signals.append(features)
        overall = combine(reports, b.thresholds.quality_min_score)
        detail = _dimensions(overall)
        relevance_table = pl.concat(signals)
        summary = pl.DataFrame([{"source": r.source, **{d.name: d.points for d in r.dimensions}, "total": r.total}
                                for r in [*reports, overall]], schema_overrides={d.name: pl.Float64
                                                                                   for d in overall.dimensions})
        path = platform.write_table(tables.DATA_QUALITY, summary)
        platform.write_table(tables.DATA_QUALITY_OVERALL, detail)
        platform.write_table(tables.DATA_QUALITY_RELEVANCE, relevance_table)
        return dg.MaterializeResult(metadata=readable({
            "total": overall.total,
            "min_score": overall.min_score,
            "passed": overall.passed,
            "summary": overall.summary,
            "scores": dg.MetadataValue.md(table(summary)),
            "overall": dg.MetadataValue.md(table(detail.drop("source"))),
            "relevance": dg.MetadataValue.md(_top_features(relevance_table)),
            "path": dg.MetadataValue.path(str(path)),
        }))

    return data_quality_report


def _top_features(signals: pl.DataFrame) -> str:
    return table(signals.sort("signal", descending=True).group_by("source", maintain_order=True)
                 .head(TOP_FEATURES).sort("source", "signal", descending=[False, True]))


@dg.asset_check(asset=asset_names.DATA_QUALITY_REPORT, blocking=True,
                description="Stops everything downstream when the data-quality total is below the brief's "
                "minimum (18/30 by default).")
def data_quality_gate(platform: PlatformResource) -> dg.AssetCheckResult:
    dimensions = platform.read_table(tables.DATA_QUALITY_OVERALL)
    overall = _report(platform, dimensions, "overall")
    detail = dimensions.drop("source")
    weakest = overall.fix_first
    return dg.AssetCheckResult(
        passed=overall.passed,
        metadata=readable({"total": overall.total, "min_score": overall.min_score, "applicable_points": overall.points,
                           "possible_points": overall.possible,
                           "not_applicable": [d.name for d in overall.dimensions if not d.applicable],
                           "fix_first": f"{weakest.name}: {weakest.fix}",
                           "dimensions": dg.MetadataValue.md(table(detail)),
                           "relevance_by_feature": dg.MetadataValue.md(
                               _top_features(platform.read_table(tables.DATA_QUALITY_RELEVANCE)))}),
        description=f"data quality {overall.summary}",
    )


def _label_classes_gate(brief: Brief) -> dg.AssetChecksDefinition:
    source = brief.label.source

    @dg.asset_check(asset=asset_names.validated(source), name="label_classes", blocking=True,
                    description="Stops the run before anything trains when a classification label has a single "
                    "class among the valid rows (the class, its count and the fix in the reason).")
    def label_classes(platform: PlatformResource) -> dg.AssetCheckResult:
        b = platform.brief
        labels = platform.read_table(tables.validated(source))[b.label.column]
        counts = {str(value): int(n) for value, n in labels.drop_nulls().value_counts(sort=True).iter_rows()}
        problem = None if b.task_type == "regression" else single_class_problem(labels, source, b.label.classes)
        return dg.AssetCheckResult(
            passed=problem is None, metadata=readable({"rows_by_class": counts} if b.task_type != "regression" else {}),
            description=problem or ("not applicable: a regression label" if b.task_type == "regression"
                                    else f"{len(counts)} classes in {labels.len()} valid rows"))

    return label_classes


def build(brief: Brief) -> list:
    return [*[_validation_asset(name, brief) for name in brief.sources], _quality_report_asset(brief),
            data_quality_gate, _label_classes_gate(brief)]
