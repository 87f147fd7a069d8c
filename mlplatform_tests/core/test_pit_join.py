from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mlplatform.core.feature_store import (
    feature_service_name,
    historical_features,
)
from mlplatform.core.pit_join import point_in_time_join
from mlplatform_tests.core.shop_features import FEATURES, SPEC, T0, applied_store

TTL = timedelta(days=SPEC.ttl_days)


def _with_nulls(rng: np.random.Generator, values: np.ndarray) -> pl.Series:
    return pl.Series(values).scatter(np.flatnonzero(rng.random(len(values)) < 0.2), None)


def random_feature_table(rng: np.random.Generator) -> pl.DataFrame:
    """Irregular feature rows of customers 1-4 on a 6-hour grid, so that many share a key and a time.

    Rows sharing one are told apart only by created_timestamp, always distinct or (once per pair) null, so
    that the latest row is well defined for Feast too.
    """
    n = 80
    event_ts = [T0 + timedelta(hours=6 * int(i)) for i in rng.integers(0, 40, n)]
    table = pl.DataFrame(
        {
            "customer_id": rng.integers(1, 5, n),
            "event_timestamp": event_ts,
            "created_timestamp": [
                t + timedelta(minutes=int(m)) for t, m in zip(event_ts, rng.permutation(n), strict=True)
            ],
            "customer_minutes_7d_sum": _with_nulls(rng, rng.random(n).round(3) * 100),
            "customer_minutes_7d_mean": rng.random(n),
            "customer_login_7d_count": _with_nulls(rng, rng.integers(0, 9, n)),
            "customer_days_since_login": rng.random(n) * 10,
            "customer_plan": _with_nulls(rng, rng.choice(["basic", "premium"], n)),
            "customer_tenure_days": rng.integers(0, 400, n),
        },
        schema_overrides={"event_timestamp": pl.Datetime("us"), "created_timestamp": pl.Datetime("us")},
    )
    later = table.sample(15, seed=int(rng.integers(1 << 30))).with_columns(
        pl.col("created_timestamp") + timedelta(days=1),
        pl.col("customer_login_7d_count") + 100,
        pl.col("customer_plan").str.to_uppercase(),
    )
    uncreated = (
        table.unique(["customer_id", "event_timestamp"])
        .sample(6, seed=int(rng.integers(1 << 30)))
        .with_columns(
            pl.lit(None, pl.Datetime("us")).alias("created_timestamp"), pl.lit(-1, pl.Int64).alias(FEATURES[2])
        )
    )
    return pl.concat([table, later, uncreated]).sample(fraction=1.0, shuffle=True, seed=int(rng.integers(1 << 30)))


def random_entity_rows(rng: np.random.Generator, table: pl.DataFrame) -> pl.DataFrame:
    """Random times (some before every feature row) for customers 1-5 (5 has no features), plus rows exactly
    at a feature row's time, exactly at its TTL's end and just past it, and a repeated row."""
    n = 60
    keys = rng.integers(1, 6, n).tolist()
    times = [T0 + timedelta(minutes=int(m)) for m in rng.integers(-2 * 1440, 12 * 1440, n)]
    for row in table.sample(8, seed=int(rng.integers(1 << 30))).iter_rows(named=True):
        ts = row["event_timestamp"]
        keys += [row["customer_id"]] * 3
        times += [ts, ts + TTL, ts + TTL + timedelta(microseconds=1)]
    keys, times = [*keys, keys[0]], [*times, times[0]]
    return pl.DataFrame(
        {"label": rng.integers(0, 2, len(keys)), "customer_id": keys, "event_timestamp": times, "note": "x"},
        schema_overrides={"event_timestamp": pl.Datetime("us")},
    )


def join(entity_df: pl.DataFrame, table, ttl: timedelta | None = TTL, **kwargs) -> pl.DataFrame:
    return point_in_time_join(
        entity_df,
        table,
        entity_key="customer_id",
        entity_timestamp="event_timestamp",
        features=FEATURES,
        ttl=ttl,
        **kwargs,
    )


@pytest.mark.parametrize("seed", range(8))
def test_equals_feast_get_historical_features_on_random_data(tmp_path, seed):
    rng = np.random.default_rng(seed)
    table = random_feature_table(rng)
    entity_df = random_entity_rows(rng, table)
    store = applied_store(tmp_path, table)

    ours = join(entity_df, tmp_path / "customer_daily_features.parquet")

    assert_frame_equal(ours, historical_features(store, entity_df, feature_service_name("shop")))
    # The data exercised what matters: misses, hits, later-created duplicates and null-created duplicates.
    counts = ours["customer_login_7d_count"]
    assert ours["customer_days_since_login"].is_null().any() and ours["customer_days_since_login"].is_not_null().any()
    assert (counts >= 100).any()


