"""The bundled demo's inputs: a deterministic, realistic subscription-churn dataset.

A latent per-customer risk follows a mean-reverting random walk. It drives behaviour (fewer logins,
shorter sessions, more support tickets, missed payments) and, together with tenure, plan economics and
support load, the chance to cancel at each monthly snapshot. From 2025-09-01 the world drifts: an app
change shortens sessions, one region gets an outage-driven wave of tickets, and a price rise makes the
monthly fee matter much more for churn. ``extra_months`` simulates months after 2025-10 for the live demo's
replay: from November the basic plan's price rises and basic customers leave far more often, a concept shift that
a model fitted before it misses and a retrain on the months after it learns (the ten months before are the same
with or without them). Age never changes the chance to cancel, but it shapes session
length, which the model reads as risk: the proxy bias the fairness gate catches (see ``AGE_SESSION``). A
small, counted share of rows is deliberately broken so that quality gates and quarantine have real work to do.

Layout written under ``out_dir`` (the ``sources`` of ``briefs/churn_demo.yaml``): ``customers.csv``,
``events/YYYY-MM.parquet`` (one file per month of ``ingested_at``), ``labels.csv`` and ``manifest.json``.
"""

import json
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from mlplatform.core.io import write_parquet_atomic, write_text_atomic

START = date(2025, 1, 1)
END = date(2025, 11, 1)
DRIFT_START = date(2025, 9, 1)
MONTH_STARTS = [date(2025, m, 1) for m in range(1, 11)] + [END]
MAX_EXTRA_MONTHS = 12
PLANS = ["basic", "standard", "premium"]
REGIONS = ["north", "south", "east", "west"]
AGE_BANDS = ["18-24", "25-34", "35-49", "50-64", "65+"]
EVENT_TYPES = ["login", "usage", "support_ticket", "payment"]
LOGIN, USAGE, TICKET, PAYMENT = range(4)

# One customer per this many target events. A customer averages ~39 events over the ten months at activity scale
# 1 (a login or use about twice a month, a renewal a month), so the result lands ~12% above the target; the sparse
# activity gives the demo thousands of customers, enough that a four-month hold-out judges fairness per age band.
EVENTS_PER_CUSTOMER = 35
MIN_CUSTOMERS = 200
# Age bands: shares, and how age shows in behaviour. Age never changes the chance to cancel. Younger customers use
# the app in short mobile sessions and older ones in long ones (AGE_SESSION multiplies session minutes), and they
# lean towards different plans and regions. Session minutes are also the strongest sign of disengagement, so a
# model fitted to these labels reads the young's short sessions as risk and flags them about twice as often as the
# 65+ although both churn alike: the proxy bias the fairness gate is there to catch. Per-band decision thresholds
# (fairness.mitigation threshold_optimizer) remove it; reweighing cannot, as every band churns at the same rate.
AGE_SHARE = [0.18, 0.21, 0.22, 0.21, 0.18]
AGE_SESSION = np.array([0.6, 0.8, 1.0, 1.2, 1.4])
AGE_PLAN = np.array([  # P(basic, standard, premium) per age band
    [0.75, 0.20, 0.05], [0.60, 0.30, 0.10], [0.50, 0.33, 0.17], [0.40, 0.35, 0.25], [0.30, 0.38, 0.32]])
AGE_REGION = np.array([  # P(north, south, east, west) per age band
    [0.25, 0.10, 0.25, 0.40], [0.30, 0.15, 0.25, 0.30], [0.30, 0.25, 0.25, 0.20], [0.30, 0.35, 0.25, 0.10],
    [0.25, 0.50, 0.20, 0.05]])
LIST_PRICE = np.array([15.0, 30.0, 60.0])  # per plan; customers pay 0.8-1.3x of it (discounts, legacy prices)
# From November 2025 (a month the live demo simulates after the default ten) the basic plan costs 30% more: its
# renewals are that much larger and a basic customer has this much more log-odds of cancelling (the base rate falls
# to keep the others' churn near its old level). A model fitted before barely reads the plan; one trained on a
# month after it does, and beats the stale one on the months that follow.
PRICE_RISE_START = date(2025, 11, 1)
PRICE_RISE, BASIC_PRICE_RISE = 3.0, 1.3
# Basic customers raise many more tickets per unit of risk (self-serve problems) without churning for it.
TICKET_PROPENSITY = np.array([2.2, 1.0, 0.9])
NEVER = 10**6  # churn day of a customer who never churns
US_PER_DAY = 86_400_000_000

