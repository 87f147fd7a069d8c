"""The data-quality score's lake tables as frames, and back (the quality stage writes and reads these).

* a dimension table (:func:`dimension_table`): one row per dimension of a
  :class:`~mlplatform.core.quality.QualityReport` with its source (``quality/<source>``,
  ``reports/data_quality_overall``);
* the summary (:func:`quality_summary`, ``reports/data_quality``): one row per source and overall, each dimension's
  points and the total;
* the relevance signals (:func:`signal_table`, ``reports/data_quality_relevance``): one row per candidate feature
  of a source, with its points.
"""

from collections.abc import Sequence
from dataclasses import asdict

import polars as pl

from mlplatform.core.quality import DimensionScore, FeatureSignal, QualityReport, relevance_points, report_of

RELEVANCE_SCHEMA = {"source": pl.String, "feature": pl.String, "signal": pl.Float64, "measure": pl.String,
                    "rows": pl.Int64, "points": pl.Float64}


def dimension_table(report: QualityReport) -> pl.DataFrame:
    """One row per dimension of ``report``: its source and every :class:`DimensionScore` field."""
    return pl.DataFrame([{"source": report.source, **asdict(d)} for d in report.dimensions],
                        schema_overrides={"points": pl.Float64})


def report_from_table(dimensions: pl.DataFrame, source: str, min_score: float) -> QualityReport:
    """The report a :func:`dimension_table` was written from, judged against ``min_score``."""
    rows = dimensions.drop("source").iter_rows(named=True)
    return report_of(source, [DimensionScore(**row) for row in rows], min_score)


def signal_table(source: str, signals: Sequence[FeatureSignal]) -> pl.DataFrame:
    """One row per candidate feature of ``source``: its signal for the label and the relevance points it is worth
    (empty, with the columns, when the source has no candidates)."""
    return pl.DataFrame([{"source": source, **asdict(s), "points": relevance_points(s.signal)} for s in signals],
                        schema=RELEVANCE_SCHEMA)


def quality_summary(reports: Sequence[QualityReport]) -> pl.DataFrame:
    """One row per report (each source, then overall): every dimension's points (null where not applicable) and
    the total out of 30."""
    names = [d.name for d in reports[0].dimensions] if reports else []
    return pl.DataFrame([{"source": r.source, **{d.name: d.points for d in r.dimensions}, "total": r.total}
                         for r in reports], schema_overrides={name: pl.Float64 for name in names})


def top_signals(signals: pl.DataFrame, per_source: int) -> pl.DataFrame:
    """The ``per_source`` strongest features of each source (a :func:`signal_table` or several), sources in name
    order, strongest first."""
    return (signals.sort("signal", descending=True).group_by("source", maintain_order=True).head(per_source)
            .sort("source", "signal", descending=[False, True]))
