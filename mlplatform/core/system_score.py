"""The method's ML-system quality score (phase 11): eight weighted dimensions, 0–5 each, total 0–100.

Every point comes from :class:`Evidence` the platform produced (the brief, lake tables, report files, MLflow,
the code location's sensors), gathered by :func:`gather_evidence`; each dimension lists its evidence and
what would raise it. The anchors follow the method's table: "0–2 poor", "3–4 good", "5 excellent". Within a
dimension the good anchor gives 3, and the excellent column's items give 4 when some are met and 5 when
all are.
"""

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from mlplatform.brief import Brief, draft_notice, placeholder_fields
from mlplatform.core import tables
from mlplatform.core.calibration import ECE_THRESHOLD, expected_calibration_error
from mlplatform.core.evaluation.fairness_assessment import AttributeFairness
from mlplatform.core.metrics import higher_is_better
from mlplatform.core.model_card import fairness_status
from mlplatform.core.models import CANDIDATE_FILES
from mlplatform.core.quality import data_as_of, freshness_need_days, normalised_total
from mlplatform.settings import Workspace

# The method's weights, in its order. They add up to 105%, so totals are scaled by their sum: all fives is 100.
WEIGHTS = {"problem_definition": 0.15, "data_quality": 0.15, "experiment_rigor": 0.15, "model_performance": 0.15,
           "deployment": 0.15, "monitoring": 0.15, "documentation": 0.05, "cost_efficiency": 0.10}
# The method's bands: lowest total of each, highest first.
BANDS = [(80, "production-grade ML system"), (60, "good foundation, lacks operational maturity"),
         (40, "prototype, not ready for production"), (0, "research project, needs further work")]
BASELINES = ("rules", "majority")
COST_REPORT = "cost_report.yaml"
AB_TEST_REPORT = "ab_test_report.yaml"
RUNBOOK = "runbook.md"
RUNNING, STOPPED = "running", "stopped"
# Fairness statuses that mean the model was judged fair; WAIVED and NOT_ASSESSABLE are not.
FAIR_STATUSES = ("PASS", "NOT_APPLICABLE")


