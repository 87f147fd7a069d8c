"""The latency budget's measure: one row at a time, p95; a pass over the budget is measured again and the best pass
counts, so other processes' load on a shared machine does not fail a model that meets its budget on its own."""

import time

import numpy as np
import polars as pl

from mlplatform.core.budgets import single_row_latency_ms

ROWS = pl.DataFrame({"x": [1.0, 2.0, 3.0]})


def _predict_slow_for(calls: int, slow_s: float):
    """A model whose first ``calls`` predictions (the warm-up included) take ``slow_s``, then none."""
    made = []

    def predict(frame: pl.DataFrame) -> np.ndarray:
        made.append(frame.height)
        if len(made) <= calls:
            time.sleep(slow_s)
        return np.zeros(frame.height)
    return predict, made


def test_a_pass_slowed_from_outside_is_measured_again_and_the_best_pass_counts():
    predict, made = _predict_slow_for(calls=11, slow_s=0.05)  # the warm-up and the first pass's ten rows
    assert single_row_latency_ms(predict, ROWS, repeats=10, budget_ms=20) < 20
    assert len(made) == 1 + 10 + 10  # warm-up, the slow pass, one pass within the budget


def test_without_a_budget_one_pass_is_measured():
    predict, made = _predict_slow_for(calls=11, slow_s=0.05)
    assert single_row_latency_ms(predict, ROWS, repeats=10) >= 50
    assert len(made) == 11


def test_a_model_slow_on_its_own_stays_over_the_budget_after_every_pass():
    predict, made = _predict_slow_for(calls=10**6, slow_s=0.03)
    assert single_row_latency_ms(predict, ROWS, repeats=5, budget_ms=20, passes=3) >= 30
    assert len(made) == 1 + 3 * 5
