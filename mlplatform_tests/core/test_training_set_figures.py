"""What the training set's metadata says about it besides its counts: positive rate, label times, inputs."""

from datetime import datetime

import polars as pl

from mlplatform.brief import DEMO_BRIEF, load_brief
from mlplatform.core.datasets import model_features, training_set_figures


def _frame() -> pl.DataFrame:
    return pl.DataFrame({
        "customer_id": [1, 2, 3, 4, 5],
        "snapshot_date": [datetime(2025, 3, 1), datetime(2025, 1, 1), datetime(2025, 2, 1), datetime(2025, 1, 1),
                          datetime(2025, 4, 30, 12)],
        "churned": [1, 0, 0, 1, 0],
    })


def test_a_binary_training_set_reports_its_positive_rate_label_range_and_input_count():
    brief = load_brief(DEMO_BRIEF)

    figures = training_set_figures(brief, _frame())

    assert figures == {"positive_rate": 0.4, "label_range": "2025-01-01 00:00:00 .. 2025-04-30 12:00:00",
                       "features": len(model_features(brief))}
    assert figures["features"] > 0 and "age_band" not in model_features(brief)  # protected: not an input


def test_another_task_has_no_positive_rate():
    demo = load_brief(DEMO_BRIEF)
    brief = demo.model_copy(update={"problem": demo.problem.model_copy(update={"ml_task_type": "regression"})})

    assert training_set_figures(brief, _frame())["positive_rate"] is None