@dataclass(frozen=True)
class Evidence:
    """What the platform has to show, as plain values; a missing artefact is None, False, 0 or empty.

    Attributes:
        placeholders: the brief's fields still holding TODO / CONFIRM (a draft brief).
        business_objective, success_metric: the brief's problem definition.
        kill_criteria: each kill criterion evaluated on hold-out results, as "criterion: measured".
        cost_estimate: where a cost estimate was written.
        quality_total, quality_min: the data-quality total /30 and the gate's minimum.
        freshness: per source with a timestamp, (source, newest data, days it may be old); judged at
            ``scored_on``, the day the score is taken, not the day the quality report judged it at.
        quality_as_of: the moment the data-quality report judged timeliness at.
        scored_on: the day this score judges freshness at.
        feature_store_registry: the Feast registry file.
        dataset_version: the training set's content hash recorded with the candidates.
        tracked_runs, runs_with_dataset_version: MLflow runs of the brief's experiment, and those that record
            the dataset version they trained on.
        primary_metric: the brief's primary metric.
        model_value, model_ci: the challenger's hold-out value of it and its bootstrap interval.
        baselines: baseline name → hold-out value of the primary metric.
        fairness: protected attribute → (status, reason): PASS, FAIL, NOT_ASSESSABLE, WAIVED or NOT_APPLICABLE;
            None when fairness was not evaluated.
        calibration_error: expected calibration error of the hold-out scores (binary tasks); None when not
            measured.
        calibration_applies: whether scores are probabilities to calibrate (binary tasks).
        worst_slice: the weakest slice with enough rows, as (name, primary-metric value).
        registered_version, champion_version: registry versions holding the challenger and champion aliases.
        serving_app: the serving app can be imported.
        rollback_automation: sensors and schedules whose job runs the automatic rollback.
        ab_test_predictions: predictions per arm of the A/B test report; None when there is none.
        profiles, drift_report, performance_report: monitoring outputs that exist.
        failing_checks: monitoring checks whose latest evaluation failed; None when not known.
        retrain_triggers: sensors and schedules that launch retraining.
        automation_states: sensor or schedule name → running / stopped in the Dagster instance; None when
            not known (no instance was read).
        model_card, evaluation_report, runbook: document files that exist.
        cost: the cost report document (the method's ml_costs template, assumptions, measurements).
    """

    placeholders: tuple[str, ...] = ()
    business_objective: str = ""
    success_metric: str = ""
    kill_criteria: tuple[str, ...] = ()
    cost_estimate: str | None = None
    quality_total: float | None = None
    quality_min: float = 18.0
    freshness: tuple[tuple[str, datetime, float], ...] = ()
    quality_as_of: datetime | None = None
    scored_on: date | None = None
    feature_store_registry: str | None = None
    dataset_version: str | None = None
    tracked_runs: int = 0
    runs_with_dataset_version: int = 0
    primary_metric: str = ""
    model_value: float | None = None
    model_ci: tuple[float, float] | None = None
    baselines: dict[str, float] = field(default_factory=dict)
    fairness: dict[str, tuple[str, str]] | None = None
    calibration_error: float | None = None
    calibration_applies: bool = True
    worst_slice: tuple[str, float] | None = None
    registered_version: str | None = None
    champion_version: str | None = None
    serving_app: bool = False
    rollback_automation: tuple[str, ...] = ()
    ab_test_predictions: dict[str, int] | None = None
    profiles: bool = False
    drift_report: bool = False
    performance_report: bool = False
    failing_checks: tuple[str, ...] | None = None
    retrain_triggers: tuple[str, ...] = ()
    automation_states: dict[str, str] | None = None
    model_card: str | None = None
    evaluation_report: str | None = None
    runbook: str | None = None
    cost: dict[str, Any] | None = None


@dataclass(frozen=True)
class DimensionScore:
    """One dimension: its points (0–5), the evidence they rest on and what would raise them."""

    name: str
    weight: float
    points: int
    evidence: list[str]
    to_raise: list[str]

    @property
    def weighted(self) -> float:
        """Contribution to the 0–100 total."""
        return self.points / 5 * self.weight / sum(WEIGHTS.values()) * 100


@dataclass(frozen=True)
class SystemScore:
    dimensions: list[DimensionScore]
    placeholders: tuple[str, ...] = ()

    @property
    def total(self) -> float:
        return round(sum(d.weighted for d in self.dimensions), 1)

    @property
    def band(self) -> str:
        return band(self.total)


def band(total: float) -> str:
    """The method's verdict for a 0–100 total, e.g. ``80-100: production-grade ML system``."""
    upper = 100
    for lowest, verdict in BANDS:
        if total >= lowest:
            return f"{lowest}-{upper}: {verdict}" if lowest else f"below 40: {verdict}"
        upper = lowest - 1
    raise ValueError(f"total must be 0-100, got {total}")


class _Ledger:
    """Collects one dimension's evidence and its missing items while the points are decided."""

    def __init__(self) -> None:
        self.evidence: list[str] = []
        self.to_raise: list[str] = []

    def check(self, met: bool, evidence: str, to_raise: str) -> bool:
        (self.evidence if met else self.to_raise).append(evidence if met else to_raise)
        return met

    def excellent(self, items: list[tuple[bool, str, str]]) -> int:
        """3 for the good anchor, 4 when some of the excellent column's items are met, 5 when all are."""
        met = [self.check(*item) for item in items]
        return 3 + any(met) + all(met)


