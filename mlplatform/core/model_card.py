"""The method's phase-9 model card, filled from the brief and run metadata, never by hand.

Every field is either derived from a recorded fact (the brief, row counts, metrics, drift, data quality)
or says plainly that the fact was not recorded. Nothing is invented to make the card look complete.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import polars as pl
import yaml

from mlplatform.brief import Brief, draft_notice
from mlplatform.core.datasets import model_features
from mlplatform.core.drift import NOT_APPLICABLE as DRIFT_NOT_APPLICABLE
from mlplatform.core.evaluation.bias_evidence import BiasEvidence, Row
from mlplatform.core.evaluation.fairness_assessment import (
    GATE_METRICS,
    AttributeFairness,
    FairnessRule,
    fairness_rule,
    metric_verdict,
)
from mlplatform.core.evaluation.slices import slice_records
from mlplatform.core.model_families import FAMILIES_BY_NAME
from mlplatform.core.quality import normalised_total
from mlplatform.core.report import SMALL_SLICE_ROWS, metric_label

NOT_RECORDED = "not recorded"


@dataclass(frozen=True)
class CheckOutcome:
    """A Dagster check's latest result as the card quotes it."""

    status: str
    """PASS or FAIL."""
    description: str


@dataclass(frozen=True)
class CardFacts:
    """What a model card is filled from: the brief and the run's recorded facts. Only the brief is required; a
    fact left at its default is stated on the card as not recorded, never invented.

    Attributes:
        brief: the problem brief the model answers.
        model_name, model_version, date, model_type: the registered model, its version, the card's date and the
            model family's description.
        training_rows: rows the model was fitted on.
        date_range: the first and last day of the training rows (or the range already written out).
        dataset_version: the training set's content hash.
        metrics: hold-out metric → a number or ``{value, ci_low, ci_high}``.
        sliced_metrics: slice records ``{dimension, value, n, metrics}``; None when slices were not recorded.
        datasets: the evaluation sets, described (default: the brief's validation and hold-out periods).
        drift: ``{feature, psi, severity}`` rows against current data; None when drift was not measured.
        quality_total: the data-quality score out of 30.
        features: the model's input names.
        fairness: protected attribute → the fairness gate's verdict (a row of evaluation/fairness).
        retraining_schedule: the schedule and the sensors that retrain, with their state.
        concept_drift: the concept_drift check's latest result.
        promotion_verdict: the experiment's one promotion verdict.
        leakage_waivers: feature → the brief's reason for declaring it legitimate.
        placeholders: brief fields still holding TODO / CONFIRM (the card is then a DRAFT).
    """

    brief: Brief
    model_name: str | None = None
    model_version: str | int | None = None
    date: date | str | None = None
    model_type: str | None = None
    training_rows: int | None = None
    date_range: tuple[Any, Any] | str | None = None
    dataset_version: str | None = None
    metrics: Mapping[str, float | Mapping[str, float | None]] | None = None
    sliced_metrics: Sequence[Row] | None = None
    datasets: Sequence[str] = ()
    drift: Sequence[Row] | None = None
    quality_total: float | None = None
    features: Sequence[str] | None = None
    fairness: Mapping[str, AttributeFairness] | None = None
    retraining_schedule: str | None = None
    concept_drift: CheckOutcome | None = None
    promotion_verdict: str | None = None
    leakage_waivers: Mapping[str, str] = field(default_factory=dict)
    placeholders: Sequence[str] = ()


def _metric(entry: Any) -> Any:
    """A metric for the card: a bare number, or ``{value, ci_low, ci_high}`` rounded to 4 places."""
    if isinstance(entry, Mapping):
        return {k: round(float(v), 4) for k, v in entry.items() if v is not None}
    return None if entry is None else round(float(entry), 4)


def _date_range(value: Any) -> str:
    """``(start, end)`` as ``start..end``; a string passes through; None is not recorded."""
    if value is None:
        return NOT_RECORDED
    if isinstance(value, str):
        return value
    start, end = value
    return f"{start}..{end}"


def _sliced(slices: Sequence[Row] | None) -> dict[str, dict[str, dict[str, Any]]]:
    """Slices as ``{dimension: {value: {n, metric: value, ...}}}``."""
    sliced: dict[str, dict[str, dict[str, Any]]] = {}
    for s in slices or []:
        metrics = {name: _metric(v) for name, v in s["metrics"].items()}
        sliced.setdefault(str(s["dimension"]), {})[str(s["value"])] = {"n": int(s["n"]), **metrics}
    return sliced


