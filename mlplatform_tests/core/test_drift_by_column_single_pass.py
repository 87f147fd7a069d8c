"""drift_by_column bins a numerical column once for the report and every period: pinned bit for bit against the
per-period copies it replaces (the report's PSI, KS and JS, and every period's rows and PSI). Categorical columns
keep their path (category counts joined per period); polars' hash order of those counts varies from run to run, so
their figures are compared to 12 significant digits, as before."""

from dataclasses import asdict

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mlplatform.core import drift


def _old_drift_by_column(column, features, *, reference, current, period, period_names, psi_warning, psi_critical,
                         bins=10):
    """drift_by_column as it was: each period's rows gathered and binned apart."""
    order = np.argsort(period, kind="stable")
    bounds = np.searchsorted(period[order], np.arange(len(period_names) + 1))
    report, rows = [], []
    for feature in features:
        values = column(feature)
        ref = values.filter(pl.Series(reference))
        ref_sorted = None if drift._is_categorical(ref.dtype) else drift._numeric(ref)
        report.append(drift._feature_drift(feature, ref, values.filter(pl.Series(current)), psi_warning=psi_warning,
                                           psi_critical=psi_critical, bins=bins, ref_sorted=ref_sorted))
        parts = [(str(name), values.gather(order[lo:hi]))
                 for name, lo, hi in zip(period_names, bounds[:-1], bounds[1:], strict=True) if hi > lo]
        rows += drift._period_rows(feature, ref, sorted(parts, key=lambda part: part[0]), psi_warning=psi_warning,
                                   psi_critical=psi_critical, bins=bins, ref_sorted=ref_sorted)
    return report, drift._by_period_frame(rows, features)