def _problem_definition(e: Evidence, log: _Ledger) -> int:
    if not log.check(not e.placeholders, "the brief holds no placeholders",
                     "fill the brief's placeholders (TODO / CONFIRM): " + ", ".join(e.placeholders)):
        return 0
    if not log.check(bool(e.business_objective), f"business objective: {e.business_objective}",
                     "state the business objective in the brief (problem.business_objective)"):
        return 0
    if not log.check(bool(e.success_metric), f"success metric: {e.success_metric}",
                     "state a measurable success metric in the brief (problem.success_metric)"):
        return 2
    rules = e.baselines.get("rules")
    return log.excellent([
        (bool(e.kill_criteria), "kill criteria evaluated on hold-out results and the quality history: "
         + "; ".join(e.kill_criteria), "materialise evaluation_report so the brief's kill criteria are evaluated"),
        (rules is not None, f"the brief's rules baseline scored on the hold-out: {e.primary_metric} {rules or 0:.4f}",
         "score the rules baseline on the hold-out (rules_baseline, "
         "evaluation_report)"),
        (e.cost_estimate is not None, f"cost estimate: {e.cost_estimate}", "materialise cost_report"),
    ])


def _freshness(e: Evidence) -> tuple[bool, str]:
    """Whether every source's newest data is within its need on ``scored_on``, and the judgement in words."""
    if e.scored_on is None or not e.freshness:
        return False, "freshness not known (no source with a timestamp, or no data-quality report)"
    scored = datetime.combine(e.scored_on, datetime.min.time())
    ages = [(source, newest, need, (scored - newest).total_seconds() / 86_400) for source, newest, need in e.freshness]
    stale = [f"{source} newest {newest:%Y-%m-%d} is {age:.0f} days old (need <= {need:g})"
             for source, newest, need, age in ages if age > need]
    judged = (f" (the data-quality report judged timeliness as of {e.quality_as_of:%Y-%m-%d})"
              if e.quality_as_of else "")
    if stale:
        return False, f"stale as of {e.scored_on}: {'; '.join(stale)}{judged}"
    oldest = max(ages, key=lambda a: a[3])
    return True, (f"fresh as of {e.scored_on}: every source within its need (stalest {oldest[0]}, "
                  f"{oldest[3]:.1f} days){judged}")


def _data_quality(e: Evidence, log: _Ledger) -> int:
    if not log.check(e.quality_total is not None, f"data-quality score {e.quality_total}/30",
                     "materialise data_quality_report (automated contracts and the 30-point score)"):
        return 0
    assert e.quality_total is not None  # the check above returned otherwise
    if not log.check(e.quality_total >= e.quality_min,
                     f"the blocking quality gate passes ({e.quality_total:.1f} >= {e.quality_min})",
                     f"raise data quality above the gate's minimum {e.quality_min}/30 (see data_quality_report)"):
        return 2
    fresh, freshness = _freshness(e)
    return log.excellent([
        (e.feature_store_registry is not None, f"Feast feature registry: {e.feature_store_registry}",
         "materialise feature_store (the Feast registry)"),
        (e.dataset_version is not None, f"training set versioned by content hash {e.dataset_version}",
         "record the training set's dataset version with each candidate (training_set, *_model)"),
        (fresh, f"timeliness: {freshness}", f"load current data: {freshness}"),
    ])


def _experiment_rigor(e: Evidence, log: _Ledger) -> int:
    if not log.check(e.tracked_runs > 0, f"{e.tracked_runs} training runs tracked in MLflow",
                     "track training runs in MLflow (materialise the training stage)"):
        return 0
    return log.excellent([
        (e.runs_with_dataset_version == e.tracked_runs,
         f"every run records its dataset version ({e.runs_with_dataset_version}/{e.tracked_runs})",
         f"record the dataset version on every run ({e.runs_with_dataset_version}/{e.tracked_runs} do)"),
        (e.model_ci is not None and len(e.baselines) > 0,
         f"hold-out evaluation with a bootstrap interval, against baselines {sorted(e.baselines)}",
         "evaluate on the hold-out with bootstrap intervals against the baselines (evaluation_report)"),
    ])