def _limitations(facts: CardFacts, date_range: str) -> list[str]:
    brief = facts.brief
    limitations = [] if facts.metrics else ["Evaluation metrics were not recorded."]
    if date_range == NOT_RECORDED:
        limitations.append("The training period was not recorded, so its coverage in time is unknown.")
    else:
        limitations.append(f"Trained on {date_range} only; behaviour outside that period is unknown.")
    for feature, reason in facts.leakage_waivers.items():
        limitations.append(f"Leakage check WAIVED for {feature}: it alone predicts the label beyond the brief's "
                           f"threshold; the brief declares it legitimate: {reason}")
    for s in facts.sliced_metrics or []:
        if s["n"] < SMALL_SLICE_ROWS:
            limitations.append(f"Slice {s['dimension']}={s['value']} has only {s['n']} hold-out rows; "
                               "its metrics are uncertain.")
    if facts.sliced_metrics is None:
        limitations.append("Metrics by slice were not recorded.")

    drift = facts.drift
    if drift is None:
        limitations.append("Drift against current data was not measured.")
    else:
        for level in ("critical", "warning"):
            found = sorted((d for d in drift if d["severity"] == level), key=lambda d: -d["psi"])
            if found:
                listed = ", ".join(f"{d['feature']} (PSI {d['psi']:.2f})" for d in found)
                limitations.append(f"Drift ({level}) between training and current data in: {listed}.")

    quality = facts.quality_total
    if quality is None:
        limitations.append("The data-quality score was not recorded.")
    elif quality < 30:
        limitations.append(f"Data quality scored {quality:g}/30 "
                           f"(the gate is {brief.thresholds.quality_min_score:g}/30).")
    if brief.label.delay_days:
        limitations.append(f"Labels arrive {brief.label.delay_days} days after the prediction, so a drop in "
                           f"performance is seen that late at the earliest.")
    return limitations


def fairness_status(result: AttributeFairness) -> tuple[str, str]:
    """An attribute's fairness-gate result as (status, reason): PASS, FAIL, NOT_ASSESSABLE, WAIVED or
    NOT_APPLICABLE, read from the gate's ``status`` where it wrote one, else from ``passed`` / ``applicable``."""
    reason = str(result.reason or result.note or "")
    if result.status:
        return str(result.status), reason
    if result.applicable is False:
        return "NOT_APPLICABLE", reason
    if result.disparate_impact is None and result.equal_opportunity_gap is None:
        return "NOT_ASSESSABLE", reason or "fewer than two groups large enough to compare"
    return ("PASS" if result.passed else "FAIL"), reason


def status_label(status: str) -> str:
    """A status as people read it: ``NOT_ASSESSABLE`` → ``NOT ASSESSABLE``."""
    return status.replace("_", " ")


# The fairness gate's statuses, worst first: an attribute's status is its worst metric's.
_GATE_ORDER = ("FAIL", "NOT_ASSESSABLE", "WAIVED", "PASS", "NOT_APPLICABLE")


def _worst_gate_status(statuses: Sequence[str]) -> str:
    """The worst of some gate statuses; a status the gate does not write ranks worst of all."""
    return min(statuses, key=lambda s: _GATE_ORDER.index(s) if s in _GATE_ORDER else -1)


def _metric_status(attribute: str, metric: str, result: AttributeFairness, rule: FairnessRule) -> str:
    """The gate's status for one metric of one attribute: its ``<metric>_status`` column; a row written without
    one is judged by the gate's own :func:`~mlplatform.core.evaluation.fairness_assessment.metric_verdict`."""
    if status := result.metric_status(metric):
        return str(status)
    if result.applicable is False:
        return "NOT_APPLICABLE"
    limit = rule.disparate_impact_min if metric == "disparate_impact" else rule.equal_opportunity_max_gap
    return metric_verdict(attribute, metric, result.measured(metric)[0], limit,
                          higher_is_fair=metric == "disparate_impact", rule=rule)[0]


def _not_assessable_outcome(rule: FairnessRule) -> str:
    """What the gate does with a metric it cannot assess, as the brief says."""
    verb = "fails" if rule.when_not_assessable == "fail" else "only warns"
    return f"which {verb} (thresholds.fairness_when_not_assessable: {rule.when_not_assessable})"


def _positives_per_group(groups: Sequence[Row] | None) -> str:
    """" (hold-out positives per group: a 7, b 22)" from the per-group table; "" when it has no positives."""
    counted = [g for g in groups or [] if g.get("group") is not None and g.get("positives") is not None]
    if not counted:
        return ""
    return " (hold-out positives per group: " + ", ".join(f"{g['group']} {g['positives']:,}" for g in counted) + ")"


