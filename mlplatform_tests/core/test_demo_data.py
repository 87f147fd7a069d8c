"""The demo generator: deterministic, shaped like the brief's sources, bad only where it says so."""

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from mlplatform.brief import DEMO_BRIEF, ColumnSpec, load_brief
from mlplatform.core.demo_data import DemoManifest, generate_demo

N_EVENTS = 20_000
PERIOD = (datetime(2025, 1, 1), datetime(2025, 11, 1))
POLARS_TYPES = {"int": pl.Int64, "float": pl.Float64, "str": pl.String, "datetime": pl.Datetime("us")}


def _read(out: Path) -> dict[str, pl.DataFrame]:
    return {
        "customers": pl.read_csv(out / "customers.csv"),
        "events": pl.read_parquet(out / "events" / "*.parquet"),
        "labels": pl.read_csv(out / "labels.csv"),
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoManifest, dict[str, pl.DataFrame]]:
    out = tmp_path_factory.mktemp("demo")
    manifest = generate_demo(out, n_events=N_EVENTS, seed=7)
    return out, manifest, _read(out)


def _violations(frame: pl.DataFrame, name: str, spec: ColumnSpec) -> int:
    """Rows breaking one column's contract (nulls where not nullable, out of range, not allowed)."""
    col = pl.col(name)
    bad = pl.lit(False) if spec.nullable else col.is_null()
    if spec.dtype == "date":
        parsed = col.str.strptime(pl.Date, "%Y-%m-%d", strict=False)
        bad = bad | (col.is_not_null() & parsed.is_null())
    if spec.min is not None:
        bad = bad | (col < spec.min).fill_null(False)
    if spec.max is not None:
        bad = bad | (col > spec.max).fill_null(False)
    if spec.allowed is not None:
        bad = bad | (col.is_not_null() & ~col.is_in(spec.allowed))
    return frame.select(bad.sum()).item()


def test_files_match_the_brief_sources_and_only_injected_rows_break_them(demo) -> None:
    out, manifest, frames = demo
    brief = load_brief(DEMO_BRIEF)
    assert sorted(p.name for p in (out / "events").iterdir()) == [f"2025-{m:02d}.parquet" for m in range(1, 11)]
    expected_bad = {
        ("customers", "region"): manifest.injected["customer_null_region"],
        ("customers", "monthly_fee"): manifest.injected["customer_negative_fee"],
        ("events", "session_minutes"): manifest.injected["negative_session_minutes"],
        ("events", "event_type"): manifest.injected["bad_event_type"],
        ("events", "amount"): manifest.injected["amount_out_of_range"],
    }
    for source_name, source in brief.sources.items():
        frame = frames[source_name]
        assert frame.columns == list(source.columns), source_name
        for name, spec in source.columns.items():
            if source_name == "events":
                assert frame.schema[name] == POLARS_TYPES[spec.dtype], name
            assert _violations(frame, name, spec) == expected_bad.get((source_name, name), 0), (source_name, name)
    for source_name in ("customers", "labels"):
        keys = brief.sources[source_name].unique
        assert frames[source_name].select(keys).is_duplicated().sum() == 0


def test_manifest_counts_equal_what_is_in_the_files(demo) -> None:
    out, manifest, frames = demo
    events, customers, labels = frames["events"], frames["customers"], frames["labels"]
    sessions = pl.col("event_type").is_in(["login", "usage"])
    actual = {
        "duplicate_events": events.height - events["event_id"].n_unique(),
        "null_session_minutes": events.filter(sessions & pl.col("session_minutes").is_null()).height,
        "negative_session_minutes": events.filter(pl.col("session_minutes") < 0).height,
        "bad_event_type": events.filter(~pl.col("event_type").is_in(
            ["login", "usage", "support_ticket", "payment"])).height,
        "amount_out_of_range": events.filter(pl.col("amount") > 5000).height,
        "late_events": events.filter(
            pl.col("ingested_at") - pl.col("event_timestamp") >= timedelta(days=2)).height,
        "customer_null_region": customers["region"].null_count(),
        "customer_negative_fee": customers.filter(pl.col("monthly_fee") < 0).height,
    }
    assert manifest.injected == actual
    assert json.loads((out / "manifest.json").read_text()) == {
        "n_customers": customers.height, "n_events": events.height, "n_label_rows": labels.height,
        "positive_rate": manifest.positive_rate, "injected": actual,
    }
    # Each problem is present in roughly its stated share (the rarest one may be absent at this size).
    assert 0.01 < actual["null_session_minutes"] / events.filter(sessions).height < 0.03
    assert 0.005 < actual["duplicate_events"] / events.height < 0.015
    assert 0.02 < actual["late_events"] / events.height < 0.04
    assert actual["negative_session_minutes"] > 0 and actual["bad_event_type"] > 0
    assert actual["customer_null_region"] + actual["customer_negative_fee"] > 0
    # Duplicates are exact copies written into the same file.
    in_file = 0
    for path in (out / "events").iterdir():
        part = pl.read_parquet(path)
        assert part["event_id"].n_unique() == part.unique().height
        in_file += part.height - part["event_id"].n_unique()
    assert in_file == actual["duplicate_events"]


