"""The method's cost-tracking template (phase 10) filled from what ran: step compute, batch inference, storage.

Prices are assumptions, not measurements: the defaults below are stated in every report and are overridden by
the brief's ``cost`` section (``price_per_cpu_hour``, ``price_per_gpu_hour``), which also sets the
``monthly_budget``, the ``daily_volume`` and the ``target_cost_per_prediction`` the cost is judged against.

Inference is timed the way its consumer calls the model: a real-time consumer through the serving app's
``/predict`` (one request at a time, online-store lookup included, :func:`time_requests`), a batch consumer
as one batch scoring call (:func:`time_batch_prediction`); the report states which.
"""

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

# One CPU machine-hour (a small general-purpose cloud instance): every CPU step and batch inference use it.
CPU_HOUR_USD = 0.05
# The method's GPU table (phase 10, hourly cloud cost), matched by name against the device a step ran on.
METHOD_GPU_HOUR_USD = {"H100": 8.0, "A100": 4.0, "A10G": 1.0, "T4": 0.50}
# A GPU the table does not name (or a bare "cuda") is priced at the table's highest rate: never understated.
UNKNOWN_GPU_HOUR_USD = max(METHOD_GPU_HOUR_USD.values())
# Object storage per GB-month (S3 standard list price), for the lake, models and MLflow artifacts alike.
STORAGE_GB_MONTH_USD = 0.023
# Stores whose bytes are experiment tracking in the method's template; every other store is data storage.
TRACKING_STORES = frozenset({"mlflow"})
NOT_MEASURED = "not measured"
_DAYS_PER_MONTH = 365 / 12
_CRON_MACROS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
                "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}


@dataclass(frozen=True)
class Rates:
    """The prices costs are computed at (USD).

    Attributes:
        cpu_hour_usd: one CPU machine-hour.
        gpu_hour_usd: one GPU-hour; None prices each GPU at the method's rate for its name.
        storage_gb_month_usd: one GB stored for a month.
    """

    cpu_hour_usd: float = CPU_HOUR_USD
    gpu_hour_usd: float | None = None
    storage_gb_month_usd: float = STORAGE_GB_MONTH_USD


@dataclass(frozen=True)
class StepRun:
    """One executed step: an asset's computation (all its partitions) or an asset check.

    Attributes:
        step: the step (op) name.
        kind: ``asset`` or ``check``.
        assets: the assets it materialised, or the asset it checked.
        group: the stage (asset group) it belongs to.
        seconds: wall-clock seconds, summed over partitions.
        partitions: how many partitions ran (1 for an unpartitioned asset).
        device: ``cpu``, or the GPU it trained on (its name, or ``cuda`` when unnamed).
    """

    step: str
    kind: str
    assets: tuple[str, ...]
    group: str
    seconds: float
    partitions: int = 1
    device: str = "cpu"


@dataclass(frozen=True)
class InferenceTiming:
    """Predictions timed on this machine: ``seconds`` to answer ``rows`` predictions with ``model``.

    Attributes:
        method: how they were timed, in words, for the report.
    """

    model: str
    rows: int
    seconds: float
    method: str = ""

    def describe(self) -> str:
        return self.method or (f"{self.model} scoring {self.rows:,} training-set rows in one batch on this "
                               "machine's CPU (fastest of 3 after a warm-up)")


def time_requests(send: Callable[[Any], bool], payloads: list[Any], warmup: int = 5) -> tuple[float, int, int]:
    """Send each payload once, one at a time, after ``warmup`` untimed sends (a running service has paid its
    lazy initialisation); ``send`` returns whether the request was answered.

    Returns:
        (seconds spent on the answered requests, answered, refused).
    """
    for payload in payloads[:warmup]:
        send(payload)
    seconds, answered, refused = 0.0, 0, 0
    for payload in payloads:
        started = time.perf_counter()
        ok = send(payload)
        elapsed = time.perf_counter() - started
        if ok:
            seconds, answered = seconds + elapsed, answered + 1
        else:
            refused += 1
    return seconds, answered, refused


def hour_rate(device: str, rates: Rates) -> float:
    """USD per hour of a step on ``device``: the CPU rate, or the GPU rate (given, or the method's for its name)."""
    if device.lower().startswith("cpu"):
        return rates.cpu_hour_usd
    if rates.gpu_hour_usd is not None:
        return rates.gpu_hour_usd
    return next((usd for name, usd in METHOD_GPU_HOUR_USD.items() if name.lower() in device.lower()),
                UNKNOWN_GPU_HOUR_USD)


def step_table(steps: list[StepRun], rates: Rates) -> pl.DataFrame:
    """One row per step with its seconds and cost, most expensive first."""
    schema = {"step": pl.String, "kind": pl.String, "assets": pl.String, "group": pl.String,
              "partitions": pl.Int64, "device": pl.String, "seconds": pl.Float64, "usd_per_hour": pl.Float64,
              "usd": pl.Float64}
    rows = [{"step": s.step, "kind": s.kind, "assets": ", ".join(s.assets), "group": s.group,
             "partitions": s.partitions, "device": s.device, "seconds": s.seconds,
             "usd_per_hour": hour_rate(s.device, rates), "usd": s.seconds * hour_rate(s.device, rates) / 3600}
            for s in steps]
    return pl.DataFrame(rows, schema=schema).sort(["usd", "step"], descending=[True, False])


