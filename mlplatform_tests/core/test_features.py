import math
import statistics
from datetime import date, datetime, timedelta

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mlplatform.brief import (
    DEMO_BRIEF,
    DailyLag,
    EventCount,
    Features,
    Interaction,
    RollingAggregate,
    load_brief,
)
from mlplatform.core.features import build_features, event_columns, feature_blocks, feature_columns

EVENT_SCHEMA = {
    "event_id": pl.String,
    "customer_id": pl.Int64,
    "event_timestamp": pl.Datetime("us"),
    "event_type": pl.String,
    "session_minutes": pl.Float64,
}
ENTITY_SCHEMA = {"customer_id": pl.Int64, "signup_date": pl.Date, "plan": pl.String}
AGGS = ["sum", "mean", "min", "max", "std", "count"]
LAGS = [1, 7, 12]
INTERACTIONS = [
    Interaction(left="session_minutes_2d_sum", right="login_2d_count", kind="ratio"),
    Interaction(left="session_minutes_7d_max", right="session_minutes_lag1d_min", kind="difference"),
    Interaction(left="session_minutes_2d_sum_to_login_2d_count_ratio", right="session_minutes_lag7d_count",
                kind="ratio", name="minutes_per_login_per_lag7_event"),
]


def spec(tenure: bool = True, temporal: bool = False) -> Features:
    """The test features; ``temporal`` adds lags, cyclical encodings and interactions."""
    return Features(
        events_source="events",
        entities_source="customers",
        entity_attributes=["plan"],
        tenure_from="signup_date" if tenure else None,
        rolling=[RollingAggregate(column="session_minutes", aggregations=AGGS, windows_days=[2, 7])],
        counts=[EventCount(column="event_type", values=["login", "Support Ticket"], windows_days=[2])],
        days_since=["login"],
        lags=[DailyLag(column="session_minutes", aggregations=AGGS, lags_days=LAGS)] if temporal else [],
        cyclical=["day_of_week", "month"] if temporal else [],
        interactions=INTERACTIONS if temporal else [],
    )


def events_frame(rows: list[tuple]) -> pl.DataFrame:
    """Rows of (customer_id, timestamp, event_type, session_minutes)."""
    return pl.DataFrame([(f"e{i}", *row) for i, row in enumerate(rows)], schema=EVENT_SCHEMA, orient="row")


def build(events: pl.DataFrame, entities: pl.DataFrame, features: Features, start: date, end: date):
    return build_features(
        events,
        entities,
        features,
        entity="customer",
        entity_key="customer_id",
        timestamp="event_timestamp",
        start=start,
        end=end,
    )


ENTITIES = pl.DataFrame(
    [
        (1, date(2025, 1, 1), "basic"),
        (2, date(2025, 1, 3), "premium"),  # never has an event
        (3, None, "basic"),  # no signup date: appears after its first event
        (4, None, "basic"),  # neither: never appears
    ],
    schema=ENTITY_SCHEMA,
    orient="row",
)
EVENTS = events_frame(
    [
        (1, datetime(2024, 12, 30, 12), "login", 10.0),
        (1, datetime(2025, 1, 1), "usage", 20.0),  # exactly midnight: in row 01-02, and in 01-03's 2d window
        (1, datetime(2025, 1, 2), "login", None),  # exactly midnight: not in row 01-02, in row 01-03
        (1, datetime(2025, 1, 3, 23, 59, 59), "Support Ticket", 30.0),
        (1, datetime(2025, 1, 5), "login", 5.0),  # at the last row's time: not seen by it
        (1, datetime(2025, 1, 6), "login", 1.0),  # after the grid
        (3, datetime(2025, 1, 2, 10), "usage", 6.0),
        (3, datetime(2025, 1, 2, 18), "usage", 6.0),
        (5, datetime(2025, 1, 2), "login", 1.0),  # unknown entity
    ]
)


