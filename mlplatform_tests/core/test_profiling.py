from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest
from whylogs.core import DatasetProfileView
from whylogs.core.datatypes import StandardTypeMapper, String

from mlplatform.core import profiling


@pytest.fixture
def frame() -> pl.DataFrame:
    """Every dtype the platform's tables use, each with nulls where the dtype allows them."""
    n = 1000
    rng = np.random.default_rng(0)
    every_tenth = np.arange(0, n, 10)
    return pl.DataFrame({
        "customer_id": pl.Series(np.arange(1, n + 1), dtype=pl.Int64),
        "tickets": pl.Series(rng.integers(0, 7, n), dtype=pl.Int64).scatter(every_tenth, None),
        "fee": pl.Series(rng.normal(50, 10, n)).scatter(every_tenth, None),
        "plan": pl.Series(rng.choice(["basic", "standard", "premium"], n)).scatter(every_tenth, None),
        "region": pl.Series(rng.choice(["north", "south", "east", "west"], n)).cast(pl.Categorical),
        "signup_date": [None if i % 10 == 0 else date(2025, 1, 1) + timedelta(days=i % 100) for i in range(n)],
        "event_timestamp": [datetime(2025, 1, 1) + timedelta(hours=i) for i in range(n)],
        "churned": pl.Series(rng.random(n) < 0.2).scatter(every_tenth, None),
    })


def summary_of(frame: pl.DataFrame) -> dict[str, dict]:
    return {row["column"]: row for row in profiling.profile_summary(profiling.profile_frame(frame)).to_dicts()}


def test_numpy_2_is_what_we_profile_on():
    # The module exists because whylogs 1.6.4 breaks on NumPy 2; if this changes, revisit it.
    assert int(np.__version__.split(".")[0]) >= 2


def test_whylogs_own_mapper_still_breaks_on_strings_so_ours_is_needed():
    with pytest.raises(AttributeError, match="unicode_"):
        StandardTypeMapper()(pd.StringDtype("python"))
    assert isinstance(profiling._TypeMapper()(pd.StringDtype("python")), String)


def test_every_dtype_is_profiled_with_nulls_preserved(frame):
    summary = summary_of(frame)
    assert set(summary) == set(frame.columns)
    for column in frame.columns:
        assert summary[column]["count"] == frame.height
        assert summary[column]["null_count"] == frame[column].null_count(), column

    fee = frame["fee"]
    assert summary["fee"]["mean"] == pytest.approx(fee.mean(), rel=1e-9)
    assert summary["fee"]["stddev"] == pytest.approx(fee.std(), rel=1e-9)
    assert (summary["fee"]["min"], summary["fee"]["max"]) == (fee.min(), fee.max())
    assert summary["tickets"]["mean"] == pytest.approx(frame["tickets"].mean(), rel=1e-9)
    assert summary["churned"]["mean"] == pytest.approx(frame["churned"].cast(pl.Int8).mean(), rel=1e-9)
    # Dates as days since 1970-01-01, datetimes as seconds since the epoch.
    assert summary["signup_date"]["min"] == (date(2025, 1, 2) - date(1970, 1, 1)).days
    assert summary["event_timestamp"]["min"] == (datetime(2025, 1, 1) - datetime(1970, 1, 1)).total_seconds()
    # Strings have no distribution, only counts and cardinality.
    for text in ("plan", "region"):
        assert summary[text]["mean"] is None and summary[text]["min"] is None
    assert summary["plan"]["distinct_estimate"] == pytest.approx(3, abs=0.1)
    assert summary["region"]["distinct_estimate"] == pytest.approx(4, abs=0.1)
    assert summary["customer_id"]["distinct_estimate"] == pytest.approx(1000, rel=0.05)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # whylogs' stddev of inf is NaN
def test_nan_and_inf_are_counted_not_dropped():
    summary = summary_of(pl.DataFrame({"x": [1.0, float("nan"), None, float("inf"), 3.0]}))["x"]
    assert (summary["count"], summary["null_count"]) == (5, 2)  # null and NaN are both missing
    assert summary["max"] == float("inf")


def test_a_column_without_nulls_profiles_like_one_with_them():
    # Null-free columns take whylogs' vectorised path; the statistics must not depend on that.
    values = np.random.default_rng(1).normal(size=500)
    clean = summary_of(pl.DataFrame({"x": values}))["x"]
    with_null = summary_of(pl.DataFrame({"x": [*values, None]}))["x"]
    for stat in ("mean", "stddev", "min", "max", "distinct_estimate"):
        assert clean[stat] == pytest.approx(with_null[stat], rel=1e-12), stat
    assert (clean["null_count"], with_null["null_count"]) == (0, 1)


