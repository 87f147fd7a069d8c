"""Metadata numbers as a person reads them: four significant digits, nothing else changed."""

import math

import dagster as dg
import numpy as np

from mlplatform.core.readable import readable, significant


def test_significant_keeps_four_digits_at_every_scale():
    assert significant(0.3235294117647059) == 0.3235
    assert significant(56028.91203410059) == 56030.0
    assert significant(-0.000123456) == -0.0001235
    assert significant(12.0) == 12.0
    assert significant(0.0) == 0.0
    assert math.isnan(significant(float("nan"))) and significant(float("inf")) == float("inf")


def test_readable_rounds_floats_in_plain_values_json_and_lists_only():
    path = dg.MetadataValue.path("/tmp/report.html")
    md = dg.MetadataValue.md("f1 0.3235294117647059")
    out = readable({
        "f1": 0.3235294117647059, "numpy": np.float64(0.17748080636870434), "rows": 300_000, "ok": True,
        "flag": np.bool_(False), "name": "lgbm", "path": path, "report": md,
        "float_value": dg.MetadataValue.float(0.06879586106342402),
        "metrics": dg.MetadataValue.json({"f1": 0.45454545454545453, "counts": [1, 2], "nested": {"brier": 0.0646018}}),
        "bands": [0.123456, 0.987654], "by_group": {"a": 0.333333333},
    })
    assert out["f1"] == 0.3235 and out["numpy"] == 0.1775 and out["rows"] == 300_000
    assert out["ok"] is True and out["flag"] == np.bool_(False) and out["name"] == "lgbm"
    assert out["path"] is path and out["report"] is md  # text stays as written
    assert out["float_value"] == dg.MetadataValue.float(0.06880)
    assert out["metrics"].data == {"f1": 0.4545, "counts": [1, 2], "nested": {"brier": 0.0646}}
    assert out["bands"] == [0.1235, 0.9877] and out["by_group"] == {"a": 0.3333}
