"""The Feast feature store, built programmatically from the brief.

One feature view per feature table (``{entity}_daily_features``) over the Parquet that
:func:`mlplatform.core.features.build_features` writes, read by Feast's DuckDB offline store; one versioned
feature service for the model. Every field carries the method's registry documentation as Feast tags
(data_type, source_table, owner, created_date, known_issues). Callers see polars and plain Python; the
pandas/Arrow conversions Feast needs stay in this module.
"""

import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import mlplatform.core.feast_import  # noqa: F401  # first: Feast without typeguard's rewrites (see the module)

# isort: split
import feast
import numpy as np
import polars as pl
import pyarrow as pa  # type: ignore[import-untyped]  # no py.typed marker
from feast import types as ft
from feast.data_format import ParquetFormat
from feast.errors import FeatureViewNotFoundException
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.offline_stores.duckdb import DuckDBOfflineStoreConfig, _read_data_source, _write_data_source
from feast.infra.offline_stores.ibis import pull_latest_from_table_or_query_ibis
from feast.infra.online_stores.helpers import compute_table_id, get_online_store_from_config
from feast.infra.online_stores.online_store import OnlineStore
from feast.infra.online_stores.sqlite import SqliteOnlineStore, SqliteOnlineStoreConfig
from feast.infra.registry.sql import SqlRegistryConfig
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values
from feast.utils import _convert_arrow_to_proto, make_tzaware
from feast.value_type import ValueType

from mlplatform.brief import Features, TableFeatures
from mlplatform.core.feast_values import encodable, encode_column, encode_entity_keys, naive_utc_times
from mlplatform.core.feature_catalogue import FeatureCatalogue
from mlplatform.core.feature_names import feature_service_name, feature_view_name
from mlplatform.core.pit_join import BLOCK_ROWS, key_ranges

# The feature catalogue's dtypes that Feast can store, and their Feast types.
_FEAST_TYPES = {"int": ft.Int64, "float": ft.Float64, "str": ft.String, "bool": ft.Bool}


def feast_config(
    repo_dir: Path,
    project: str,
    online: Literal["sqlite", "redis"] = "sqlite",
    redis_connection: str | None = None,
    registry: str | None = None,
) -> feast.RepoConfig:
    """Configuration of a feature store whose registry and local online store live under ``repo_dir``.

    The registry is Feast's SQL registry, by default on a SQLite file (``registry.db``): unlike the file
    registry, which rewrites one protobuf blob, it takes concurrent writers (several Dagster runs applying at
    once). Production points it at a database shared by every process instead.

    Args:
        repo_dir: folder for ``registry.db`` and, with SQLite, ``online.db``; created if missing.
        project: Feast project name (the brief's name).
        online: ``sqlite`` (local) or ``redis`` (production).
        redis_connection: Redis connection string (``host:port[,password=...]``), required with ``redis``.
        registry: SQLAlchemy URL of the registry database, e.g. ``postgresql+psycopg2://user:pw@host/feast``;
            None for ``registry.db`` under ``repo_dir``. Projects share its tables, keyed by project name.

    Raises:
        ValueError: ``redis`` without a connection string.
    """
    repo_dir = Path(repo_dir).resolve()
    repo_dir.mkdir(parents=True, exist_ok=True)
    if online == "redis":
        if not redis_connection:
            raise ValueError("online='redis' needs redis_connection, e.g. 'localhost:6379'")
        # materialize_online keeps the newer row itself, and rewrites an equally new one (a rebuilt feature table):
        # Redis's own check would skip those, so it is turned off (one round trip less as well).
        online_store: Any = {"type": "redis", "connection_string": redis_connection, "skip_dedup": True}
    else:
        online_store = SqliteOnlineStoreConfig(path=str(repo_dir / "online.db"))
    return feast.RepoConfig(
        project=project,
        provider="local",
        repo_path=repo_dir,
        registry=SqlRegistryConfig(path=registry or f"sqlite:///{repo_dir / 'registry.db'}", cache_ttl_seconds=60),
        offline_store=DuckDBOfflineStoreConfig(),
        online_store=online_store,
        entity_key_serialization_version=3,
    )


def _source_tables(spec: Features | TableFeatures) -> list[str]:
    return [spec.source] if isinstance(spec, TableFeatures) else [spec.events_source, spec.entities_source]


