"""drift_by_column's row cap: a window at or under ``max_rows`` gives the uncapped figures, a larger one the
figures of a fixed-seed uniform sample of that many of its rows."""

from dataclasses import asdict

import numpy as np
import polars as pl
from polars.testing import assert_frame_equal

from mlplatform.brief import Monitoring
from mlplatform.core import drift


def _table(rows: int) -> tuple[pl.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """A numerical, a few-valued and a text feature; reference rows, current rows and three periods."""
    rng = np.random.default_rng(5)
    table = pl.DataFrame({"x": rng.normal(size=rows), "n": rng.integers(0, 4, rows).astype(float),
                          "plan": rng.choice(["a", "b", "c"], rows)})
    period = rng.integers(-1, 3, rows)
    return table, period == 0, period >= 1, period


def _drift(table: pl.DataFrame, reference: np.ndarray, current: np.ndarray, period: np.ndarray,
           max_rows: int | None) -> tuple[list, pl.DataFrame]:
    return drift.drift_by_column(lambda f: table[f], ["x", "n", "plan"], reference=reference, current=current,
                                 period=period, period_names=["2025-01", "2025-02", "2025-03"], psi_warning=0.1,
                                 psi_critical=0.25, max_rows=max_rows)


def _rounded(report: list[drift.FeatureDrift]) -> list[dict]:
    """Figures to 12 significant digits: categories are counted in an order that can vary run to run, which moves
    the last digit of a categorical feature's JS."""
    return [{k: float(f"{v:.12g}") if isinstance(v, float) else v for k, v in asdict(r).items()} for r in report]


def test_windows_at_or_under_the_cap_give_the_uncapped_figures():
    table, reference, current, period = _table(4_000)
    cap = int(max(reference.sum(), current.sum()))
    uncapped = _drift(table, reference, current, period, None)
    capped = _drift(table, reference, current, period, cap)
    assert _rounded(capped[0]) == _rounded(uncapped[0])
    assert_frame_equal(capped[1], uncapped[1], check_exact=False, rtol=1e-12, atol=0)


def test_windows_over_the_cap_use_a_fixed_seed_sample_of_that_many_rows():
    table, reference, current, period = _table(4_000)
    rng = np.random.default_rng(drift.SAMPLE_SEED)
    sampled_reference = drift.capped_rows(reference, 500, rng)
    sampled_current = drift.capped_rows(current, 500, rng)
    sampled_period = drift._capped_periods(period, [0, 1, 2], 500, rng)
    assert sampled_reference.sum() == sampled_current.sum() == 500
    assert not (sampled_reference & ~reference).any() and not (sampled_current & ~current).any()
    assert np.bincount(sampled_period[sampled_period >= 0]).tolist() == [500, 500, 500]
    assert (sampled_period[sampled_period >= 0] == period[sampled_period >= 0]).all()
    report, by_period = _drift(table, reference, current, period, 500)
    # The figures are those of the sampled rows (the report, each period's PSI against the sample's bins); each
    # period's rows are all its rows.
    on_sample = _drift(table, sampled_reference, sampled_current, sampled_period, None)
    assert _rounded(report) == _rounded(on_sample[0])
    assert_frame_equal(by_period.drop("rows"), on_sample[1].drop("rows"), check_exact=False, rtol=1e-12, atol=0)
    expected_rows = dict(zip(["2025-01", "2025-02", "2025-03"], np.bincount(period[period >= 0]).tolist(),
                             strict=True))
    assert by_period["rows"].to_list() == [expected_rows[p] for p in by_period["period"]]
    assert _rounded(report) != _rounded(_drift(table, reference, current, period, None)[0])
    again = _drift(table, reference, current, period, 500)
    assert _rounded(again[0]) == _rounded(report)
    assert_frame_equal(again[1], by_period, check_exact=False, rtol=1e-12, atol=0)


def test_the_mask_is_returned_as_it_is_under_the_cap():
    mask = np.array([True, False, True])
    rng = np.random.default_rng(0)
    assert drift.capped_rows(mask, 2, rng) is mask
    assert drift.capped_rows(mask, None, rng) is mask


def test_the_brief_caps_drift_windows_at_a_million_rows_by_default():
    assert Monitoring().drift_max_rows == 1_000_000