def _metric_finding(attribute: str, metric: str, result: AttributeFairness, rule: FairnessRule,
                    groups: Sequence[Row] | None = None) -> tuple[str, str]:
    """One metric of one attribute as the gate judged it: (status, e.g. "WAIVED: ratio 0.624, under the minimum
    0.8 (Fisher p = 0.156, reported only); waived by the brief: <its reason>"), the waiver's reason given once."""
    status = _metric_status(attribute, metric, result, rule)
    value, p_value = result.measured(metric)
    if value is None:
        counted = "rows" if metric == "disparate_impact" else \
            f"positives (a TPR's denominator){_positives_per_group(groups)}"
        text = (f"fewer than two groups with {rule.min_group_size}+ hold-out {counted}, "
                f"{_not_assessable_outcome(rule)}")
        text = text if status == "NOT_ASSESSABLE" else f"not assessable: {text}"  # the status says it otherwise
    elif metric == "disparate_impact":
        relation = "at least" if value >= rule.disparate_impact_min else "under"
        text = f"ratio {value:.3f}, {relation} the minimum {rule.disparate_impact_min:g} (Fisher p = {_p(p_value)}, " \
               "reported only)"
    else:
        relation = "at most" if value <= rule.equal_opportunity_max_gap else "over"
        text = f"TPR gap {value:.3f}, {relation} the maximum {rule.equal_opportunity_max_gap:g} (Fisher p = " \
               f"{_p(p_value)}, reported only)"
    if status == "WAIVED":
        reason = rule.waivers.get((attribute, metric))
        text += (f"; waived by the brief: {reason.strip()}" if reason else
                 f"; waived (the gate's reason: {str(result.reason or NOT_RECORDED).strip()})")
    return status, f"{status_label(status)}: {text}"


def _gate_rule_text(metric: str, rule: FairnessRule) -> str:
    """The gate's rule for one metric, in words, with the brief's thresholds it takes."""
    if metric == "disparate_impact":
        judged = (f"a selection-rate ratio under {rule.disparate_impact_min:g} (thresholds.disparate_impact_min) "
                  f"fails whatever Fisher's p, which is reported only; groups of {rule.min_group_size}+ hold-out "
                  "rows are compared")
    else:
        judged = (f"a true-positive-rate gap over {rule.equal_opportunity_max_gap:g} "
                  f"(thresholds.equal_opportunity_max_gap) fails whatever Fisher's p, which is reported only; groups "
                  f"with {rule.min_group_size}+ hold-out positives are compared")
    return (f"The fairness gate's rule: {judged} (thresholds.fairness_min_group_size), and with fewer than two such "
            f"groups the metric is not assessable, {_not_assessable_outcome(rule)}; a brief's waiver turns a "
            "failing metric into WAIVED.")


def _sentence(text: str) -> str:
    """``text`` ending in exactly one full stop (a waiver's reason may already end in one)."""
    text = text.rstrip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _fairness_line(attribute: str, result: AttributeFairness, rule: FairnessRule) -> str:
    """The card's line on the fairness gate's verdict for one attribute, each metric as the gate judged it."""
    findings = {m: _metric_finding(attribute, m, result, rule) for m in GATE_METRICS}
    status = str(result.status or _worst_gate_status([s for s, _ in findings.values()]))
    return (f"Fairness gate across {attribute}: {status_label(status)}. "
            f"Disparate impact: {_sentence(findings['disparate_impact'][1])} "
            f"Equal opportunity: {_sentence(findings['equal_opportunity'][1])} "
            f"The gate fails a disparate-impact ratio under {rule.disparate_impact_min:g} or a true-positive-rate "
            f"gap over {rule.equal_opportunity_max_gap:g} whatever Fisher's p (reported only); with fewer than two "
            f"groups of {rule.min_group_size}+ hold-out rows (for the TPR gap: positives) a metric is not assessable, "
            f"{_not_assessable_outcome(rule)}.")


def _concept_drift(result: CheckOutcome | None) -> str:
    if not result:
        return "not evaluated yet."
    return f"{result.status}: {result.description or 'no description recorded'}."


def _ethics(facts: CardFacts) -> list[str]:
    brief = facts.brief
    considerations = [brief.problem.ethical_considerations or "The brief records no ethical considerations."]
    features = facts.features
    fairness = facts.fairness or {}
    for attribute in brief.protected_attributes:
        if features is None:
            use = "whether it is a model input was not recorded"
        else:
            inputs = [f for f in features if attribute in f]
            use = f"model inputs derived from it: {', '.join(inputs)}" if inputs else "not a model input"
        considerations.append(f"Protected attribute {attribute}: {use}.")
        result = fairness.get(attribute)
        if result is None:
            considerations.append(f"Fairness across {attribute} was not evaluated.")
            continue
        status, reason = fairness_status(result)
        if status == "NOT_APPLICABLE":
            considerations.append(f"Selection-rate fairness across {attribute} is NOT APPLICABLE "
                                  f"({result.note or reason}); compare the primary metric per group in the "
                                  "sliced metrics.")
            continue
        considerations.append(_fairness_line(attribute, result, fairness_rule(brief)))
    if not brief.protected_attributes:
        considerations.append("The brief names no protected attributes, so fairness was not evaluated.")
    return considerations


@dataclass(frozen=True)
class TrainingData:
    """The card's training data: sources (and the dataset version), size, date range and known biases."""

    source: str
    size: str
    date_range: str
    known_biases: str


@dataclass(frozen=True)
class CardEvaluation:
    """The card's evaluation: the hold-out metrics, the evaluation sets and the metrics by slice."""

    metrics: Mapping[str, Any]
    """Metric → a number or ``{value, ci_low, ci_high}``, rounded to 4 places."""
    datasets: list[str]
    sliced_metrics: Mapping[str, Mapping[str, Mapping[str, Any]]]
    """Dimension → value → ``{n, metric: value, ...}``."""


