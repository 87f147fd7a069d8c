import runpy
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import feast
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mlplatform.core.feature_catalogue import build_catalogue
from mlplatform.core.feature_store import (
    OnlineReader,
    apply_feature_store,
    feast_config,
    feast_objects,
    feature_service_name,
    historical_features,
    materialised_span,
    materialize_online,
    online_features,
)
from mlplatform.core.features import build_features
from mlplatform_tests.core.shop_features import CATALOGUE, CUSTOMERS, FEATURES, SPEC, T0, applied_store

SERVICE = feature_service_name("shop")


def random_feature_table(rng: np.random.Generator) -> pl.DataFrame:
    """Irregular timestamps for entities 1-4, some repeated with a later created_timestamp and new values."""
    n = 60
    event_ts = [T0 + timedelta(hours=int(h)) for h in rng.integers(0, 24 * 20, n)]
    created = [ts + timedelta(minutes=int(m)) for ts, m in zip(event_ts, rng.permutation(n), strict=True)]
    table = pl.DataFrame(
        {
            "customer_id": rng.integers(1, 5, n),
            "event_timestamp": event_ts,
            "created_timestamp": created,
            "customer_minutes_7d_sum": pl.Series(
                np.where(rng.random(n) < 0.2, np.nan, rng.random(n).round(3) * 100), nan_to_null=True
            ),
            "customer_minutes_7d_mean": rng.random(n),
            "customer_login_7d_count": rng.integers(0, 9, n),
            "customer_days_since_login": rng.random(n) * 10,
            "customer_plan": rng.choice(["basic", "premium"], n),
            "customer_tenure_days": rng.integers(0, 400, n),
        },
        strict=False,
    )
    duplicates = table.sample(10, seed=1).with_columns(
        pl.col("created_timestamp") + timedelta(days=1),
        pl.col("customer_login_7d_count") + 100,
        pl.col("customer_plan").str.to_uppercase(),
    )
    return pl.concat([table, duplicates]).sample(fraction=1.0, shuffle=True, seed=2)


def latest(table: pl.DataFrame, key: int, low: datetime, high: datetime) -> dict | None:
    """The row of ``key`` with the greatest (event_timestamp, created_timestamp) in [low, high]."""
    rows = table.filter(
        (pl.col("customer_id") == key) & pl.col("event_timestamp").is_between(low, high)
    ).sort("event_timestamp", "created_timestamp")
    return rows.row(-1, named=True) if rows.height else None


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[feast.FeatureStore, pl.DataFrame]:
    table = random_feature_table(np.random.default_rng(0))
    return applied_store(tmp_path_factory.mktemp("feast"), table), table


def test_historical_features_are_the_latest_row_within_ttl(store):
    store, table = store
    rng = np.random.default_rng(3)
    times = [T0 + timedelta(hours=int(h)) for h in rng.integers(0, 24 * 24, 40)]
    # Boundaries: exactly at a feature row's time, and exactly at the end of its TTL.
    first = table.sort("event_timestamp").row(0, named=True)
    keys = [*rng.integers(1, 6, 40).tolist(), first["customer_id"], first["customer_id"]]
    times += [first["event_timestamp"], first["event_timestamp"] + timedelta(days=SPEC.ttl_days)]
    entity_df = pl.DataFrame(
        {"label": list(range(len(keys))), "customer_id": keys, "event_timestamp": times},
        schema={"label": pl.Int64, "customer_id": pl.Int64, "event_timestamp": pl.Datetime("us")},
    )

    out = historical_features(store, entity_df, SERVICE)

    expected_rows = []
    for key, ts in zip(keys, times, strict=True):
        row = latest(table, key, ts - timedelta(days=SPEC.ttl_days), ts) or {}
        expected_rows.append({name: row.get(name) for name in FEATURES})
    expected = entity_df.hstack(pl.DataFrame(expected_rows, schema={f: table.schema[f] for f in FEATURES}))
    assert_frame_equal(out, expected)
    # Entity 5 has no features at all and is kept with nulls; the TTL end is inclusive.
    assert out.filter(pl.col("customer_id") == 5)["customer_plan"].is_null().all()
    assert out["customer_plan"][-1] is not None
    # Some rows come from a duplicated timestamp, where only the later created_timestamp may win.
    assert (out["customer_login_7d_count"] >= 100).any()


