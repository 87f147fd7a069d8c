"""The seed's phase-9 model card, filled from the brief and run metadata, never by hand.

Every field is either derived from a recorded fact (the brief, row counts, metrics, drift, data quality)
or says plainly that the fact was not recorded. Nothing is invented to make the card look complete.
"""

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import yaml

from mlplatform.brief import Brief
from mlplatform.core.report import SMALL_SLICE_ROWS, metric_label

NOT_RECORDED = "not recorded"


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


def _sliced(slices: Sequence[Mapping[str, Any]] | None) -> dict[str, dict[str, dict[str, Any]]]:
    """Slices as ``{dimension: {value: {n, metric: value, ...}}}``."""
    sliced: dict[str, dict[str, dict[str, Any]]] = {}
    for s in slices or []:
        metrics = {name: _metric(v) for name, v in s["metrics"].items()}
        sliced.setdefault(str(s["dimension"]), {})[str(s["value"])] = {"n": int(s["n"]), **metrics}
    return sliced


def _limitations(brief: Brief, meta: Mapping[str, Any], date_range: str) -> list[str]:
    limitations = [] if meta.get("metrics") else ["Evaluation metrics were not recorded."]
    if date_range == NOT_RECORDED:
        limitations.append("The training period was not recorded, so its coverage in time is unknown.")
    else:
        limitations.append(f"Trained on {date_range} only; behaviour outside that period is unknown.")
    for s in meta.get("sliced_metrics") or []:
        if s["n"] < SMALL_SLICE_ROWS:
            limitations.append(f"Slice {s['dimension']}={s['value']} has only {s['n']} hold-out rows; "
                               "its metrics are uncertain.")
    if meta.get("sliced_metrics") is None:
        limitations.append("Metrics by slice were not recorded.")

    drift = meta.get("drift")
    if drift is None:
        limitations.append("Drift against current data was not measured.")
    else:
        for level in ("critical", "warning"):
            found = sorted((d for d in drift if d["severity"] == level), key=lambda d: -d["psi"])
            if found:
                listed = ", ".join(f"{d['feature']} (PSI {d['psi']:.2f})" for d in found)
                limitations.append(f"Drift ({level}) between training and current data in: {listed}.")

    quality = meta.get("quality_total")
    if quality is None:
        limitations.append("The data-quality score was not recorded.")
    elif quality < 30:
        limitations.append(f"Data quality scored {quality:g}/30 "
                           f"(the gate is {brief.thresholds.quality_min_score:g}/30).")
    if brief.label.delay_days:
        limitations.append(f"Labels arrive {brief.label.delay_days} days after the prediction, so a drop in "
                           f"performance is seen that late at the earliest.")
    return limitations


def _ethics(brief: Brief, meta: Mapping[str, Any]) -> list[str]:
    considerations = [brief.problem.ethical_considerations or "The brief records no ethical considerations."]
    features = meta.get("features")
    fairness = meta.get("fairness") or {}
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
        ratio, gap = result.get("disparate_impact"), result.get("equal_opportunity_gap")
        minimum, p_value = brief.thresholds.disparate_impact_min, result.get("p_value")
        verdict = "passes" if result.get("passed") else "FAILS"
        caveat = ""
        if ratio is not None and ratio < minimum and p_value is not None and result.get("passed"):
            caveat = (f" The ratio is below the minimum but the difference is not statistically significant "
                      f"(Fisher p = {p_value:.3g}); watch it as more labelled data arrives.")
        considerations.append(
            f"Fairness across {attribute} {verdict}: disparate-impact ratio "
            f"{NOT_RECORDED if ratio is None else f'{ratio:.3f}'} (minimum {minimum:g}), equal-opportunity gap "
            f"{NOT_RECORDED if gap is None else f'{gap:.3f}'}.{caveat}")
    if not brief.protected_attributes:
        considerations.append("The brief names no protected attributes, so fairness was not evaluated.")
    return considerations