def test_picks_the_latest_row_in_the_ttl_and_breaks_ties_by_created_time():
    t = datetime(2025, 3, 1)
    table = pl.DataFrame(
        {
            "customer_id": [1, 1, 1, 1, 2],
            "event_timestamp": [t, t, t, t + timedelta(days=1), t],
            "created_timestamp": [t + timedelta(hours=1), None, t + timedelta(hours=2), t, t],
            **{f: [10, 20, 30, 40, 50] for f in FEATURES},
        }
    )
    entity_df = pl.DataFrame(
        {
            "customer_id": [1, 1, 1, 1, 2, 3, None, 1],
            "event_timestamp": [
                t - timedelta(seconds=1),  # before any row
                t,  # three rows at t: the latest created wins, the null created loses
                t + timedelta(days=1) + TTL,  # the last row is exactly TTL old: bound included
                t + timedelta(days=1) + TTL + timedelta(microseconds=1),  # just past it
                t + timedelta(days=9),
                t,  # key without features
                t,  # null key
                None,  # null time
            ],
        }
    )
    values = [None, 30, 40, None, None, None, None, None]
    assert join(entity_df, table)[FEATURES[0]].to_list() == values
    # No TTL (None, or zero as in Feast): the latest row however old.
    assert join(entity_df, table, ttl=timedelta(0))[FEATURES[0]].to_list() == [None, 30, 40, 40, 50, None, None, None]
    assert join(entity_df, table, ttl=None).equals(join(entity_df, table, ttl=timedelta(0)))


def test_path_frame_zoned_and_date_inputs_agree(tmp_path):
    rng = np.random.default_rng(9)
    table = random_feature_table(rng)
    entity_df = random_entity_rows(rng, table)
    table.write_parquet(tmp_path / "t.parquet")
    expected = join(entity_df, tmp_path / "t.parquet")

    spill = tmp_path / "spill"
    assert_frame_equal(join(entity_df, table, memory_limit="256MB", temp_directory=spill), expected)
    zoned = entity_df.with_columns(
        pl.col("event_timestamp").dt.replace_time_zone("UTC").dt.convert_time_zone("Asia/Tokyo")
    )
    assert_frame_equal(join(zoned, table), zoned.hstack(expected.select(FEATURES)))
    zoned_table = table.with_columns(pl.col("event_timestamp", "created_timestamp").dt.replace_time_zone("UTC"))
    assert_frame_equal(join(entity_df, zoned_table), expected)

    days = pl.DataFrame({"customer_id": [1, 2], "event_timestamp": [date(2025, 1, 6), date(2025, 1, 8)]})
    at_midnight = days.with_columns(pl.col("event_timestamp").cast(pl.Datetime("us")))
    assert_frame_equal(join(days, table).drop("event_timestamp"), join(at_midnight, table).drop("event_timestamp"))


@pytest.mark.parametrize("block_rows", [1, 30, 10**9])
def test_blocks_of_keys_join_as_the_whole_table(tmp_path, block_rows):
    """Any split into key blocks (one key per block, a few, one block) gives the Feast-equal join, with entity rows
    without a key, with keys beyond every feature row and with the table stored in key order."""
    rng = np.random.default_rng(11)
    table = random_feature_table(rng)
    entity_df = random_entity_rows(rng, table)
    entity_df = pl.concat([entity_df, entity_df.head(3).with_columns(pl.lit(None, pl.Int64).alias("customer_id"))])
    table.sort("customer_id").write_parquet(tmp_path / "t.parquet", row_group_size=10)
    expected = join(entity_df, table, block_rows=10**9)
    assert expected["customer_plan"].is_not_null().any() and expected.tail(3)["customer_plan"].is_null().all()

    assert_frame_equal(join(entity_df, tmp_path / "t.parquet", block_rows=block_rows), expected)
    assert_frame_equal(join(entity_df, table, block_rows=block_rows), expected)
    empty = entity_df.clear()
    assert_frame_equal(join(empty, table, block_rows=block_rows), join(empty, table, block_rows=10**9))


def test_missing_and_clashing_columns_are_named(tmp_path):
    table = random_feature_table(np.random.default_rng(4))
    entity_df = pl.DataFrame({"customer_id": [1], "event_timestamp": [T0]})
    with pytest.raises(ValueError, match="event_timestamp"):
        join(entity_df.rename({"event_timestamp": "ts"}), table)
    with pytest.raises(ValueError, match="customer_plan"):
        join(entity_df.with_columns(customer_plan=pl.lit("a")), table)
    table.drop("customer_plan").write_parquet(tmp_path / "t.parquet")
    with pytest.raises(ValueError, match=r"t\.parquet lacks columns \['customer_plan'\]"):
        join(entity_df, tmp_path / "t.parquet")
