"""Stage: the model in front of traffic (method phases 5 and 8): the A/B test report, the canary and the automatic
rollback, all read from the serving app's prediction log and acted on through the registry's aliases. Each
rollback, canary step and verdict is appended to the notifications log (and POSTed to the brief's webhook).
"""

import json

import dagster as dg
import polars as pl
import yaml

from mlplatform import asset_names
from mlplatform.core import tables
from mlplatform.core.io import write_text_atomic
from mlplatform.core.retraining import notify
from mlplatform.core.rollout.ab_report import ab_report
from mlplatform.core.rollout.canary import ServingJudge, canary_move, rollback_reasons
from mlplatform.core.rollout.policy import policy_for
from mlplatform.core.rollout.prediction_log import (
    attach_labels,
    log_clock_ns,
    prediction_log_dir,
    read_prediction_log,
)
from mlplatform.core.rollout.registry import (
    RolloutState,
    apply_canary_step,
    previous_champion,
    rollback,
    rollout_state,
)
from mlplatform.resources.platform import PlatformResource, TrackingResource


def _labelled_log(platform: PlatformResource) -> pl.DataFrame:
    """The prediction log, each row with its label where the outcome is known by now."""
    b = platform.brief
    log = read_prediction_log(platform.workspace)
    if log.height == 0:
        return log
    labels = platform.read_table(tables.validated(b.label.source))
    return attach_labels(log, labels, b.entity_key, b.label.timestamp, b.label.column, b.label.delay_days)


def _ab(platform: PlatformResource, log: pl.DataFrame, state: RolloutState):
    """The A/B test report of the running champion / challenger pair on the labelled log."""
    b = platform.brief
    return ab_report(log, state, task=b.task_type, label=b.label.column, primary=b.metrics.primary,
                     guardrails=b.metrics.guardrails, hypothesis=b.hypothesis,
                     name=f"{b.name}: version {state.challenger} vs {state.champion}", policy=policy_for(b),
                     entity_key=b.entity_key)


@dg.asset(name=asset_names.AB_TEST_REPORT, group_name="serving", deps=[asset_names.CHAMPION_MODEL],
          kinds={"mlflow", "parquet"})
def ab_test_report(platform: PlatformResource, tracking: TrackingResource) -> dg.MaterializeResult:
    """The champion/challenger A/B test in the method's template (hypothesis, primary metric, guardrails, split,
    minimum sample size from a power analysis at the control arm's level, minimum runtime) with the test of the
    brief's primary metric (bootstrap, or the z-test for a rate), the p-value and the decision ship / iterate /
    kill, from the serving app's prediction log (since the canary started) and the labels known so far."""
    state = rollout_state(tracking.uri, tracking.model_name)
    report = _ab(platform, _labelled_log(platform), state)
    results = report["results"]
    path = platform.workspace.reports_dir / "ab_test_report.yaml"
    if path.exists() and not state.canary_running and results["predictions"]["treatment"] == 0:
        # A challenger that never served (refused by the gate, or no canary started) is in no A/B test: the report
        # of the last test that had traffic stands.
        reason = f"version {state.challenger} has served no traffic; the last A/B test's report stands"
        return dg.MaterializeResult(metadata={"decision": "none", "reason": reason,
                                              "path": dg.MetadataValue.path(str(path))})
    text = yaml.safe_dump(report, sort_keys=False, allow_unicode=True)
    write_text_atomic(text, path)
    return dg.MaterializeResult(metadata={
        "decision": results["decision"], "reason": results["reason"],
        "primary_metric": report["ab_test"]["primary_metric"],
        "p_value": results["p_value"] if results["p_value"] is not None else "n/a",
        "minimum_sample_size": report["ab_test"]["minimum_sample_size"] or "n/a",
        "predictions": dg.MetadataValue.json(results["predictions"]),
        "report": dg.MetadataValue.md(f"```yaml\n{text}```"), "path": dg.MetadataValue.path(str(path))})


def _announce(platform: PlatformResource, context: dg.AssetExecutionContext, action: str, **details) -> None:
    """A rollout event in the notifications log, with the run that decided it."""
    notify(platform.workspace.root / "notifications.jsonl",
           {"event": "rollout", "run_id": context.run.run_id, "job": context.run.job_name, "action": action,
            **details}, platform.brief.monitoring.webhook_url)


