"""The monitoring dashboard's absolute alerts (the method's phase 7) and how each reaches a person once.

Alerts, each a typed :class:`Alert` record:

* ``error_rate``: the error rate of online predictions above ``monitoring.max_error_rate`` (the method's 1%);
* ``latency_p50`` / ``latency_p95`` / ``latency_p99``: a latency percentile above its SLO (p99:
  ``monitoring.latency_p99_ms``, default ``thresholds.max_latency_ms``; p50 and p95 when the brief sets them);
* ``primary_metric``: the primary metric on labelled predictions worse than its threshold for 24 hours on end;
* ``prediction_shift``: the served score distribution's PSI against the training reference above the critical
  band (a proxy while labels have not arrived);
* ``label_drift``: the labels of served predictions no longer distributed like the training labels (chi-square,
  the method's test, significant *and* a shift large enough to matter).

Error rate and latency are judged on the shortest window (1 h, then 1 d, then 7 d) with at least
``monitoring.alert_min_requests`` requests, so a handful of requests never pages anybody.

:func:`dispatch` sends each alert to the notifications log and the webhook when it opens (or changes severity)
and once more when it resolves; an alert still open is not sent again on the next evaluation.
"""

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from mlplatform.brief import Brief, TaskType

Severity = Literal["warning", "critical"]
ALERT_SCHEMA = {"name": pl.String, "severity": pl.String, "observed": pl.Float64, "threshold": pl.Float64,
                "window": pl.String, "message": pl.String}
LABEL_DRIFT = "label_drift"
SUSTAINED = timedelta(hours=24)


@dataclass(frozen=True)
class Alert:
    """One alert that fires now: what was observed, against which threshold, over which window."""

    name: str
    severity: Severity
    observed: float
    threshold: float
    window: str
    message: str


@dataclass(frozen=True)
class AlertPolicy:
    """The thresholds alerts are judged against (see :func:`policy_for`).

    ``primary_threshold`` None: the primary metric is not judged (no threshold known yet).
    """

    max_error_rate: float = 0.01
    latency_slo_ms: dict[str, float] = field(default_factory=lambda: {"p99": 100.0})
    min_requests: int = 100
    primary_metric: str = "f1"
    primary_threshold: float | None = None
    higher_is_better: bool = True
    sustained: timedelta = SUSTAINED
    max_score_psi: float = 0.25
    min_scored: int = 200
    label_alpha: float = 0.05
    label_max_shift: float = 0.05


def primary_threshold_for(brief: Brief, evaluated: float | None) -> float | None:
    """The primary metric's alert threshold: the brief's ``monitoring.primary_metric_threshold``, else the
    champion's hold-out value (``evaluated``) worsened by ``monitoring.max_metric_drop``; None without either."""
    m = brief.monitoring
    if m.primary_metric_threshold is not None:
        return m.primary_metric_threshold
    if evaluated is None or np.isnan(evaluated):
        return None
    from mlplatform.core.metrics import higher_is_better

    factor = 1 - m.max_metric_drop if higher_is_better(brief.metrics.primary) else 1 + m.max_metric_drop
    return evaluated * factor


def policy_for(brief: Brief, primary_threshold: float | None) -> AlertPolicy:
    """The brief's alert thresholds; ``primary_threshold`` from :func:`primary_threshold_for`."""
    from mlplatform.core.metrics import higher_is_better

    m, t = brief.monitoring, brief.thresholds
    slo = {"p50": m.latency_p50_ms, "p95": m.latency_p95_ms, "p99": m.latency_p99_ms or t.max_latency_ms}
    return AlertPolicy(
        max_error_rate=m.max_error_rate, latency_slo_ms={k: v for k, v in slo.items() if v is not None},
        min_requests=m.alert_min_requests, primary_metric=brief.metrics.primary,
        primary_threshold=primary_threshold, higher_is_better=higher_is_better(brief.metrics.primary),
        max_score_psi=t.psi_critical, min_scored=t.prediction_kl_min_rows, label_alpha=m.label_drift_alpha,
        label_max_shift=m.label_max_shift)


def _judged_window(windows: pl.DataFrame, column: str, minimum: int) -> dict | None:
    """The shortest window (the table's row order) with at least ``minimum`` in ``column``."""
    return next((row for row in windows.iter_rows(named=True) if (row[column] or 0) >= minimum), None)


