"""Names of the feature store's objects, derived from the brief.

Kept apart from :mod:`mlplatform.core.feature_store` so that code which only needs a name (asset definitions,
the serving app's schema) does not import Feast.
"""


def feature_view_name(entity: str) -> str:
    """Name of the feature view (and of the feature table) of ``entity``."""
    return f"{entity}_daily_features"


def feature_service_name(project: str, version: int = 1) -> str:
    """Name of the model's versioned feature service."""
    return f"{project}_model_v{version}"


def entity_column(entity: str, column: str) -> str:
    """The feature column of the entity's attribute or per-entity aggregate ``column``: ``{entity}_{column}``."""
    return f"{entity}_{column}"
