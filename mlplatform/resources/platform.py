"""The resources every stage shares: the brief, the lake, the warehouse, Feast and MLflow.

Each resource is configuration only (paths, connection strings); switching from the local profile to
production changes these values, not the assets.
"""

import contextlib
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import duckdb
import polars as pl
from pydantic import PrivateAttr

from mlplatform.brief import AnyBrief, Brief, BriefError, DocumentsBrief, load_brief
from mlplatform.core.io import scan_parquet_verified, write_parquet_atomic
from mlplatform.core.model_families import registered_model_name
from mlplatform.core.tables import Table, layer_and_name, with_rest
from mlplatform.core.warehouse import lake_view_sql, set_workspace
from mlplatform.settings import Settings, Workspace


class PlatformResource(dg.ConfigurableResource):
    """The brief being run and the lake of Parquet tables under its namespace."""

    data_dir: str
    brief_path: str
    # How long a run waits for another run of the same brief on the same data directory to finish.
    run_lock_timeout_s: float = 0.0
    # The (child asset, parent asset, blocking check) edges as one JSON text: a run refuses children whose gate
    # last failed. Text, not a list: Dagster validates list config element by element each time the resource is
    # built (every sensor tick, and again inside the resources that nest this one), which took a third of each
    # tick's CPU for the demo's 63 edges.
    gate_edges: str = "[]"

    _brief: AnyBrief | None = PrivateAttr(default=None)

    @contextlib.contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator["PlatformResource"]:
        """Hold the brief namespace's run lock for the whole run, whoever launched it (CLI, UI, sensor), tag
        the run with this process's pid and host so a run whose process died can be told from a live one, and
        refuse the run when it would build on a blocking gate's latest failure (see resources.gates).

        Outside a run (a sensor's evaluation, a direct call) nothing is locked. Each step process of a
        multiprocess run sets the resource up: one that finds the lock held by its own run proceeds.
        """
        from mlplatform.core.run_lock import NamespaceLockedError, acquire, current_holder, release
        from mlplatform.resources.gates import refuse_failed_gates
        from mlplatform.resources.runs import tag_run_process

        run = context.run
        if run is None:
            yield self
            return
        namespace = self.workspace.root
        try:
            acquire(namespace, self.run_lock_timeout_s, run_id=run.run_id)
        except NamespaceLockedError:
            holder = current_holder(namespace)
            if holder is None or holder.run_id != run.run_id:
                raise
            yield self  # a sibling step process of this run holds it
            return
        try:
            if context.instance is not None:
                tag_run_process(context.instance, run)
                refuse_failed_gates(context.instance, run, self.blocking_gates)
            yield self
        finally:
            release(namespace)

    @classmethod
    def from_settings(cls, settings: Settings, blocking_gates: list[list[str]] | None = None) -> "PlatformResource":
        return cls(data_dir=str(settings.data_dir), brief_path=str(settings.brief_path),
                   gate_edges=json.dumps(blocking_gates or []))

    @property
    def blocking_gates(self) -> list[list[str]]:
        """The (child asset, parent asset, blocking check) edges a run is checked against."""
        return json.loads(self.gate_edges)

    @property
    def any_brief(self) -> AnyBrief:
        """The brief, tabular or documents-only: for the stages every brief has (problem, question answering)."""
        if self._brief is None:
            self._brief = load_brief(self.brief_path)
        return self._brief

    @property
    def brief(self) -> Brief:
        """The tabular brief the model stages read.

        Raises:
            BriefError: the brief is documents-only (its graph has no model stage, so only a misuse gets here).
        """
        brief = self.any_brief
        if isinstance(brief, DocumentsBrief):
            raise BriefError(f"{self.brief_path} is a documents-only brief (kind rag): it has no tables, so only the "
                             "problem and question-answering stages run for it")
        return brief

    @property
    def workspace(self) -> Workspace:
        return Workspace(Path(self.data_dir), self.any_brief.name)

    def source_path(self, source: str) -> str:
        return self.brief.source_path(source, Path(self.data_dir), Path(self.brief_path).parent)

    def write_table(self, table: Table | str, name_or_frame: str | pl.DataFrame,
                    frame: pl.DataFrame | None = None) -> Path:
        """Write a lake table (a :class:`Table`, or a layer and name) atomically and expose it as a DuckDB view
        ``{layer}_{name}``.

        A table without columns (a stage with nothing to report, e.g. fairness with no protected attributes)
        is stored but has no view: DuckDB cannot read a Parquet file without columns.
        """
        if isinstance(name_or_frame, pl.DataFrame):
            layer, name, frame = *layer_and_name(table), name_or_frame
        else:
            layer, name = layer_and_name(table, name_or_frame)
        if frame is None:
            raise TypeError(f"no frame given to write to {layer}/{name}")
        path = write_parquet_atomic(frame, self.workspace.table(layer, name))
        self.register_view(f"{layer}_{name}", str(path) if frame.width else None)
        return path

    def append_rows(self, table: Table, rows: pl.DataFrame) -> pl.DataFrame:
        """Add ``rows`` to the end of a lake table (created by the first rows) and return the whole table."""
        if self.workspace.table(table).exists():
            rows = pl.concat([self.read_table(table), rows])
        self.write_table(table, rows)
        return rows

    def write_partition(self, table: Table | str, *args: Any) -> Path:
        """Write one partition of a partitioned lake table, ``write_partition(table, key, frame)`` (or a layer and
        name in place of ``table``); the view spans all partitions."""
        layer, name, (key, frame) = with_rest(table, args)
        path = write_parquet_atomic(frame, self.workspace.partition(layer, name, key))
        self.register_view(f"{layer}_{name}", str(path.parent / "*.parquet"))
        return path

    def read_table(self, table: Table | str, name: str | None = None) -> pl.DataFrame:
        """A lake table, or all partitions of a partitioned one."""
        return self.scan_table(table, name).collect()

    def scan_table(self, table: Table | str, name: str | None = None) -> pl.LazyFrame:
        """A lake table (or all partitions of a partitioned one) as a LazyFrame, read when collected.

        Each file's page checksums are verified first (once per file version per process): a corrupted file
        raises :class:`mlplatform.core.io.CorruptParquetError` naming it instead of feeding changed data on.
        """
        layer, name = layer_and_name(table, name)
        path = self.workspace.table(layer, name)
        if path.exists():
            return scan_parquet_verified(path)
        parts = sorted(path.with_suffix("").glob("*.parquet"))
        if not parts:
            raise FileNotFoundError(f"table {layer}/{name} has not been materialised yet ({path}); "
                                    "materialise its upstream assets first")
        return pl.concat([scan_parquet_verified(p) for p in parts], how="diagonal")

    def register_view(self, view: str, parquet_glob: str | None) -> None:
        """Keep the warehouse's views pointing at the lake so `mlplatform sql` can query every table
        (``parquet_glob`` None drops the view).

        DuckDB lets one process at a time open the file: a run that finds it locked by another run (or by
        `mlplatform sql`) waits its turn, up to a minute, instead of failing.
        """
        self.workspace.warehouse.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                with duckdb.connect(str(self.workspace.warehouse)) as con:
                    if parquet_glob:  # stored relative to the workspace, so a copied data directory reads its own
                        set_workspace(con, self.workspace.warehouse)
                        relative = Path(parquet_glob).relative_to(self.workspace.root).as_posix()
                        con.execute(lake_view_sql(view, relative))
                    else:
                        con.execute(f"DROP VIEW IF EXISTS {view}")
                return
            except duckdb.IOException as exc:
                if "lock" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05 + random.random() * 0.1)  # jittered, so waiting runs do not retry in step