def _better(a: float, b: float, metric: str) -> bool:
    return a > b if higher_is_better(metric) else a < b


def _model_performance(e: Evidence, log: _Ledger) -> int:
    m = e.primary_metric
    if not log.check(e.model_value is not None and bool(e.baselines), f"hold-out {m} {e.model_value or 0:.4f}",
                     "materialise evaluation_report (the model and baselines on the hold-out)"):
        return 0
    assert e.model_value is not None  # the check above returned otherwise
    best_name = (max if higher_is_better(m) else min)(e.baselines, key=e.baselines.__getitem__)
    best = e.baselines[best_name]
    if not log.check(_better(e.model_value, best, m), f"{m} {e.model_value:.4f} beats the best baseline "
                     f"({best_name} {best:.4f})", f"beat the best baseline ({best_name} {m} {best:.4f}; "
                     f"the model has {e.model_value:.4f})"):
        return 1
    low, high = e.model_ci or (float("nan"), float("nan"))
    bound = low if higher_is_better(m) else high
    if not log.check(e.model_ci is not None and _better(bound, best, m),
                     f"significant: the 95% interval [{low:.4f}, {high:.4f}] excludes {best_name} {best:.4f}",
                     f"a significant gain: the model's 95% interval [{low:.4f}, {high:.4f}] still contains "
                     f"{best_name}'s {best:.4f}"):
        return 2
    calibrated = not e.calibration_applies or (e.calibration_error is not None
                                               and e.calibration_error <= ECE_THRESHOLD)
    ece = "not measured" if e.calibration_error is None else f"{e.calibration_error:.4f}"
    fair = e.fairness or {}
    statuses = "; ".join(f"{attribute} {status}" + (f" ({reason})" if reason and status != "PASS" else "")
                         for attribute, (status, reason) in sorted(fair.items()))
    judged_fair = bool(fair) and all(status in FAIR_STATUSES for status, _ in fair.values())
    worst = e.worst_slice
    weakest = "not evaluated" if worst is None else f"{worst[0]}, {m} {worst[1]:.4f}"
    return log.excellent([
        (judged_fair, f"fairness gate: {statuses}",
         f"every protected attribute must PASS the fairness gate (now: {statuses})" if fair
         else "name the protected attributes in the brief so fairness is evaluated"),
        (calibrated, "calibrated: not applicable to this task" if not e.calibration_applies
         else f"calibrated: expected calibration error {ece} <= {ECE_THRESHOLD}",
         f"calibrate the scores (expected calibration error {ece}; needs <= {ECE_THRESHOLD})"),
        (worst is not None and _better(worst[1], best, m),
         f"edge cases: the weakest slice ({weakest}) still beats {best_name}",
         f"every slice must beat {best_name}'s {best:.4f} (weakest slice: {weakest})"),
    ])


def _states(e: Evidence, names: tuple[str, ...]) -> str:
    """Each sensor or schedule with its state, e.g. ``drift_sensor (stopped)``."""
    states = e.automation_states
    return ", ".join(f"{n} ({'state not known' if states is None else states.get(n, 'state not known')})"
                     for n in names)


def _running(e: Evidence, names: tuple[str, ...]) -> bool:
    """At least one of ``names`` is running in the Dagster instance (unknown states earn nothing)."""
    return e.automation_states is not None and any(e.automation_states.get(n) == RUNNING for n in names)