@dataclass(frozen=True)
class Maintenance:
    """How the model is kept: retraining, monitoring and whom to contact."""

    retraining_schedule: str
    monitoring: str
    contact: str


@dataclass(frozen=True)
class ModelCard:
    """The method's phase-9 model card; its fields, their nesting and their order are the method's template, which
    :meth:`as_dict` gives for the YAML and JSON files."""

    model_name: str
    version: str
    date: str
    owner: str
    description: str
    intended_use: str
    out_of_scope_uses: str
    training_data: TrainingData
    evaluation: CardEvaluation
    limitations: list[str]
    ethical_considerations: list[str]
    maintenance: Maintenance

    def as_dict(self) -> dict[str, Any]:
        """The card as the method's template: nested mappings with exactly its keys, in its order."""
        return asdict(self)


@dataclass(frozen=True)
class CardExtras:
    """What the platform adds beside the method's card (the JSON's ``platform`` part)."""

    promotion_verdict: str
    """The experiment's one promotion verdict."""
    leakage_waivers: Mapping[str, str]
    """Feature → ``WAIVED: <the brief's reason>``."""
    draft_placeholders: list[str]
    """Brief fields still holding placeholders: the card is a DRAFT."""


def build_model_card(facts: CardFacts) -> ModelCard:
    """The method's ``model_card`` structure, filled from the brief and the recorded facts (a fact not recorded
    is stated as such)."""
    brief = facts.brief
    problem = brief.problem
    date_range = _date_range(facts.date_range)
    model_name = facts.model_name or NOT_RECORDED
    model_type = f" ({facts.model_type})" if facts.model_type else ""
    rows = facts.training_rows
    sources = ", ".join(f"{name} ({src.format}: {src.path})" for name, src in brief.sources.items())
    if facts.dataset_version:
        sources += f"; dataset version {facts.dataset_version}"
    parts = brief.split_summary()
    datasets = list(facts.datasets) or [f"validation: {parts['validation']}", f"hold-out: {parts['test']}"]
    protected = ", ".join(brief.protected_attributes)
    known_biases = [f"Data gaps: {problem.data_gaps}" if problem.data_gaps else "No data gaps recorded."]
    if protected and not facts.fairness:
        known_biases.append(f"Outcomes across {protected} were not measured")
    elif protected:
        known_biases.append(f"Outcomes across {protected} are reported under ethical considerations")
    thresholds = brief.thresholds
    monitoring = (f"PSI of each feature against the training data: above {thresholds.psi_warning:g} warns, "
                  f"above {thresholds.psi_critical:g} is critical; prediction drift (KL), label drift "
                  f"(chi-square); {metric_label(brief.metrics.primary)} compared once labels arrive "
                  f"({brief.label.delay_days} days); guardrails: "
                  f"{', '.join(metric_label(m) for m in brief.metrics.guardrails) or 'none'}.")
    card_date = facts.date
    return ModelCard(
        model_name=model_name,
        version=str(facts.model_version or NOT_RECORDED),
        date=card_date.isoformat() if isinstance(card_date, date) else (card_date or NOT_RECORDED),
        owner=brief.owner,
        description=f"{facts.model_name or 'The model (name not recorded)'}{model_type}, "
                    f"a {problem.ml_task_type} model predicting: "
                    f"{problem.prediction_target}. Label: {brief.label.definition}.",
        intended_use=f"{problem.business_objective}. Predictions go to: {problem.prediction_consumer} "
                     f"({problem.latency_requirement}). Success: {problem.success_metric}.",
        out_of_scope_uses=f"Predicting anything other than the target above; {brief.entity}s or periods "
                          f"outside the training data ({date_range}); decisions that treat people "
                          f"differently by a protected attribute{f' ({protected})' if protected else ''}.",
        training_data=TrainingData(
            source=sources,
            size=f"{rows:,} rows" if rows is not None else NOT_RECORDED,
            date_range=date_range,
            known_biases="; ".join(known_biases),
        ),
        evaluation=CardEvaluation(
            metrics={name: _metric(v) for name, v in (facts.metrics or {}).items()},
            datasets=datasets,
            sliced_metrics=_sliced(facts.sliced_metrics),
        ),
        limitations=_limitations(facts, date_range),
        ethical_considerations=_ethics(facts),
        maintenance=Maintenance(
            retraining_schedule=facts.retraining_schedule or NOT_RECORDED,
            monitoring=f"{monitoring} Concept drift (the concept_drift check's latest result): "
                       f"{_concept_drift(facts.concept_drift)}",
            contact=brief.owner,
        ),
    )


def card_extras(facts: CardFacts) -> CardExtras:
    """What the platform adds beside the method's card: the experiment's one promotion verdict, leakage waivers
    (WAIVED with their reason) and the brief fields still holding placeholders (a DRAFT card)."""
    return CardExtras(
        promotion_verdict=facts.promotion_verdict or NOT_RECORDED,
        leakage_waivers={feature: f"WAIVED: {reason}" for feature, reason in facts.leakage_waivers.items()},
        draft_placeholders=list(facts.placeholders),
    )


