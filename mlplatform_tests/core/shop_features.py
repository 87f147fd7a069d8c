"""The small feature specification the feature-store and point-in-time-join tests share."""

from datetime import datetime
from pathlib import Path

import feast
import polars as pl

from mlplatform.brief import ColumnSpec, EventCount, Features, RollingAggregate, Source
from mlplatform.core.feature_catalogue import build_catalogue
from mlplatform.core.feature_store import apply_feature_store, feast_config, feast_objects

SPEC = Features(
    events_source="events",
    entities_source="customers",
    entity_attributes=["plan"],
    tenure_from="signup_date",
    rolling=[RollingAggregate(column="minutes", aggregations=["sum", "mean"], windows_days=[7])],
    counts=[EventCount(column="event_type", values=["login"], windows_days=[7])],
    days_since=["login"],
    ttl_days=2,
)
FEATURES = [
    "customer_minutes_7d_sum",
    "customer_minutes_7d_mean",
    "customer_login_7d_count",
    "customer_days_since_login",
    "customer_plan",
    "customer_tenure_days",
]
CUSTOMERS = Source(path="customers.csv", format="csv", columns={
    "customer_id": ColumnSpec(dtype="int"), "plan": ColumnSpec(dtype="str"), "signup_date": ColumnSpec(dtype="date")})
CATALOGUE = build_catalogue(SPEC, entity="customer", sources={"customers": CUSTOMERS})
T0 = datetime(2025, 1, 1)


def applied_store(root: Path, table: pl.DataFrame, *, project: str = "shop", online: str = "sqlite",
                  redis_connection: str | None = None, owner: str = "team@example.com") -> feast.FeatureStore:
    """Write ``table`` as the feature Parquet under ``root`` and apply SPEC's objects over it to a Feast store."""
    path = root / "customer_daily_features.parquet"
    table.write_parquet(path)
    store = feast.FeatureStore(config=feast_config(root / "repo", project, online, redis_connection))
    apply_feature_store(store, feast_objects(
        path, SPEC, catalogue=CATALOGUE, project=project, entity="customer", entity_key="customer_id", owner=owner))
    return store
