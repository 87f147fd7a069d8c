"""Stage: the MLflow model registry and the blocking promotion gate (method phase 5).

`challenger` and `champion` are MLflow aliases (staging and production). Only the gate moves `champion`.
"""


import dagster as dg
import polars as pl

from mlplatform import asset_names
from mlplatform.brief import Brief
from mlplatform.core import tables
from mlplatform.core.budgets import directory_size_mb, single_row_latency_ms
from mlplatform.core.calibration import CALIBRATOR_FILE
from mlplatform.core.evaluation.fairness_assessment import AttributeFairness
from mlplatform.core.markdown import table
from mlplatform.core.metrics import compute_metrics
from mlplatform.core.model_families import model_dir
from mlplatform.core.model_integrity import record_artifact_hashes
from mlplatform.core.models import load_candidate
from mlplatform.core.promotion import GoldenScore, Scorer, decision_table, judge_challenger, score_golden
from mlplatform.core.retraining import record_fit_rows
from mlplatform.core.rollout.champion import promote_challenger, start_canary
from mlplatform.core.rollout.policy import policy_for
from mlplatform.core.rollout.prediction_log import log_clock_ns, read_prediction_log
from mlplatform.core.rollout.registry import rollout_state
from mlplatform.core.tracking import (
    MODEL_ARTIFACT_PATH,
    client_for,
    dataset_version,
    register_model,
    set_alias,
    set_verdict,
)
from mlplatform.core.training import SplitFrames
from mlplatform.resources.platform import PlatformResource, TrackingResource
from mlplatform.stage_io import challenger_name, load_champion, load_split, scored_hold_out


@dg.asset(name=asset_names.MODEL_REGISTRY, group_name="registry",
          deps=[asset_names.EVALUATION_REPORT, tables.CHALLENGER.asset_key], kinds={"mlflow"})
def model_registry(platform: PlatformResource, tracking: TrackingResource) -> dg.MaterializeResult:
    """The challenger (the candidate chosen on validation) registered as a new model version with the
    `challenger` alias; a calibrator the evaluation fitted (calibrator.json) is registered with it, and every
    file's SHA-256 is recorded on the version."""
    name = challenger_name(platform)
    run_id = platform.read_table(tables.candidate(name))["run_id"][0]
    calibrator = model_dir(platform.workspace.models_dir, name) / CALIBRATOR_FILE
    if calibrator.exists():  # into the run's model folder before registering, so the version holds it
        client_for(tracking.uri).log_artifact(run_id, str(calibrator), MODEL_ARTIFACT_PATH)
    version = register_model(tracking.uri, tracking.model_name, run_id, MODEL_ARTIFACT_PATH)
    # Each file's SHA-256 as a version tag: serving loads only files that match it (safe loading).
    record_artifact_hashes(tracking.uri, tracking.model_name, version)
    record_fit_rows(tracking.uri, tracking.model_name, version, load_split(platform))
    # The `challenger` alias is what serving's B arm answers with: while a canary gives it traffic, a new
    # (not yet judged) version must not take that traffic over. The gate reads the version from the lake.
    state = rollout_state(tracking.uri, tracking.model_name)
    canary = state.challenger_share > 0 and state.challenger not in (None, state.champion)
    if not canary:
        set_alias(tracking.uri, tracking.model_name, "challenger", version)
    platform.write_table(tables.REGISTERED_CHALLENGER, pl.DataFrame({"version": [version], "run_id": [run_id],
                                                                 "candidate": [name]}))
    alias = (f"not moved: version {state.challenger} serves a {state.challenger_share:.0%} canary"
             if canary else "challenger")
    return dg.MaterializeResult(metadata={"model_name": tracking.model_name, "version": version, "candidate": name,
                                          "run_id": run_id, "alias": alias,
                                          "calibrator": CALIBRATOR_FILE if calibrator.exists() else "none"})


def _incumbent(platform: PlatformResource, tracking: TrackingResource, challenger_version: str):
    """The champion the challenger is judged against as ``(version, model)``; ``(None, None)`` before the first
    promotion or when the challenger already is the champion."""
    version, model = load_champion(platform, tracking)
    if version is None or version == challenger_version:
        return None, None
    return version, model


def _champion_metrics(platform: PlatformResource, champion, split) -> dict[str, float] | None:
    """The champion's metrics on the hold-out rows the challenger's were computed on; None without a champion."""
    if champion is None:
        return None
    b = platform.brief
    test = scored_hold_out(platform, split)[0].test
    return compute_metrics(b.task_type, test[b.label.column].to_numpy(), champion.predict_score(test),
                           champion.threshold)


def _golden_score(platform: PlatformResource, split, challenger, champion) -> GoldenScore | None:
    """Both models on the golden test set the evaluation wrote (None when the brief disables it), with how many of
    its keys leaked into the split."""
    b = platform.brief
    if b.thresholds.golden_share == 0:
        return None
    golden = platform.read_table(tables.GOLDEN)
    split_keys = pl.concat([part.select(b.entity_key) for part in (split.train, split.validation, split.test)])
    leaked = golden.select(b.entity_key).unique().join(split_keys.unique(), on=b.entity_key).height
    return score_golden(b.task_type, b.metrics.primary, golden, b.label.column, challenger, champion,
                        version=dataset_version(golden), min_class_rows=b.thresholds.golden_min_class_rows,
                        leaked_keys=leaked, seed=b.training.seed)