def test_sizes_scale_with_the_target(demo, tmp_path: Path) -> None:
    _, manifest, frames = demo
    assert manifest.n_customers == frames["customers"].height == round(N_EVENTS / 35)
    assert 0.7 * N_EVENTS <= manifest.n_events <= 1.3 * N_EVENTS
    bigger = generate_demo(tmp_path, n_events=100_000, seed=7)
    assert bigger.n_customers == round(100_000 / 35)
    assert 70_000 <= bigger.n_events <= 130_000
    # Below 200 customers' worth of events, the minimum population is less active instead.
    smallest = generate_demo(tmp_path / "small", n_events=3_000, seed=7)
    assert smallest.n_customers == 200 and 2_100 <= smallest.n_events <= 3_900
    with pytest.raises(ValueError, match="n_events"):
        generate_demo(tmp_path, n_events=10)


def test_same_seed_gives_the_same_data_and_another_seed_does_not(demo, tmp_path: Path) -> None:
    out, manifest, frames = demo
    again = generate_demo(tmp_path / "again", n_events=N_EVENTS, seed=7)
    assert again == manifest
    for name, frame in _read(tmp_path / "again").items():
        assert frame.equals(frames[name]), name
    for path in (out / "events").iterdir():
        assert pl.read_parquet(path).equals(pl.read_parquet(tmp_path / "again" / "events" / path.name))
    # Regenerating in place replaces the files and leaves no temporary files behind.
    generate_demo(tmp_path / "again", n_events=N_EVENTS, seed=7)
    assert not [p for p in (tmp_path / "again").rglob(".*")]
    other = generate_demo(tmp_path / "other", n_events=N_EVENTS, seed=8)
    assert other != manifest
    assert not _read(tmp_path / "other")["events"].equals(frames["events"])


def test_times_lie_in_the_period_and_files_hold_their_arrival_month(demo) -> None:
    out, _, frames = demo
    events = frames["events"]
    for column in ("event_timestamp", "ingested_at"):
        assert events[column].min() >= PERIOD[0] and events[column].max() < PERIOD[1]
    assert (events["ingested_at"] >= events["event_timestamp"]).all()
    delay = events["ingested_at"] - events["event_timestamp"]
    assert (delay < timedelta(days=1)).mean() > 0.95  # normally minutes to hours
    for path in (out / "events").iterdir():
        months = pl.read_parquet(path)["ingested_at"].dt.strftime("%Y-%m").unique().to_list()
        assert months == [path.stem]
    late = events.filter(delay >= timedelta(days=2))
    assert (late["event_timestamp"].dt.month() != late["ingested_at"].dt.month()).any()
    customers = frames["customers"].with_columns(pl.col("signup_date").str.to_date())
    assert customers["signup_date"].max() < PERIOD[1].date()
    assert 0.65 < (customers["signup_date"] < date(2025, 1, 1)).mean() < 0.85


def test_labels_are_monthly_snapshots_of_active_customers(demo) -> None:
    _, manifest, frames = demo
    labels = frames["labels"].with_columns(pl.col("snapshot_date").str.to_date())
    customers = frames["customers"].with_columns(pl.col("signup_date").str.to_date())
    assert sorted(labels["snapshot_date"].unique()) == [date(2025, m, 1) for m in range(2, 11)]
    assert 0.06 <= manifest.positive_rate <= 0.12
    assert manifest.positive_rate == pytest.approx(labels["churned"].mean(), abs=1e-6)
    joined = labels.join(customers, on="customer_id")
    assert joined.height == labels.height and (joined["signup_date"] < joined["snapshot_date"]).all()
    # A customer who churns has no later snapshot and no event 30 days after the churn snapshot.
    churn = labels.filter(pl.col("churned") == 1).select("customer_id", churned_at="snapshot_date")
    assert churn["customer_id"].is_unique().all()
    assert labels.join(churn, on="customer_id").filter(pl.col("snapshot_date") > pl.col("churned_at")).is_empty()
    after = frames["events"].join(churn, on="customer_id").filter(
        pl.col("event_timestamp") >= pl.col("churned_at").cast(pl.Datetime("us")) + timedelta(days=30)
    )
    assert after.is_empty()