PASS, FAIL, NOT_APPLICABLE = "pass", "fail", "not applicable"
WAIVED, NOT_ASSESSABLE = "waived", "not assessable"
# The fairness gate's metric statuses as checklist statuses.
_GATE_STATUS = {"PASS": PASS, "FAIL": FAIL, "WAIVED": WAIVED, "NOT_ASSESSABLE": NOT_ASSESSABLE,
                "NOT_APPLICABLE": NOT_APPLICABLE}

# The method's phase-9 bias checklist (偏见检测检查清单), in its order: (key, what it asks, the method's words).
BIAS_CHECKLIST = [
    ("representation", "Training data represents every demographic group in proportion",
     "训练数据能够按比例代表所有人口统计群体"),
    ("sliced_metrics", "Performance is broken down by protected attribute", "按保护属性分解性能指标"),
    ("equal_opportunity", "Equal opportunity: similar true-positive rates across groups",
     "确保不同群体之间的机会均等：真正正例率相似"),
    ("calibration", "Calibrated: predicted probabilities match observed rates in every group",
     "进行校准：预测概率与实际概率相匹配"),
    ("proxy_features", "No proxy features standing in for a protected attribute",
     "不使用代表保护属性的代理特征（例如邮政编码代表种族）"),
    ("thresholds_before_training", "Fairness thresholds chosen and defined before training",
     "在训练之前选择并定义公平性指标的阈值"),
    ("disparate_impact", "Disparate-impact ratio above 0.8 (the 80% rule)", "不同情况的影响比率大于0.8（80%的规则）"),
    ("edge_cases", "Edge cases tested: behaviour on uncommon inputs", "测试极端情况：测试不常见输入时的系统表现"),
]


def _group_name(value: Any) -> str:
    return "unknown" if value is None else str(value)


def _representation(evidence: BiasEvidence) -> tuple[str, str]:
    brief = evidence.brief
    found, failures = [], []
    minimum, min_rows = evidence.representation_min_ratio, brief.thresholds.fairness_min_group_size
    for attribute, rows in evidence.representation.items():
        known = [r for r in rows if r["group"] is not None]
        for r in known:
            if r["train_rows"] < min_rows or r["ratio"] is None or r["ratio"] < minimum:
                failures.append(f"{attribute}={r['group']} ({r['train_rows']:,} training rows, "
                                f"share {r['train_share']:.1%} vs {_pct(r['reference_share'])} in the hold-out)")
        lowest = min((r for r in known if r["ratio"] is not None), key=lambda r: r["ratio"], default=None)
        if lowest is not None:
            found.append(f"{attribute}: lowest training/hold-out share ratio {lowest['ratio']:.2f} ({lowest['group']}) "
                         f"over {len(known)} groups")
    rule = f"a group fails under {min_rows} training rows or a share ratio under {minimum:g}"
    if failures:
        return FAIL, f"Under-represented: {'; '.join(failures)}. ({rule})"
    return PASS, f"{'; '.join(found)} ({rule})."


def _pct(value: float | None) -> str:
    return NOT_RECORDED if value is None else f"{value:.1%}"


def _sliced_by_protected(evidence: BiasEvidence) -> tuple[str, str]:
    parts, failures = [], []
    for attribute, groups in evidence.fairness_groups.items():
        assessed = [g for g in groups if g["assessed"]]
        metric = groups[0]["primary_metric"] if groups else "metric"
        if len(assessed) < 2:
            failures.append(f"{attribute}: fewer than two groups large enough to assess")
            continue
        parts.append(f"{metric_label(metric)} by {attribute}: " + ", ".join(
            f"{_group_name(g['group'])} {g['primary_value']:.3f} (n {g['n']:,})" for g in assessed))
    if failures:
        return FAIL, "; ".join(failures) + "."
    return PASS, "; ".join(parts) + "."


def _gate_item(evidence: BiasEvidence, metric: str) -> tuple[str, str]:
    """A checklist item the fairness gate decides (``disparate_impact`` or ``equal_opportunity``): the gate's
    status and numbers per attribute, from its table, and the gate's rule with the brief's thresholds."""
    if not_applicable := _decision_free(evidence):
        return NOT_APPLICABLE, not_applicable
    rule, groups = fairness_rule(evidence.brief), evidence.fairness_groups
    statuses, parts = [], []
    for attribute, result in evidence.fairness.items():
        status, text = _metric_finding(attribute, metric, result, rule, groups.get(attribute))
        statuses.append(status)
        parts.append(_sentence(f"{attribute}: {text}"))
    return _GATE_STATUS.get(_worst_gate_status(statuses), FAIL), " ".join([*parts, _gate_rule_text(metric, rule)])