def _deployment(e: Evidence, log: _Ledger) -> int:
    if not log.check(e.registered_version is not None, f"registered as version {e.registered_version} "
                     "(challenger alias)", "register the challenger in the MLflow registry (model_registry)"):
        return 0
    if not log.check(e.champion_version is not None, f"champion alias on version {e.champion_version}, moved "
                     "only by the blocking promotion gate", "pass the promotion gate so the champion alias is set"):
        return 1
    if not log.check(e.serving_app, "serving app (mlplatform.serving) present",
                     "add the serving app (mlplatform serve)"):
        return 2
    arms = e.ab_test_predictions or {}
    served = bool(arms) and all(count > 0 for count in arms.values())
    counts = ", ".join(f"{arm} {count:,}" for arm, count in arms.items()) or "no report"
    return log.excellent([
        (_running(e, e.rollback_automation), f"automatic rollback running: {_states(e, e.rollback_automation)}",
         f"turn on the automatic rollback ({_states(e, e.rollback_automation)})" if e.rollback_automation
         else "add automatic rollback (a sensor whose job restores the previous champion)"),
        (served, f"A/B test on served traffic: predictions {counts}",
         f"run an A/B test of champion and challenger on served traffic (ab_test_report predictions: {counts})"),
    ])


def _monitoring(e: Evidence, log: _Ledger) -> int:
    outputs = [n for n, present in (("whylogs profiles", e.profiles), ("drift report", e.drift_report),
                                    ("performance report", e.performance_report)) if present]
    if not log.check(bool(outputs), "monitoring outputs: " + ", ".join(outputs),
                     "materialise the monitoring stage (profiles, drift and performance reports)"):
        return 0
    failing = e.failing_checks
    return log.excellent([
        (e.drift_report and e.performance_report, "drift detection: feature drift (PSI/KS/JS) and concept drift "
         "on new labels", "detect drift on features (drift_report) and on new labels (performance_report)"),
        (failing is not None and not failing, "every monitoring check passes at its latest evaluation",
         "monitoring check results not known (no Dagster instance read)" if failing is None
         else f"act on the failing monitoring checks: {', '.join(failing)}"),
        (_running(e, e.retrain_triggers), f"automated retraining running: {_states(e, e.retrain_triggers)}",
         f"turn on a retraining sensor or schedule ({_states(e, e.retrain_triggers)})" if e.retrain_triggers
         else "define sensors or a schedule that launch retraining"),
    ])


def _documentation(e: Evidence, log: _Ledger) -> int:
    if not log.check(e.model_card is not None, f"model card generated: {e.model_card}",
                     "materialise model_card"):
        return 2 if e.evaluation_report else 0
    return log.excellent([
        (e.evaluation_report is not None, f"evaluation report: {e.evaluation_report}",
         "materialise evaluation_report"),
        (e.runbook is not None, f"runbook: {e.runbook}", f"write a runbook ({RUNBOOK} beside the brief)"),
    ])


def _cost_efficiency(e: Evidence, log: _Ledger) -> int:
    if not log.check(e.cost is not None, "cost tracking: cost_report (the method's ml_costs template)",
                     "materialise cost_report"):
        return 0
    assert e.cost is not None  # the check above returned otherwise
    targets = e.cost["ml_costs"]["optimization_targets"]
    budget, target = targets["monthly_budget"], targets["cost_per_prediction"]
    if not log.check(not isinstance(budget, str), f"monthly budget ${budget}",
                     "set a monthly budget (brief field cost.monthly_budget)"):
        return 2
    total = e.cost["measured"]["monthly_total"]
    per_prediction = e.cost["ml_costs"]["inference"]["cost_per_query_breakdown"]["compute"]
    method = e.cost.get("assumptions", {}).get("inference", "method not recorded")
    return log.excellent([
        (not isinstance(total, str) and total <= budget, f"within budget: ${total}/month <= ${budget}",
         f"bring the monthly total within ${budget} (now {total})"),
        (not isinstance(target, str) and per_prediction <= target,
         f"optimised inference: ${per_prediction} a prediction <= target ${target} ({method})",
         f"meet a cost-per-prediction target (now ${per_prediction}; target {target}; set cost."
         "target_cost_per_prediction)"),
    ])


