"""Profiles written per period (the served predictions' daily profiles): one mergeable file per period value,
and the summaries of all of them in one table, oldest first."""

import polars as pl
import pytest

from mlplatform.core import profiling
from mlplatform.core.profiling import SUMMARY_SCHEMA, read_profile, write_profiles_by_period


def _served() -> pl.DataFrame:
    return pl.DataFrame({
        "day": ["2025-06-02", "2025-06-01", "2025-06-02", "2025-06-02", "2025-06-01"],
        "tenure_days": [10, 20, 30, None, 50],
        "plan": ["basic", "premium", "basic", "basic", None],
        "probability": [0.1, 0.9, 0.4, 0.6, 0.2],
    })


def test_each_period_is_profiled_into_its_own_file_and_summarised_oldest_first(tmp_path):
    summaries = write_profiles_by_period(_served(), "day", tmp_path / "predictions")

    assert sorted(p.name for p in (tmp_path / "predictions").iterdir()) == ["2025-06-01.bin", "2025-06-02.bin",
                                                                           "fingerprints.json"]
    assert summaries.schema == pl.Schema({"day": pl.String, **SUMMARY_SCHEMA})
    assert summaries["day"].to_list() == ["2025-06-01"] * 3 + ["2025-06-02"] * 3
    tenure = summaries.filter(pl.col("column") == "tenure_days").select("day", "count", "null_count", "mean")
    assert tenure.rows() == [("2025-06-01", 2, 0, 35.0), ("2025-06-02", 3, 1, 20.0)]
    written = read_profile(tmp_path / "predictions" / "2025-06-02.bin").to_pandas()
    assert int(written.loc["probability", "counts/n"]) == 3  # the file holds that day's rows only


def test_a_frame_without_rows_or_without_the_period_column_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no rows to profile by day"):
        write_profiles_by_period(_served().clear(), "day", tmp_path)
    with pytest.raises(ValueError, match="period column 'hour' is not in the frame"):
        write_profiles_by_period(_served(), "hour", tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_period_whose_rows_did_not_change_is_read_back_not_profiled_again(tmp_path, monkeypatch):
    folder = tmp_path / "predictions"
    first = write_profiles_by_period(_served(), "day", folder)
    profiled = []
    real = profiling.profile_frame
    monkeypatch.setattr(profiling, "profile_frame", lambda rows: profiled.append(rows.height) or real(rows))

    again = write_profiles_by_period(_served(), "day", folder)
    assert profiled == [] and again.equals(first)  # both days read back, their summaries as before

    grown = pl.concat([_served(), pl.DataFrame({"day": ["2025-06-03", "2025-06-01"], "tenure_days": [5, 6],
                                                "plan": ["basic", "basic"], "probability": [0.3, 0.7]})])
    summaries = write_profiles_by_period(grown, "day", folder)
    assert profiled == [3, 1]  # the day that gained a row and the new day; 2025-06-02 is read back
    assert summaries.equals(write_profiles_by_period(grown, "day", tmp_path / "fresh"))  # as if profiled whole
    profiled.clear()
    (folder / "2025-06-02.bin").unlink()  # a profile file gone: profiled again
    write_profiles_by_period(grown, "day", folder)
    assert profiled == [3]
    profiled.clear()
    (folder / "2025-06-03.bin").write_bytes(b"not a profile")  # unreadable: profiled again, the file rewritten
    write_profiles_by_period(grown, "day", folder)
    assert profiled == [1] and read_profile(folder / "2025-06-03.bin")
    profiled.clear()
    (folder / "fingerprints.json").write_text("{truncated")  # unreadable fingerprints: every day profiled again
    assert write_profiles_by_period(grown, "day", folder).equals(summaries)
    assert profiled == [3, 3, 1]
