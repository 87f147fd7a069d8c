"""A draft brief from a dataset: what ``mlplatform init DATA --target COLUMN`` writes.

The draft is meant to run as it is and to be read and corrected by a person: every guess (task type, key,
time, contracts, metric, protected attributes, the rules baseline) is listed in :attr:`Draft.inferences`,
and the fields only a person can fill (business objective, owner …) say ``TODO``.
"""

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import yaml

from mlplatform.brief import Label, RandomSplit, Split, TaskType, Thresholds
from mlplatform.core.io import InputError, read_duckdb_table, source_files
from mlplatform.core.preflight import (
    PredictiveFeature,
    decides,
    group_outlook,
    hold_out_share,
    predictive_features,
)

# The method's primary metric switches to PR-AUC when the positive class is rarer than this.
RARE_POSITIVE_RATE = 0.05
# Integer targets with at most this many distinct values are classes; more are a quantity to regress.
MAX_CLASSES = 20
# String columns with at most this many levels get an `allowed` contract and may slice the evaluation.
MAX_CONTRACT_LEVELS = 50
MAX_SLICE_LEVELS = 10
# Column names that suggest a protected attribute; a person confirms each.
PROTECTED_HINTS = ("age", "gender", "sex", "race", "ethnic", "religion", "nationality", "disab", "marital",
                   "pregnan", "orientation")
SPLIT_FRACTIONS = (0.70, 0.85)  # a temporal split's validation and test start at these label-time quantiles
# A text column this share of whose values read as numbers is a numeric column with a few bad values (a junk cell,
# a unit typed in): it is typed as a number and the rest are flagged as values validation will quarantine.
NUMERIC_SHARE = 0.98
# Longer text values are not levels (a pasted document, a corrupt cell): they stay out of `allowed`.
MAX_LEVEL_CHARS = 200
# A column missing this share of its values or more scores 0 on completeness (the method's 50% anchor).
MOSTLY_EMPTY = 0.5
SHOWN_CHARS = 40  # of a bad value quoted in a note

_POLARS_TO_DTYPE = {pl.Boolean: "bool", pl.Date: "date", pl.Datetime: "datetime", pl.String: "str"}


@dataclass
class Draft:
    """A draft brief as YAML text, and what was inferred to write it."""

    text: str
    inferences: list[str] = field(default_factory=list)
    waiver_snippet: str = ""  # commented YAML declaring the too-predictive inputs legitimate, once reasons are in


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_")
    return (slug if slug[:1].isalpha() else f"data_{slug}")[:40] or "dataset"


def _dtype(series: pl.Series) -> str:
    if series.dtype.is_integer():
        return "int"
    if series.dtype.is_float():
        return "float"
    return _POLARS_TO_DTYPE.get(series.dtype.base_type(), "str")


def read_dataset(path: str, table: str | None = None) -> tuple[pl.DataFrame, str]:
    """Every file the path names (file, glob or folder), types inferred, or ``table`` of a DuckDB database
    file; and the format (csv | parquet | duckdb)."""
    if table is not None:
        return read_duckdb_table(Path(path), table), "duckdb"
    files = source_files(path)
    suffixes = {f.suffix.lower() for f in files}
    if suffixes - {".csv", ".parquet"} or len(suffixes) != 1:
        raise InputError(f"{path} holds {', '.join(sorted(suffixes))} files; init reads one format, .csv or "
                         ".parquet. Point it at the files of one table.")
    fmt = suffixes.pop().lstrip(".")
    try:
        frames = [_read_csv(f) if fmt == "csv" else pl.read_parquet(f) for f in files]
        return pl.concat(frames, how="diagonal_relaxed"), fmt
    except Exception as exc:  # polars raises several types for corrupt input
        raise InputError(f"cannot read {path} as {fmt}: {exc}. Fix or replace the file.") from None


def _read_csv(path: Path) -> pl.DataFrame:
    """A CSV with types inferred from its first rows, or from all rows when a later value breaks that guess."""
    try:
        return pl.read_csv(path, try_parse_dates=True, infer_schema_length=10_000)
    except pl.exceptions.ComputeError:
        return pl.read_csv(path, try_parse_dates=True, infer_schema_length=None)