def test_an_empty_frame_gives_an_empty_profile():
    summary = summary_of(pl.DataFrame({"x": pl.Series([], dtype=pl.Float64), "s": pl.Series([], dtype=pl.String)}))
    assert summary["x"]["count"] == 0 and summary["x"]["mean"] is None


def test_unsupported_dtypes_are_named():
    with pytest.raises(TypeError, match="column 'tags' has dtype List"):
        profiling.profile_frame(pl.DataFrame({"tags": [["a"], ["b"]]}))


def test_write_and_read_round_trip_atomically(frame, tmp_path):
    view = profiling.profile_frame(frame)
    path = profiling.write_profile(view, tmp_path / "profiles" / "batch.bin")
    assert sorted(p.name for p in path.parent.iterdir()) == ["batch.bin"]  # no temporary file left behind
    assert profiling.profile_summary(profiling.read_profile(path)).equals(profiling.profile_summary(view))


def test_read_profile_rejects_other_files(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a profile")
    with pytest.raises(ValueError, match="not a whylogs profile"):
        profiling.read_profile(junk)
    with pytest.raises(FileNotFoundError):
        profiling.read_profile(tmp_path / "missing.bin")


def test_merged_profiles_describe_the_union_of_batches(frame):
    whole = summary_of(frame)
    halves = [profiling.profile_frame(frame.head(400)), profiling.profile_frame(frame.tail(600))]
    merged = {r["column"]: r for r in profiling.profile_summary(profiling.merge_profiles(halves)).to_dicts()}
    for column in frame.columns:
        for stat in ("count", "null_count", "min", "max"):
            assert merged[column][stat] == whole[column][stat], (column, stat)
        if whole[column]["mean"] is not None:
            assert merged[column]["mean"] == pytest.approx(whole[column]["mean"], rel=1e-9)
    with pytest.raises(ValueError, match="at least one"):
        profiling.merge_profiles([])


def test_the_summary_schema_is_what_profile_summary_returns(frame):
    summary = profiling.profile_summary(profiling.profile_frame(frame))
    assert summary.schema == pl.DataFrame(schema=profiling.SUMMARY_SCHEMA).schema


def test_a_prediction_log_is_read_as_its_served_features_and_outputs():
    import json

    log = pl.DataFrame({
        "features": [json.dumps({"fee": 10, "plan": "basic"}), json.dumps({"fee": 12.5, "seats": 3}), "{}"],
        "prediction": [1.0, 0.0, None], "probability": [0.9, 0.2, None], "status": ["ok", "ok", "error"]})
    served = profiling.served_frame(log)
    # Versions with different inputs share one log: the columns are the union of what was served.
    assert served.columns == ["fee", "plan", "seats", "prediction", "probability"]
    assert served["fee"].to_list() == [10.0, 12.5, None]
    assert served["seats"].to_list() == [None, 3, None]
    assert served["probability"].to_list() == [0.9, 0.2, None]
    assert profiling.served_frame(log.with_columns(features=pl.lit("{}"))).columns == ["prediction", "probability"]


def test_a_prediction_log_with_a_missing_column_or_a_clashing_feature_is_refused():
    log = pl.DataFrame({"features": ['{"prediction": 1}'], "prediction": [1.0], "probability": [0.5]})
    with pytest.raises(ValueError, match=r"served feature\(s\) \['prediction'\] have the name of a prediction output"):
        profiling.served_frame(log)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['probability'\]"):
        profiling.served_frame(log.drop("probability"))


def test_profile_by_period_profiles_each_period_alone_and_merges_to_the_whole(frame):
    days = frame.with_columns(pl.col("event_timestamp").dt.strftime("%Y-%m-%d").alias("day"))
    views = profiling.profile_by_period(days, "day")
    assert list(views) == sorted(days["day"].unique().to_list())
    first = {r["column"]: r for r in profiling.profile_summary(views[list(views)[0]]).to_dicts()}
    assert "day" not in first
    assert first["fee"]["count"] == days.filter(pl.col("day") == list(views)[0]).height
    merged = {r["column"]: r for r in profiling.profile_summary(profiling.merge_profiles(views.values())).to_dicts()}
    whole = summary_of(frame)
    for column in frame.columns:
        assert (merged[column]["count"], merged[column]["null_count"]) == (frame.height, whole[column]["null_count"])
    with pytest.raises(ValueError, match="period column 'week'"):
        profiling.profile_by_period(days, "week")


def test_float_columns_with_gaps_profile_as_whylogs_profiles_them_whole(frame):
    """A float column with nulls or NaN is profiled as its values plus its gaps, merged: every metric whylogs
    reports (counts, null/NaN counts, types, distribution and its quantiles, cardinality, frequent items) equals
    whylogs' own profile of the whole frame."""
    rng = np.random.default_rng(5)
    gappy = frame.with_columns(
        nan=pl.Series(rng.normal(size=frame.height)).scatter([1, 2, 500], float("nan")).scatter([7], None),
        empty=pl.Series([None] * frame.height, dtype=pl.Float64),
        few=pl.Series(rng.integers(0, 4, frame.height) * 0.5).scatter(np.arange(0, frame.height, 3), None))
    ours = profiling.profile_frame(gappy).to_pandas().sort_index()
    whylogs_own = profiling._track(profiling._whylogs_safe(gappy)).to_pandas().sort_index()

    assert list(ours.index) == list(whylogs_own.index) and list(ours.columns) == list(whylogs_own.columns)
    pd.testing.assert_frame_equal(ours, whylogs_own, check_exact=False, rtol=1e-12)
    assert ours.loc["nan", "counts/nan"] == ours.loc["nan", "counts/null"] == 4  # NaN and null are both missing


@pytest.mark.parametrize("dtype", [pl.Float64, pl.Int64])
def test_gaps_profiled_by_doubling_equal_whylogs_profile_of_every_gap(dtype):
    """A column of gaps is profiled from one gap's profile merged by doubling: every metric equals whylogs' own
    profile of all of them (null and NaN alike for floats), and so does the profile as written and read back."""
    for times in (1, 2, 3, 5, 64, 1000, 1023):
        values = [float("nan") if i % 3 and dtype == pl.Float64 else None for i in range(times)]
        safe = profiling._whylogs_safe(pl.DataFrame({"x": pl.Series(values, dtype=dtype)}))
        ours, whylogs_own = profiling._repeated(safe.head(1), times), profiling._track(safe)
        # A merged empty distribution keeps an integer 0 as its mean until written (then 0.0, as whylogs' own).
        pd.testing.assert_frame_equal(ours.to_pandas().sort_index(), whylogs_own.to_pandas().sort_index(),
                                      check_exact=True, check_dtype=False)
        written, own_written = (DatasetProfileView.deserialize(view.serialize()).to_pandas().sort_index()
                                for view in (ours, whylogs_own))
        pd.testing.assert_frame_equal(written, own_written, check_exact=True)


@pytest.mark.parametrize("values", [2, 5, 32])
def test_few_valued_text_profiled_per_value_equal_whylogs_profile_of_the_column(monkeypatch, values):
    """A text column of few values (ties in their counts, a null among them) is profiled per value by doubling: every
    metric equals whylogs' own profile of the frame (frequent items with their bounds, cardinality, types, counts),
    in memory and as written; only the order of frequent items with equal counts may differ (the sketch lists them
    in its hash table's order)."""
    monkeypatch.setattr(profiling, "_ROWS_PER_FEW_VALUE", 4)
    rng = np.random.default_rng(values)
    height = 200 * values
    words = [f"value-{k}" for k in range(values - 1)] + [None]
    text = [words[k] for k in rng.integers(0, values, height)]
    text[: 2 * values] = words * 2  # every value present
    frame = pl.DataFrame({"plan": text, "tied": ["a", "b"] * (height // 2), "x": rng.normal(size=height),
                          "many": [f"id-{k}" for k in range(height)]})
    ours, whylogs_own = profiling.profile_frame(frame), profiling._track(profiling._whylogs_safe(frame))
    # The text columns on every metric; x's KLL quantiles are randomised by whylogs (they differ run to run).
    text_rows = ["many", "plan", "tied"]

    def metrics(view: DatasetProfileView) -> pd.DataFrame:
        table = view.to_pandas().sort_index().loc[text_rows]
        items = "frequent_items/frequent_strings"
        table[items] = [sorted((i.value, i.est, i.upper, i.lower) for i in found) for found in table[items]]
        return table

    # A merged empty distribution keeps an integer 0 as its mean until written (then 0.0, as whylogs' own).
    pd.testing.assert_frame_equal(metrics(ours), metrics(whylogs_own), check_exact=True, check_dtype=False)
    assert ours.to_pandas().loc["x", "counts/n"] == height
    written, own_written = (metrics(DatasetProfileView.deserialize(view.serialize())) for view in (ours, whylogs_own))
    pd.testing.assert_frame_equal(written, own_written, check_exact=True)