_SCORERS: dict[str, Callable[[Evidence, _Ledger], int]] = {
    "problem_definition": _problem_definition, "data_quality": _data_quality, "experiment_rigor": _experiment_rigor,
    "model_performance": _model_performance, "deployment": _deployment, "monitoring": _monitoring,
    "documentation": _documentation, "cost_efficiency": _cost_efficiency,
}


def score_system(evidence: Evidence) -> SystemScore:
    """Score the eight dimensions of the method's rubric from ``evidence``."""
    dimensions = []
    for name, scorer in _SCORERS.items():
        log = _Ledger()
        points = scorer(evidence, log)
        dimensions.append(DimensionScore(name, WEIGHTS[name], points, log.evidence, log.to_raise))
    return SystemScore(dimensions, evidence.placeholders)


def score_table(score: SystemScore) -> pl.DataFrame:
    """One row per dimension, as stored in the lake and read back by :func:`score_from_table`."""
    return pl.DataFrame([{"dimension": d.name, "weight": d.weight, "points": d.points, "weighted": d.weighted,
                          "evidence": d.evidence, "to_raise": d.to_raise, "placeholders": list(score.placeholders)}
                         for d in score.dimensions],
                        schema={"dimension": pl.String, "weight": pl.Float64, "points": pl.Int64,
                                "weighted": pl.Float64, "evidence": pl.List(pl.String),
                                "to_raise": pl.List(pl.String), "placeholders": pl.List(pl.String)})


def score_from_table(frame: pl.DataFrame) -> SystemScore:
    placeholders = tuple(frame["placeholders"][0]) if "placeholders" in frame.columns and frame.height else ()
    return SystemScore([DimensionScore(r["dimension"], r["weight"], r["points"], r["evidence"], r["to_raise"])
                        for r in frame.iter_rows(named=True)], placeholders)


def render_markdown(score: SystemScore) -> str:
    """The score as Markdown: the total and band, a table, and each dimension's evidence and next steps."""
    draft = draft_notice(list(score.placeholders))
    lines = [f"# ML-system score: {score.total:.0f}/100" + (" (DRAFT)" if draft else ""), "",
             *([f"> **{draft}**", ""] if draft else []), f"**{score.band}**", "",
             "| dimension | weight | points | weighted |", "|---|---|---|---|"]
    lines += [f"| {d.name} | {d.weight:.0%} | {d.points}/5 | {d.weighted:.1f} |" for d in score.dimensions]
    for d in score.dimensions:
        lines += ["", f"## {d.name}: {d.points}/5", "", *[f"- {item}" for item in d.evidence]]
        lines += [f"- _to raise it_: {item}" for item in d.to_raise]
    return "\n".join(lines) + "\n"


def render_text(score: SystemScore) -> str:
    """The score as plain text for a terminal."""
    draft = draft_notice(list(score.placeholders))
    lines = [f"ML-system score {score.total:.0f}/100 — {score.band}", *([draft] if draft else []), "",
             f"{'dimension':<20} {'weight':>6} {'points':>6} {'weighted':>8}"]
    lines += [f"{d.name:<20} {d.weight:>6.0%} {d.points:>4}/5 {d.weighted:>8.1f}" for d in score.dimensions]
    for d in score.dimensions:
        lines += ["", f"{d.name} ({d.points}/5)", *[f"  + {item}" for item in d.evidence]]
        lines += [f"  → {item}" for item in d.to_raise]
    return "\n".join(lines)


# Reading the evidence: every value below comes from a file or table a run wrote.

def _table(workspace: Workspace, table: tables.Table) -> pl.DataFrame | None:
    path = workspace.table(table)
    return pl.read_parquet(path) if path.exists() else None


def _existing(path: Path) -> str | None:
    return str(path) if path.exists() else None