def slo_alerts(windows: pl.DataFrame, policy: AlertPolicy) -> list[Alert]:
    """Error rate and latency percentiles against the SLO, and the score PSI proxy, on the prediction windows
    (:func:`mlplatform.core.prediction_windows.prediction_windows`, shortest window first)."""
    alerts = []
    judged = _judged_window(windows, "requests", policy.min_requests)
    if judged is not None:
        window, rate = judged["window"], judged["error_rate"]
        if rate is not None and rate > policy.max_error_rate:
            alerts.append(Alert("error_rate", "critical", rate, policy.max_error_rate, window,
                                f"{judged['errors']} of {judged['predictions']} online predictions failed in the "
                                f"last {window} ({rate:.2%} > {policy.max_error_rate:.2%})"))
        for percentile, slo in policy.latency_slo_ms.items():
            observed = judged[f"latency_{percentile}_ms"]
            if observed is not None and observed > slo:
                alerts.append(Alert(f"latency_{percentile}", "critical", observed, slo, window,
                                    f"{percentile} latency {observed:.1f} ms over {judged['requests']} requests in "
                                    f"the last {window} exceeds the SLO of {slo:g} ms"))
    scored = _judged_window(windows, "scored", policy.min_scored)
    if scored is not None and scored["score_psi"] is not None and scored["score_psi"] > policy.max_score_psi:
        alerts.append(Alert("prediction_shift", "warning", scored["score_psi"], policy.max_score_psi,
                            scored["window"], f"served scores moved from the training reference: PSI "
                            f"{scored['score_psi']:.3f} > {policy.max_score_psi} over {scored['scored']} predictions "
                            f"in the last {scored['window']} (mean score shift {scored['mean_score_shift']:+.3f}); "
                            "labels have not confirmed a drop, look upstream"))
    return alerts


def _worse(value: float, threshold: float, higher_is_better: bool) -> bool:
    return value < threshold if higher_is_better else value > threshold


def breach_span(hourly: pl.DataFrame, threshold: float, higher_is_better: bool) -> timedelta:
    """How long the primary metric has been worse than ``threshold``: from the start of the oldest hour of the
    latest unbroken run of measured hours worse than it to the end of the newest. Hours without labelled
    predictions neither extend nor break the run; a measured hour at or better than the threshold ends it.

    Args:
        hourly: :func:`mlplatform.core.prediction_windows.hourly_metric`, oldest first.
    """
    measured = hourly.filter(pl.col("value").is_not_null())
    run_start = run_end = None
    for row in reversed(list(measured.iter_rows(named=True))):
        if not _worse(row["value"], threshold, higher_is_better):
            break
        run_end = run_end or row["end"]
        run_start = row["start"]
    return run_end - run_start if run_start is not None and run_end is not None else timedelta(0)


def hourly_breach_hours(hourly: pl.DataFrame, policy: AlertPolicy) -> float | None:
    """:func:`breach_span` in hours; None when no threshold is known."""
    if policy.primary_threshold is None:
        return None
    return breach_span(hourly, policy.primary_threshold, policy.higher_is_better).total_seconds() / 3600


def primary_metric_alert(hourly: pl.DataFrame, policy: AlertPolicy) -> Alert | None:
    """The method's performance trigger: the primary metric worse than its threshold for ``policy.sustained``
    (24 h) on end, from the hourly metric of labelled predictions. None when no threshold is known."""
    if policy.primary_threshold is None:
        return None
    span = breach_span(hourly, policy.primary_threshold, policy.higher_is_better)
    if span < policy.sustained:
        return None
    latest = hourly.filter(pl.col("value").is_not_null())["value"][-1]
    hours = span.total_seconds() / 3600
    side = "under" if policy.higher_is_better else "over"
    return Alert("primary_metric", "critical", float(latest), policy.primary_threshold, f"{hours:g}h",
                 f"{policy.primary_metric} on labelled predictions has been {side} {policy.primary_threshold:.4f} "
                 f"for {hours:g} hours (latest hour {latest:.4f})")


@dataclass(frozen=True)
class LabelDrift:
    """Reference (training) labels against the labels of served predictions."""

    reference_rows: int
    current_rows: int
    shift: float | None
    statistic: float | None
    p_value: float | None
    alert: Alert | None