def test_behaviour_signals_churn_and_drifts_from_september(demo) -> None:
    _, _, frames = demo
    events = frames["events"].unique("event_id")
    drift = datetime(2025, 9, 1)
    minutes = events.filter(pl.col("session_minutes") >= 0)
    before = minutes.filter(pl.col("event_timestamp") < drift)["session_minutes"].mean()
    after = minutes.filter(pl.col("event_timestamp") >= drift)["session_minutes"].mean()
    assert after < 0.85 * before
    # Customers about to churn logged in less over the 30 days before the snapshot.
    labels = frames["labels"].with_columns(pl.col("snapshot_date").str.to_date().cast(pl.Datetime("us")))
    logins = events.filter(pl.col("event_type") == "login").join(labels, on="customer_id").filter(
        pl.col("event_timestamp") < pl.col("snapshot_date"),
        pl.col("event_timestamp") >= pl.col("snapshot_date") - timedelta(days=30),
    ).group_by("customer_id", "snapshot_date").len()
    per_label = labels.join(logins, on=["customer_id", "snapshot_date"], how="left").fill_null(0)
    mean_logins = per_label.group_by("churned").agg(pl.col("len").mean()).sort("churned")["len"]
    assert mean_logins[1] < 0.85 * mean_logins[0]


def test_age_shapes_sessions_not_churn(tmp_path: Path) -> None:
    """The demo's fairness story: every age band churns at about the same rate, while the young's sessions are
    much shorter than the 65+'s (the proxy a churn model misreads as disengagement)."""
    generate_demo(tmp_path, n_events=300_000, seed=7)
    frames = _read(tmp_path)
    bands = frames["customers"].select("customer_id", "age_band")
    churn = frames["labels"].join(bands, on="customer_id").group_by("age_band").agg(pl.col("churned").mean())
    rates = dict(churn.iter_rows())
    assert max(rates.values()) / min(rates.values()) < 1.25
    sessions = frames["events"].filter(pl.col("event_type") == "usage", pl.col("session_minutes") > 0).join(
        bands, on="customer_id").group_by("age_band").agg(pl.col("session_minutes").median())
    minutes = dict(sessions.iter_rows())
    assert minutes["65+"] > 1.8 * minutes["18-24"]


def test_extra_months_leave_the_ten_months_alone_and_carry_the_basic_price_rise(demo, tmp_path: Path) -> None:
    """The live demo's later months: the default ten months' files do not change, and from 2025-11 basic
    customers pay 30% more and cancel far more often than the other plans (the concept shift a retrain must learn);
    before it they cancel about as often."""
    out, _, frames = demo
    longer = tmp_path / "longer"
    generate_demo(longer, n_events=N_EVENTS, seed=7, extra_months=2)
    names = sorted(p.name for p in (longer / "events").iterdir())
    assert names == sorted(p.name for p in (out / "events").iterdir()) + ["2025-11.parquet", "2025-12.parquet"]
    for name in [*names[:10]]:
        assert (longer / "events" / name).read_bytes() == (out / "events" / name).read_bytes(), name
    assert (longer / "customers.csv").read_bytes() == (out / "customers.csv").read_bytes()
    labels = pl.read_csv(longer / "labels.csv", try_parse_dates=True)
    rise = date(2025, 11, 1)
    assert labels.filter(pl.col("snapshot_date") < rise).equals(frames["labels"].with_columns(
        pl.col("snapshot_date").str.to_date()))
    plans = frames["customers"].select("customer_id", "plan")
    rate = (labels.join(plans, on="customer_id").group_by(pl.col("snapshot_date") >= rise, pl.col("plan") == "basic")
            .agg(pl.col("churned").mean()).rows_by_key(["snapshot_date", "plan"]))
    assert rate[(True, True)][0][0] > 2.5 * rate[(True, False)][0][0]
    assert rate[(False, True)][0][0] < 1.5 * rate[(False, False)][0][0]
    payments = pl.read_parquet(longer / "events" / "2025-12.parquet").filter(
        pl.col("event_type") == "payment", pl.col("amount") < 5_000).join(
        frames["customers"].select("customer_id", "plan", "monthly_fee"), on="customer_id")
    ratio = payments.group_by(pl.col("plan") == "basic").agg((pl.col("amount") / pl.col("monthly_fee")).median())
    assert dict(ratio.rows()) == pytest.approx({True: 1.3, False: 1.0}, abs=0.01)
    with pytest.raises(ValueError, match="extra_months must lie in 0..12"):
        generate_demo(tmp_path / "bad", n_events=N_EVENTS, extra_months=13)