def test_historical_features_accepts_dates_and_names_missing_columns(store):
    store, table = store
    entity_df = pl.DataFrame({"customer_id": [1, 2], "event_timestamp": [T0.date() + timedelta(days=10)] * 2})
    out = historical_features(store, entity_df, SERVICE)
    assert out.schema["event_timestamp"] == pl.Date
    assert out["customer_login_7d_count"].to_list() == [
        (latest(table, key, T0 + timedelta(days=8), T0 + timedelta(days=10)) or {}).get(
            "customer_login_7d_count"
        )
        for key in (1, 2)
    ]
    with pytest.raises(ValueError, match="event_timestamp"):
        historical_features(store, entity_df.rename({"event_timestamp": "snapshot_date"}), SERVICE)


def test_materialize_then_online_features_are_the_latest_in_the_window(store):
    store, table = store
    start, end = T0 + timedelta(days=3), T0 + timedelta(days=9)
    materialize_online(store, start, end)

    out = online_features(store, [4, 1, 5, 2, 3], SERVICE)

    assert out["customer_id"] == [4, 1, 5, 2, 3]
    for i, key in enumerate(out["customer_id"]):
        row = latest(table, key, start, end) or {}
        for name in FEATURES:
            assert out[name][i] == pytest.approx(row.get(name)), (key, name)


def test_a_join_at_the_feature_rows_own_times_returns_the_table_built_by_build_features(tmp_path):
    rng = np.random.default_rng(7)
    n = 80
    events = pl.DataFrame(
        {
            "customer_id": rng.integers(1, 4, n),
            "event_timestamp": [T0 + timedelta(minutes=int(m)) for m in rng.integers(0, 12 * 1440, n)],
            "event_type": rng.choice(["login", "usage"], n),
            "minutes": rng.random(n) * 60,
        }
    )
    entities = pl.DataFrame(
        {"customer_id": [1, 2, 3], "signup_date": [T0.date()] * 3, "plan": ["basic", None, "premium"]}
    )
    table = build_features(
        events,
        entities,
        SPEC,
        entity="customer",
        entity_key="customer_id",
        timestamp="event_timestamp",
        start=T0.date(),
        end=T0.date() + timedelta(days=10),
    )
    store = applied_store(tmp_path, table)
    out = historical_features(store, table.select("customer_id", "event_timestamp"), SERVICE)
    assert_frame_equal(out, table.drop("created_timestamp"))


def test_registry_documents_every_field_and_keeps_created_dates(store, tmp_path):
    store, table = store
    view = store.get_feature_view("customer_daily_features")
    assert view.ttl == timedelta(days=2)
    assert [f.name for f in view.features] == FEATURES
    assert [
        f.name for f in store.get_feature_service(SERVICE).feature_view_projections[0].features
    ] == FEATURES
    for field in view.features:
        assert field.description
        assert set(field.tags) == {"data_type", "source_table", "owner", "created_date", "known_issues"}
        assert field.tags["owner"] == "team@example.com"
    tags = {f.name: f.tags for f in view.features}
    assert tags["customer_plan"]["source_table"] == "customers"
    assert tags["customer_login_7d_count"] == tags["customer_login_7d_count"] | {
        "source_table": "events",
        "data_type": "Int64",
    }

    # Re-applying (as every run does) keeps the date a feature was first registered.
    args = dict(catalogue=CATALOGUE, project="shop", entity="customer", entity_key="customer_id",
                owner="team@example.com")
    older = feast_objects(tmp_path / "t.parquet", SPEC, **args)
    for field in older[2].features:
        field.tags["created_date"] = "2020-01-01"
    repo = feast.FeatureStore(config=feast_config(tmp_path / "repo", "shop"))
    apply_feature_store(repo, older)
    apply_feature_store(
        repo, feast_objects(tmp_path / "t.parquet", SPEC, **args)
    )
    dates = {f.tags["created_date"] for f in repo.get_feature_view("customer_daily_features").features}
    assert dates == {"2020-01-01"}


