"""Stage: contracts, quarantine and the 30-point data-quality gate (method phase 2)."""

from collections.abc import Iterator
from pathlib import Path

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
    data_as_of,
    feature_signals,
    label_of_source,
    never_relevance_candidates,
    not_applicable,
    relevance,
    relevance_candidates,
    relevance_sample,
    score_before_relevance,
    score_columns,
    time_column,
    with_relevance,
)
from mlplatform.core.quality_tables import (
    RELEVANCE_SCHEMA,
    dimension_table,
    quality_summary,
    report_from_table,
    signal_table,
    top_signals,
)
from mlplatform.core.readable import readable
from mlplatform.core.validation import ValidationResult, single_class_problem, validate_table_to_parquet
from mlplatform.resources.platform import PlatformResource

TOP_FEATURES = 5  # per source, in the UI; the lake table keeps them all


def _report(platform: PlatformResource, dimensions: pl.DataFrame, source: str) -> QualityReport:
    return report_from_table(dimensions, source, platform.brief.thresholds.quality_min_score)


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
        # Streamed: validation reads the raw table in row slices and writes each slice's valid rows as it goes, so
        # a large source is never whole in memory; the result keeps only the columns the score reads.
        # Events after the brief's as-of are quarantined, as are label rows without a label.
        validated = tables.validated(name)
        valid_path = platform.workspace.table(validated)
        result = validate_table_to_parquet(platform.scan_table(tables.raw(name)), name, source, valid_path,
                                           keep=score_columns(b, name), as_of=data_as_of(b),
                                           label=label_of_source(b, name))
        platform.register_view(validated.view, str(valid_path))
        quarantine_path = platform.write_table(tables.quarantine(name), result.quarantined)
        score = score_before_relevance(b, name, result)
        platform.write_table(tables.quality(name), dimension_table(score))
        yield from _contract_results(name, result, score, valid_path, quarantine_path)

    return validate


def _contract_results(name: str, result: ValidationResult, score: QualityReport, valid_path: Path,
                      quarantine_path: Path) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """What ``validate_<name>`` reports: the valid rows, the quarantined rows, and the contract check (WARN when
    rows were quarantined)."""
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


def _relevance(platform: PlatformResource, sample: pl.DataFrame, name: str) -> tuple[DimensionScore, pl.DataFrame]:
    """One source's relevance for the label, measured on the label sample, and each candidate's signal."""
    b = platform.brief
    is_label = name == b.label.source
    source_rows = sample if is_label else platform.read_table(tables.validated(name))
    candidates, basis = relevance_candidates(
        sample, source_rows, is_label_source=is_label, entity_key=b.entity_key, label_timestamp=b.label.timestamp,
        timestamp=time_column(b.sources[name]), exclude=never_relevance_candidates(b, name))
    if candidates is None:
        fix = (f"Nothing to change if {name} holds no model inputs; otherwise give it a {b.entity_key} column and "
               "value columns so it can be joined to the label.")
        return not_applicable("relevance", basis, fix), pl.DataFrame(schema=RELEVANCE_SCHEMA)
    signals = feature_signals(candidates, sample[b.label.column], b.task_type)
    return relevance(signals, basis), signal_table(name, signals)


def _scored_sources(platform: PlatformResource, sample: pl.DataFrame) -> tuple[list[QualityReport], pl.DataFrame]:
    """Each source's report (its validation score with relevance measured on the label ``sample``), and every
    source's candidate features with their signal."""
    reports, signals = [], []
    for name in platform.brief.sources:
        dimension, features = _relevance(platform, sample, name)
        scores = platform.read_table(tables.quality(name))
        reports.append(with_relevance(_report(platform, scores, name), dimension))
        signals.append(features)
    return reports, pl.concat(signals)


def _quality_report_asset(brief: Brief) -> dg.AssetsDefinition:
    @dg.asset(name=asset_names.DATA_QUALITY_REPORT, group_name="quality",
              deps=[asset_names.validated(name) for name in brief.sources], kinds={"polars"})
    def data_quality_report(platform: PlatformResource) -> dg.MaterializeResult:
        """The method's six-dimension data-quality score (0–5 each, total /30) per source and overall, with
        relevance measured on a seeded sample of labelled rows joined to each source."""
        b = platform.brief
        sample = relevance_sample(platform.read_table(tables.validated(b.label.source)), b.label.column,
                                  seed=b.training.seed)
        reports, relevance_table = _scored_sources(platform, sample)
        overall = combine(reports, b.thresholds.quality_min_score)
        detail = dimension_table(overall)
        summary = quality_summary([*reports, overall])
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
            "relevance": dg.MetadataValue.md(table(top_signals(relevance_table, TOP_FEATURES))),
            "path": dg.MetadataValue.path(str(path)),
        }))

    return data_quality_report


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
                           "relevance_by_feature": dg.MetadataValue.md(table(top_signals(
                               platform.read_table(tables.DATA_QUALITY_RELEVANCE), TOP_FEATURES)))}),
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
