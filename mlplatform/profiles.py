"""The production profile's resources (``MLPLATFORM_PROFILE=production``).

Production changes where state lives, not what the assets do: MLflow tracking and registry on PostgreSQL, the
Feast registry on PostgreSQL and its online store on Redis, the Dagster instance on PostgreSQL (deploy/dagster.yaml,
found through ``DAGSTER_HOME``). The lake and the DuckDB warehouse stay files under ``MLPLATFORM_DATA_DIR``, which
every process of a deployment mounts at the same path. :meth:`mlplatform.settings.Settings.from_env` checks the
endpoints' variables (``MLPLATFORM_MLFLOW_URI``, ``MLPLATFORM_REDIS``, ``MLPLATFORM_FEAST_REGISTRY``) before any
definitions are built.
"""

import dagster as dg

from mlplatform.resources.platform import FeatureStoreResource, PlatformResource, TrackingResource
from mlplatform.settings import FEAST_REGISTRY, MLFLOW_URI, REDIS


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
    the passwords in them; each run process resolves them from its own environment (the one its
    :class:`~mlplatform.settings.Settings` were read from).
    """
    return {
        "feast_store": ProductionFeatureStoreResource(platform=platform, online_store="redis",
                                                      redis_connection=dg.EnvVar(REDIS),
                                                      registry=dg.EnvVar(FEAST_REGISTRY)),
        "tracking": TrackingResource(platform=platform, tracking_uri=dg.EnvVar(MLFLOW_URI)),
    }