def test_a_feature_feast_cannot_store_and_redis_without_connection_are_named(tmp_path):
    dated = SPEC.model_copy(update={"entity_attributes": ["plan", "signup_date"]})
    catalogue = build_catalogue(dated, entity="customer", sources={"customers": CUSTOMERS})
    with pytest.raises(ValueError, match="'customer_signup_date' is a date"):
        feast_objects(tmp_path / "t.parquet", dated, catalogue=catalogue, project="shop", entity="customer",
                      entity_key="customer_id", owner="o")
    with pytest.raises(ValueError, match="redis_connection"):
        feast_config(tmp_path, "shop", online="redis")


def test_feature_repo_definitions_build_the_demo_objects(monkeypatch, tmp_path):
    monkeypatch.setenv("MLPLATFORM_DATA_DIR", str(tmp_path))
    definitions = runpy.run_path(str(Path(__file__).parents[2] / "feature_repo" / "definitions.py"))
    view, service = definitions["customer_daily_features"], definitions["churn_demo_model_v1"]
    assert "customer_session_minutes_7d_sum" in [f.name for f in view.features]
    assert view.batch_source.path == str(
        tmp_path / "churn_demo" / "lake" / "features" / "customer_daily_features.parquet"
    )
    store = feast.FeatureStore(config=feast_config(tmp_path / "churn_demo" / "feast", "churn_demo"))
    apply_feature_store(
        store, [definitions[k] for k in ("customer", "customer_daily_features_source")] + [view, service]
    )
    assert [v.name for v in store.list_feature_views()] == ["customer_daily_features"]


@pytest.mark.integration
def test_redis_online_store(tmp_path):
    table = random_feature_table(np.random.default_rng(5))
    store = applied_store(tmp_path, table, project="shop_redis_test", online="redis",
                          redis_connection="127.0.0.1:6379")
    start, end = T0, T0 + timedelta(days=30)
    materialize_online(store, start, end)
    out = online_features(store, [1, 2], feature_service_name("shop_redis_test"))
    assert out["customer_plan"] == [latest(table, key, start, end)["customer_plan"] for key in (1, 2)]
    store.teardown()


def test_online_offline_mismatches_name_each_differing_value():
    from mlplatform.core.feature_store import online_offline_mismatches

    table = pl.DataFrame({
        "customer_id": [1, 1, 1, 2],
        "event_timestamp": [T0, T0 + timedelta(days=1), T0 + timedelta(days=1), T0 + timedelta(days=2)],
        "created_timestamp": [T0, T0 + timedelta(days=1), T0 + timedelta(days=1, hours=1), T0 + timedelta(days=2)],
        "score": [1.0, 2.0, 3.0, 4.0],
        "plan": ["a", "b", "c", None],
    })
    end = T0 + timedelta(days=2)  # inclusive, as Feast materialises the window
    consistent = {"customer_id": [1, 2], "score": [3.0, 4.0], "plan": ["c", None]}
    assert online_offline_mismatches(consistent, table, entity_key="customer_id", start=T0, end=end).height == 0
    skewed = {"customer_id": [1, 2], "score": [2.0, 4.0 + 1e-12], "plan": ["c", "x"]}
    found = online_offline_mismatches(skewed, table, entity_key="customer_id", start=T0, end=end)
    assert found.select("customer_id", "feature").rows() == [(1, "score"), (2, "plan")]