@dg.asset(name=asset_names.SERVING_ROLLOUT, group_name="serving", deps=[asset_names.CHAMPION_MODEL], kinds={"mlflow"})
def serving_rollout(context: dg.AssetExecutionContext, platform: PlatformResource,
                    tracking: TrackingResource) -> dg.MaterializeResult:
    """The automatic rollback, the canary and the A/B verdict, applied to the registry: roll the champion back when
    its error rate or p99 latency (over ``rollout.degradation_factor`` x) or its primary metric (down more than
    ``monitoring.max_metric_drop``) regressed against the previous champion's; else step a running canary through
    ``rollout.canary_steps`` while its guardrails hold, abort it on a breach or an A/B kill, promote on an A/B ship."""
    uri, name, judge = tracking.uri, tracking.model_name, ServingJudge.of(platform.brief)
    log, state = _labelled_log(platform), rollout_state(uri, name)
    metadata: dict = {"champion": state.champion or "none", "challenger": state.challenger or "none",
                      "challenger_share": state.challenger_share, "logged_predictions": log.height}
    reasons = rollback_reasons(judge, log, state, previous_champion(uri, name))
    metadata |= {} if reasons is None else {"rollback_reasons": reasons or "none"}
    if reasons:
        rolled_back, restored = rollback(uri, name)
        _announce(platform, context, "rolled back", version=rolled_back, restored=restored, reason="; ".join(reasons))
        return dg.MaterializeResult(metadata={**metadata, "action": f"rolled back {rolled_back} -> {restored}"})
    if not (log.height and state.canary_running):
        return dg.MaterializeResult(metadata={**metadata, "action": "none: no challenger traffic to judge"})
    results = _ab(platform, log, state)["results"]
    step = canary_move(judge, log, state, results["decision"], results["reason"])
    apply_canary_step(uri, name, state, step, since_ns=log_clock_ns(log))
    if step.action != "hold":
        _announce(platform, context, f"canary {step.action}", version=state.challenger, champion=state.champion,
                  share=step.share, ab_decision=results["decision"], reason=step.reason)
    return dg.MaterializeResult(metadata={**metadata, "action": f"canary {step.action} to {step.share:.0%}",
                                          "reason": step.reason, "ab_decision": results["decision"],
                                          "ab_reason": results["reason"]})


def build(brief) -> list:
    serving_job = dg.define_asset_job(
        "serving_job", selection=dg.AssetSelection.assets(serving_rollout, ab_test_report),
        description="Judge the served models from the prediction log: rollback, canary step, A/B report.",
        tags={"mlplatform/namespace": brief.name}, executor_def=dg.in_process_executor)

    @dg.sensor(job=serving_job, minimum_interval_seconds=brief.monitoring.serving_interval_s,
               default_status=dg.DefaultSensorStatus.STOPPED,
               description="Rollback rule, canary step and A/B report whenever predictions are logged.")
    def serving_guard_sensor(context: dg.SensorEvaluationContext, platform: PlatformResource,
                             tracking: TrackingResource):
        """Runs the rollback rule, the canary step and the A/B analysis whenever new predictions were logged or
        new labels reached the training set (the delayed outcomes the A/B test and the metric rule need), while
        there is something to judge: a running canary, or a champion with an earlier one to roll back to. The
        registry is read only when there is news: most ticks find none, and a registry read costs several times
        what the rest of a tick does."""
        seen = json.loads(context.cursor) if context.cursor and context.cursor.startswith("{") else {}
        parts = sorted(prediction_log_dir(platform.workspace).glob("part-*.parquet"))
        if not parts:
            return dg.SkipReason("no predictions logged yet")
        labels = context.instance.fetch_materializations(dg.AssetKey(asset_names.TRAINING_SET), limit=1).records
        current = {"part": parts[-1].name, "labels": labels[0].storage_id if labels else None}
        news = [what for what in ("part", "labels") if current[what] != seen.get(what)]
        if not news:
            return dg.SkipReason("no new predictions or labels")
        # Seen, whatever follows: the traffic a later canary or promotion is judged on is logged after it starts.
        context.update_cursor(json.dumps(current))
        try:
            state = rollout_state(tracking.uri, tracking.model_name)
        except LookupError:
            return dg.SkipReason("no model registered yet")
        if not state.canary_running and previous_champion(tracking.uri, tracking.model_name) is None:
            return dg.SkipReason(f"nothing to judge: version {state.champion} serves alone, with no canary and no "
                                 "earlier champion to roll back to")
        return dg.RunRequest(run_key=f"{current['part']}:{current['labels']}",
                             tags={"mlplatform/trigger": "serving", "mlplatform/reason":
                                   " and ".join({"part": "new predictions logged",
                                                 "labels": "new labels arrived"}[w] for w in news)})

    return [serving_rollout, ab_test_report, serving_job, serving_guard_sensor]