def feast_objects(
    feature_table: Path,
    spec: Features | TableFeatures,
    *,
    catalogue: FeatureCatalogue,
    project: str,
    entity: str,
    entity_key: str,
    owner: str,
) -> list:
    """The Feast objects of one feature table: Entity, FileSource, FeatureView and FeatureService.

    Args:
        feature_table: Parquet file from ``build_features`` (need not exist yet).
        spec: the brief's feature section (its sources and TTL).
        catalogue: the brief's feature catalogue: each field's name, type, description, source and known issues.
        project: Feast project (the brief's name); prefixes the feature service.
        entity: entity name, e.g. ``customer``.
        entity_key: join key column, e.g. ``customer_id`` (Int64).
        owner: owner recorded on the view, the service and every field.

    Returns:
        ``[Entity, FileSource, FeatureView, FeatureService]``, ready for :func:`apply_feature_store`.

    Raises:
        ValueError: a feature of a type Feast cannot store (a date or datetime).
    """
    today = date.today().isoformat()
    fields = []
    for feature in catalogue.features:
        if feature.dtype not in _FEAST_TYPES:
            raise ValueError(
                f"feature '{feature.name}' is a {feature.dtype} ({feature.source_table}.{feature.source_column}); "
                f"Feast fields are one of {sorted(_FEAST_TYPES)}. Leave the column out of the features, or derive a "
                "number from it (features.tenure_from counts the days since a date)."
            )
        tags = {
            "data_type": str(feature.polars_dtype),
            "source_table": feature.source_table,
            "owner": owner,
            "created_date": today,
            "known_issues": feature.caveats,
        }
        fields.append(feast.Field(name=feature.name, dtype=_FEAST_TYPES[feature.dtype],
                                  description=feature.description, tags=tags))

    view_name = feature_view_name(entity)
    key = feast.Entity(
        name=entity,
        join_keys=[entity_key],
        value_type=feast.ValueType.INT64,
        description=f"A {entity}, identified by {entity_key}",
        owner=owner,
    )
    source = feast.FileSource(
        name=f"{view_name}_source",
        path=str(Path(feature_table).resolve()),
        file_format=ParquetFormat(),
        timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
        description=f"Point-in-time features of each {entity} (built from {' and '.join(_source_tables(spec))})",
        owner=owner,
    )
    view = feast.FeatureView(
        name=view_name,
        entities=[key],
        ttl=timedelta(days=spec.ttl_days),
        # The join key is declared so that Feast never has to open the Parquet to infer it.
        schema=[feast.Field(name=entity_key, dtype=ft.Int64), *fields],
        source=source,
        online=True,
        description=(f"One row per {entity} per day; each row summarises only events before its timestamp"
                     if isinstance(spec, Features) else f"One row per example of {spec.source}, at its time"),
        owner=owner,
        tags={"source_table": ", ".join(_source_tables(spec))},
    )
    service = feast.FeatureService(
        name=feature_service_name(project),
        features=[view],
        description=f"Every feature the {project} model uses (version 1)",
        owner=owner,
        tags={"version": "1"},
    )
    return [key, source, view, service]


# Tag of a FileSource whose Parquet lies in the namespace (the feature repo's parent folder): its path relative to
# that folder, so a copied or moved data directory's registry can be pointed at its own files.
PATH_IN_NAMESPACE_TAG = "mlplatform.path_in_namespace"


def open_feature_store(config: feast.RepoConfig) -> feast.FeatureStore:
    """The feature store of ``config``, its Parquet sources pointed at the namespace where the repo is now.

    Feast stores a FileSource's path as given, and its DuckDB offline store reads that path as it is (a
    relative one against the current directory, not the repo): a copied data directory would read the
    original's feature tables, and a moved one would fail. With the registry in ``registry.db`` under the repo
    (it travels with the data directory), :func:`relocate_sources` repoints the registered sources first.
    A shared registry database (production) is left alone: it is not the copy's to rewrite.
    """
    store = feast.FeatureStore(config=config)
    if _registry_in_repo(config) and relocate_sources(store):
        store.refresh_registry()
    return store


def _registry_in_repo(config: feast.RepoConfig) -> bool:
    registry = config.registry
    path = registry if isinstance(registry, str) else registry.path
    return config.repo_path is not None and path == f"sqlite:///{Path(config.repo_path) / 'registry.db'}"


def _namespace(config: feast.RepoConfig) -> Path:
    """The folder holding the feature repo: the brief's namespace, where its feature tables lie."""
    if config.repo_path is None:
        raise ValueError("the feature store's RepoConfig has no repo_path: build it with feast_config")
    return Path(config.repo_path).resolve().parent