def nullable_feature_table(rng: np.random.Generator, entities: int = 40) -> pl.DataFrame:
    """Several rows per entity for ids 1..entities (some ids get none), a quarter of every feature null."""
    n = 300
    nulls = {name: rng.random(n) < 0.25 for name in FEATURES}

    def column(name: str, values: np.ndarray) -> pl.Series:
        return pl.Series(name, values).scatter(np.flatnonzero(nulls[name]), None)

    event_ts = [T0 + timedelta(hours=int(h)) for h in rng.integers(0, 24 * 20, n)]
    return pl.DataFrame([
        pl.Series("customer_id", rng.choice(np.arange(1, entities + 1)[rng.random(entities) < 0.8], n)),
        pl.Series("event_timestamp", event_ts),
        pl.Series("created_timestamp", [ts + timedelta(seconds=int(s)) for ts, s in zip(
            event_ts, rng.permutation(n), strict=True)]),
        column("customer_minutes_7d_sum", rng.random(n) * 100),
        column("customer_minutes_7d_mean", rng.normal(size=n)),
        column("customer_login_7d_count", rng.integers(-5, 9, n)),
        column("customer_days_since_login", rng.random(n) * 10),
        column("customer_plan", rng.choice(["basic", "premium", "", "ü-plan"], n)),
        column("customer_tenure_days", rng.integers(0, 2**40, n)),
    ])


def assert_reader_matches_the_sdk(store: feast.FeatureStore, service: str, rng: np.random.Generator) -> None:
    reader = OnlineReader(store, service)
    assert reader.direct
    # Known and unknown ids, repeats, one at a time and many at once, from several threads (one connection each).
    requests = [[int(i)] for i in rng.integers(0, 50, 30)] + [rng.integers(-3, 60, 80).tolist() for _ in range(5)]
    expected = [online_features(store, ids, service) for ids in requests]
    with ThreadPoolExecutor(4) as pool:
        found = list(pool.map(reader.read, requests * 2))
    assert found == expected * 2
    every = expected[-1]
    values = [v for name in FEATURES for v in every[name]]
    assert None in values and any(v is not None for v in every["customer_plan"]), "nulls and values both occur"
    assert {type(v) for v in every["customer_tenure_days"]} <= {int, type(None)}


def test_online_reader_returns_what_feast_get_online_features_returns_on_sqlite(tmp_path):
    rng = np.random.default_rng(11)
    store = applied_store(tmp_path, nullable_feature_table(rng))
    materialize_online(store, T0 + timedelta(days=2), T0 + timedelta(days=15))
    assert_reader_matches_the_sdk(store, SERVICE, rng)


def test_online_reader_before_materialisation_names_the_cause(tmp_path):
    store = feast.FeatureStore(config=feast_config(tmp_path / "repo", "shop"))
    with pytest.raises(Exception, match="shop_model_v1"):
        OnlineReader(store, SERVICE)
    (tmp_path / "applied").mkdir()
    applied = applied_store(tmp_path / "applied", nullable_feature_table(np.random.default_rng(1)))
    (tmp_path / "applied" / "repo" / "online.db").unlink()
    with pytest.raises(Exception, match="materialise the feature store first"):
        OnlineReader(applied, SERVICE).read([1])


@pytest.mark.integration
def test_online_reader_returns_what_feast_get_online_features_returns_on_redis(tmp_path):
    rng = np.random.default_rng(12)
    project = f"shop_reader_{uuid.uuid4().hex[:10]}"  # a project of its own: Redis keys end with its name
    store = applied_store(tmp_path, nullable_feature_table(rng), project=project, online="redis",
                          redis_connection="127.0.0.1:6379")
    try:
        materialize_online(store, T0 + timedelta(days=2), T0 + timedelta(days=15))
        assert_reader_matches_the_sdk(store, feature_service_name(project), rng)
    finally:
        store.teardown()