def _cron_field(text: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        span, _, step = part.partition("/")
        if span == "*":
            start, end = low, high
        elif "-" in span:
            start, end = (int(v) for v in span.split("-", 1))
        else:  # "5/15" runs from 5 to the end of the range
            start = int(span)
            end = high if step else start
        if not low <= start <= end <= high:
            raise ValueError(f"'{part}' is outside {low}-{high}")
        values.update(range(start, end + 1, int(step or 1)))
    return values


def runs_per_month(cron: str, year: int = 2025) -> float:
    """Mean number of times a five-field cron schedule fires per month over ``year`` (a non-leap year by default).

    Follows cron's rule for the two day fields: when both are restricted, a day matching either fires.

    Raises:
        ValueError: not five numeric fields (or an @-macro); month and weekday names are not read.
    """
    fields = _CRON_MACROS.get(cron.strip(), cron).split()
    if len(fields) != 5:
        raise ValueError(f"cron schedule '{cron}' must have five fields (minute hour day month weekday)")
    try:
        minutes, hours, days, months = (_cron_field(f, lo, hi) for f, lo, hi in
                                        zip(fields[:4], (0, 0, 1, 1), (59, 23, 31, 12), strict=True))
        weekdays = {d % 7 for d in _cron_field(fields[4], 0, 7)}  # 0 and 7 are both Sunday
    except ValueError as exc:
        raise ValueError(f"cron schedule '{cron}' cannot be read ({exc}); use numbers, not names") from None
    either = not fields[2].startswith("*") and not fields[4].startswith("*")
    start, fired_days = date(year, 1, 1), 0
    for offset in range((date(year + 1, 1, 1) - start).days):
        day = start + timedelta(days=offset)
        by_date, by_weekday = day.day in days, day.isoweekday() % 7 in weekdays
        if day.month in months and ((by_date or by_weekday) if either else (by_date and by_weekday)):
            fired_days += 1
    return fired_days * len(hours) * len(minutes) / 12


def time_batch_prediction(predict: Callable[[pl.DataFrame], Any], rows: pl.DataFrame, repeats: int = 3) -> float:
    """Seconds to score ``rows`` in one batch: the fastest of ``repeats`` calls after one warm-up call
    (the first call pays for lazy initialisation, which a running service has already paid)."""
    predict(rows)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        predict(rows)
        best = min(best, time.perf_counter() - started)
    return best


def directory_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (or of ``path`` itself when it is a file); 0 when it does not exist."""
    if path.is_file():
        return path.stat().st_size
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def _sig(value: float) -> float:
    # Costs span many magnitudes ($0.0000004 a prediction, $30 a month): keep significant digits, not decimals.
    return float(f"{value:.4g}")


def cost_document(runs: list[StepRun], *, training_group: str, retrain_cron: str, inference: InferenceTiming,
                  storage_bytes: Mapping[str, int], rates: Rates = Rates(), daily_volume: float | None = None,
                  monthly_budget_usd: float | None = None,
                  target_cost_per_prediction_usd: float | None = None) -> dict:
    """The method's ``ml_costs`` template filled in, with the assumptions and measurements behind each value.

    Args:
        runs: the latest execution of every step.
        training_group: the stage whose steps make one training run.
        retrain_cron: the retraining schedule; its fires per month are the runs per month.
        inference: a timed batch prediction.
        storage_bytes: store name → bytes on disk (``mlflow`` counts as experiment tracking).
        rates: the prices.
        daily_volume: predictions a day, when known (from a prediction log or the brief).
        monthly_budget_usd: the budget, when set.
        target_cost_per_prediction_usd: the target, when set.

    Returns:
        ``{"ml_costs": …, "assumptions": …, "measured": …}``; a value nobody measured or set is a string
        saying so, never a guess.
    """
    steps = step_table(runs, rates)
    training = steps.filter(pl.col("group") == training_group)
    per_run = float(training["usd"].sum())
    monthly_runs = runs_per_month(retrain_cron)
    gb = {name: size / 1e9 for name, size in storage_bytes.items()}
    tracking_gb = sum(size for name, size in gb.items() if name in TRACKING_STORES)
    data_gb = sum(gb.values()) - tracking_gb
    per_prediction = inference.seconds / inference.rows * rates.cpu_hour_usd / 3600
    monthly_inference = (per_prediction * daily_volume * _DAYS_PER_MONTH if daily_volume is not None
                         else f"{NOT_MEASURED}: needs daily_volume")
    monthly = {"training": per_run * monthly_runs, "data_storage": data_gb * rates.storage_gb_month_usd,
               "experiment_tracking": tracking_gb * rates.storage_gb_month_usd}
    monthly_total: float | str = f"{NOT_MEASURED}: inference volume unknown"
    if not isinstance(monthly_inference, str):
        monthly["inference"] = monthly_inference
        monthly_total = _sig(sum(monthly.values()))
    ml_costs = {
        "training": {
            "compute_cost_per_run": _sig(per_run),
            "runs_per_month": round(monthly_runs, 2),
            "data_storage_monthly": _sig(monthly["data_storage"]),
            "experiment_tracking": _sig(monthly["experiment_tracking"]),
        },
        "inference": {
            "cost_per_1k_predictions": _sig(per_prediction * 1000),
            "daily_volume": daily_volume if daily_volume is not None
            else f"{NOT_MEASURED}: no prediction log yet; set cost.daily_volume in the brief",
            "monthly_cost": monthly_inference if isinstance(monthly_inference, str) else _sig(monthly_inference),
            "cost_per_query_breakdown": {
                "compute": _sig(per_prediction),
                "model_api_calls": 0.0,
                "vector_db": 0.0,
                "data_transfer": f"{NOT_MEASURED}: features are read from a local online store",
            },
        },
        "optimization_targets": {
            "cost_per_prediction": target_cost_per_prediction_usd if target_cost_per_prediction_usd is not None
            else "not set: brief field cost.target_cost_per_prediction",
            "monthly_budget": monthly_budget_usd if monthly_budget_usd is not None
            else "not set: brief field cost.monthly_budget",
            "cost_reduction_goal": "",
        },
    }
    assumptions = {
        "currency": "USD",
        "cpu_hour_usd": rates.cpu_hour_usd,
        "gpu_hour_usd": rates.gpu_hour_usd if rates.gpu_hour_usd is not None
        else f"the method's table by GPU name {METHOD_GPU_HOUR_USD}; unnamed GPUs at {UNKNOWN_GPU_HOUR_USD}",
        "storage_gb_month_usd": rates.storage_gb_month_usd,
        "compute": "wall-clock seconds of each step's latest execution (every partition) in the Dagster "
                   f"instance; a training run is the '{training_group}' stage's steps",
        "runs_per_month": f"retraining schedule '{retrain_cron}' (mean fires per month); sensor-triggered "
                          "retraining adds runs",
        "inference": f"{inference.describe()}, at cpu_hour_usd",
        "model_api_calls": "none: the model runs in-process",
        "vector_db": "none: the platform serves tabular models only",
    }
    measured = {
        "training_seconds_per_run": round(float(training["seconds"].sum()), 2),
        "pipeline_seconds_per_run": round(float(steps["seconds"].sum()), 2),
        "pipeline_cost_per_run": _sig(float(steps["usd"].sum())),
        "inference_ms_per_1k_predictions": _sig(inference.seconds / inference.rows * 1e6),
        "inference_method": inference.describe(),
        "storage_bytes": dict(storage_bytes),
        "monthly_total": monthly_total,
    }
    return {"ml_costs": ml_costs, "assumptions": assumptions, "measured": measured}


def write_cost_yaml(document: Mapping[str, Any], path: Path) -> tuple[str, Path]:
    """Write the cost document (:func:`cost_document`) to ``path`` as YAML, keys in the template's order and text
    as is (not escaped), atomically; returns the YAML and the path."""
    import yaml

    from mlplatform.core.io import write_text_atomic

    body = yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True)
    return body, write_text_atomic(body, path)


def headline_figures(document: Mapping[str, Any]) -> dict[str, float | str]:
    """A cost document's headline numbers (US dollars, seconds, bytes), as the cost report's asset shows them."""
    training, inference, measured = (document["ml_costs"]["training"], document["ml_costs"]["inference"],
                                     document["measured"])
    return {"compute_cost_per_run_usd": training["compute_cost_per_run"],
            "runs_per_month": training["runs_per_month"],
            "cost_per_1k_predictions_usd": inference["cost_per_1k_predictions"],
            "pipeline_seconds_per_run": measured["pipeline_seconds_per_run"],
            "storage_bytes": sum(measured["storage_bytes"].values())}


def history_row(document: Mapping[str, Any], at: datetime) -> pl.DataFrame:
    """One row of the cost trend: the headline figures of a cost document at time ``at``."""
    ml_costs, measured = document["ml_costs"], document["measured"]
    return pl.DataFrame([{
        "at": at,
        "training_cost_per_run": ml_costs["training"]["compute_cost_per_run"],
        "cost_per_1k_predictions": ml_costs["inference"]["cost_per_1k_predictions"],
        "pipeline_seconds_per_run": measured["pipeline_seconds_per_run"],
        "storage_bytes": sum(measured["storage_bytes"].values()),
    }])


def trend_plot(history: pl.DataFrame, path: Path) -> Path:
    """PNG of the cost figures over successive reports: training $/run, inference $/1k and storage GB."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 6))
    axes = fig.subplots(3, 1, sharex=True)
    series = [("training_cost_per_run", "training $/run", 1.0), ("cost_per_1k_predictions", "inference $/1k", 1.0),
              ("storage_bytes", "storage GB", 1e-9)]
    for ax, (column, label, scale) in zip(axes, series, strict=True):
        ax.plot(history["at"].to_list(), (history[column] * scale).to_list(), marker="o")
        ax.set_ylabel(label)
    axes[0].set_title("Cost per report")
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