def _table(seed: int, n: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    x[rng.random(n) < 0.03] = np.nan
    return pl.DataFrame({
        "x": pl.Series(x, nan_to_null=True),
        "x_nan": x,  # NaN kept as a float value: counted with the nulls
        "shifted": rng.normal(size=n) + np.linspace(0, 2, n),
        "count": pl.Series(rng.poisson(2, n)).scatter(list(range(0, n, 97)), None),  # few distinct values
        "flag": rng.integers(0, 2, n),
        "flat": np.ones(n),
        "ties": np.round(rng.exponential(size=n), 1),
        "day": pl.Series(rng.integers(0, 400, n)).cast(pl.Date),
        "at": pl.Series(rng.integers(0, 10**12, n)).cast(pl.Datetime("us")),
        "plan": rng.choice(["basic", "pro", None], n),
        "as_category": pl.Series(rng.choice(["a", "b", "c"], n)).cast(pl.Categorical),
        "ok": rng.random(n) < 0.4,
    })


@pytest.mark.parametrize(("seed", "n", "bin_rows", "overlap"),
                         [(0, 400, 1 << 22, False), (1, 5_000, 777, False), (2, 30_000, 4096, True)])
def test_drift_by_column_equals_the_per_period_copies_bit_for_bit(seed, n, bin_rows, overlap, monkeypatch):
    monkeypatch.setattr(drift, "_BIN_ROWS", bin_rows)  # slices of the column, their edges included
    table = _table(seed, n)
    rng = np.random.default_rng(seed + 100)
    period = rng.integers(-1, 7, n).astype(np.int32)
    period[period == 4] = -1  # a named period without rows
    names = ["2024-11", "2024-12", "2025-01", "2025-02", "2025-03", "2025-04", "2025-05"]
    reference, current = (period == 0) | (period == 1), period == 6
    if overlap:  # rows in both samples
        current |= period == 1
    features = table.columns
    got = drift.drift_by_column(lambda f: table[f], features, reference=reference, current=current, period=period,
                                period_names=names, psi_warning=0.1, psi_critical=0.25)
    expected = _old_drift_by_column(lambda f: table[f], features, reference=reference, current=current,
                                    period=period, period_names=names, psi_warning=0.1, psi_critical=0.25)
    categorical = {"plan", "as_category", "ok"}
    assert [asdict(r) for r in got[0] if r.feature not in categorical] == \
        [asdict(r) for r in expected[0] if r.feature not in categorical]
    assert [_rounded(r) for r in got[0]] == [_rounded(r) for r in expected[0]]
    numeric = pl.col("feature").is_in(categorical).not_()
    assert_frame_equal(got[1].filter(numeric), expected[1].filter(numeric))
    assert_frame_equal(got[1], expected[1], check_exact=False, rel_tol=1e-12)


def _rounded(result) -> dict:
    return {k: float(f"{v:.12g}") if isinstance(v, float) else v for k, v in asdict(result).items()}


def test_an_all_null_current_sample_has_no_ks_and_its_psi_in_the_null_bin():
    n = 1_000
    values = pl.Series("x", [*np.arange(800, dtype=float), *([None] * 200)])
    period = np.r_[np.zeros(800), np.ones(200)].astype(np.int32)
    got = drift.drift_by_column(lambda f: values, ["x"], reference=period == 0, current=period == 1, period=period,
                                period_names=["a", "b"], psi_warning=0.1, psi_critical=0.25)
    expected = _old_drift_by_column(lambda f: values, ["x"], reference=period == 0, current=period == 1,
                                    period=period, period_names=["a", "b"], psi_warning=0.1, psi_critical=0.25)
    assert got[0][0].ks is None and got[0][0].severity == "critical" and n == 1_000
    assert [asdict(r) for r in got[0]] == [asdict(r) for r in expected[0]]
    assert_frame_equal(got[1], expected[1])


@pytest.mark.parametrize("values", [lambda rng, n: rng.normal(size=n), lambda rng, n: rng.integers(0, 6, n) * 1.0])
def test_bin_index_counts_what_the_binner_counts(values):
    rng = np.random.default_rng(4)
    ref = drift._numeric(pl.Series(values(rng, 3000)))
    sample = np.r_[values(rng, 2000) + rng.choice([0.0, 0.5, 9.0], 2000), [np.nan] * 30, [np.inf, -np.inf]]
    index, size = drift._bin_index(ref, 10)
    found = np.bincount(index(sample), minlength=size)
    assert found.size == size and found[-1] == 30
    assert (found == drift._binner(ref, 10)(*drift._valid(pl.Series(sample, nan_to_null=True)))).all()


def _old_ks(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> tuple[float, float]:
    """The KS statistic as it was: a stable argsort merging both sorted samples."""
    from scipy import stats

    n1, n2 = ref_sorted.size, cur_sorted.size
    merged = np.concatenate((ref_sorted, cur_sorted))
    order = np.argsort(merged, kind="stable")
    gap = (n1 + n2) * np.cumsum(order < n1) - n1 * np.arange(1, n1 + n2 + 1)
    values = merged[order]
    last = np.append(values[1:] != values[:-1], True)
    statistic = float(np.abs(gap[last]).max() / (n1 * n2))
    effective_n = n1 * n2 / (n1 + n2)
    pvalue = stats.kstwo.sf(statistic, np.round(effective_n)) if effective_n <= 10_000 else \
        stats.kstwobign.sf(statistic * np.sqrt(effective_n))
    return statistic, float(pvalue)


@pytest.mark.parametrize("seed", range(30))
def test_ks_from_run_ends_equals_the_merged_argsort_bit_for_bit(seed):
    from scipy import stats

    rng = np.random.default_rng(seed)
    n1, n2 = int(rng.integers(1, 4_000)), int(rng.integers(1, 30_000))
    draw = [lambda n: rng.normal(size=n), lambda n: np.round(rng.normal(size=n), 1),
            lambda n: rng.integers(0, 3, n).astype(float), lambda n: np.r_[rng.normal(size=n - 1), np.inf],
            lambda n: np.zeros(n) * rng.choice([-1.0, 1.0], n)][seed % 5]  # ties, few values, inf, -0.0 and 0.0
    ref, cur = np.sort(draw(n1)), np.sort(draw(n2) + rng.choice([0.0, 0.3]))
    got = drift._ks(ref, cur)
    assert got == _old_ks(ref, cur)
    if n1 * n2 / (n1 + n2) > 10_000 or seed % 5 == 3:
        return
    expected = stats.ks_2samp(ref, cur, method="asymp")
    assert got[0] == pytest.approx(expected.statistic, abs=1e-12)
