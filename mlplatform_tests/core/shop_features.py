"""The small feature specification the feature-store and point-in-time-join tests share."""

from datetime import datetime

from mlplatform.brief import EventCount, Features, RollingAggregate

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
T0 = datetime(2025, 1, 1)