def _shown(value: str) -> str:
    return repr(value if len(value) <= SHOWN_CHARS else f"{value[:SHOWN_CHARS]}…") + (
        f" ({len(value):,} characters)" if len(value) > SHOWN_CHARS else "")


def _numeric_text(frame: pl.DataFrame, exclude: str) -> tuple[pl.DataFrame, list[str]]:
    """Text columns whose values nearly all read as numbers, typed as numbers; a note per column on the rest.

    One junk cell makes a CSV reader type a whole numeric column as text; the contract should still say
    number, so that the junk is quarantined rather than becoming the column's type.
    """
    notes = []
    for name in frame.columns:
        column = frame[name]
        if name == exclude or column.dtype != pl.String or column.drop_nulls().len() == 0:
            continue
        text = column.str.strip_chars()
        number = text.cast(pl.Float64, strict=False)
        parsed = number.is_not_null() & text.is_not_null()
        present = int(text.is_not_null().sum())
        if parsed.sum() < NUMERIC_SHARE * present or parsed.sum() == present:
            continue
        bad = column.filter(text.is_not_null() & ~parsed)
        whole = number.drop_nulls()
        typed = number.cast(pl.Int64) if bool((whole == whole.round(0)).all()) else number
        frame = frame.with_columns(typed.alias(name))
        notes.append(f"'{name}': typed as a number ({1 - bad.len() / present:.1%} of its values are); "
                     f"{bad.len()} value(s) that are not, e.g. {_shown(str(bad[0]))}, will be quarantined")
    return frame, notes


def _number(value: object) -> float:
    """A numeric aggregate (polars types ``mean``, ``median``, ``min`` as any Python value) as a float."""
    if isinstance(value, int | float):
        return float(value)
    raise TypeError(f"expected a number from a numeric column, got {value!r}")


def _column_spec(series: pl.Series, nulls: int) -> dict:
    """The contract of one column; ``nulls``: its missing values as read (junk cells typed away not counted)."""
    spec: dict = {"dtype": _dtype(series)}
    if nulls:
        spec["nullable"] = True
    levels = series.drop_nulls().unique()
    if spec["dtype"] == "str" and levels.len() <= MAX_CONTRACT_LEVELS:
        spec["allowed"] = sorted(str(v) for v in levels if len(str(v)) <= MAX_LEVEL_CHARS)
    if spec["dtype"] in ("int", "float") and series.drop_nulls().len() and _number(series.min()) >= 0:
        spec["min"] = 0
    return spec


def _task(target: pl.Series) -> tuple[TaskType, list[str] | None]:
    """Task type and, where the labels are not already 0/1 or 0..k-1, the class names in index order."""
    values = target.drop_nulls()
    distinct = values.unique()
    if target.dtype.is_float() and not (values == values.round(0)).all():
        return "regression", None
    if target.dtype.is_numeric() and distinct.len() > MAX_CLASSES:
        return "regression", None
    counts = values.cast(pl.String).value_counts(sort=True)
    if distinct.len() == 2:
        if target.dtype.is_integer() and sorted(distinct.to_list()) == [0, 1]:
            return "binary", None
        # The rarer value is the positive class (index 1): the event a model is usually built to find.
        return "binary", counts[target.name].to_list()
    if target.dtype.is_integer() and sorted(distinct.to_list()) == list(range(distinct.len())):
        return "multiclass", None
    return "multiclass", sorted(counts[target.name].to_list())


def _metrics(task: str, positive_rate: float | None) -> tuple[dict, str]:
    if task == "binary":
        if positive_rate is not None and positive_rate < RARE_POSITIVE_RATE:
            return ({"primary": "pr_auc", "guardrails": ["roc_auc"]},
                    f"positives are {positive_rate:.1%} (< 5%): PR-AUC, per the method's table")
        return ({"primary": "f1", "guardrails": ["pr_auc", "roc_auc"]},
                f"positives are {positive_rate:.1%}: F1 for a roughly balanced binary target, per the method's table")
    if task == "multiclass":
        return {"primary": "macro_f1", "guardrails": ["accuracy"]}, "macro-F1 for multiclass, per the method's table"
    return {"primary": "mae", "guardrails": ["rmse"]}, "MAE for regression, per the method's table"