def label_drift(reference: np.ndarray, current: np.ndarray, task: TaskType, policy: AlertPolicy,
                window: str) -> LabelDrift:
    """Label drift: chi-square test of the class counts (the method's test) for classification, the PSI of the
    values for regression. Binary shift: the change in the positive rate; multiclass: the largest change of a
    class share. Alerts (warning) when the test is significant at ``policy.label_alpha`` *and* the shift exceeds
    ``policy.label_max_shift``; regression when the PSI exceeds ``policy.max_score_psi``. Without current labels
    nothing is judged."""
    if current.size == 0 or reference.size == 0:
        return LabelDrift(reference.size, current.size, None, None, None, None)
    from mlplatform.core.drift import label_drift_chi2, psi

    if task == "regression":
        value = psi(reference.astype(float), current.astype(float))
        alert = (Alert(LABEL_DRIFT, "warning", value, policy.max_score_psi, window,
                       f"label values moved from training: PSI {value:.3f} > {policy.max_score_psi} over "
                       f"{current.size} labelled predictions in the last {window}")
                 if value > policy.max_score_psi else None)
        return LabelDrift(reference.size, current.size, value, None, None, alert)
    classes = np.union1d(np.unique(reference), np.unique(current))
    shares = [(float(np.mean(current == c)) - float(np.mean(reference == c)), c) for c in classes]
    shift, worst = (shares[-1] if task == "binary" else max(shares, key=lambda s: abs(s[0])))
    statistic, p_value = label_drift_chi2(reference, current)
    alert = None
    if p_value < policy.label_alpha and abs(shift) > policy.label_max_shift:
        what = "positive rate" if task == "binary" else f"share of class {worst}"
        alert = Alert(LABEL_DRIFT, "warning", abs(shift), policy.label_max_shift, window,
                      f"label drift: the {what} moved {shift:+.3f} from training over {current.size} labelled "
                      f"predictions in the last {window} (chi-square p={p_value:.2g} < {policy.label_alpha}); "
                      "check label quality and upstream data")
    return LabelDrift(reference.size, current.size, shift, statistic, p_value, alert)


def alert_table(alerts: list[Alert]) -> pl.DataFrame:
    return pl.DataFrame([asdict(a) for a in alerts], schema=ALERT_SCHEMA)


def reconcile(open_alerts: dict[str, dict], firing: list[Alert], at: datetime) -> tuple[dict[str, dict], list[dict]]:
    """The open alerts after this evaluation, and the notices to send.

    A firing alert not open yet (or open at another severity) is sent as ``opened``; one already open is not
    sent again; an open alert no longer firing is sent once as ``resolved``.
    """
    now = at.isoformat(timespec="seconds")
    events, still = [], {}
    for alert in firing:
        record = asdict(alert)
        previous = open_alerts.get(alert.name)
        if previous is None or previous["severity"] != alert.severity:
            events.append({"event": "alert", "status": "opened", **record})
            still[alert.name] = {**record, "opened_at": now, "last_seen": now}
        else:
            still[alert.name] = {**record, "opened_at": previous["opened_at"], "last_seen": now}
    for name, previous in open_alerts.items():
        if name not in still:
            events.append({"event": "alert", "status": "resolved", "name": name, "severity": previous["severity"],
                           "window": previous["window"], "opened_at": previous["opened_at"],
                           "message": f"resolved: {previous['message']}"})
    return still, events


def dispatch(state_path: Path, log_path: Path, firing: list[Alert], at: datetime,
             webhook_url: str | None = None, scope: str = "") -> list[dict]:
    """Send the notices :func:`reconcile` asks for through :func:`mlplatform.core.retraining.notify` (the
    notifications log and the webhook) and store the open alerts in ``state_path`` (JSON, written atomically).

    ``scope`` names the alerts this call judges (e.g. ``serving``): the state keeps each scope's alerts apart,
    so judging one scope never resolves another's.

    Returns:
        The entries written to the notifications log.
    """
    from mlplatform.core.io import write_text_atomic
    from mlplatform.core.retraining import notify

    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    open_now, events = reconcile(state.get(scope, {}), firing, at)
    sent = [notify(log_path, {**event, "scope": scope} if scope else event, webhook_url) for event in events]
    write_text_atomic(json.dumps({**state, scope: open_now}, indent=2, sort_keys=True), state_path)
    return sent