# Three consecutive windows, each [start, end): materialised with Feast's inclusive end, one microsecond earlier.
WINDOWS = [(T0 + timedelta(days=10 * i), T0 + timedelta(days=10 * (i + 1))) for i in range(3)]
LAST_INSTANT = timedelta(microseconds=1)


def windowed_feature_table(rng: np.random.Generator) -> pl.DataFrame:
    """Rows of entities 1-30 over the three windows, plus entities whose only row sits on a window boundary:
    31 on the second window's first instant, 32 on its last, 33 on the third window's last."""
    table = nullable_feature_table(rng, entities=30).with_columns(
        event_timestamp=pl.Series([T0 + timedelta(minutes=int(m)) for m in rng.integers(0, 30 * 24 * 60, 300)]))
    edges = [WINDOWS[1][0], WINDOWS[1][1] - LAST_INSTANT, WINDOWS[2][1] - LAST_INSTANT]
    boundary = table.head(3).with_columns(customer_id=pl.Series([31, 32, 33]), event_timestamp=pl.Series(edges))
    return pl.concat([table, boundary]).with_columns(created_timestamp=pl.col("event_timestamp"))


def latest_per_entity(table: pl.DataFrame, windows: list[tuple[datetime, datetime]]) -> pl.DataFrame:
    """Each entity's latest row among those inside any of ``windows`` (each [start, end))."""
    inside = pl.any_horizontal([pl.col("event_timestamp").is_between(s, e, closed="left") for s, e in windows])
    return table.filter(inside).sort("event_timestamp", "created_timestamp").group_by("customer_id").last()


def assert_online_holds(store: feast.FeatureStore, service: str, expected: pl.DataFrame) -> None:
    ids = list(range(1, 36))
    out = online_features(store, ids, service)
    rows = {row["customer_id"]: row for row in expected.iter_rows(named=True)}
    for i, key in enumerate(ids):
        for name in FEATURES:
            assert out[name][i] == pytest.approx(rows.get(key, {}).get(name)), (key, name)


def assert_windows_materialise_in_any_order(store: feast.FeatureStore, service: str, table: pl.DataFrame) -> None:
    """Materialise the third window, then the first (a backfill), then the second: after each, every entity
    holds its latest row of the windows materialised so far, never an older one."""
    done: list[tuple[datetime, datetime]] = []
    for start, end in (WINDOWS[2], WINDOWS[0], WINDOWS[1]):
        before = latest_per_entity(table, done) if done else table.head(0)
        now = latest_per_entity(table, [(start, end)])
        newer_online = now.join(before, on="customer_id", suffix="_online").filter(
            pl.col("event_timestamp_online") > pl.col("event_timestamp")).height

        result = materialize_online(store, start, end - LAST_INSTANT)

        done.append((start, end))
        assert (result.entities, result.written, result.kept_newer) == (now.height, now.height - newer_online,
                                                                        newer_online)
        assert_online_holds(store, service, latest_per_entity(table, done))
    assert materialised_span(store, "customer_daily_features") == (WINDOWS[0][0], WINDOWS[2][1] - LAST_INSTANT)


def assert_a_rebuilt_table_replaces_equally_new_values(store: feast.FeatureStore, service: str, root: Path,
                                                       table: pl.DataFrame) -> None:
    rebuilt = table.with_columns(pl.col("customer_login_7d_count") + 1000)
    rebuilt.write_parquet(root / "customer_daily_features.parquet")
    materialize_online(store, WINDOWS[2][0], WINDOWS[2][1] - LAST_INSTANT)
    expected = latest_per_entity(table, WINDOWS[:2]).update(latest_per_entity(rebuilt, WINDOWS[2:]),
                                                            on="customer_id", how="full", include_nulls=True)
    assert_online_holds(store, service, expected)