def _mlflow_runs(tracking_uri: str, experiment: str) -> tuple[int, int]:
    """(runs, runs tagged with a dataset version) of the experiment; no backend yet means none."""
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).exists():
        return 0, 0  # opening a missing SQLite backend would create it (and run MLflow's migrations)
    from mlplatform.core.tracking import client_for  # MLflow takes seconds to import

    client = client_for(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return 0, 0
    runs = client.search_runs([found.experiment_id], max_results=10_000)
    return len(runs), sum(1 for r in runs if r.data.tags.get("dataset_version"))


def _aliases(tracking_uri: str, model_name: str) -> tuple[str | None, str | None]:
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).exists():
        return None, None
    from mlplatform.core.tracking import get_alias_version

    return (get_alias_version(tracking_uri, model_name, "challenger"),
            get_alias_version(tracking_uri, model_name, "champion"))


def _performance(workspace: Workspace, brief: Brief) -> dict[str, Any]:
    """Hold-out values of the primary metric, fairness, calibration and the weakest slice."""
    found: dict[str, Any] = {}
    metric = brief.metrics.primary
    metrics, challenger = _table(workspace, tables.METRICS), _table(workspace, tables.CHALLENGER)
    if metrics is not None and challenger is not None:
        rows = {r["candidate"]: r for r in metrics.filter(pl.col("metric") == metric).iter_rows(named=True)}
        model = rows.get(challenger["candidate"][0])
        if model is not None:
            found["model_value"] = model["value"]
            if model["ci_low"] is not None and model["ci_high"] is not None:
                found["model_ci"] = (model["ci_low"], model["ci_high"])
        found["baselines"] = {name: rows[name]["value"] for name in BASELINES if name in rows}
    fairness = _table(workspace, tables.FAIRNESS)
    if fairness is not None:
        found["fairness"] = {r["attribute"]: fairness_status(AttributeFairness.from_row(r))
                             for r in fairness.iter_rows(named=True)}
    found["calibration_applies"] = brief.task_type == "binary"
    predictions = _table(workspace, tables.PREDICTIONS)
    if predictions is not None and brief.task_type == "binary":
        found["calibration_error"] = expected_calibration_error(
            predictions[brief.label.column].to_numpy().astype(float), np.clip(predictions["score"].to_numpy(), 0, 1))
    slices = _table(workspace, tables.SLICES)
    if slices is not None and metric in slices.columns:
        judged = slices.filter(~pl.col("small_slice") & pl.col(metric).is_not_null())
        if judged.height:
            # Sorted best first, so the last row is the weakest slice.
            worst = judged.sort(metric, descending=higher_is_better(metric)).row(-1, named=True)
            found["worst_slice"] = (f"{worst['dimension']}={worst['value']}", worst[metric])
    return found


def _has_rows(path: Path) -> bool:
    return path.exists() and pl.scan_parquet(path).select(pl.len()).collect().item() > 0


def _measured(path: Path) -> bool:
    """A monitoring table that holds a real measurement (data without time writes ``not_applicable`` rows)."""
    return path.exists() and bool((pl.read_parquet(path, columns=["severity"])["severity"] != "not_applicable").any())


def _freshness_evidence(workspace: Workspace, brief: Brief) -> tuple[tuple[str, datetime, float], ...]:
    """(source, newest data, days it may be old) per source whose timeliness the quality stage measured: the
    newest time is the report's as-of less the age it measured."""
    as_of, found = data_as_of(brief), []
    for source in brief.sources:
        quality = _table(workspace, tables.quality(source))
        if quality is None:
            continue
        rows = quality.filter((pl.col("name") == "timeliness") & pl.col("applicable").fill_null(True))
        age = rows["measurement"][0] if rows.height else None
        if age is not None and np.isfinite(age):
            found.append((source, as_of - timedelta(days=float(age)), freshness_need_days(brief, source)))
    return tuple(found)


def _ab_test_predictions(reports_dir: Path) -> dict[str, int] | None:
    """Predictions per arm in the A/B test report; None when there is no report."""
    path = reports_dir / AB_TEST_REPORT
    if not path.exists():
        return None
    predictions = (yaml.safe_load(path.read_text()).get("results") or {}).get("predictions") or {}
    return {str(arm): int(count or 0) for arm, count in predictions.items()}