def _decision_free(evidence: BiasEvidence) -> str:
    """Why selection-rate fairness does not apply (every attribute marked ``applicable`` False, e.g. a regression
    model), or "" when it does."""
    results = list(evidence.fairness.values())
    if results and all(r.applicable is False for r in results):
        return (f"{results[0].note or 'the model makes no selection decision'}; the primary metric per "
                "group is under 'sliced_metrics'.")
    return ""


def _p(value: float | None) -> str:
    return NOT_RECORDED if value is None else f"{value:.3g}"


def _group_calibration(evidence: BiasEvidence) -> tuple[str, str]:
    brief = evidence.brief
    if brief.task_type != "binary":
        return NOT_APPLICABLE, f"A {brief.task_type} model gives no probability of a positive outcome to calibrate."
    limit, alpha = evidence.max_calibration_gap, brief.thresholds.fairness_significance
    failures, parts = [], []
    for attribute, groups in evidence.fairness_groups.items():
        for g in (g for g in groups if g["assessed"]):
            if "calibration_gap" not in g:
                return FAIL, f"Calibration per {attribute} group was not recorded."
            text = (f"{attribute}={_group_name(g['group'])} predicted {g['mean_score']:.3f} vs observed "
                    f"{g['observed_rate']:.3f} (p = {g['calibration_p_value']:.3g}, ECE {g['ece']:.3f})")
            parts.append(text)
            if abs(g["calibration_gap"]) > limit and g["calibration_p_value"] < alpha:
                failures.append(text)
    rule = f"a group fails when |predicted − observed| exceeds {limit:g} and the binomial test gives p < {alpha:g}"
    if failures:
        return FAIL, f"Miscalibrated: {'; '.join(failures)} ({rule})."
    return PASS, f"{'; '.join(parts)} ({rule})."


def _proxies(evidence: BiasEvidence) -> tuple[str, str]:
    limit, found, flagged = evidence.proxy_max_auc, [], []
    for attribute, rows in evidence.proxies.items():
        scored = [r for r in rows if r["auc"] is not None]
        flagged += [f"{r['feature']} predicts {attribute}={r['group']} with AUC {r['auc']:.3f}"
                    for r in scored if r["auc"] >= limit]
        top = max(scored, key=lambda r: r["auc"], default=None)
        if top is not None:
            found.append(f"{attribute}: strongest single feature {top['feature']} (AUC {top['auc']:.3f} for "
                         f"{top['group']}) over {len(rows)} features")
    rule = (f"each model input alone, binned, predicting each group on rows it was not fitted on; a proxy has "
            f"AUC ≥ {limit:g}")
    if flagged:
        return FAIL, f"Proxies: {'; '.join(flagged)} ({rule})."
    return PASS, f"{'; '.join(found)} ({rule})."


def _thresholds_before_training(brief: Brief) -> tuple[str, str]:
    fairness = ("disparate_impact_min", "equal_opportunity_max_gap", "fairness_min_group_size",
                "fairness_significance")
    chosen = brief.thresholds.model_fields_set if "thresholds" in brief.model_fields_set else set()
    named = [f"{name} {getattr(brief.thresholds, name):g}" for name in fairness if name in chosen]
    defaults = [f"{name} {getattr(brief.thresholds, name):g}" for name in fairness if name not in chosen]
    rest = (f"; platform defaults for {', '.join(defaults)}" if defaults else "")
    if "disparate_impact_min" not in chosen:
        return FAIL, (f"The brief does not set thresholds.disparate_impact_min; the platform default applied"
                      f"{rest}. Choose it in the brief before training.")
    return PASS, (f"Set in the brief, which every run reads before training and the gates take their limits "
                  f"from: {', '.join(named)}{rest}.")


def _edge_cases(evidence: BiasEvidence) -> tuple[str, str]:
    cases = evidence.edge_cases
    if not cases:
        return FAIL, "No edge-case probe was recorded."
    small = [s for s in evidence.sliced_metrics if s["n"] < SMALL_SLICE_ROWS]
    failed = [f"{c['case']}: {c['detail']}" for c in cases if not c["passed"]]
    probes = ", ".join(f"{c['case']} ({'pass' if c['passed'] else 'FAIL'})" for c in cases)
    smalls = (f" Small slices (under {SMALL_SLICE_ROWS} hold-out rows) are evaluated and flagged, not hidden: "
              + ", ".join(f"{s['dimension']}={s['value']} ({s['n']})" for s in small) + "." if small else "")
    if failed:
        return FAIL, f"Unusual inputs broke the model: {'; '.join(failed)}.{smalls}"
    return PASS, f"The model answered sensibly on {probes}.{smalls}"


def _fails(status: str, brief: Brief) -> bool:
    """Whether an item counts as failing: a fail, or not assessable where the brief fails what the gate cannot
    assess (thresholds.fairness_when_not_assessable: fail)."""
    return status == FAIL or (status == NOT_ASSESSABLE and brief.thresholds.fairness_when_not_assessable == "fail")


