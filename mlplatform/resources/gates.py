"""Blocking gates that hold across runs.

Dagster's ``blocking=True`` stops a check's downstream assets only inside the run that evaluated the check: a
later run that materialises a child alone (``--select features_daily``, a UI click, a sensor's request) would
build on data the gate refused. Before a run starts, :func:`refuse_failed_gates` reads the latest evaluation of
every blocking gate on the parents of the assets it will materialise, from the Dagster instance, and refuses the
run when one did not pass. A gate evaluated in the run itself is left to Dagster.

A gate never evaluated on the instance does not block: its history lives in the instance, and a fresh one (a
test, a copied data directory) has none.
"""

from collections.abc import Iterable, Sequence

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

# One gate edge as configuration: (child asset, gated parent asset, check name), asset keys as user strings.
GateEdge = list[str]


class GateNotPassedError(RuntimeError):
    """A run would materialise an asset whose upstream blocking gate last failed."""


def blocking_gate_edges(assets: Iterable[dg.AssetsDefinition],
                        checks: Iterable[dg.AssetChecksDefinition]) -> list[GateEdge]:
    """Every (child, parent, gate) where ``gate`` is a blocking check on ``parent`` and ``child`` depends on it."""
    gates: dict[dg.AssetKey, list[str]] = {}
    for check in checks:
        for spec in check.check_specs:
            if spec.blocking:
                gates.setdefault(spec.asset_key, []).append(spec.name)
    edges = []
    for asset in assets:
        for asset_spec in asset.specs:
            for dep in asset_spec.deps:
                edges += [[asset_spec.key.to_user_string(), dep.asset_key.to_user_string(), name]
                          for name in gates.get(dep.asset_key, [])]
    return sorted(edges)


def _run_contents(instance: dg.DagsterInstance, run: dg.DagsterRun) -> tuple[set[dg.AssetKey], set[dg.AssetCheckKey]]:
    """The assets and checks ``run`` executes, read from its execution plan (the run record of an in-process
    ``materialize`` does not list its selection)."""
    if run.execution_plan_snapshot_id is None:
        return set(), set()
    plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
    to_execute = set(plan.step_keys_to_execute or [step.key for step in plan.steps])
    assets, checks = set(), set()
    for step in plan.steps:
        if step.key not in to_execute:
            continue
        for output in step.outputs:
            if output.properties is None:
                continue
            if output.properties.asset_key is not None:
                assets.add(output.properties.asset_key)
            if output.properties.asset_check_key is not None:
                checks.add(output.properties.asset_check_key)
    return assets, checks


def _refusal(instance: dg.DagsterInstance, child: str, gate: dg.AssetCheckKey) -> str | None:
    """Why ``child`` may not run after ``gate``'s latest evaluation, or None when it passed (or never ran)."""
    record = instance.get_latest_asset_check_evaluation_record(gate)
    if record is None or record.status == AssetCheckExecutionRecordStatus.SUCCEEDED:
        return None
    parent = gate.asset_key.to_user_string()
    if record.status == AssetCheckExecutionRecordStatus.FAILED:
        event = record.event.dagster_event if record.event else None
        evaluation = event.event_specific_data if event else None
        reason = getattr(evaluation, "description", None) or "no reason recorded"
        outcome = f"failed in run {record.run_id}: {reason.strip().rstrip('.')}"
    else:  # planned, but its run ended without a result: the check itself raised or the run stopped
        outcome = f"did not complete in run {record.run_id} (the check raised or its run stopped)"
    return (f"{child} needs the blocking gate {gate.name} on {parent} to pass, and its latest evaluation {outcome}. "
            f"Fix the cause, then materialise {parent} with its checks (`mlplatform run`, or in the UI select "
            f"{parent} and its downstream assets) so that the gate judges the data again")


def refuse_failed_gates(instance: dg.DagsterInstance, run: dg.DagsterRun, edges: Sequence[GateEdge]) -> None:
    """Refuse ``run`` when it materialises a child of a blocking gate that is not part of the run and whose latest
    evaluation did not pass.

    Raises:
        GateNotPassedError: one message naming each child, its gate, the gate's run and reason, and the fix.
    """
    if not edges:
        return
    assets, checks = _run_contents(instance, run)
    problems = []
    for child, parent, name in edges:
        gate = dg.AssetCheckKey(dg.AssetKey.from_user_string(parent), name)
        if dg.AssetKey.from_user_string(child) not in assets or gate in checks:
            continue
        problem = _refusal(instance, child, gate)
        if problem:
            problems.append(problem)
    if problems:
        raise GateNotPassedError("refusing to run: " + "; ".join(problems) + ".")
