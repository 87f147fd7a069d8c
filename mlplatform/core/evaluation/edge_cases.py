"""Edge-case probes: the model scored on rows with missing, zero, extreme and far-out-of-range inputs."""

import numpy as np
import polars as pl

from mlplatform.brief import TaskType

# A probability this close to 0 or 1 (or a class probability this close to 1) is a certainty no tabular data
# justifies: on a probe it means the model extrapolated (e.g. a network's linear growth far outside its inputs).
SATURATION = 1e-6


EDGE_RANGE_FACTOR = 10  # far-range probes sit at ±(10·max|x| + 1), x over the reference (training) rows


def _saturated(task: TaskType, scores: np.ndarray) -> np.ndarray:
    """Per row: the score is (near) certainty: see :data:`SATURATION`; regression never saturates."""
    if task == "binary":
        return (scores < SATURATION) | (scores > 1 - SATURATION)
    if task == "multiclass":
        return scores.max(axis=1) > 1 - SATURATION
    return np.zeros(len(scores), dtype=bool)


def _decisions(task: TaskType, scores: np.ndarray) -> np.ndarray:
    return scores.argmax(axis=1) if task == "multiclass" else scores >= 0.5


def _values(column: pl.Series) -> np.ndarray:
    """A column's non-missing values as floats."""
    return column.cast(pl.Float64).drop_nulls().to_numpy()


def _range_text(reference: pl.DataFrame, numeric: list[str], shown: int = 3) -> str:
    """The reference (training) range of the first numeric inputs, for the report."""
    spans = {f: _values(reference[f]) for f in numeric[:shown]}
    parts = [f"{f} {v.min():g} .. {v.max():g}" if v.size else f"{f} all missing" for f, v in spans.items()]
    more = f" and {len(numeric) - shown} more" if len(numeric) > shown else ""
    return "training range " + ", ".join(parts) + more


def edge_case_probe(predict, sample: pl.DataFrame, features: list[str], task: TaskType,
                    reference: pl.DataFrame | None = None, label: str | None = None) -> pl.DataFrame:
    """Score unusual inputs and check the model still answers sensibly (method phase 9: test edge cases).

    Cases, each built from ``sample`` rows: every feature missing; text features set to a value never seen;
    numeric features far above and far below the training range (±(10·max|x| + 1), x over ``reference``).

    A case fails when the model raises, or its scores are not valid (a probability in [0, 1] for binary,
    probability rows summing to 1 for multiclass, finite for regression), or when it extrapolates: binary and
    multiclass scores saturate (within :data:`SATURATION` of certainty) on rows whose real score did not, or
    regression predictions leave the training label range widened by its own width on each side (needs
    ``label``). How many decisions flip against the real rows is reported beside it.

    Args:
        predict: the model's ``predict_score``.
        sample: a few real rows holding every feature.
        features: the model inputs to perturb.
        task: the brief's task type.
        reference: the rows whose range the probes leave (the training split); ``sample`` when None.
        label: the label column of ``reference`` (regression's range check).

    Returns:
        One row per case: ``case``, ``rows``, ``passed``, ``detail`` (the score range, the training range, what
        failed or the error raised).
    """
    reference = sample if reference is None else reference
    numeric = [f for f in features if sample.schema[f].is_numeric()]
    text = [f for f in features if sample.schema[f] in (pl.String, pl.Categorical)]

    def far(sign: int) -> list[pl.Expr]:
        # Non-strict: a far-below value a column's type cannot hold (unsigned) becomes missing instead.
        reach = {f: EDGE_RANGE_FACTOR * float(np.abs(_values(reference[f])).max(initial=0.0)) + 1 for f in numeric}
        return [pl.lit(sign * reach[f]).cast(sample.schema[f], strict=False).alias(f) for f in numeric]

    cases = {"all features missing": [pl.lit(None).cast(sample.schema[f]).alias(f) for f in features],
             "unseen categories": [pl.lit("__never_seen__").cast(sample.schema[f]).alias(f) for f in text],
             "numbers far above range": far(1), "numbers far below range": far(-1)}
    real = np.asarray(predict(sample), dtype=float)
    ranges = _range_text(reference, numeric) if numeric else ""
    rows = []
    for case, changes in cases.items():
        if not changes:
            continue
        frame = sample.with_columns(changes)
        try:
            scores = np.asarray(predict(frame), dtype=float)
        except Exception as exc:  # any failure on odd input is the finding itself
            rows.append({"case": case, "rows": frame.height, "passed": False,
                         "detail": f"raised {type(exc).__name__}: {exc}"[:300]})
            continue
        problem = _invalid_scores(task, scores, frame.height) or _extrapolated(task, scores, real, reference, label)
        detail = f"scores {np.nanmin(scores):.4g} .. {np.nanmax(scores):.4g}" if scores.size else "no scores"
        if task != "regression" and scores.shape == real.shape and np.isfinite(scores).all():
            flipped = int(np.sum(_decisions(task, scores) != _decisions(task, real)))
            detail += f"; {flipped} of {frame.height} decisions differ from the real rows'"
        if case.startswith("numbers far") and ranges:
            detail += f"; {ranges}"
        rows.append({"case": case, "rows": frame.height, "passed": not problem,
                     "detail": detail if not problem else f"{problem}: {detail}"})
    return pl.DataFrame(rows, schema={"case": pl.String, "rows": pl.Int64, "passed": pl.Boolean,
                                      "detail": pl.String})


def _invalid_scores(task: TaskType, scores: np.ndarray, rows: int) -> str | None:
    """Why the scores are not valid for the task, or None."""
    finite = bool(np.isfinite(scores).all()) and len(scores) == rows
    if task == "binary":
        sensible = finite and bool(((scores >= 0) & (scores <= 1)).all())
    elif task == "multiclass":
        sensible = finite and bool(np.allclose(scores.sum(axis=1), 1.0, atol=1e-4))
    else:
        sensible = finite
    return None if sensible else "not sensible"


def _extrapolated(task: TaskType, scores: np.ndarray, real: np.ndarray, reference: pl.DataFrame,
                  label: str | None) -> str | None:
    """Why the probe's scores show extrapolation (see :func:`edge_case_probe`), or None."""
    if task == "regression":
        if label is None or label not in reference.columns:
            return None
        labels = _values(reference[label])
        if not labels.size:
            return None
        low, high = float(labels.min()), float(labels.max())
        width = high - low
        outside = int(np.sum((scores < low - width) | (scores > high + width)))
        return (f"extrapolation: {outside} predictions beyond the training labels {low:.4g} .. {high:.4g} widened "
                "by their width" if outside else None)
    if scores.shape != real.shape:
        return None
    pushed = _saturated(task, scores) & ~_saturated(task, real)
    return (f"extrapolation: {int(pushed.sum())} of {len(scores)} scores saturate (within {SATURATION:g} of "
            "certainty) where the real rows' did not" if pushed.any() else None)
