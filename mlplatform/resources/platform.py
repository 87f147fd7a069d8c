"""The resources every stage shares: the brief, the lake, the warehouse, Feast and MLflow.

Each resource is configuration only (paths, connection strings); switching from the local profile to
production changes these values, not the assets.
"""

from functools import cached_property
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
from pydantic import PrivateAttr

from mlplatform.brief import Brief, load_brief
from mlplatform.core.io import write_parquet_atomic
from mlplatform.settings import Settings, Workspace


class PlatformResource(dg.ConfigurableResource):
    """The brief being run and the lake of Parquet tables under its namespace."""

    data_dir: str
    brief_path: str

    _brief: Brief | None = PrivateAttr(default=None)

    @classmethod
    def from_settings(cls, settings: Settings) -> "PlatformResource":
        return cls(data_dir=str(settings.data_dir), brief_path=str(settings.brief_path))

    @property
    def brief(self) -> Brief:
        if self._brief is None:
            self._brief = load_brief(self.brief_path)
        return self._brief

    @property
    def workspace(self) -> Workspace:
        return Workspace(Path(self.data_dir), self.brief.name)

    def source_path(self, source: str) -> str:
        return self.brief.source_path(source, Path(self.data_dir), Path(self.brief_path).parent)

    def write_table(self, layer: str, name: str, frame: pl.DataFrame) -> Path:
        """Write a lake table atomically and expose it as a DuckDB view ``{layer}_{name}``."""
        path = write_parquet_atomic(frame, self.workspace.table(layer, name))
        self.register_view(f"{layer}_{name}", str(path))
        return path

    def read_table(self, layer: str, name: str) -> pl.DataFrame:
        path = self.workspace.table(layer, name)
        if not path.exists():
            raise FileNotFoundError(f"table {layer}/{name} has not been materialised yet ({path}); "
                                    "materialise its upstream assets first")
        return pl.read_parquet(path)

    def register_view(self, view: str, parquet_glob: str) -> None:
        """Keep the warehouse's views pointing at the lake so `mlplatform sql` can query every table."""
        self.workspace.warehouse.parent.mkdir(parents=True, exist_ok=True)
        with duckdb.connect(str(self.workspace.warehouse)) as con:
            con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM read_parquet('{parquet_glob}')")


class TrackingResource(dg.ConfigurableResource):
    """MLflow tracking and registry. Empty ``tracking_uri`` means SQLite under the brief's namespace."""

    platform: PlatformResource
    tracking_uri: str = ""

    @cached_property
    def uri(self) -> str:
        return self.tracking_uri or self.platform.workspace.mlflow_uri

    @property
    def artifact_dir(self) -> Path:
        return self.platform.workspace.mlflow_dir / "artifacts"

    @property
    def model_name(self) -> str:
        return f"{self.platform.brief.name}_model"
