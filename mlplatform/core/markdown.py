"""Small Markdown helpers for reports shown in the Dagster UI and written to files."""

import polars as pl


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(frame: pl.DataFrame, max_rows: int = 50) -> str:
    """A Markdown table of the first ``max_rows`` rows of ``frame``."""
    if frame.width == 0:
        return "(empty)"
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * frame.width
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.head(max_rows).iter_rows()]
    more = [f"\n_{frame.height - max_rows} more rows not shown_"] if frame.height > max_rows else []
    return "\n".join([header, rule, *rows, *more])