def test_windows_materialise_exactly_their_rows_and_a_backfill_keeps_the_newest_on_sqlite(tmp_path):
    table = windowed_feature_table(np.random.default_rng(21))
    store = applied_store(tmp_path, table)
    assert materialised_span(store, "customer_daily_features") is None
    assert_windows_materialise_in_any_order(store, SERVICE, table)
    assert_a_rebuilt_table_replaces_equally_new_values(store, SERVICE, tmp_path, table)


@pytest.mark.integration
def test_windows_materialise_exactly_their_rows_and_a_backfill_keeps_the_newest_on_redis(tmp_path):
    project = f"shop_windows_{uuid.uuid4().hex[:10]}"
    table = windowed_feature_table(np.random.default_rng(22))
    store = applied_store(tmp_path, table, project=project, online="redis", redis_connection="127.0.0.1:6379")
    try:
        assert_windows_materialise_in_any_order(store, feature_service_name(project), table)
        assert_a_rebuilt_table_replaces_equally_new_values(store, feature_service_name(project), tmp_path, table)
    finally:
        store.teardown()


def test_a_window_that_ends_before_it_starts_is_refused(store):
    store, _ = store
    with pytest.raises(ValueError, match="starts"):
        materialize_online(store, T0 + timedelta(days=2), T0)


def test_materialising_before_the_feature_store_is_applied_names_the_fix(tmp_path):
    store = feast.FeatureStore(config=feast_config(tmp_path / "repo", "shop"))
    with pytest.raises(ValueError, match="apply the feature store"):
        materialize_online(store, T0, T0 + timedelta(days=1))


def online_table_rows(store: feast.FeatureStore) -> list[tuple]:
    """Every row of the view's SQLite online table, as Feast stores them (serialised keys and values)."""
    import sqlite3

    from feast.infra.online_stores.helpers import compute_table_id
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    view = store.get_feature_view("customer_daily_features")
    table = compute_table_id(store.project, view, store.config.registry.enable_online_feature_view_versioning)
    with sqlite3.connect(SqliteOnlineStore._get_db_path(store.config)) as connection:
        return connection.execute(f'SELECT entity_key, feature_name, value, value_text, vector_value, event_ts, '
                                  f'created_ts FROM "{table}" ORDER BY entity_key, feature_name').fetchall()


@pytest.mark.parametrize("block_rows", [7, 10**9])
def test_bulk_materialisation_writes_what_feast_materialize_writes(tmp_path, monkeypatch, block_rows):
    """Blocks of keys, values encoded a column at a time and one executemany per batch leave the SQLite online table
    byte for byte as Feast's own materialize does (nulls, empty and non-ASCII text, large integers), and
    get_online_features reads it alike."""
    import mlplatform.core.feature_store as feature_store

    monkeypatch.setattr(feature_store, "BLOCK_ROWS", block_rows)

    def per_value_protos(*args, **kwargs):
        raise AssertionError("the SQLite bulk path builds no proto per value")

    monkeypatch.setattr(feature_store, "_convert_arrow_to_proto", per_value_protos)
    table = nullable_feature_table(np.random.default_rng(31))
    (tmp_path / "ours").mkdir(), (tmp_path / "feast").mkdir()
    ours, feasts = applied_store(tmp_path / "ours", table), applied_store(tmp_path / "feast", table)
    start, end = T0 + timedelta(days=2), T0 + timedelta(days=15)

    result = materialize_online(ours, start, end)
    feasts.materialize(start, end)

    rows = online_table_rows(ours)
    assert result.written == len({row[0] for row in rows}) > 20
    assert rows == online_table_rows(feasts)
    ids = list(range(0, 45))
    read = ours.get_online_features(features=ours.get_feature_service(SERVICE), entity_rows=[
        {"customer_id": i} for i in ids]).to_dict()
    assert read == feasts.get_online_features(features=feasts.get_feature_service(SERVICE), entity_rows=[
        {"customer_id": i} for i in ids]).to_dict()
    assert any(value is None for value in read["customer_plan"]) and "ü-plan" in read["customer_plan"]


