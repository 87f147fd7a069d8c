"""When to retrain (seed phase 7, 自动化重新训练流程) and how retraining events are announced."""

import json
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl


@dataclass(frozen=True)
class Trigger:
    """A reason to retrain, in words a person reads in the run's tags and the notifications log."""

    kind: str
    reason: str


def drift_trigger(drift: pl.DataFrame, importance: dict[str, float], *, top_n: int,
                  threshold: float) -> Trigger | None:
    """Retrain when any of the ``top_n`` most important features drifted past ``threshold`` PSI.

    Args:
        drift: one row per feature with ``feature`` and ``psi`` (the drift report).
        importance: feature → importance in the production model (all of its features); features it lacks
            rank last.
    """
    candidates = set(importance) | set(drift["feature"])
    ranked = sorted(candidates, key=lambda f: (-importance.get(f, 0.0), f))[:top_n]
    drifted = drift.filter(pl.col("feature").is_in(ranked) & (pl.col("psi") > threshold)).sort("psi", descending=True)
    if drifted.height == 0:
        return None
    listed = ", ".join(f"{r['feature']} ({r['psi']:.2f})" for r in drifted.iter_rows(named=True))
    return Trigger("drift", f"PSI above {threshold} on top-{top_n} feature(s): {listed}")


def performance_trigger(performance: dict) -> Trigger | None:
    """Retrain when concept drift is critical: the primary metric fell further than the brief allows."""
    if performance["severity"] != "critical":
        return None
    return Trigger("performance", f"{performance['metric']} fell {performance['relative_drop']:.1%} on newly "
                                  f"labelled data ({performance['reference']:.4f} → {performance['current']:.4f})")


def notify(log_path: Path, event: dict, webhook_url: str | None = None) -> dict:
    """Append a retraining event to the notifications log (JSON lines) and POST it to the webhook, if any.

    A webhook that fails is recorded in the log entry, never raised: a notice must not fail the run it reports.
    """
    entry = {"at": datetime.now(UTC).isoformat(timespec="seconds"), **event}
    if webhook_url:
        request = urllib.request.Request(webhook_url, data=json.dumps(entry).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                entry["webhook_status"] = response.status
        except OSError as exc:
            entry["webhook_error"] = str(exc)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a") as handle:
        handle.write(json.dumps(entry) + "\n")
    return entry