def _rules(frame: pl.DataFrame, target: pl.Series, task: str, inputs: list[str], entity: str) -> tuple[list, str]:
    """A one-feature heuristic (split at the median of the input most correlated with the label) as the
    rules baseline: a stand-in until a person writes down what the business does today."""
    numeric = [c for c in inputs if frame[c].dtype.is_numeric() and frame[c].drop_nulls().n_unique() > 1]
    y = target.cast(pl.Float64)
    if not numeric:
        majority = float(y.mode().sort()[0])
        return ([{"when": f"{entity}_{inputs[0]} IS NULL OR {entity}_{inputs[0]} IS NOT NULL",
                  "predict": majority}], f"no numeric input: the rule predicts {majority:g} everywhere")
    strength = {c: abs(pl.DataFrame({"x": frame[c], "y": y}).drop_nulls().select(
        pl.corr("x", "y", method="spearman")).item() or 0.0) for c in numeric}
    best = max(strength, key=strength.__getitem__)
    median = _number(frame[best].median())
    feature, above, below, at = f"{entity}_{best}", frame[best] >= median, frame[best] < median, (">=", "<")
    if not below.any():  # the median is the minimum (a zero-heavy feature): split above it instead
        above, below, at = frame[best] > median, frame[best] <= median, (">", "<=")

    def typical(mask: pl.Series) -> float:
        part = y.filter(mask)
        if task == "regression":
            return round(_number(part.mean()), 6)
        return float(part.mode().sort()[0])

    if task == "binary":
        direction = at[0] if _number(y.filter(above).mean()) >= _number(y.filter(below).mean()) else at[1]
        rules = [{"when": f"{feature} {direction} {median:g}", "predict": 1}]
    else:
        rules = [{"when": f"{feature} {at[0]} {median:g}", "predict": typical(above)},
                 {"when": f"{feature} {at[1]} {median:g}", "predict": typical(below)},
                 {"when": f"{feature} IS NULL", "predict": typical(pl.Series([True] * frame.height))}]
    return rules, (f"rules baseline: split at the median of {best} (|Spearman ρ| {strength[best]:.2f} with the "
                   "label). Replace it with the heuristic the business uses today.")


def _key_and_time(frame: pl.DataFrame, target: str) -> tuple[str | None, str | None]:
    times = [c for c in frame.columns if c != target and frame[c].dtype.base_type() in (pl.Date, pl.Datetime)]
    keys = [c for c in frame.columns if c != target and frame[c].dtype.is_integer() and frame[c].null_count() == 0
            and re.search(r"(^|_)id$", c.lower())]
    return (keys[0] if keys else None), (times[0] if len(times) == 1 else None)