class TrackingResource(dg.ConfigurableResource):
    """MLflow tracking and registry. Empty ``tracking_uri`` means SQLite under the brief's namespace."""

    platform: PlatformResource
    tracking_uri: str = ""

    @property
    def uri(self) -> str:
        return self.tracking_uri or self.platform.workspace.mlflow_uri

    @property
    def artifact_dir(self) -> Path:
        return self.platform.workspace.mlflow_dir / "artifacts"

    @property
    def model_name(self) -> str:
        return registered_model_name(self.platform.brief.name)


class FeatureStoreResource(dg.ConfigurableResource):
    """The Feast feature store of the brief: SQLite online store locally, Redis in production."""

    platform: PlatformResource
    online_store: Literal["sqlite", "redis"] = "sqlite"
    redis_connection: str = ""

    def config(self):
        """The store's Feast ``RepoConfig``: its registry and online store (what the serving app opens too)."""
        from mlplatform.core.feature_store import feast_config  # imports Feast, slow: only steps that use it pay

        return feast_config(self.platform.workspace.feast_dir, self.platform.brief.name,
                            online=self.online_store, redis_connection=self.redis_connection or None)

    def store(self):
        """The feature store, its Parquet sources pointed at this data directory's files (a copied or moved one)."""
        from mlplatform.core.feature_store import open_feature_store

        return open_feature_store(self.config())
