"""The atomic writers respect the umask, and lake Parquet files carry page checksums that reads verify."""

import os
import stat

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from mlplatform.brief import DEMO_BRIEF
from mlplatform.core.io import (
    CorruptParquetError,
    read_parquet_verified,
    verify_parquet,
    write_parquet_atomic,
    write_parquet_frames_atomic,
    write_text_atomic,
)
from mlplatform.resources.platform import PlatformResource

FRAME = pl.DataFrame({
    "customer_id": np.arange(20_000),
    "score": np.random.default_rng(0).random(20_000),
    "plan": np.random.default_rng(1).choice(["basic", "pro", "team"], 20_000),
})


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_written_files_follow_the_umask_not_mkstemps_0600(tmp_path, umask_027):
    assert _mode(write_parquet_atomic(FRAME, tmp_path / "t.parquet")) == 0o640
    assert _mode(write_text_atomic("hello", tmp_path / "t.txt")) == 0o640
    os.umask(0o002)
    assert _mode(write_parquet_atomic(FRAME, tmp_path / "t.parquet")) == 0o664


def _flip_data_bytes(path) -> None:
    """Change two bytes in the middle of the score column's pages, leaving the footer intact."""
    column = pq.ParquetFile(path).metadata.row_group(0).column(1)
    start = column.dictionary_page_offset if column.has_dictionary_page else column.data_page_offset
    offset = start + column.total_compressed_size // 2
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    data[offset + 1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_the_writer_stores_page_checksums_and_the_data_round_trips(tmp_path):
    path = write_parquet_atomic(FRAME, tmp_path / "t.parquet")
    assert_frame_equal(read_parquet_verified(path), FRAME)
    assert pq.ParquetFile(path).metadata.created_by.startswith("parquet-cpp-arrow")


def test_frames_written_one_by_one_read_back_as_their_concatenation_with_checksums(tmp_path):
    blocks = (FRAME.slice(lo, 7_000) for lo in range(0, FRAME.height, 7_000))
    path = write_parquet_frames_atomic(blocks, tmp_path / "t.parquet")
    assert_frame_equal(read_parquet_verified(path), FRAME)
    assert pq.ParquetFile(path).metadata.num_row_groups == 3
    _flip_data_bytes(path)
    with pytest.raises(CorruptParquetError):
        read_parquet_verified(path)
    with pytest.raises(ValueError, match="no frames"):
        write_parquet_frames_atomic(iter([]), tmp_path / "none.parquet")
    assert not (tmp_path / "none.parquet").exists()
    enum = pl.DataFrame({"plan": ["a", "b"]}, schema={"plan": pl.Enum(["a", "b"])})
    path = write_parquet_frames_atomic([enum.head(1), enum.tail(1)], tmp_path / "enum.parquet")
    assert_frame_equal(pl.read_parquet(path), enum)


def test_a_file_with_flipped_data_bytes_is_refused_naming_it(tmp_path):
    path = write_parquet_atomic(FRAME, tmp_path / "t.parquet")
    _flip_data_bytes(path)
    assert pl.read_parquet(path).height == FRAME.height  # the plain read does not notice
    with pytest.raises(CorruptParquetError, match=rf"^{path} is corrupt: .*CRC checksum verification failed.*"
                                                  "Rematerialise the asset that writes it"):
        read_parquet_verified(path)


def test_a_lake_read_refuses_a_corrupted_table(tmp_path):
    platform = PlatformResource(data_dir=str(tmp_path / "data"), brief_path=str(DEMO_BRIEF))
    path = platform.write_table("features", "scores", FRAME)
    assert_frame_equal(platform.read_table("features", "scores"), FRAME)
    _flip_data_bytes(path)
    with pytest.raises(CorruptParquetError, match="scores.parquet is corrupt"):
        platform.read_table("features", "scores")
    partition = platform.write_partition("features", "monthly", "2024-01", FRAME)
    _flip_data_bytes(partition)
    with pytest.raises(CorruptParquetError, match="2024-01.parquet is corrupt"):
        platform.scan_table("features", "monthly")


def test_a_rewritten_file_is_verified_again(tmp_path):
    path = write_parquet_atomic(FRAME, tmp_path / "t.parquet")
    verify_parquet(path)
    write_parquet_atomic(FRAME.head(10_000), path)
    _flip_data_bytes(path)
    with pytest.raises(CorruptParquetError):
        verify_parquet(path)


def test_types_pyarrow_cannot_round_trip_keep_polars_writer(tmp_path):
    frame = pl.DataFrame({"plan": pl.Series(["a", "b"], dtype=pl.Enum(["a", "b", "c"])), "n": [1, 2]})
    path = write_parquet_atomic(frame, tmp_path / "enum.parquet")
    assert_frame_equal(read_parquet_verified(path), frame)
    assert_frame_equal(read_parquet_verified(write_parquet_atomic(pl.DataFrame(), tmp_path / "empty.parquet")),
                       pl.DataFrame())