@dataclass(frozen=True)
class ChecklistItem:
    """One item of the method's bias checklist, judged; a row of the bias_checklist table."""

    item: str
    """The item's key, e.g. ``disparate_impact``."""
    check: str
    """What the item asks."""
    seed: str
    """The method's own words."""
    status: str
    """pass, fail, waived, not assessable or not applicable."""
    evidence: str
    """The numbers the status rests on, and the rule."""
    fails: bool
    """Whether it counts as failing: a fail, or not assessable where the brief fails what the gate cannot assess."""


def bias_checklist(evidence: BiasEvidence) -> list[ChecklistItem]:
    """The methodology's eight-item bias checklist, each item pass / fail / waived / not assessable / not
    applicable with its evidence.

    Disparate impact and equal opportunity are the fairness gate's verdicts, status and numbers read from its
    table (a row without per-metric statuses is judged by the gate's rule): a ratio under
    ``thresholds.disparate_impact_min`` or a TPR gap over ``thresholds.equal_opportunity_max_gap`` fails whatever
    Fisher's p, which is reported only. Calibration per group fails when its gap crosses the limit and is
    significant, so a handful of rows in a group cannot fail a model alone; the evidence always shows the numbers.
    A protected attribute missing from an item's evidence fails that item.

    Returns:
        One item per checklist entry, in the methodology's order.
    """
    brief = evidence.brief
    protected = brief.protected_attributes
    judged_per_attribute: dict[str, tuple[Mapping[str, object], Any]] = {
        "representation": (evidence.representation, _representation),
        "sliced_metrics": (evidence.fairness_groups, _sliced_by_protected),
        "equal_opportunity": (evidence.fairness, lambda e: _gate_item(e, "equal_opportunity")),
        "calibration": (evidence.fairness_groups, _group_calibration),
        "proxy_features": (evidence.proxies, _proxies),
        "disparate_impact": (evidence.fairness, lambda e: _gate_item(e, "disparate_impact"))}
    items = []
    for key, check, seed in BIAS_CHECKLIST:
        if key == "edge_cases":
            status, found = _edge_cases(evidence)
        elif not protected:
            status, found = NOT_APPLICABLE, "The brief names no protected attributes."
        elif key == "thresholds_before_training":
            status, found = _thresholds_before_training(brief)
        elif missing := [a for a in protected if a not in judged_per_attribute[key][0]]:
            status, found = FAIL, f"No evidence was recorded for {', '.join(missing)}."
        else:
            status, found = judged_per_attribute[key][1](evidence)
        items.append(ChecklistItem(item=key, check=check, seed=seed, status=status, evidence=found,
                                   fails=_fails(status, brief)))
    return items


def _shown(status: str) -> str:
    """A checklist status in the table: anything short of a pass stands out."""
    return f"**{status.upper()}**" if status in (FAIL, WAIVED, NOT_ASSESSABLE) else status


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def model_card_json(card: ModelCard, checklist: Sequence[ChecklistItem] | None = None,
                    extras: CardExtras | None = None) -> str:
    """The card, its bias checklist and :func:`card_extras` as JSON (``{"model_card": ..., "bias_checklist":
    [...], "platform": {...}}``)."""
    return json.dumps({"model_card": card.as_dict(), "bias_checklist": [asdict(item) for item in checklist or []],
                       "platform": asdict(extras) if extras else {}}, indent=2, ensure_ascii=False)


def _checklist_summary(checklist: Sequence[ChecklistItem]) -> str:
    """E.g. "The methodology's bias checklist: 1 of 8 items fail (1 of them not assessable, which
    thresholds.fairness_when_not_assessable: fail fails), 2 waived."."""
    failing = sum(item.fails for item in checklist)
    unassessed = [item.fails for item in checklist if item.status == NOT_ASSESSABLE]
    failing_unassessed = sum(unassessed)
    waived = sum(item.status == WAIVED for item in checklist)
    text = f"The methodology's bias checklist: {failing} of {len(checklist)} items fail"
    if failing_unassessed:
        text += (f" ({failing_unassessed} of them not assessable, which thresholds.fairness_when_not_assessable: "
                 "fail fails)")
    if waived:
        text += f", {waived} waived"
    if len(unassessed) > failing_unassessed:
        text += (f", {len(unassessed) - failing_unassessed} not assessable (a warning under "
                 "thresholds.fairness_when_not_assessable: warn)")
    return text + "."