def month_starts(extra_months: int = 0) -> list[date]:
    """The first day of every simulated month and of the month after the last."""
    index = [END.year * 12 + END.month - 1 + k for k in range(1, extra_months + 1)]
    return MONTH_STARTS + [date(i // 12, i % 12 + 1, 1) for i in index]


_DAY = {d: (d - START).days for d in month_starts(MAX_EXTRA_MONTHS)}
_US = {d: (d - date(1970, 1, 1)).days * US_PER_DAY for d in month_starts(MAX_EXTRA_MONTHS)}
DRIFT_DAY = (DRIFT_START - START).days

# Share of eligible events given each problem. Bands of one uniform draw keep the problems disjoint, so
# every count in the manifest is both a count of rows and a count of distinct events.
INJECTIONS = {
    "null_session_minutes": (0.0, 0.02),  # of login/usage events
    "negative_session_minutes": (0.02, 0.023),  # of login/usage events
    "bad_event_type": (0.05, 0.052),
    "amount_out_of_range": (0.06, 0.061),  # of payments
    "late_events": (0.10, 0.13),
    "duplicate_events": (0.20, 0.21),
}


@dataclass(frozen=True)
class DemoManifest:
    """What :func:`generate_demo` wrote; also saved as ``manifest.json`` beside the data.

    ``n_events`` counts event rows in the files, duplicates included. ``injected`` holds the number of
    rows carrying each deliberate problem; every other row satisfies the brief's contracts.
    """

    n_customers: int
    n_events: int
    n_label_rows: int
    positive_rate: float
    injected: dict[str, int]


def generate_demo(out_dir: Path, n_events: int = 300_000, seed: int = 7, extra_months: int = 0) -> DemoManifest:
    """Generate the churn demo's inputs into ``out_dir``, replacing any earlier run.

    The same ``seed`` and ``n_events`` give the same data. Each file is written atomically.

    Args:
        out_dir: folder to write ``customers.csv``, ``events/``, ``labels.csv`` and ``manifest.json`` into.
        n_events: target number of event rows; the result lies within about ±30% of it. Customers scale
            with it (one per 35 target events, at least 200).
        seed: random seed.
        extra_months: months simulated after 2025-10 (0 to 12), from a random stream of their own: the files and
            rows of the first ten months do not change with it, except that events of 2025-10 arriving late
            land in 2025-11's file instead of being left out. Customers stop signing up at 2025-11-01.

    Returns:
        The manifest of what was written.
    """
    if n_events < 1_000:
        raise ValueError(f"n_events must be at least 1000 to simulate a population, got {n_events}")
    if not 0 <= extra_months <= MAX_EXTRA_MONTHS:
        raise ValueError(f"extra_months must lie in 0..{MAX_EXTRA_MONTHS}, got {extra_months}")
    rng, later = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    months = month_starts(extra_months)
    n_customers = max(MIN_CUSTOMERS, round(n_events / EVENTS_PER_CUSTOMER))
    # With the minimum population, less activity per customer keeps the event count on target.
    activity = min(1.0, n_events / (n_customers * EVENTS_PER_CUSTOMER))
    customers = _customers(rng, n_customers)
    (simulated, extended), labels = _simulate((rng, later), customers, activity, months)
    events, injected = _break_events(rng, simulated, months[-1])
    customer_frame, customer_injected = _customer_frame(rng, customers)
    injected.update(customer_injected)
    if extra_months:  # the later months' events, broken by their own stream and numbered after the others
        more, more_injected = _break_events(later, extended, months[-1], first_id=len(simulated["customer"]) + 1)
        events = pl.concat([events, more]).sort("ingested_at", maintain_order=True)
        injected = {name: count + more_injected.get(name, 0) for name, count in injected.items()}

    out_dir = Path(out_dir)
    write_text_atomic(customer_frame.write_csv(), out_dir / "customers.csv")
    write_text_atomic(labels.write_csv(), out_dir / "labels.csv")
    bounds = np.searchsorted(events["ingested_at"].cast(pl.Int64).to_numpy(), [_US[m] for m in months])
    for month, lo, hi in zip(months[:-1], bounds[:-1], bounds[1:], strict=True):
        part = events.slice(int(lo), int(hi - lo))
        write_parquet_atomic(part, out_dir / "events" / f"{month:%Y-%m}.parquet")

    manifest = DemoManifest(
        n_customers=n_customers,
        n_events=events.height,
        n_label_rows=labels.height,
        positive_rate=round(float(labels.select(pl.col("churned").mean()).item()), 6),
        injected=dict(sorted(injected.items())),
    )
    write_text_atomic(json.dumps(asdict(manifest), indent=2) + "\n", out_dir / "manifest.json")
    return manifest


def _customers(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Static attributes and the risk baseline of ``n`` customers, ids ordered by signup."""
    existing = round(0.75 * n)
    # Existing customers signed up over the two years before the period; the rest during it.
    signup = np.concatenate([
        rng.integers(-730, 0, existing),
        rng.integers(0, _DAY[END], n - existing),
    ])
    signup.sort()
    age = rng.choice(len(AGE_BANDS), n, p=AGE_SHARE)
    # Older customers lean towards premium and live more in the south, younger ones in the west.
    plan = _draw(rng, AGE_PLAN[age])
    region = _draw(rng, AGE_REGION[age])
    fee = np.round(LIST_PRICE[plan] * rng.uniform(0.8, 1.3, n), 2)
    # Basic customers are a little less committed than premium ones.
    risk_base = rng.normal(0.0, 0.6, n) + np.array([0.15, 0.0, -0.1])[plan]
    return {"signup": signup, "age": age, "plan": plan, "region": region, "fee": fee, "risk_base": risk_base}


def _draw(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """One category index per row of ``p`` (rows of probabilities)."""
    return (rng.random(len(p))[:, None] > np.cumsum(p, axis=1)[:, :-1]).sum(axis=1)


def _simulate(
    streams: tuple[np.random.Generator, np.random.Generator], c: dict[str, np.ndarray], activity: float,
    months: list[date],
) -> tuple[tuple[dict[str, np.ndarray], dict[str, np.ndarray]], pl.DataFrame]:
    """Walk month by month: churn decisions at each snapshot, then that month's daily events. The ten months
    up to ``END`` draw from the first stream, any later month from the second.

    Returns:
        Clean event columns (customer index, type code, timestamp in µs, minutes, amount) of the ten months and
        of the later ones, and the labels.
    """
    n, rng = len(c["signup"]), streams[0]
    signup, plan, region, fee = c["signup"], c["plan"], c["region"], c["fee"]
    fee_ratio = fee / LIST_PRICE[plan]
    # Some customers stay signed in and rarely log in at all, whatever their risk.
    login_habit = np.exp(rng.normal(-0.18, 0.6, n))
    billing_day = np.minimum(rng.integers(1, 32, n), 28)  # day of month the subscription renews
    # AR(1) deviation around each customer's baseline: half-life ~30 days, stationary sd 0.7.
    rho, sd = 0.977, 0.7
    step = sd * np.sqrt(1 - rho**2)
    deviation = rng.normal(0.0, sd, n)
    churn_day = np.full(n, NEVER)
    last_tickets = np.zeros(n)
    last_missed = np.zeros(n, dtype=bool)
    parts: list[dict[str, np.ndarray]] = []
    later_parts: list[dict[str, np.ndarray]] = []
    label_parts: list[pl.DataFrame] = []

    for m, month in enumerate(months[:-1]):
        rng, out = (streams[0], parts) if month < END else (streams[1], later_parts)
        a, b = _DAY[month], _DAY[months[m + 1]]
        days = b - a
        risk_now = np.clip(c["risk_base"] + deviation, -3, 4)
        if m > 0:  # January is burn-in: no snapshot, no churn
            active = (signup < a) & (churn_day == NEVER)
            # From September a price rise makes the fee the main reason to leave, engagement less so; from November
            # (a later month only the live demo simulates) the basic plan's price rises too (PRICE_RISE).
            drifted = month >= DRIFT_START
            fee_weight, engagement = (9.0, 0.6) if drifted else (1.5, 1.0)
            logit = (
                (-3.75 if not drifted else -3.85 if month < PRICE_RISE_START else -4.6)
                + engagement * (1.0 * risk_now + 2.5 / (1 + np.exp(-2.5 * (risk_now - 1.2))))
                + 1.2 * (a - signup < 90)
                + 2.0 * ((plan == 2) & (last_tickets >= 3))
                + fee_weight * (fee_ratio - 1.0)
                + PRICE_RISE * (month >= PRICE_RISE_START) * (plan == PLANS.index("basic"))
                + 1.5 * last_missed
                + rng.normal(0.0, 0.4, n)
            )
            churns = active & (rng.random(n) < 1 / (1 + np.exp(-logit)))
            # Cancel 1..30 days after the snapshot, always before the next one.
            churn_day[churns] = a + rng.integers(1, min(30, days - 1) + 1, int(churns.sum()))
            label_parts.append(pl.DataFrame({
                "customer_id": (np.nonzero(active)[0] + 1).astype(np.int64),
                "snapshot_date": pl.repeat(month, int(active.sum()), eager=True),
                "churned": churns[active].astype(np.int64),
            }))

        rows = np.nonzero((signup < b) & (churn_day > a))[0]
        risk = np.empty((len(rows), days))
        for d in range(days):
            deviation = rho * deviation + step * rng.standard_normal(n)
            risk[:, d] = np.clip(c["risk_base"][rows] + deviation[rows], -3, 4)
        day = a + np.arange(days)
        alive = (signup[rows, None] <= day) & (day < churn_day[rows, None])
        outage = (region[rows, None] == REGIONS.index("east")) & (day >= DRIFT_DAY)
        rates = {
            LOGIN: 0.064 * activity * login_habit[rows, None] * np.exp(-0.55 * risk),
            USAGE: 0.052 * activity * np.exp(-0.8 * risk),
            TICKET: 0.012 * activity * TICKET_PROPENSITY[plan[rows, None]] * np.exp(0.45 * risk) * (1 + 1.5 * outage),
        }
        month_tickets = np.zeros(len(rows))
        for kind, rate in rates.items():
            counts = rng.poisson(rate * alive)
            if kind == TICKET:
                month_tickets = counts.sum(axis=1)
            cell = np.repeat(np.arange(counts.size), counts.ravel())
            out.append(_events(rng, rows[cell // days], kind, day[cell % days], risk.ravel()[cell], fee,
                               AGE_SESSION[c["age"]]))

        # One renewal a month; risky customers miss it more often.
        bill = np.clip(a + billing_day[rows] - 1, a, b - 1)
        due = alive[np.arange(len(rows)), bill - a]
        p_miss = 1 / (1 + np.exp(-(-3.0 + 1.0 * risk[np.arange(len(rows)), bill - a])))
        missed = due & (rng.random(len(rows)) < p_miss)
        paid = due & ~missed
        billed = fee if month < PRICE_RISE_START else np.round(
            fee * np.where(plan == PLANS.index("basic"), BASIC_PRICE_RISE, 1.0), 2)
        out.append(_events(rng, rows[paid], PAYMENT, bill[paid], risk[paid, bill[paid] - a], billed,
                           AGE_SESSION[c["age"]]))
        last_tickets[:] = 0
        last_tickets[rows] = month_tickets
        last_missed[:] = False
        last_missed[rows] = missed

    def joined(pieces: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        events = {k: np.concatenate([p[k] for p in pieces]) for k in parts[0]}
        events["timestamp"] += _US[START]
        return events

    return (joined(parts), joined(later_parts or [{k: v[:0] for k, v in parts[0].items()}])), pl.concat(label_parts)


def _events(
    rng: np.random.Generator, customer: np.ndarray, kind: int, day: np.ndarray, risk: np.ndarray,
    fee: np.ndarray, session_scale: np.ndarray,
) -> dict[str, np.ndarray]:
    """Clean events of one type: a time within their day, session minutes or a payment amount."""
    size = len(customer)
    minutes = np.full(size, np.nan)
    if kind in (LOGIN, USAGE):
        median, spread, slope = (4.0, 0.5, 0.4) if kind == LOGIN else (25.0, 0.5, 0.8)
        minutes = session_scale[customer] * np.exp(rng.normal(np.log(median) - slope * risk, spread))
        minutes = np.where(day >= DRIFT_DAY, 0.7 * minutes, minutes)  # the app change shortens sessions
        minutes = np.round(np.minimum(minutes, 600.0), 2)
    amount = fee[customer] if kind == PAYMENT else np.full(size, np.nan)
    return {
        "customer": customer,
        "kind": np.full(size, kind),
        "timestamp": day.astype(np.int64) * US_PER_DAY + rng.integers(0, US_PER_DAY, size),
        "minutes": minutes,
        "amount": amount,
    }


def _break_events(rng: np.random.Generator, ev: dict[str, np.ndarray], end: date,
                  first_id: int = 1) -> tuple[pl.DataFrame, dict[str, int]]:
    """Assign ids (from ``first_id``) and arrival times, inject the counted problems, and drop what arrives on or
    after ``end``.

    Returns:
        Events sorted by arrival (so each month's file is one slice) and the count of each problem.
    """
    order = np.lexsort((ev["customer"], ev["timestamp"]))  # ids follow event time
    ev = {k: v[order] for k, v in ev.items()}
    size = len(order)
    u = rng.random(size)
    band = {name: (u >= lo) & (u < hi) for name, (lo, hi) in INJECTIONS.items()}
    sessions = (ev["kind"] == LOGIN) | (ev["kind"] == USAGE)
    band["null_session_minutes"] &= sessions
    band["negative_session_minutes"] &= sessions
    band["amount_out_of_range"] &= ev["kind"] == PAYMENT

    minutes = np.where(band["null_session_minutes"], np.nan, ev["minutes"])
    minutes = np.where(band["negative_session_minutes"], -np.round(rng.uniform(1, 60, size), 2), minutes)
    huge = np.round(rng.uniform(5_001, 50_000, size), 2)
    amount = np.where(band["amount_out_of_range"], huge, ev["amount"])
    # Half a typo'd copy of the real type (code + 4, e.g. "LOGIN "), half "unknown" (code 8).
    odd = np.where(rng.random(size) < 0.5, ev["kind"] + 4, 8)
    type_code = np.where(band["bad_event_type"], odd, ev["kind"])
    # Normal arrival: minutes to hours later (median 15 min, capped below a day); late: 2-10 days later.
    normal_delay = np.minimum(np.exp(rng.normal(np.log(15), 1.2, size)) * 60e6, US_PER_DAY - 1)
    late_delay = rng.uniform(2 * US_PER_DAY, 10 * US_PER_DAY, size)
    ingested = ev["timestamp"] + np.where(band["late_events"], late_delay, normal_delay).astype(np.int64)

    # What arrives after the period is not in the data yet. Duplicates are copies of clean rows only, so
    # each problem's count is both a row count and an event count.
    kept = ingested < _US[end]
    rows = np.concatenate([np.nonzero(kept)[0], np.nonzero(kept & band["duplicate_events"])[0]])
    rows = rows[np.lexsort((rows, ingested[rows]))]
    type_names = pl.Series(EVENT_TYPES + [t.upper() + " " for t in EVENT_TYPES] + ["unknown"])
    frame = pl.DataFrame({
        "event_id": pl.Series(rows + first_id).cast(pl.String).str.zfill(10),
        "customer_id": (ev["customer"][rows] + 1).astype(np.int64),
        "event_timestamp": ev["timestamp"][rows],
        "event_type": type_names.gather(type_code[rows]),
        "session_minutes": minutes[rows],
        "amount": amount[rows],
        "ingested_at": ingested[rows],
    }, nan_to_null=True).with_columns(
        ("ev_" + pl.col("event_id")).alias("event_id"),
        pl.col("event_timestamp", "ingested_at").cast(pl.Datetime("us")),
    )
    return frame, {name: int((mask & kept).sum()) for name, mask in band.items()}


def _customer_frame(
    rng: np.random.Generator, c: dict[str, np.ndarray]
) -> tuple[pl.DataFrame, dict[str, int]]:
    """customers.csv with ~1% empty regions and ~0.5% negative fees (disjoint, counted)."""
    n = len(c["signup"])
    u = rng.random(n)
    null_region = u < 0.01
    negative_fee = (u >= 0.01) & (u < 0.015)
    frame = pl.DataFrame({
        "customer_id": np.arange(1, n + 1, dtype=np.int64),
        "signup_date": np.datetime64(START, "D") + c["signup"],
        "plan": np.array(PLANS)[c["plan"]],
        "region": pl.Series(np.array(REGIONS)[c["region"]]).scatter(np.nonzero(null_region)[0], None),
        "age_band": np.array(AGE_BANDS)[c["age"]],
        "monthly_fee": np.where(negative_fee, -c["fee"], c["fee"]),
    })
    return frame, {"customer_null_region": int(null_region.sum()),
                   "customer_negative_fee": int(negative_fee.sum())}