def expected_row(key, day, w2, w7, login2, ticket2, since, tenure, plan="basic"):
    """w2/w7: (sum, mean, min, max, std, count) of session_minutes in the window."""
    row = {
        "customer_id": key,
        "event_timestamp": datetime(2025, 1, day),
        "created_timestamp": datetime(2025, 1, day),
    }
    row |= {f"customer_session_minutes_2d_{a}": v for a, v in zip(AGGS, w2, strict=True)}
    row |= {f"customer_session_minutes_7d_{a}": v for a, v in zip(AGGS, w7, strict=True)}
    return row | {
        "customer_login_2d_count": login2,
        "customer_support_ticket_2d_count": ticket2,
        "customer_days_since_login": since,
        "customer_plan": plan,
        "customer_tenure_days": tenure,
    }


def test_hand_built_example_exact_values():
    out = build(EVENTS, ENTITIES, spec(), date(2025, 1, 1), date(2025, 1, 5))
    one = (20.0, 20.0, 20.0, 20.0, None, 1)
    two = (30.0, 15.0, 10.0, 20.0, math.sqrt(50), 2)
    thirty = (30.0, 30.0, 30.0, 30.0, None, 1)
    three = (60.0, 20.0, 10.0, 30.0, 10.0, 3)
    empty = (0.0, None, None, None, None, 0)
    sixes = (12.0, 6.0, 6.0, 6.0, 0.0, 2)
    expected = pl.DataFrame(
        [
            expected_row(1, 2, one, two, 0, 0, 2.5, 1),
            expected_row(1, 3, one, two, 1, 0, 1.0, 2),
            expected_row(1, 4, thirty, three, 1, 1, 2.0, 3),
            expected_row(1, 5, thirty, three, 0, 1, 3.0, 4),
            *[expected_row(2, d, empty, empty, 0, 0, None, d - 3, "premium") for d in (3, 4, 5)],
            expected_row(3, 3, sixes, sixes, 0, 0, None, None),
            expected_row(3, 4, sixes, sixes, 0, 0, None, None),
            expected_row(3, 5, empty, sixes, 0, 0, None, None),
        ],
        schema=out.schema,
    )
    assert list(out.columns) == [
        "customer_id",
        "event_timestamp",
        "created_timestamp",
        *feature_columns(spec(), "customer"),
    ]
    assert out.schema["customer_id"] == pl.Int64
    assert out.schema["event_timestamp"] == pl.Datetime("us")
    assert out.schema["customer_login_2d_count"] == pl.Int64
    assert out.schema["customer_session_minutes_2d_sum"] == pl.Float64
    assert_frame_equal(out, expected, check_exact=False, abs_tol=1e-9)


def test_feature_names_follow_the_convention_for_the_demo_brief():
    brief = load_brief(DEMO_BRIEF)
    names = feature_columns(brief.features, brief.entity)
    assert list(names) == [
        "customer_session_minutes_7d_sum",
        "customer_session_minutes_7d_mean",
        "customer_session_minutes_30d_sum",
        "customer_session_minutes_30d_mean",
        "customer_amount_30d_sum",
        "customer_login_7d_count",
        "customer_login_30d_count",
        "customer_support_ticket_7d_count",
        "customer_support_ticket_30d_count",
        "customer_days_since_login",
        "customer_session_minutes_lag1d_sum",
        "customer_session_minutes_lag7d_sum",
        "customer_session_minutes_lag30d_sum",
        "customer_plan",
        "customer_region",
        "customer_monthly_fee",
        "customer_age_band",
        "customer_tenure_days",
        "customer_login_7d_count_to_login_30d_count_ratio",
        "customer_amount_30d_sum_minus_monthly_fee_difference",
    ]
    assert all(description for description in names.values())


def test_std_is_stable_for_large_close_values():
    base = 1e9
    events = events_frame([(1, datetime(2025, 1, 1, h), "usage", base + h) for h in (1, 2, 3)])
    out = build(events, ENTITIES.head(1), spec(), date(2025, 1, 1), date(2025, 1, 2))
    assert out["customer_session_minutes_2d_std"].to_list() == [pytest.approx(1.0, abs=1e-9)]