def _latency_ms(brief: Brief, model: Scorer, split: SplitFrames) -> float:
    """The challenger's p95 latency for one row, over the test rows; measured again while over the brief's budget
    (see :func:`~mlplatform.core.budgets.single_row_latency_ms`)."""
    return single_row_latency_ms(model.predict_score, split.test, budget_ms=brief.thresholds.max_latency_ms)


def _record_golden(tracking: TrackingResource, run_id: str, golden: GoldenScore | None, primary: str) -> None:
    """The golden set's version and the challenger's metric on it, on the challenger's MLflow run."""
    if golden is None or golden.rows == 0:
        return
    client = client_for(tracking.uri)
    client.set_tag(run_id, "golden_set_version", golden.version)
    client.log_metric(run_id, f"golden_{primary}", golden.challenger)


@dg.asset_check(asset=asset_names.MODEL_REGISTRY, blocking=True,
                additional_deps=[t.asset_key for t in (tables.METRICS, tables.FAIRNESS, tables.GOLDEN)],
                description="Promotion gate: the challenger must beat the champion (or, without one, every "
                "baseline) on the primary metric, regress no guardrail, not fall more than the brief allows below "
                "the champion on the golden test set, pass fairness and meet the size and latency budgets.")
def promotion_gate(platform: PlatformResource, tracking: TrackingResource) -> dg.AssetCheckResult:
    b = platform.brief
    split = load_split(platform)
    registered = platform.read_table(tables.REGISTERED_CHALLENGER).row(0, named=True)
    challenger_version = registered["version"]
    folder = model_dir(platform.workspace.models_dir, registered["candidate"])
    champion_version, incumbent = _incumbent(platform, tracking, challenger_version)
    model = load_candidate(folder)
    golden = _golden_score(platform, split, model, incumbent)
    _record_golden(tracking, registered["run_id"], golden, b.metrics.primary)
    fairness = platform.read_table(tables.FAIRNESS)
    decision = judge_challenger(b, platform.read_table(tables.METRICS), registered["candidate"],
                                _champion_metrics(platform, incumbent, split), size_mb=directory_size_mb(folder),
                                latency_ms=_latency_ms(b, model, split),
                                fairness=[AttributeFairness.from_row(r) for r in fairness.to_dicts()], golden=golden)
    if not decision.promote:  # the experiment record's final verdict; `champion_model` records "promoted"
        set_verdict(tracking.uri, registered["run_id"], "archived")
    platform.write_table(tables.PROMOTION, decision_table(challenger_version, champion_version, decision))
    return dg.AssetCheckResult(
        passed=decision.promote, description=decision.summary,
        metadata={"challenger_version": challenger_version, "champion_version": champion_version or "none",
                  "reasons": dg.MetadataValue.md(decision.reasons_markdown),
                  "evidence": dg.MetadataValue.json(decision.evidence),
                  "fairness": dg.MetadataValue.md(table(fairness))})


@dg.asset(name=asset_names.CHAMPION_MODEL, group_name="registry", deps=[asset_names.MODEL_REGISTRY], kinds={"mlflow"})
def champion_model(platform: PlatformResource, tracking: TrackingResource) -> dg.MaterializeResult:
    """The production model, once the promotion gate passed: the `champion` alias moved to the challenger (the
    previous champion is kept for rollback); or, with `monitoring.retrain_rollout: canary` while a champion
    serves, a canary: the challenger gets the first canary share of traffic and `serving_rollout` takes it on."""
    promotion = platform.read_table(tables.PROMOTION).row(0, named=True)
    version = promotion["challenger_version"]
    if not promotion["promote"]:
        raise RuntimeError(f"the promotion gate refused version {version}: {promotion['reasons']}")
    uri, name = tracking.uri, tracking.model_name
    champion = rollout_state(uri, name).champion
    canary = platform.brief.monitoring.retrain_rollout == "canary"
    if canary and champion is not None and champion != version:
        # From the prediction log's clock: the canary's rows are the ones logged after this decision.
        move = start_canary(uri, name, version, champion, policy_for(platform.brief).canary_steps[0],
                            since_ns=log_clock_ns(read_prediction_log(platform.workspace)))
    else:
        run_id = platform.read_table(tables.REGISTERED_CHALLENGER)["run_id"][0]
        move = promote_challenger(uri, name, version, run_id, canary_asked=canary)
    platform.write_table(tables.ROLLOUT, pl.DataFrame({
        "challenger_version": [version], "action": [move.action], "champion_version": [move.champion_version],
        "challenger_share": [move.challenger_share]}))
    return dg.MaterializeResult(metadata={"model_name": name, "action": move.action, **move.metadata()})


def build(brief) -> list:
    return [model_registry, promotion_gate, champion_model]