def relocate_sources(store: feast.FeatureStore) -> bool:
    """Point every registered FileSource of the namespace at its file under the repo's parent folder now.

    A source tagged :data:`PATH_IN_NAMESPACE_TAG` is rewritten when its path is not that file's; an untagged
    source lying in the namespace (registered before the tag existed) gets the tag. The data sources, the
    feature views' batch sources and the feature services' projections are all rewritten, since each holds its
    own copy of the path. Returns whether anything was written.
    """
    namespace = _namespace(store.config)
    registry, project = store.registry, store.project
    changed = False
    for source in registry.list_data_sources(project, allow_cache=False):
        if _point_at_namespace(source, namespace):
            registry.apply_data_source(source, project, commit=True)
            changed = True
    for view in registry.list_feature_views(project, allow_cache=False):
        if _point_at_namespace(view.batch_source, namespace):
            registry.apply_feature_view(view, project, commit=True)
            changed = True
    for service in registry.list_feature_services(project, allow_cache=False):
        moved = [_point_at_namespace(p.batch_source, namespace) for p in service.feature_view_projections]
        if any(moved):
            registry.apply_feature_service(service, project, commit=True)
            changed = True
    return changed


def _point_at_namespace(source: Any, namespace: Path) -> bool:
    """Tag ``source`` with its path in ``namespace`` and set its path to that file there; whether it changed.

    Sources that are not local files, or lie outside the namespace and carry no tag, are left as they are.
    """
    if not isinstance(source, feast.FileSource):
        return False
    relative = source.tags.get(PATH_IN_NAMESPACE_TAG)
    if relative is None:
        if "://" in source.path or not Path(source.path).is_relative_to(namespace):
            return False
        relative = Path(source.path).relative_to(namespace).as_posix()
    current = str(namespace / relative)
    if source.path == current and source.tags.get(PATH_IN_NAMESPACE_TAG) == relative:
        return False
    source.file_options.uri = current
    source.tags[PATH_IN_NAMESPACE_TAG] = relative
    return True


def apply_feature_store(store: feast.FeatureStore, objects: list) -> None:
    """Register ``objects`` (from :func:`feast_objects`) in the store's registry and set up the online store.

    A field that is already registered keeps its ``created_date`` tag, so re-applying keeps the date the
    feature was first created. A Parquet source in the namespace (the repo's parent folder) is tagged with its
    path there, so that :func:`open_feature_store` can point a copied data directory's registry at its own files.
    """
    namespace = _namespace(store.config)
    for obj in objects:
        if isinstance(obj, feast.FeatureView):
            _point_at_namespace(obj.batch_source, namespace)
        elif isinstance(obj, feast.FileSource):
            _point_at_namespace(obj, namespace)
    for obj in objects:
        if not isinstance(obj, feast.FeatureView):
            continue
        try:
            registered = store.get_feature_view(obj.name)
        except FeatureViewNotFoundException:
            continue
        first_dates = {f.name: f.tags.get("created_date") for f in registered.features}
        for field in obj.features:
            if created := first_dates.get(field.name):
                field.tags["created_date"] = created
    store.apply(objects)


@dataclass(frozen=True)
class OnlineWrite:
    """What materialising one window did, summed over the store's online feature views.

    Attributes:
        start: the window's first instant (UTC).
        end: the window's last instant (UTC), inclusive.
        entities: entities with a row in the window.
        written: of those, entities whose latest row in the window was written to the online store.
        kept_newer: of those, entities left as they were: the online store already held a newer row of theirs
            (materialising an older window after a newer one, e.g. a backfill).
    """

    start: datetime
    end: datetime
    entities: int
    written: int
    kept_newer: int


# Rows converted, looked up and written per online-store round trip (bounds memory and SQLite's IN lists).
_WRITE_BATCH_ROWS = 5_000


def _bound_offline_reads(memory_limit: str | None, temp_directory: Path | None) -> None:
    """Cap the memory of the DuckDB connection the DuckDB offline store reads Parquet through (ibis' default
    backend), spilling the rest to ``temp_directory``: its latest-row query sorts every feature row of the window."""
    import ibis  # type: ignore[import-untyped]  # no py.typed marker

    if memory_limit is None:
        return
    backend = ibis.get_backend()
    backend.raw_sql(f"SET memory_limit = '{memory_limit}'")
    if temp_directory is not None:
        temp_directory.mkdir(parents=True, exist_ok=True)
        backend.raw_sql(f"SET temp_directory = '{temp_directory}'")


