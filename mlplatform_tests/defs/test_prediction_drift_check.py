"""The prediction-drift check's verdict on the prediction_drift table: WARN with the days over the limit."""

import dagster as dg
import polars as pl

from mlplatform.core.drift import PREDICTION_DRIFT_SCHEMA
from mlplatform.defs.monitoring import prediction_drift_result


def _drift(rows: list[tuple[str, str, int, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=PREDICTION_DRIFT_SCHEMA, orient="row")


def test_days_over_the_limit_warn_and_are_listed():
    drift = _drift([("2025-10-01", "3", 900, 0.004), ("2025-10-02", "3", 850, 0.31), ("2025-10-02", "4", 400, 0.12),
                    ("2025-10-03", "4", 1200, 0.09)])
    result = prediction_drift_result(drift, max_kl=0.1, min_rows=200)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert result.description == ("prediction drift above KL 0.1 on 2 day(s): 2025-10-02 version 3 (KL 0.310, 850 "
                                  "predictions), 2025-10-02 version 4 (KL 0.120, 400 predictions)")
    assert result.metadata["days_over"].value == ["2025-10-02", "2025-10-02"]


def test_days_within_the_limit_pass():
    result = prediction_drift_result(_drift([("2025-10-01", "3", 900, 0.004), ("2025-10-02", "3", 850, 0.1)]),
                                     max_kl=0.1, min_rows=200)
    assert result.passed
    assert result.description == "every judged day is within KL 0.1 (max 0.1000)"


def test_small_days_are_listed_not_judged():
    result = prediction_drift_result(_drift([("2025-10-01", "3", 900, 0.02), ("2025-10-02", "3", 40, 0.4)]),
                                     max_kl=0.1, min_rows=200)
    assert result.passed
    assert result.description.endswith("; not judged (under 200 predictions): 2025-10-02 version 3 (KL 0.400, 40 "
                                       "predictions)")
    assert result.metadata["days_not_judged"].value == ["2025-10-02"]


def test_an_empty_log_passes_with_nothing_to_judge():
    result = prediction_drift_result(pl.DataFrame(schema=PREDICTION_DRIFT_SCHEMA), max_kl=0.1, min_rows=200)
    assert result.passed and result.description == "no logged predictions with a model score: nothing to judge"