def gather_evidence(workspace: Workspace, brief: Brief, brief_dir: Path, *, tracking_uri: str, model_name: str,
                    rollback_automation: tuple[str, ...] = (), retrain_triggers: tuple[str, ...] = (),
                    automation_states: Mapping[str, str] | None = None,
                    failing_checks: tuple[str, ...] | None = None, scored_on: date | None = None) -> Evidence:
    """Read what a run of the platform left behind for ``brief``.

    Args:
        workspace: the brief's folders.
        brief: the brief (problem definition, primary metric, task).
        brief_dir: the brief's folder, where a runbook is looked for.
        tracking_uri: the MLflow backend.
        model_name: the registered model.
        rollback_automation: sensors and schedules whose job runs the automatic rollback (from the code location).
        retrain_triggers: sensors and schedules whose job retrains (from the code location).
        automation_states: their running / stopped state in the Dagster instance; None when not known.
        failing_checks: monitoring checks failing at their latest evaluation; None when not known.
        scored_on: the day freshness is judged at; today by default.
    """
    kills = _table(workspace, tables.KILL_CRITERIA)
    quality = _table(workspace, tables.DATA_QUALITY_OVERALL)
    candidates = [t for t in (_table(workspace, tables.candidate(n)) for n in CANDIDATE_FILES) if t is not None]
    runs, versioned = _mlflow_runs(tracking_uri, brief.name)
    registered, champion = _aliases(tracking_uri, model_name)
    cost_path = workspace.reports_dir / COST_REPORT
    cost = yaml.safe_load(cost_path.read_text()) if cost_path.exists() else None
    return Evidence(
        placeholders=tuple(placeholder_fields(brief)),
        business_objective=brief.problem.business_objective,
        success_metric=brief.problem.success_metric,
        kill_criteria=tuple(f"{r['criterion']}: {r['measured']}" for r in kills.iter_rows(named=True))
        if kills is not None else (),
        cost_estimate=(f"training ${cost['ml_costs']['training']['compute_cost_per_run']}/run, inference "
                       f"${cost['ml_costs']['inference']['cost_per_1k_predictions']}/1k predictions")
        if cost else None,
        quality_total=normalised_total(quality["points"].to_list()) if quality is not None else None,
        quality_min=brief.thresholds.quality_min_score,
        freshness=_freshness_evidence(workspace, brief) if quality is not None else (),
        quality_as_of=data_as_of(brief) if quality is not None else None,
        scored_on=scored_on or date.today(),
        feature_store_registry=_existing(workspace.feast_dir / "registry.db"),
        dataset_version=candidates[0]["dataset_version"][0] if candidates else None,
        tracked_runs=runs,
        runs_with_dataset_version=versioned,
        primary_metric=brief.metrics.primary,
        **_performance(workspace, brief),
        registered_version=registered,
        champion_version=champion,
        serving_app=importlib.util.find_spec("mlplatform.serving.app") is not None,
        rollback_automation=rollback_automation,
        ab_test_predictions=_ab_test_predictions(workspace.reports_dir),
        # Monitoring counts where something was measured: data without time writes "not_applicable" rows.
        profiles=_has_rows(workspace.table(tables.CURRENT_PROFILE)),
        drift_report=_measured(workspace.table(tables.DRIFT)),
        performance_report=_measured(workspace.table(tables.PERFORMANCE)),
        failing_checks=failing_checks,
        retrain_triggers=retrain_triggers,
        automation_states=dict(automation_states) if automation_states is not None else None,
        model_card=_existing(workspace.reports_dir / "model_card.md"),
        evaluation_report=_existing(workspace.reports_dir / "evaluation" / "report.md"),
        runbook=_existing(brief_dir / RUNBOOK),
        cost=cost,
    )