def materialize_online(store: feast.FeatureStore, start: datetime, end: datetime, *, memory_limit: str | None = None,
                       temp_directory: Path | None = None) -> OnlineWrite:
    """Load the latest row per entity with timestamp in ``[start, end]`` into the online store, unless the online
    store already holds a newer row of that entity.

    An explicit window rather than ``materialize_incremental`` (Feast's "last materialised" marker), so a run is
    reproducible from its inputs and windows can be materialised in any order. Both ends are inclusive, as in
    Feast's ``materialize``: consecutive windows must end one instant before the next one starts. Feast's SQLite
    online store overwrites whatever it holds, so materialising an older window after a newer one would put older
    values online (Redis skips them itself); rows of entities whose online event timestamp is newer are therefore
    dropped before writing. A row as new as the online one is written, so a rebuilt feature table replaces its
    own values. The rows are what Feast's ``materialize`` reads (the offline store's latest row per entity, ties
    to the later created timestamp), written with the online store's ``online_write_batch``; the window is
    recorded in the registry's materialisation intervals as Feast records its own. Naive datetimes are UTC.

    ``memory_limit`` (e.g. ``"1500MB"``) caps the offline store's DuckDB reads, which spill to ``temp_directory``.

    Raises:
        ValueError: ``start`` after ``end``, or no feature view applied yet.
    """
    start, end = make_tzaware(start), make_tzaware(end)
    if start > end:
        raise ValueError(f"the window starts ({start}) after it ends ({end})")
    views = [view for view in store.list_feature_views() if view.online]
    if not views:
        raise ValueError(f"the registry of feature store project '{store.project}' has no online feature view: "
                         "apply the feature store (the feature_store asset) before materialising it")
    online_store = get_online_store_from_config(store.config.online_store)
    _bound_offline_reads(memory_limit, temp_directory)
    entities = written = 0
    for view in views:
        # One row per entity: the blocks together are small (285,714 rows at 10^7 events), and written at once the
        # SQLite store takes them in key order throughout (see _write_sqlite_batches).
        blocks = list(_latest_rows(store, view, start, end))
        if blocks:
            rows = pa.concat_tables(blocks)
            entities += rows.num_rows
            written += _write_unless_newer_online(store.config, online_store, view, rows)
        store.registry.apply_materialization(view, store.project, start, end)
    return OnlineWrite(start=start, end=end, entities=entities, written=written, kept_newer=entities - written)


