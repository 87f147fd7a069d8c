"""Where things live, read from the environment. Importing this module touches nothing on disk.

Environment:
    MLPLATFORM_DATA_DIR: root of everything the platform writes (default ``./data``).
    MLPLATFORM_BRIEF: the brief to run (default: the bundled churn demo).
    MLPLATFORM_PROFILE: ``local`` (DuckDB, SQLite, files) or ``production``.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mlplatform.brief import DEMO_BRIEF
from mlplatform.core.tables import Table, layer_and_name, with_rest

Profile = Literal["local", "production"]


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    brief_path: Path
    profile: Profile = "local"

    @classmethod
    def from_env(cls) -> "Settings":
        profile = os.environ.get("MLPLATFORM_PROFILE", "local")
        if profile not in ("local", "production"):
            raise ValueError(f"MLPLATFORM_PROFILE must be 'local' or 'production', got '{profile}'")
        return cls(
            data_dir=Path(os.environ.get("MLPLATFORM_DATA_DIR", "data")).resolve(),
            brief_path=Path(os.environ.get("MLPLATFORM_BRIEF", str(DEMO_BRIEF))).resolve(),
            profile=profile,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class Workspace:
    """The folders of one brief's namespace under the data directory."""

    data_dir: Path
    name: str

    @property
    def root(self) -> Path:
        return self.data_dir / self.name

    def table(self, table: "Table | str", name: str | None = None) -> Path:
        """Parquet file of a table: a :class:`~mlplatform.core.tables.Table`, or a layer and name
        (``table("validated", "events")``)."""
        layer, name = layer_and_name(table, name)
        return self.root / "lake" / layer / f"{name}.parquet"

    def partition(self, table: "Table | str", *name_and_key: str) -> Path:
        """Parquet file of one partition: ``partition(table, key)`` or ``partition(layer, name, key)``."""
        layer, name, (key,) = with_rest(table, name_and_key)
        return self.root / "lake" / layer / name / f"{key}.parquet"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def feast_dir(self) -> Path:
        return self.root / "feast"

    @property
    def mlflow_dir(self) -> Path:
        return self.root / "mlflow"

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def profiles_dir(self) -> Path:
        return self.root / "profiles"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"