def test_the_sqlite_online_table_is_written_in_key_order_across_blocks_and_batches(tmp_path, monkeypatch):
    """Every block's entities are written together in serialised key order (SQLite's B-trees then grow at their
    ends), with batches smaller than a block and blocks smaller than the table; the table stays Feast's."""
    import sqlite3

    from feast.infra.online_stores.helpers import compute_table_id
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    import mlplatform.core.feature_store as feature_store

    monkeypatch.setattr(feature_store, "BLOCK_ROWS", 7)
    monkeypatch.setattr(feature_store, "_WRITE_BATCH_ROWS", 3)
    # Keys over 255: their serialised (little-endian) order is not their numeric order, in which blocks come.
    table = nullable_feature_table(np.random.default_rng(31)).with_columns(pl.col("customer_id") * 251)
    (tmp_path / "ours").mkdir(), (tmp_path / "feast").mkdir()
    ours, feasts = applied_store(tmp_path / "ours", table), applied_store(tmp_path / "feast", table)
    start, end = T0 + timedelta(days=2), T0 + timedelta(days=15)

    materialize_online(ours, start, end)
    feasts.materialize(start, end)

    view = ours.get_feature_view("customer_daily_features")
    name = compute_table_id(ours.project, view, ours.config.registry.enable_online_feature_view_versioning)
    with sqlite3.connect(SqliteOnlineStore._get_db_path(ours.config)) as connection:
        keys = [key for (key,) in connection.execute(f'SELECT entity_key FROM "{name}" ORDER BY rowid')]
    assert len(set(keys)) > 20 and keys == sorted(keys)
    assert online_table_rows(ours) == online_table_rows(feasts)


@pytest.mark.parametrize("block_rows", [7, 10**9])
def test_latest_rows_with_ties_on_time_are_what_feast_materialize_writes(tmp_path, monkeypatch, block_rows):
    """Only each entity's rows at its latest time in the window reach Feast's ranking: entities whose latest rows
    share a time (told apart by a later or a null created time), rows after the window's end and before its start
    leave the online table byte for byte as Feast's own materialize does."""
    import mlplatform.core.feature_store as feature_store

    monkeypatch.setattr(feature_store, "BLOCK_ROWS", block_rows)
    table = nullable_feature_table(np.random.default_rng(7))
    start, end = T0 + timedelta(days=2), T0 + timedelta(days=15)
    in_window = table.filter(pl.col("event_timestamp").is_between(start, end))
    latest = in_window.filter(pl.col("event_timestamp") == pl.col("event_timestamp").max().over("customer_id"))
    later = latest.sample(fraction=0.5, seed=1).with_columns(
        pl.col("created_timestamp") + timedelta(days=1), pl.col("customer_login_7d_count") + 100)
    uncreated = latest.sample(fraction=0.3, seed=2).with_columns(
        pl.lit(None, pl.Datetime("us")).alias("created_timestamp"),
        pl.lit(-1, pl.Int64).alias("customer_login_7d_count"))
    tied = pl.concat([table, later, uncreated]).sample(fraction=1.0, shuffle=True, seed=3)
    (tmp_path / "ours").mkdir(), (tmp_path / "feast").mkdir()
    ours, feasts = applied_store(tmp_path / "ours", tied), applied_store(tmp_path / "feast", tied)

    materialize_online(ours, start, end)
    feasts.materialize(start, end)

    rows = online_table_rows(ours)
    assert rows == online_table_rows(feasts) and len(rows) > 100
    counts = ours.get_online_features(features=ours.get_feature_service(SERVICE), entity_rows=[
        {"customer_id": i} for i in range(45)]).to_dict()["customer_login_7d_count"]
    assert any(c is not None and c >= 95 for c in counts)  # a later-created tie won
