"""Numbers as a person reads them: metadata floats rounded to four significant digits.

A metric such as ``0.3235294117647059`` shows as ``0.3235`` in the UI; the full-precision value stays in the
tables, MLflow and the reports the metadata summarises.
"""

import math
from collections.abc import Mapping
from typing import Any

import dagster as dg
import numpy as np

DIGITS = 4


def significant(value: float, digits: int = DIGITS) -> float:
    """``value`` rounded to ``digits`` significant digits; 0, NaN and ±inf unchanged.

    >>> significant(0.3235294117647059), significant(56028.91203410059), significant(-0.000123456)
    (0.3235, 56030.0, -0.0001235)
    """
    value = float(value)
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def _rounded(value: Any, digits: int) -> Any:
    if isinstance(value, bool | np.bool_):
        return value
    if isinstance(value, float | np.floating):
        return significant(float(value), digits)
    if isinstance(value, dg.FloatMetadataValue) and value.value is not None:
        return dg.MetadataValue.float(significant(value.value, digits))
    if isinstance(value, dg.JsonMetadataValue):
        return dg.MetadataValue.json(_rounded(value.data, digits))
    if isinstance(value, dg.MetadataValue):  # text, Markdown, paths, tables: as written (some are tuples)
        return value
    if isinstance(value, Mapping):
        return {key: _rounded(item, digits) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(item, digits) for item in value]
    return value


def readable(metadata: Mapping[str, Any], digits: int = DIGITS) -> dict[str, Any]:
    """A copy of an asset's or check's metadata with every float, including those inside JSON values, lists and
    dicts, rounded to ``digits`` significant digits; integers, text, Markdown, paths and tables unchanged."""
    return {key: _rounded(value, digits) for key, value in metadata.items()}
