"""When to retrain (method phase 7, 自动化重新训练流程), on which months, and how retraining events are announced."""

import json
import urllib.request
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from mlplatform.brief import Split
from mlplatform.core.tracking import client_for, dataset_version
from mlplatform.core.training import SplitFrames

# The model-version tag naming the rows a version was fitted on (see :func:`fit_rows_version`).
FIT_ROWS_TAG = "fit_rows"


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


def fit_rows_version(split: SplitFrames) -> str:
    """A content hash of the rows a model is fitted on: the split's training and validation parts (validation
    picks the threshold and stops boosting), each row with its part. The test part is left out: it only judges.

    Two splits with the same value give a retrain nothing new to learn from: with the same hyperparameters and
    seed it fits the same model again. A fixed-date split keeps its value while new labels all fall into its test
    window; a rolling split changes it once a newer month is labelled.
    """
    parts = [split.train.with_columns(pl.lit("train").alias("_part")),
             split.validation.with_columns(pl.lit("validation").alias("_part"))]
    return dataset_version(pl.concat(parts, how="vertical_relaxed"))


def record_fit_rows(tracking_uri: str, model_name: str, version: str, split: SplitFrames) -> None:
    """Tag a registered model version with the rows it was fitted on (:data:`FIT_ROWS_TAG`, :func:`fit_rows_version`):
    the drift and decay sensors do not retrain while a retrain would fit those rows again."""
    client_for(tracking_uri).set_model_version_tag(model_name, version, FIT_ROWS_TAG, fit_rows_version(split))


def fitted_on(tracking_uri: str, model_name: str, version: str, split: SplitFrames) -> bool:
    """Whether the registered ``version`` was fitted on ``split``'s training and validation rows (its
    :data:`FIT_ROWS_TAG`, see :func:`record_fit_rows`); False for a version registered without the tag."""
    fitted = client_for(tracking_uri).get_model_version(model_name, version).tags.get(FIT_ROWS_TAG)
    return fitted is not None and fitted == fit_rows_version(split)


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


@dataclass(frozen=True)
class SplitDates:
    """A temporal split's boundaries: train_start <= train < validation_start <= validation < test_start <= test
    < test_end. ``train_start`` None keeps every earlier row; ``test_end`` None keeps every later one."""

    train_start: date | None
    validation_start: date
    test_start: date
    test_end: date | None


def _months_before(first_of_month: date, months: int) -> date:
    index = first_of_month.year * 12 + first_of_month.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def rolling_split_dates(latest_label: date, *, train_months: int | None, validation_months: int,
                        test_months: int) -> SplitDates:
    """Whole-month windows counted back from the month of the latest known label (the method: "use latest N months").

    The test window ends with that month (it may be partly labelled when labels are daily), validation is
    the ``validation_months`` before it, and training the ``train_months`` before that (None: all earlier).

    Example:
        latest label 2025-10-01, 6/1/1 months: train 2025-03..08, validation 2025-09, test 2025-10.
    """
    following = _months_before(latest_label.replace(day=1), -1)
    test_start = _months_before(following, test_months)
    validation_start = _months_before(test_start, validation_months)
    train_start = _months_before(validation_start, train_months) if train_months else None
    return SplitDates(train_start, validation_start, test_start, following)


def split_dates(split: Split, label_times: pl.Series) -> SplitDates:
    """The brief's temporal split as dates: its fixed dates, or rolling windows anchored at the latest label.

    Args:
        split: the brief's temporal split.
        label_times: the label time (Date or Datetime) of every known label, i.e. the training set's.

    Raises:
        ValueError: a rolling split with no label time to anchor it.
    """
    if not split.rolling:
        assert split.validation_start is not None and split.test_start is not None  # the brief guarantees it
        return SplitDates(None, split.validation_start, split.test_start, split.test_end)
    latest = label_times.max()
    if latest is None:
        raise ValueError("a rolling split is anchored at the latest known label, but there are no labelled rows; "
                         "check the label source and label.delay_days")
    if isinstance(latest, datetime):
        latest = latest.date()
    if not isinstance(latest, date):
        raise ValueError(f"label times must be dates or datetimes to anchor a rolling split, got {label_times.dtype}")
    return rolling_split_dates(latest, train_months=split.train_months,
                               validation_months=split.validation_months, test_months=split.test_months)
