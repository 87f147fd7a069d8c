"""The production profile's endpoints, read from the environment (``MLPLATFORM_PROFILE=production``).

Production changes where state lives, not what the assets do: MLflow tracking and registry on PostgreSQL, the
Feast registry on PostgreSQL and its online store on Redis, the Dagster instance on PostgreSQL (deploy/dagster.yaml,
found through ``DAGSTER_HOME``). The lake and the DuckDB warehouse stay files under ``MLPLATFORM_DATA_DIR``, which
every process of a deployment mounts at the same path.

Environment:
    MLPLATFORM_MLFLOW_URI: MLflow backend store, e.g. ``postgresql+psycopg2://mlflow:secret@postgres:5432/mlflow``.
    MLPLATFORM_REDIS: Feast's Redis online store, ``host:port`` (``host:port,password=...`` with a password).
    MLPLATFORM_FEAST_REGISTRY: Feast's SQL registry, e.g. ``postgresql+psycopg2://feast:secret@postgres:5432/feast``.
"""

import os
from collections.abc import Mapping

import dagster as dg

from mlplatform.resources.platform import FeatureStoreResource, PlatformResource, TrackingResource

MLFLOW_URI = "MLPLATFORM_MLFLOW_URI"
REDIS = "MLPLATFORM_REDIS"
FEAST_REGISTRY = "MLPLATFORM_FEAST_REGISTRY"
ENDPOINTS = (MLFLOW_URI, REDIS, FEAST_REGISTRY)


def check_environment(environ: Mapping[str, str] = os.environ) -> None:
    """Fail at load time, naming every missing variable, rather than at the first step that connects.

    Raises:
        ValueError: one of :data:`ENDPOINTS` is unset or empty, or a PostgreSQL URL names no driver.
    """
    missing = [name for name in ENDPOINTS if not environ.get(name)]
    if missing:
        raise ValueError(f"MLPLATFORM_PROFILE=production needs {', '.join(missing)} (see deploy/README.md); "
                         "unset MLPLATFORM_PROFILE to run locally on files")
    # SQLAlchemy 2.1 reads a bare postgresql:// as the psycopg 3 driver, which the platform does not install.
    bare = [name for name in (MLFLOW_URI, FEAST_REGISTRY) if environ[name].startswith("postgresql://")]
    if bare:
        raise ValueError(f"{', '.join(bare)}: write postgresql+psycopg2://... rather than postgresql://...")


class ProductionFeatureStoreResource(FeatureStoreResource):
    """The feature store with Feast's SQL registry on a database rather than a SQLite file."""

    registry: str

    def config(self):
        from mlplatform.core.feature_store import feast_config

        return feast_config(self.platform.workspace.feast_dir, self.platform.brief.name, online=self.online_store,
                            redis_connection=self.redis_connection or None, registry=self.registry)


def production_resources(platform: PlatformResource) -> dict:
    """The ``feast_store`` and ``tracking`` resources of the production profile.

    Connection strings stay :class:`dagster.EnvVar` references, so the UI shows the variables' names, never
    the passwords in them; each run process resolves them from its own environment.
    """
    check_environment()
    return {
        "feast_store": ProductionFeatureStoreResource(platform=platform, online_store="redis",
                                                      redis_connection=dg.EnvVar(REDIS),
                                                      registry=dg.EnvVar(FEAST_REGISTRY)),
        "tracking": TrackingResource(platform=platform, tracking_uri=dg.EnvVar(MLFLOW_URI)),
    }