def _latest_rows(store: feast.FeatureStore, view: feast.FeatureView, start: datetime,
                 end: datetime) -> Iterator[Any]:
    """The offline store's latest row per entity of ``view`` with timestamp in ``[start, end]``, one block of
    entities at a time (Arrow tables).

    Feast's own query (``pull_latest_from_table_or_query`` of the DuckDB offline store) on the feature rows of one
    range of join keys at a time (ranges of about :data:`BLOCK_ROWS` rows): an entity's latest row depends on its
    own rows only, so the blocks' results together are the whole query's, while DuckDB's deduplication window holds
    one block and a feature table stored in key order is read only where the block's keys lie. Rows without a key
    (no entity to serve) are left out. Feast's query is given only each entity's rows at its latest time in the
    window (a grouped maximum over the keys and times): the rows its window ranks first are among them, ties on
    time included, so it returns the same rows while ranking about one row per entity instead of every row with
    all its features.
    """
    source = view.batch_source
    assert source is not None, "feast_objects gives every feature view its Parquet source"
    key = view.entity_columns[0].name  # rows of one entity share their first join key, so no entity is split
    whole = _read_data_source(source, str(store.config.repo_path))
    keys = pl.from_arrow(whole.select(key).distinct().order_by(key).to_pyarrow())[key]  # type: ignore[index]
    blocks = -(-int(whole.count().execute()) // BLOCK_ROWS)
    # Feast's window bounds, as its query compares them (naive UTC, the time column cast to timestamp).
    first, last = (moment.astimezone(UTC).replace(tzinfo=None) for moment in (start, end))
    for lo, hi in key_ranges(keys, blocks):
        def block(data_source: Any, repo_path: str, lo: Any = lo, hi: Any = hi) -> Any:
            table = _read_data_source(data_source, repo_path)
            table = table.filter(table[key].between(lo, hi))
            at = table[source.timestamp_field].cast("timestamp")
            window = table.filter((at >= first) & (at <= last))
            latest = window.group_by(window[key].name("__latest_key")).aggregate(
                __latest=window[source.timestamp_field].cast("timestamp").max())
            return table.semi_join(latest, [table[key] == latest["__latest_key"], at == latest["__latest"]])

        yield pull_latest_from_table_or_query_ibis(
            config=store.config, data_source=source, join_key_columns=[c.name for c in view.entity_columns],
            feature_name_columns=[f.name for f in view.features], timestamp_field=source.timestamp_field,
            created_timestamp_column=source.created_timestamp_column, start_date=start, end_date=end,
            data_source_reader=block, data_source_writer=_write_data_source,
        ).to_arrow()


def _write_unless_newer_online(config: feast.RepoConfig, online_store: OnlineStore, view: feast.FeatureView,
                               rows: Any) -> int:
    """Write ``rows`` (an Arrow table, one row per entity) to the online store, except those older than their
    entity's online row; returns how many were written."""
    join_keys = {c.name: c.dtype.to_value_type() for c in view.entity_columns}
    if _bulk_sqlite(config, online_store, view, join_keys, rows.schema):
        return _write_sqlite_unless_newer(config, online_store, view, rows)
    written = 0
    for batch in rows.to_batches(max_chunksize=_WRITE_BATCH_ROWS):
        data = _convert_arrow_to_proto(batch, view, join_keys)
        online = online_store.online_read(config, view, [key for key, *_ in data], [view.features[0].name])
        fresh = [row for row, (online_time, _) in zip(data, online, strict=True)
                 if online_time is None or make_tzaware(row[2]) >= online_time]
        if fresh:
            online_store.online_write_batch(config, view, fresh, progress=None)
        written += len(fresh)
    return written


def _bulk_sqlite(config: feast.RepoConfig, online_store: OnlineStore, view: feast.FeatureView,
                 join_keys: dict[str, Any], schema: Any) -> bool:
    """Whether the rows can go into Feast's SQLite online store through :func:`_write_sqlite_unless_newer`: its plain
    layout (no vector or numeric-value column), entity keys of serialisation version 3 with one Int64 join key, and
    features of the scalar types :mod:`mlplatform.core.feast_values` encodes. Otherwise Feast's own conversion and
    ``online_write_batch`` write them (Redis, other layouts and types)."""
    settings = config.online_store
    if (not isinstance(online_store, SqliteOnlineStore) or settings.vector_enabled
            or getattr(settings, "enable_openai_compatible_store", False)
            or config.entity_key_serialization_version != 3):
        return False
    key = next(iter(join_keys))
    if list(join_keys.values()) != [ValueType.INT64] or not pa.types.is_integer(schema.field(key).type):
        return False
    return all(feature.name in schema.names
               and encodable(feature.dtype.to_value_type(), schema.field(feature.name).type)
               for feature in view.features)


def _write_sqlite_unless_newer(config: feast.RepoConfig, online_store: OnlineStore, view: feast.FeatureView,
                               rows: Any) -> int:
    """Feast's SQLite ``online_write_batch`` of the rows at least as new as their entity's online row, in bulk.

    The same table, upsert statement and row values as Feast's (entity key, feature name, serialised value, value
    text, naive UTC event and created times), but keys and values are encoded a column at a time
    (:mod:`mlplatform.core.feast_values`, byte for byte Feast's serialisation) rather than through one proto object
    per value, and each batch of :data:`_WRITE_BATCH_ROWS` entities is one ``executemany``."""
    table = _quoted(compute_table_id(config.project, view, config.registry.enable_online_feature_view_versioning))
    upsert = (f"INSERT INTO {table} (entity_key, feature_name, value, value_text, event_ts, created_ts) "
              "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(entity_key, feature_name) DO UPDATE SET value = excluded.value, "
              "value_text = excluded.value_text, event_ts = excluded.event_ts, created_ts = excluded.created_ts")
    source = view.batch_source
    assert source is not None, "feast_objects gives every feature view its Parquet source"
    join_key = view.entity_columns[0].name
    names = [feature.name for feature in view.features]
    assert isinstance(online_store, SqliteOnlineStore), "_bulk_sqlite chose this path"
    connection = online_store._get_conn(config)
    # The table's two indexes (primary key, entity key) take each entity's rows at a random place: a page cache that
    # holds them (SQLite's default is 2 MB) and each batch's entities in key order cut the page reads of the inserts.
    cache = connection.execute("PRAGMA cache_size").fetchone()[0]
    connection.execute(f"PRAGMA cache_size = -{_WRITE_CACHE_KIB}")
    try:
        return _write_sqlite_batches(connection, table, upsert, view, rows, join_key, names)
    finally:
        connection.execute(f"PRAGMA cache_size = {int(cache)}")


# SQLite's page cache while writing the online table, in KiB.
_WRITE_CACHE_KIB = 256 * 1024


def _write_sqlite_batches(connection: sqlite3.Connection, table: str, upsert: str, view: feast.FeatureView, rows: Any,
                          join_key: str, names: list[str]) -> int:
    """Upsert ``rows`` (one per entity) in batches of :data:`_WRITE_BATCH_ROWS` entities, all of them in serialised
    key order: the table's primary key and entity-key index then grow at their ends instead of taking each batch's
    rows all over a B-tree larger than the page cache. Each entity's rows are Feast's (see
    :func:`_write_sqlite_unless_newer`); rows older than their entity's online row are left out."""
    source = view.batch_source
    assert source is not None, "feast_objects gives every feature view its Parquet source"
    all_keys = encode_entity_keys(join_key, rows.column(join_key))
    order = sorted(range(len(all_keys)), key=all_keys.__getitem__)
    rows = rows.take(pa.array(order, type=pa.int64()))
    all_keys = [all_keys[i] for i in order]
    written = 0
    for start in range(0, rows.num_rows, _WRITE_BATCH_ROWS):
        batch, keys = rows.slice(start, _WRITE_BATCH_ROWS), all_keys[start:start + _WRITE_BATCH_ROWS]
        events = naive_utc_times(batch.column(source.timestamp_field))
        fresh = _not_older_than_online(connection, table, keys, events)
        if not fresh.any():
            continue
        if not fresh.all():  # some rows older than online
            kept = np.flatnonzero(fresh)
            batch = batch.take(pa.array(kept))
            keys, events = [keys[i] for i in kept], [events[i] for i in kept]
        created = (naive_utc_times(batch.column(source.created_timestamp_column)) if source.created_timestamp_column
                   else [None] * batch.num_rows)
        n, width = batch.num_rows, len(names)
        # Entity-major rows (each entity's features in the view's order), as Feast's loop writes them.
        values, texts = np.empty((n, width), dtype=object), np.empty((n, width), dtype=object)
        for j, feature in enumerate(view.features):
            column = encode_column(batch.column(feature.name), feature.dtype.to_value_type())
            values[:, j], texts[:, j] = column.values, column.texts
        # The event and created times as SQLite stores them (Feast registers its own datetime adapter), adapted once
        # per entity rather than once per value.
        times = [_sqlite_values(part) for part in (events, created)]
        per_entity = [np.repeat(np.array(part, dtype=object), width).tolist() for part in (keys, *times)]
        with connection:
            connection.executemany(upsert, zip(per_entity[0], names * n, values.ravel().tolist(),
                                               texts.ravel().tolist(), per_entity[1], per_entity[2], strict=True))
        written += n
    return written


def _sqlite_values(moments: "list[datetime | None] | list[None]") -> list:
    """``moments`` as the sqlite3 module would bind them: through the adapter registered for datetimes (Feast's
    ``adapt_datetime_epoch``), None as it is."""
    adapt = sqlite3.adapters.get((datetime, sqlite3.PrepareProtocol))
    return moments if adapt is None else [None if moment is None else adapt(moment) for moment in moments]


def _not_older_than_online(connection: sqlite3.Connection, table: str, keys: list[bytes],
                           events: list[datetime | None]) -> np.ndarray:
    """Per entity, whether its row (event time in ``events``, naive UTC) is at least as new as the entity's online
    row, or it has none. The online time is the one Feast's ``online_read`` gives: the last ``event_ts`` of the
    entity's rows in key order."""
    query = (f"SELECT entity_key, event_ts FROM {table} WHERE entity_key IN ({','.join('?' * len(keys))}) "
             "ORDER BY entity_key")
    online = {key: stamp for key, stamp in connection.execute(query, keys)}
    if not online:
        return np.ones(len(keys), dtype=bool)
    return np.array([key not in online or (event is not None and event >= _naive_utc(online[key]))
                     for key, event in zip(keys, events, strict=True)], dtype=bool)


def _quoted(identifier: str) -> str:
    return '"{}"'.format(identifier.replace('"', '""'))


def materialised_span(store: feast.FeatureStore, view_name: str) -> tuple[datetime, datetime] | None:
    """The first start and the last end (naive UTC, both inclusive) of the windows materialised into the online
    store for ``view_name``, from the registry's materialisation intervals; None before any."""
    intervals = store.get_feature_view(view_name).materialization_intervals
    if not intervals:
        return None
    return (min(_naive_utc(start) for start, _ in intervals), max(_naive_utc(end) for _, end in intervals))


def _naive_utc(moment: datetime) -> datetime:
    return make_tzaware(moment).astimezone(UTC).replace(tzinfo=None)


def _service(store: feast.FeatureStore, name: str) -> tuple[feast.FeatureService, str, list[str]]:
    """The feature service, its join key and its feature names in service order."""
    service = store.get_feature_service(name)
    view = store.get_feature_view(service.feature_view_projections[0].name)
    features = [f.name for projection in service.feature_view_projections for f in projection.features]
    return service, view.entity_columns[0].name, features


def historical_features(
    store: feast.FeatureStore, entity_df: pl.DataFrame, feature_service_name: str
) -> pl.DataFrame:
    """Point-in-time join of the service's features onto ``entity_df`` (Feast ``get_historical_features``).

    Each entity row gets, per feature view, the latest feature row of its entity with ``event_timestamp``
    at or before the row's ``event_timestamp`` and no older than the view's TTL; ties on event time go to
    the later ``created_timestamp``. Every entity row is kept, in order, with nulls when there is no such
    feature row.

    Args:
        store: the feature store.
        entity_df: the join key, ``event_timestamp`` (Datetime or Date; naive means UTC) and any other columns
            (labels, ...), which are passed through.
        feature_service_name: the feature service to fetch.

    Returns:
        ``entity_df``'s columns (same order and dtypes) followed by the service's features.

    Raises:
        ValueError: ``entity_df`` has no ``event_timestamp`` column or lacks the join key.
    """
    service, join_key, features = _service(store, feature_service_name)
    missing = {"event_timestamp", join_key} - set(entity_df.columns)
    if missing:
        raise ValueError(
            f"entity_df lacks {sorted(missing)}; it needs the join key '{join_key}' and the prediction time "
            "as 'event_timestamp' (rename the label's timestamp column)."
        )
    # Feast returns rows in no particular order: a row number restores entity_df's.
    row = "__mlplatform_row"
    # Casting to naive Datetime keeps the UTC instant of zoned times and makes dates midnights.
    query = (
        entity_df.select(join_key, "event_timestamp")
        .with_row_index(row)
        .with_columns(pl.col("event_timestamp").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
    )
    joined = pl.DataFrame(
        store.get_historical_features(entity_df=query.to_pandas(), features=service).to_arrow()
    )
    if joined.height != entity_df.height:
        raise RuntimeError(f"Feast returned {joined.height} rows for {entity_df.height} entity rows")
    return entity_df.hstack(joined.sort(row).select(features))


def online_features(
    store: feast.FeatureStore, entity_ids: list[int], feature_service_name: str
) -> dict[str, list]:
    """The latest materialised features of each entity, for serving.

    Returns:
        Column -> values in ``entity_ids`` order: the join key, then each feature (None where the online store
        has no value for the entity).
    """
    service, join_key, features = _service(store, feature_service_name)
    response = store.get_online_features(
        features=service, entity_rows=[{join_key: int(entity_id)} for entity_id in entity_ids]
    ).to_dict()
    return {column: response[column] for column in [join_key, *features]}


# Feature name -> Feast value of each entity key, in order; None where the store has no row for the key.
_ReadValues = Callable[[list[EntityKeyProto]], list[dict[str, ValueProto] | None]]


class OnlineReader:
    """The latest materialised features of entity ids, read straight from the online store Feast wrote.

    Returns exactly what :func:`online_features` (Feast's ``get_online_features``) returns, without its per-call
    registry lookups, request validation and response protos. Formats stay Feast's: entity keys are Feast
    ``EntityKey`` protos of the join key's value type (``python_values_to_proto_values``), values are decoded
    with ``feast_value_type_to_python_type``. SQLite: Feast's table of the view, keys serialised with Feast's
    ``serialize_entity_key``, values parsed as Feast ``Value`` protos, one persistent read-only connection per
    thread. Redis: Feast's own Redis store (``RedisOnlineStore.online_read``, one pooled client). Any other
    online store, or a service over several views, goes through the SDK.

    The feature service is resolved once, at construction: make a new reader after ``feast apply`` changes it.

    Args:
        store: the feature store (its config names the online store).
        feature_service_name: the service whose features are read.

    Raises:
        Exception: what Feast raises when the registry lacks the service or its view.
    """

    def __init__(self, store: feast.FeatureStore, feature_service_name: str) -> None:
        service, self.join_key, self.features = _service(store, feature_service_name)
        projections = service.feature_view_projections
        self._store, self._service_name = store, feature_service_name
        self._values: _ReadValues | None = None
        if len(projections) != 1 or projections[0].name_alias:
            return
        view, config = store.get_feature_view(projections[0].name), store.config
        self._key_type = view.entity_columns[0].dtype.to_value_type()
        self._value_types = {f.name: f.dtype.to_value_type() for f in view.features}
        online_type = str(config.online_store.type)
        if online_type == "sqlite" or online_type.endswith("SqliteOnlineStore"):
            table = compute_table_id(config.project, view, config.registry.enable_online_feature_view_versioning)
            self._values = _SqliteValues(SqliteOnlineStore._get_db_path(config), table,
                                         config.entity_key_serialization_version)
        elif online_type == "redis" or online_type.endswith("RedisOnlineStore"):
            self._values = _RedisValues(config, view, self.features)

    @property
    def direct(self) -> bool:
        """Whether reads bypass the SDK (SQLite or Redis, one feature view)."""
        return self._values is not None

    def read(self, entity_ids: list[int]) -> dict[str, list]:
        """Column -> values in ``entity_ids`` order: the join key, then each feature (None where the online store
        has no value for the entity), as :func:`online_features` returns them."""
        if self._values is None:
            return online_features(self._store, entity_ids, self._service_name)
        ids = [int(entity_id) for entity_id in entity_ids]
        unique = list(dict.fromkeys(ids))
        keys = [EntityKeyProto(join_keys=[self.join_key], entity_values=[value])
                for value in python_values_to_proto_values(unique, self._key_type)]
        by_id = dict(zip(unique, self._values(keys), strict=True))
        columns: dict[str, list] = {self.join_key: ids}
        for name in self.features:
            value_type = self._value_types[name]
            columns[name] = [feast_value_type_to_python_type(value, value_type)
                             if (found := by_id[i]) and (value := found.get(name)) is not None else None
                             for i in ids]
        return columns


class _SqliteValues:
    """Feast's SQLite online table of one view, with one read-only connection per thread (opened on first use)."""

    def __init__(self, path: str, table: str, key_version: int) -> None:
        self._uri = f"{Path(path).resolve().as_uri()}?mode=ro"
        self._query = 'SELECT entity_key, feature_name, value FROM "{}" WHERE entity_key IN ({{}})'.format(
            table.replace('"', '""'))
        self._key_version = key_version
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            try:
                connection = sqlite3.connect(self._uri, uri=True)
            except sqlite3.OperationalError as exc:
                raise sqlite3.OperationalError(f"cannot open the online store {self._uri}: {exc}; materialise the "
                                               "feature store first") from None
            self._local.connection = connection
        return connection

    def __call__(self, keys: list[EntityKeyProto]) -> list[dict[str, ValueProto] | None]:
        serialised = [serialize_entity_key(key, entity_key_serialization_version=self._key_version) for key in keys]
        found: dict[bytes, dict[str, ValueProto]] = {}
        for key, feature, value in self._connection().execute(self._query.format(",".join("?" * len(keys))),
                                                                serialised):
            parsed = ValueProto()
            parsed.ParseFromString(value)
            found.setdefault(key, {})[feature] = parsed
        return [found.get(key) for key in serialised]


class _RedisValues:
    """Feast's Redis online store (its key layout and field hashing), read with Feast's ``online_read``."""

    def __init__(self, config: feast.RepoConfig, view: feast.FeatureView, features: list[str]) -> None:
        from feast.infra.online_stores.redis import RedisOnlineStore  # imports redis: only where it is used

        self._store, self._config, self._view, self._features = RedisOnlineStore(), config, view, features

    def __call__(self, keys: list[EntityKeyProto]) -> list[dict[str, ValueProto] | None]:
        # online_read appends to the feature list it is given: a copy each call.
        return [values for _, values in self._store.online_read(self._config, self._view, keys, list(self._features))]


def online_offline_mismatches(online: dict[str, list], feature_table: pl.DataFrame, *, entity_key: str,
                              start: datetime, end: datetime, tolerance: float = 1e-9) -> pl.DataFrame:
    """Where the online store disagrees with the offline table (the method's offline-vs-online skew check).

    The expected online value of each entity is its latest offline row in ``[start, end]`` — what Feast's
    materialisation of that window writes (both ends inclusive) — ties broken by the latest created timestamp.

    Args:
        online: :func:`online_features` output for the sampled entities.
        feature_table: the offline feature table (``event_timestamp``, ``created_timestamp``, features).

    Returns:
        One row per differing (entity, feature): the offline and online values as text; empty when consistent.
    """
    features = [c for c in online if c != entity_key]
    latest = (feature_table
              .filter(pl.col("event_timestamp").is_between(start, end, closed="both")
                      & pl.col(entity_key).is_in(online[entity_key]))
              .sort("event_timestamp", "created_timestamp")
              .group_by(entity_key).last())
    offline = {row[entity_key]: row for row in latest.iter_rows(named=True)}
    rows = []
    for position, entity in enumerate(online[entity_key]):
        expected = offline.get(entity, {})
        for feature in features:
            want, got = expected.get(feature), online[feature][position]
            same = (want == got or (want is None and got is None)
                    or (isinstance(want, float) and isinstance(got, float | int) and abs(want - got) <= tolerance))
            if not same:
                rows.append({entity_key: entity, "feature": feature, "offline": str(want), "online": str(got)})
    return pl.DataFrame(rows, schema={entity_key: pl.Int64, "feature": pl.String, "offline": pl.String,
                                      "online": pl.String})