def build_model_card(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The seed's ``model_card`` structure, filled from the brief and recorded run metadata.

    Args:
        meta: ``brief`` (a :class:`~mlplatform.brief.Brief`, required) and, each optional (stated as
            not recorded when missing): ``model_name``, ``model_version``, ``date``, ``model_type``,
            ``training_rows``, ``date_range`` (``(start, end)`` or a string), ``dataset_version``,
            ``metrics`` (metric → number or ``{value, ci_low, ci_high}``), ``sliced_metrics`` (list of
            ``{dimension, value, n, metrics}``), ``datasets`` (list of evaluation-set descriptions),
            ``drift`` (list of ``{feature, psi, severity}``, e.g. ``asdict`` of
            :class:`~mlplatform.core.drift.FeatureDrift`), ``quality_total`` (data-quality score /30),
            ``features`` (model input names), ``fairness`` (protected attribute → ``{disparate_impact,
            equal_opportunity_gap, passed}``), ``retraining_schedule``.

    Returns:
        A dict with exactly the seed's keys and nesting.
    """
    brief: Brief = meta["brief"]
    problem = brief.problem
    date_range = _date_range(meta.get("date_range"))
    model_name = meta.get("model_name") or NOT_RECORDED
    model_type = f" ({meta['model_type']})" if meta.get("model_type") else ""
    rows = meta.get("training_rows")
    sources = ", ".join(f"{name} ({src.format}: {src.path})" for name, src in brief.sources.items())
    if meta.get("dataset_version"):
        sources += f"; dataset version {meta['dataset_version']}"
    split = brief.split
    holdout_end = f" to before {split.test_end}" if split.test_end else " on"
    datasets = meta.get("datasets") or [
        f"validation: labels from {split.validation_start} to before {split.test_start}",
        f"hold-out: labels from {split.test_start}{holdout_end}, never used for fitting or tuning",
    ]
    protected = ", ".join(brief.protected_attributes)
    known_biases = [f"Data gaps: {problem.data_gaps}" if problem.data_gaps else "No data gaps recorded."]
    if protected and not meta.get("fairness"):
        known_biases.append(f"Outcomes across {protected} were not measured")
    elif protected:
        known_biases.append(f"Outcomes across {protected} are reported under ethical considerations")
    thresholds = brief.thresholds
    monitoring = (f"PSI of each feature against the training data: above {thresholds.psi_warning:g} warns, "
                  f"above {thresholds.psi_critical:g} is critical; prediction drift (KL), label drift "
                  f"(chi-square); {metric_label(brief.metrics.primary)} compared once labels arrive "
                  f"({brief.label.delay_days} days); guardrails: "
                  f"{', '.join(metric_label(m) for m in brief.metrics.guardrails) or 'none'}.")
    card_date = meta.get("date")
    return {
        "model_name": model_name,
        "version": str(meta.get("model_version") or NOT_RECORDED),
        "date": card_date.isoformat() if isinstance(card_date, date) else (card_date or NOT_RECORDED),
        "owner": brief.owner,
        "description": f"{meta.get('model_name') or 'The model (name not recorded)'}{model_type}, "
                       f"a {problem.ml_task_type} model predicting: "
                       f"{problem.prediction_target}. Label: {brief.label.definition}.",
        "intended_use": f"{problem.business_objective}. Predictions go to: {problem.prediction_consumer} "
                        f"({problem.latency_requirement}). Success: {problem.success_metric}.",
        "out_of_scope_uses": f"Predicting anything other than the target above; {brief.entity}s or periods "
                             f"outside the training data ({date_range}); decisions that treat people "
                             f"differently by a protected attribute{f' ({protected})' if protected else ''}.",
        "training_data": {
            "source": sources,
            "size": f"{rows:,} rows" if rows is not None else NOT_RECORDED,
            "date_range": date_range,
            "known_biases": "; ".join(known_biases),
        },
        "evaluation": {
            "metrics": {name: _metric(v) for name, v in (meta.get("metrics") or {}).items()},
            "datasets": datasets,
            "sliced_metrics": _sliced(meta.get("sliced_metrics")),
        },
        "limitations": _limitations(brief, meta, date_range),
        "ethical_considerations": _ethics(brief, meta),
        "maintenance": {
            "retraining_schedule": meta.get("retraining_schedule") or NOT_RECORDED,
            "monitoring": monitoring,
            "contact": brief.owner,
        },
    }


def render_model_card(card: Mapping[str, Any]) -> str:
    """The card as Markdown for people, followed by the card itself as a YAML block.

    Args:
        card: a dict from :func:`build_model_card`.
    """
    training, evaluation, maintenance = card["training_data"], card["evaluation"], card["maintenance"]
    lines = [
        f"# Model card: {card['model_name']}"
        + ("" if card["version"] == NOT_RECORDED else f" version {card['version']}"),
        "",
        f"{card['description']}",
        "",
        f"- **Date:** {card['date']}",
        f"- **Owner:** {card['owner']}",
        f"- **Intended use:** {card['intended_use']}",
        f"- **Out of scope:** {card['out_of_scope_uses']}",
        "",
        "## Training data",
        "",
        f"- **Source:** {training['source']}",
        f"- **Size:** {training['size']}",
        f"- **Date range:** {training['date_range']}",
        f"- **Known biases:** {training['known_biases']}",
        "",
        "## Evaluation",
        "",
        *(f"- {d}" for d in evaluation["datasets"]),
        "",
    ]
    metrics = evaluation["metrics"]
    if metrics:
        lines += ["| metric | value | 95% CI |", "| --- | --- | --- |"]
        for name, entry in metrics.items():
            value = entry.get("value") if isinstance(entry, Mapping) else entry
            ci = (f"[{entry['ci_low']:.3f}, {entry['ci_high']:.3f}]"
                  if isinstance(entry, Mapping) and "ci_low" in entry and "ci_high" in entry else "—")
            lines.append(f"| {metric_label(name)} | {'—' if value is None else f'{value:.3f}'} | {ci} |")
    else:
        lines.append(f"Metrics: {NOT_RECORDED}.")
    lines += ["", "## Limitations", "", *(f"- {item}" for item in card["limitations"]),
              "", "## Ethical considerations", "", *(f"- {item}" for item in card["ethical_considerations"]),
              "", "## Maintenance", "",
              f"- **Retraining:** {maintenance['retraining_schedule']}",
              f"- **Monitoring:** {maintenance['monitoring']}",
              f"- **Contact:** {maintenance['contact']}",
              "", "## Card (seed template)", "", "```yaml",
              yaml.safe_dump({"model_card": dict(card)}, sort_keys=False, allow_unicode=True).rstrip(),
              "```", ""]
    return "\n".join(lines)