def render_model_card(card: ModelCard, checklist: Sequence[ChecklistItem] | None = None,
                      extras: CardExtras | None = None) -> str:
    """The card as Markdown for people, followed by the card itself as a YAML block.

    Args:
        card: the card from :func:`build_model_card`.
        checklist: optionally, :func:`bias_checklist`'s items, rendered as a table before the YAML block.
        extras: optionally, :func:`card_extras` (promotion verdict, leakage waivers, DRAFT placeholders).
    """
    training, evaluation, maintenance = card.training_data, card.evaluation, card.maintenance
    draft = draft_notice(list(extras.draft_placeholders) if extras else [])
    lines = [
        f"# Model card: {card.model_name}"
        + ("" if card.version == NOT_RECORDED else f" version {card.version}") + (" (DRAFT)" if draft else ""),
        "",
        *([f"> **{draft}**", ""] if draft else []),
        f"{card.description}",
        "",
        f"- **Date:** {card.date}",
        f"- **Promotion verdict:** {extras.promotion_verdict if extras else NOT_RECORDED}",
        f"- **Owner:** {card.owner}",
        f"- **Intended use:** {card.intended_use}",
        f"- **Out of scope:** {card.out_of_scope_uses}",
        "",
        "## Training data",
        "",
        f"- **Source:** {training.source}",
        f"- **Size:** {training.size}",
        f"- **Date range:** {training.date_range}",
        f"- **Known biases:** {training.known_biases}",
        "",
        "## Evaluation",
        "",
        *(f"- {d}" for d in evaluation.datasets),
        "",
    ]
    metrics = evaluation.metrics
    if metrics:
        lines += ["| metric | value | 95% CI |", "| --- | --- | --- |"]
        for name, entry in metrics.items():
            value = entry.get("value") if isinstance(entry, Mapping) else entry
            ci = (f"[{entry['ci_low']:.3f}, {entry['ci_high']:.3f}]"
                  if isinstance(entry, Mapping) and "ci_low" in entry and "ci_high" in entry else "—")
            lines.append(f"| {metric_label(name)} | {'—' if value is None else f'{value:.3f}'} | {ci} |")
    else:
        lines.append(f"Metrics: {NOT_RECORDED}.")
    waivers = extras.leakage_waivers if extras else {}
    if waivers:
        lines += ["", "## Leakage waivers", "", *(f"- {feature}: {text}" for feature, text in waivers.items())]
    lines += ["", "## Limitations", "", *(f"- {item}" for item in card.limitations),
              "", "## Ethical considerations", "", *(f"- {item}" for item in card.ethical_considerations),
              "", "## Maintenance", "",
              f"- **Retraining:** {maintenance.retraining_schedule}",
              f"- **Monitoring:** {maintenance.monitoring}",
              f"- **Contact:** {maintenance.contact}", ""]
    if checklist:
        lines += ["## Bias checklist", "", _checklist_summary(checklist), "",
                  "| check | result | evidence |", "| --- | --- | --- |",
                  *(f"| {item.check} | {_shown(item.status)} | {_cell(item.evidence)} |" for item in checklist), ""]
    lines += ["## Card (the methodology's template)", "", "```yaml",
              yaml.safe_dump({"model_card": card.as_dict()}, sort_keys=False, allow_unicode=True).rstrip(),
              "```", ""]
    return "\n".join(lines)


def golden_description(brief: Brief, golden_metrics: pl.DataFrame) -> list[str]:
    """The golden test set as the card lists it among its datasets (none when the brief disables it or it is
    empty): size, version and the challenger's metrics, from the evaluation's golden_metrics table."""
    if brief.thresholds.golden_share == 0 or golden_metrics.height == 0:
        return []
    values = ", ".join(f"{r['metric']} {r['value']:.4f}" for r in golden_metrics.iter_rows(named=True))
    return [f"golden test set: {golden_metrics['rows'][0]:,} rows of keys never trained or tuned on "
            f"(version {golden_metrics['golden_version'][0]}); {values}"]


def card_evidence(brief: Brief, candidate: str, train: pl.DataFrame, *, metrics: pl.DataFrame, slices: pl.DataFrame,
                  fairness: pl.DataFrame, drift: pl.DataFrame, quality_points: list[float | None], dataset_version: str,
                  golden_metrics: pl.DataFrame) -> CardFacts:
    """The card's measured facts for the registered ``candidate``, from the training rows and the lake's tables:
    the evaluation's metrics, slices, fairness and golden metrics, the drift report (None when no feature's drift
    applies) and the data-quality points. The registry's and the instance's records are added by the caller."""
    parts = brief.split_summary()
    timestamps = pl.col(brief.label.timestamp)
    return CardFacts(
        brief=brief,
        model_type=FAMILIES_BY_NAME[candidate].model_type,
        training_rows=train.height,
        date_range=train.select(timestamps.dt.date().min().alias("first"),
                                timestamps.dt.date().max().alias("last")).row(0),
        dataset_version=dataset_version,
        features=model_features(brief),
        datasets=[f"validation: {parts['validation']}", f"hold-out: {parts['test']}",
                  *golden_description(brief, golden_metrics)],
        metrics={r["metric"]: {"value": r["value"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]}
                 for r in metrics.filter(pl.col("candidate") == candidate).iter_rows(named=True)},
        sliced_metrics=slice_records(slices),
        fairness={r["attribute"]: AttributeFairness.from_row(r) for r in fairness.to_dicts()},
        drift=None if (drift["severity"] == DRIFT_NOT_APPLICABLE).all() else
        drift.select("feature", "psi", "severity").to_dicts(),
        quality_total=normalised_total(quality_points),
    )