def draft_brief(data: str, target: str, *, brief_dir: Path, today: date, table: str | None = None) -> Draft:
    """Profile ``data`` and write a brief that runs as it is.

    Args:
        data: a CSV/Parquet file, a glob or a folder of them (one table), or a DuckDB database file.
        target: the label column.
        brief_dir: where the brief will be written; the data path is written relative to it when possible.
        today: the ``observed_at`` date of a table without time.
        table: the table to read when ``data`` is a DuckDB database file.

    Raises:
        InputError: unreadable data, an unknown target, or a target with a single value.
    """
    frame, fmt = read_dataset(data, table)
    if target not in frame.columns:
        raise InputError(f"target column '{target}' is not in {data}; its columns are {', '.join(frame.columns)}")
    if frame[target].drop_nulls().n_unique() < 2:
        raise InputError(f"target column '{target}' has fewer than two distinct values: nothing to predict")
    name = _slug(table or Path(data.rstrip("/*")).stem)
    notes: list[str] = [f"read {frame.height:,} rows × {frame.width} columns ({fmt})"]
    task, classes = _task(frame[target])
    notes.append(f"task: {task} (target '{target}', {frame[target].n_unique()} distinct values)"
                 + (f"; classes in index order {classes}" if classes else ""))

    nulls = {c: frame[c].null_count() for c in frame.columns}
    frame, typing_notes = _numeric_text(frame, exclude=target)
    notes += typing_notes
    key, time_column = _key_and_time(frame, target)
    columns = {c: _column_spec(frame[c], nulls[c]) for c in frame.columns}
    notes += _long_level_notes(frame, columns)
    notes += _missing_notes(nulls, frame.height)
    source: dict = {"format": fmt, **({"table": table} if table else {})}
    if time_column:
        source["timestamp"] = time_column
        notes.append(f"time: '{time_column}' (temporal split, point-in-time join)")
    else:
        source["observed_at"] = today.isoformat()
        stratified = ", stratified by class" if task != "regression" else ""
        notes.append(f"time: none found; every row counts as observed on {today} (random split{stratified})")
    if key and (time_column or frame[key].is_unique().all()):
        entity_key = key
        source["unique"] = [key, time_column] if time_column else [key]
        notes.append(f"entity key: '{key}'")
    else:
        entity_key = "row_id"
        source["row_key"] = entity_key
        notes.append("entity key: none found; rows are numbered into 'row_id'")
    if classes:
        columns[target] = {"dtype": "str", "allowed": list(classes)}
    source["columns"] = columns
    entity = _slug(entity_key.removesuffix("_id")) if entity_key != "row_id" else "row"

    protected = [c for c in frame.columns if c not in (target, key, time_column)
                 and any(h in c.lower() for h in PROTECTED_HINTS)]
    if protected:
        notes.append(f"protected attributes (CONFIRM): {', '.join(protected)}: guessed from the column names; "
                     "they are kept out of the model and used for fairness")
    inputs = [c for c in frame.columns if c not in (target, key, time_column, *protected)
              and columns[c]["dtype"] not in ("date", "datetime")]
    slices = [c for c in inputs if columns[c]["dtype"] == "str" and frame[c].n_unique() <= MAX_SLICE_LEVELS][:3]

    label_index = (frame[target].cast(pl.String).replace_strict(classes, list(range(len(classes))))
                   if classes else frame[target])
    positive_rate = _number(label_index.cast(pl.Float64).mean()) if task == "binary" else None
    metrics, why_metric = _metrics(task, positive_rate)
    notes.append(f"primary metric: {metrics['primary']} ({why_metric})")
    rules, why_rules = _rules(frame, label_index, task, inputs, entity)
    notes.append(why_rules)
    predictive = predictive_features(frame, inputs, label_index, task, Thresholds().leakage_max_single_feature_score)
    if predictive:
        notes.append(_predictive_note(predictive))

    if time_column:
        times = frame[time_column].cast(pl.Datetime("us")).drop_nulls().sort()
        if times.len() == 0:
            raise InputError(f"'{time_column}' holds no values: nothing to split by time")
        first, last = times[0].date(), times[-1].date()
        cut = [times[int(q * (times.len() - 1))].date() for q in SPLIT_FRACTIONS]
        if not first < cut[0] < cut[1]:
            raise InputError(f"'{time_column}' spans too few days ({first} .. {last}) for a temporal split")
        split = {"validation_start": cut[0].isoformat(), "test_start": cut[1].isoformat()}
        partition = (first, last + timedelta(days=1))
        notes.append(f"split: train < {cut[0]} <= validation < {cut[1]} <= test (label-time quantiles 70/85%)")
    else:
        split = {"validation_fraction": 0.15, "test_fraction": 0.15, "stratify": task != "regression"}
        partition = (today, today + timedelta(days=1))

    notes += _fairness_notes(frame, protected, task, split, time_column,
                             positive=(label_index == 1) if task == "binary" else None)

    data_path = Path(data)
    try:
        shown = str(data_path.resolve().relative_to(brief_dir.resolve()))
    except ValueError:
        shown = str(data_path.resolve()) + ("/" if data.endswith("/") else "")
    if any(ch in data for ch in "*?["):
        shown = str(Path(data).resolve().parent / Path(data).name)
    source = {"path": shown, **source}

    todo = "TODO: written by a person"
    brief = {
        "name": name,
        "owner": "TODO@example.com",
        "hypothesis": f"TODO: why the inputs should predict {target}",
        "problem": {
            "business_objective": todo, "success_metric": todo, "baseline": todo, "ml_task_type": task,
            "prediction_target": f"{target}", "prediction_consumer": "API", "latency_requirement": "real-time (<100ms)",
            "data_available": f"{name}: {frame.height:,} rows, {frame.width} columns", "data_gaps": todo,
            "ethical_considerations": todo,
        },
        "entity": entity,
        "entity_key": entity_key,
        "partition_start": partition[0].isoformat(),
        "partition_end": partition[1].isoformat(),
        "sources": {name: source},
        "label": {"source": name, "column": target, "timestamp": time_column or "observed_at",
                  "definition": f"TODO: what {target} means and when it is known",
                  **({"classes": list(classes)} if classes else {})},
        "features": {"source": name},
        "split": split,
        "metrics": metrics,
        "protected_attributes": protected,
        "slice_by": slices,
        "rules_baseline": rules,
    }
    header = (f"# Draft brief written by `mlplatform init` from {data} on {today}.\n"
              "# It runs as it is; read every guess below, fill the TODOs, and confirm the protected attributes.\n"
              + "".join(f"#   - {note}\n" for note in notes) + _waiver_snippet(predictive))
    return Draft(header + yaml.safe_dump(brief, sort_keys=False, allow_unicode=True), notes,
                 _waiver_snippet(predictive))