def test_attributes_only_spec_and_days_since_needs_a_known_column():
    only = Features(events_source="events", entities_source="customers", entity_attributes=["plan"])
    out = build(EVENTS, ENTITIES, only, date(2025, 1, 1), date(2025, 1, 3))
    assert out.columns == ["customer_id", "event_timestamp", "created_timestamp", "customer_plan"]
    # Without tenure_from, rows start after the first event: entity 1 twice, 3 once, 2 (no events) never.
    assert out["customer_id"].to_list() == [1, 1, 3]
    bad = Features(events_source="events", entities_source="customers", days_since=["login"])
    with pytest.raises(ValueError, match="days_since"):
        build(EVENTS, ENTITIES, bad, date(2025, 1, 1), date(2025, 1, 3))


# --- random data: a naive reference implementation and the point-in-time property ---------------------

START, END = date(2025, 1, 10), date(2025, 1, 20)
GRID_START = datetime(2025, 1, 1)


@st.composite
def event_rows(draw, low: datetime, high: datetime, min_size: int = 0) -> list[tuple]:
    """Event rows with timestamps in [low, high); many fall exactly on midnight."""
    minutes = int((high - low).total_seconds() // 60)
    offset = st.one_of(
        st.integers(0, minutes - 1), st.integers(0, minutes // 1440 - 1).map(lambda d: d * 1440)
    )
    row = st.tuples(
        st.integers(1, 3),
        offset.map(lambda m: low + timedelta(minutes=m)),
        st.sampled_from(["login", "usage", "Support Ticket"]),
        st.one_of(st.none(), st.floats(0, 600, allow_nan=False).map(lambda v: round(v, 2))),
    )
    return draw(st.lists(row, min_size=min_size, max_size=40))


def window_stats(inside: list[tuple]) -> dict:
    values = [e[3] for e in inside if e[3] is not None]
    return {
        "sum": sum(values),
        "count": len(values),
        "mean": statistics.fmean(values) if values else None,
        "min": min(values, default=None),
        "max": max(values, default=None),
        "std": statistics.stdev(values) if len(values) > 1 else None,
    }


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def reference(events: list[tuple], entities: pl.DataFrame, features: Features) -> pl.DataFrame:
    """Row by row, straight from the definition."""
    rows = []
    for key, signup, plan in entities.iter_rows():
        mine = [e for e in events if e[0] == key]
        first = min((e[1] for e in mine), default=None)
        for day in range(1, (END - START).days + 1):
            t = datetime.combine(START, datetime.min.time()) + timedelta(days=day)
            if not (signup is not None and t.date() >= signup) and not (
                signup is None and first and t > first
            ):
                continue
            row = {"customer_id": key, "event_timestamp": t, "created_timestamp": t}
            for n in (2, 7):
                inside = [e for e in mine if t - timedelta(days=n) <= e[1] < t]
                stats = window_stats(inside)
                row |= {f"customer_session_minutes_{n}d_{a}": stats[a] for a in AGGS}
                if n == 2:
                    row["customer_login_2d_count"] = sum(e[2] == "login" for e in inside)
                    row["customer_support_ticket_2d_count"] = sum(e[2] == "Support Ticket" for e in inside)
            logins = [e[1] for e in mine if e[2] == "login" and e[1] < t]
            row["customer_days_since_login"] = (t - max(logins)).total_seconds() / 86400 if logins else None
            for lag in LAGS if features.lags else []:
                day = t - timedelta(days=lag)
                stats = window_stats([e for e in mine if day <= e[1] < day + timedelta(days=1)])
                row |= {f"customer_session_minutes_lag{lag}d_{a}": stats[a] for a in AGGS}
            row["customer_plan"] = plan
            if features.tenure_from:
                row["customer_tenure_days"] = (t.date() - signup).days if signup else None
            if features.cyclical:
                weekday, month = t.weekday() * 2 * math.pi / 7, (t.month - 1) * 2 * math.pi / 12
                row |= {"customer_day_of_week_sin": math.sin(weekday), "customer_day_of_week_cos": math.cos(weekday),
                        "customer_month_sin": math.sin(month), "customer_month_cos": math.cos(month)}
            if features.interactions:
                per_login = ratio(row["customer_session_minutes_2d_sum"], row["customer_login_2d_count"])
                row["customer_session_minutes_2d_sum_to_login_2d_count_ratio"] = per_login
                top, low = row["customer_session_minutes_7d_max"], row["customer_session_minutes_lag1d_min"]
                row["customer_session_minutes_7d_max_minus_session_minutes_lag1d_min_difference"] = (
                    None if top is None or low is None else top - low)
                row["customer_minutes_per_login_per_lag7_event"] = ratio(per_login,
                                                                        row["customer_session_minutes_lag7d_count"])
            rows.append(row)
    return pl.DataFrame(rows, schema=build(events_frame([]), entities, features, START, END).schema)


RANDOM_ENTITIES = pl.DataFrame(
    [(1, date(2025, 1, 12), "basic"), (2, None, "premium"), (3, date(2024, 12, 1), "basic")],
    schema=ENTITY_SCHEMA,
    orient="row",
)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(rows=event_rows(GRID_START, datetime(2025, 1, 22)), tenure=st.booleans(), temporal=st.booleans())
def test_matches_a_naive_reference(rows, tenure, temporal):
    features = spec(tenure, temporal)
    entities = RANDOM_ENTITIES if tenure else RANDOM_ENTITIES.with_columns(signup_date=pl.lit(None, pl.Date))
    out = build(events_frame(rows), entities, features, START, END)
    assert_frame_equal(out, reference(rows, entities, features), check_exact=False, abs_tol=1e-6)


@SETTINGS
@given(
    data=st.data(),
    past=event_rows(GRID_START, datetime(2025, 1, 22)),
    cut_day=st.integers(1, (END - START).days),
    tenure=st.booleans(),
    temporal=st.booleans(),
)
def test_events_at_or_after_t_never_change_rows_up_to_t(data, past, cut_day, tenure, temporal):
    cut = datetime.combine(START, datetime.min.time()) + timedelta(days=cut_day)
    # Rewrite every event at or after the cut (new values, drop some) and add new ones from the cut on.
    future = data.draw(event_rows(cut, datetime(2025, 1, 25), min_size=1))
    before = [e for e in past if e[1] < cut]
    rewritten = [(k, ts, "login", 1.0) for k, ts, *_ in past if ts >= cut][::2]
    features = spec(tenure, temporal)
    entities = RANDOM_ENTITIES if tenure else RANDOM_ENTITIES.with_columns(signup_date=pl.lit(None, pl.Date))
    original = build(events_frame(past), entities, features, START, END)
    changed = build(events_frame(before + rewritten + future), entities, features, START, END)
    up_to_cut = pl.col("event_timestamp") <= cut
    assert_frame_equal(original.filter(up_to_cut), changed.filter(up_to_cut))


@SETTINGS
@given(rows=event_rows(GRID_START, datetime(2025, 1, 22)), temporal=st.booleans(), size=st.integers(1, 4))
def test_blocks_of_entities_concatenate_to_the_whole_frame(rows, temporal, size):
    features = spec(True, temporal)
    entities = pl.concat([RANDOM_ENTITIES, ENTITIES.with_columns(pl.col("customer_id") + 10)])
    kwargs = {"entity": "customer", "entity_key": "customer_id", "timestamp": "event_timestamp", "start": START,
              "end": END}
    whole = build_features(events_frame(rows), entities, features, **kwargs)
    blocks = list(feature_blocks(events_frame(rows), entities, features, block_entities=size, **kwargs))
    assert len(blocks) == -(-entities.height // size)
    assert_frame_equal(pl.concat(blocks), whole)


def test_blocks_without_entities_yield_one_empty_typed_frame():
    kwargs = {"entity": "customer", "entity_key": "customer_id", "timestamp": "event_timestamp", "start": START,
              "end": END}
    blocks = list(feature_blocks(EVENTS, ENTITIES.clear(), spec(), block_entities=2, **kwargs))
    assert [b.height for b in blocks] == [0]
    assert blocks[0].schema == build(EVENTS, ENTITIES, spec(), START, END).schema


def test_event_columns_are_what_the_features_read():
    columns = event_columns(spec(temporal=True), entity_key="customer_id", timestamp="event_timestamp")
    assert columns == ["customer_id", "event_timestamp", "session_minutes", "event_type"]
    out = build(EVENTS.select(columns), ENTITIES, spec(temporal=True), date(2025, 1, 1), date(2025, 1, 5))
    assert_frame_equal(out, build(EVENTS, ENTITIES, spec(temporal=True), date(2025, 1, 1), date(2025, 1, 5)))


def test_lags_cyclical_and_interactions_by_hand():
    out = build(EVENTS, ENTITIES.head(1), spec(temporal=True), date(2025, 1, 1), date(2025, 1, 5))
    row = out.filter(pl.col("event_timestamp") == datetime(2025, 1, 4)).row(0, named=True)  # a Saturday
    # t-1 is 01-03 (one event, 30.0 at 23:59:59); t-7 and t-12 lie before every event: empty days.
    assert [row[f"customer_session_minutes_lag1d_{a}"] for a in AGGS] == [30.0, 30.0, 30.0, 30.0, None, 1]
    assert [row[f"customer_session_minutes_lag7d_{a}"] for a in AGGS] == [0.0, None, None, None, None, 0]
    two_days_before = out.filter(pl.col("event_timestamp") == datetime(2025, 1, 2)).row(0, named=True)
    # t-1 of 01-02 is 01-01: the usage event exactly at midnight; 12-30's login is t-3.
    assert two_days_before["customer_session_minutes_lag1d_sum"] == 20.0
    assert row["customer_day_of_week_sin"] == pytest.approx(math.sin(5 * 2 * math.pi / 7))
    assert (row["customer_month_sin"], row["customer_month_cos"]) == (0.0, 1.0)  # January
    # 2-day window 01-02..01-03: session minutes 30 (the 01-02 login has none), one login.
    assert row["customer_session_minutes_2d_sum_to_login_2d_count_ratio"] == 30.0
    assert row["customer_session_minutes_7d_max_minus_session_minutes_lag1d_min_difference"] == 0.0
    assert row["customer_minutes_per_login_per_lag7_event"] is None  # divided by a zero count: null, not inf
    assert out.schema["customer_session_minutes_lag1d_count"] == pl.Int64
    assert list(out.columns[-7:]) == [
        "customer_day_of_week_sin", "customer_day_of_week_cos", "customer_month_sin", "customer_month_cos",
        "customer_session_minutes_2d_sum_to_login_2d_count_ratio",
        "customer_session_minutes_7d_max_minus_session_minutes_lag1d_min_difference",
        "customer_minutes_per_login_per_lag7_event",
    ]


def test_bad_temporal_specs_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="hour of day is constant"):
        Features(events_source="e", entities_source="c", cyclical=["hour_of_day"])
    with pytest.raises(ValueError, match="lags_days must be >= 1"):
        DailyLag(column="session_minutes", aggregations=["sum"], lags_days=[0])
    unknown = Features(events_source="e", entities_source="c", entity_attributes=["plan"],
                       interactions=[Interaction(left="plan", right="visits_7d_sum", kind="ratio")])
    with pytest.raises(ValueError, match="uses 'visits_7d_sum', which is not an earlier feature"):
        feature_columns(unknown, "customer")
    text = Features(events_source="e", entities_source="c", entity_attributes=["plan"], tenure_from="signup_date",
                    interactions=[Interaction(left="plan", right="tenure_days", kind="difference")])
    with pytest.raises(ValueError, match="'customer_plan' is String, not a number"):
        build(EVENTS, ENTITIES, text, date(2025, 1, 1), date(2025, 1, 3))
    missing = Features(events_source="e", entities_source="c",
                       lags=[DailyLag(column="minutes", aggregations=["sum"], lags_days=[1])])
    with pytest.raises(ValueError, match=r"name \['minutes'\], which the events do not have"):
        build(EVENTS, ENTITIES, missing, date(2025, 1, 1), date(2025, 1, 3))