def _long_level_notes(frame: pl.DataFrame, columns: dict[str, dict]) -> list[str]:
    """A note per text column with values too long to be levels: they are left out of `allowed`."""
    notes = []
    for name, spec in columns.items():
        if "allowed" not in spec:
            continue
        long = frame[name].drop_nulls().unique().filter(frame[name].drop_nulls().unique().str.len_chars()
                                                        > MAX_LEVEL_CHARS)
        if long.len():
            notes.append(f"'{name}': {long.len()} value(s) longer than {MAX_LEVEL_CHARS} characters, e.g. "
                         f"{_shown(str(long[0]))}, are not allowed levels: those rows will be quarantined")
    return notes


def _missing_notes(nulls: dict[str, int], rows: int) -> list[str]:
    """The nullable columns with their missing share, the mostly empty ones called out: nullable means a missing
    value is allowed, not that it is free (completeness counts every model input)."""
    shares = sorted(((c, n / rows) for c, n in nulls.items() if n), key=lambda item: -item[1])
    if not shares:
        return []
    some = [f"{c} {share:.0%}" for c, share in shares if share < MOSTLY_EMPTY]
    notes = ["nullable (share missing): " + ", ".join(some)] if some else []
    empty = [f"{c} {share:.0%}" for c, share in shares if share >= MOSTLY_EMPTY]
    if empty:
        notes.append(f"MOSTLY EMPTY, nullable (share missing): {', '.join(empty)}: as model inputs they cost the "
                     "completeness score (0 points at 50% missing) and can fail the quality gate; fill them at the "
                     "source, or drop them from features.columns")
    return notes


def _predictive_note(predictive: list[PredictiveFeature]) -> str:
    scores = ", ".join(f"{p.feature} {p.score:.3f}" for p in predictive)
    return (f"SUSPICIOUSLY PREDICTIVE alone (quick-split hold-out {predictive[0].metric} > "
            f"{Thresholds().leakage_max_single_feature_score}): {scores}. The leakage gate will stop the run: fix "
            "each (drop it, or rebuild it from data known before the label), or declare it legitimate with a reason "
            "under leakage.allowed_predictive_features (snippet below)")


def _waiver_snippet(predictive: list[PredictiveFeature]) -> str:
    """Commented YAML that declares the predictive features legitimate, once a person writes the reasons."""
    if not predictive:
        return ""
    lines = ["# To declare them genuine measurements, uncomment and give each a real reason:", "# leakage:",
             "#   allowed_predictive_features:"]
    lines += [f"#   - {{feature: {p.feature}, reason: \"TODO: why it is known before the label and not computed "
              "from it\"}" for p in predictive]
    return "\n".join(lines) + "\n"


def _fairness_notes(frame: pl.DataFrame, protected: list[str], task: TaskType, split: dict,
                    time_column: str | None, positive: pl.Series | None) -> list[str]:
    """Per protected attribute of a deciding model: the hold-out rows (and, given ``positive``, positives) each
    group can be expected to have, and a warning where fairness could not be assessed (the promotion gate then
    fails closed)."""
    defaults = Thresholds()
    if not protected or not decides(task, Label.model_fields["positive_class"].default):
        return []
    plan = RandomSplit(**split) if "test_fraction" in split else Split(**split)
    times = frame[time_column] if time_column else None
    share = hold_out_share(plan, defaults.golden_share, times)
    if share is None:
        return []
    return [group_outlook(frame[c], share, defaults.fairness_min_group_size, positive).describe() for c in protected]
