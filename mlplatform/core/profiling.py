"""whylogs profiles of data batches, behind a small interface of our own.

whylogs 1.6.4 is the last release and predates NumPy 2: its type mapper touches ``np.unicode_`` (removed in
NumPy 2, whylogs issue #1600) for any column whose dtype is not object or numeric, e.g. datetime64 or pandas'
``string`` dtype. Two things contain that here. Everything whylogs sees goes through :func:`_to_pandas`,
which hands it only pandas ``string`` (strings and categoricals), float64 (floats; null and NaN both become
NaN) and nullable ``Int64`` (integers, booleans as 0/1, dates as days since 1970-01-01, datetimes as
seconds since the epoch, UTC). And :class:`_TypeMapper` maps the ``string`` dtype itself, before whylogs'
check; object columns would avoid the check too, but whylogs then inspects every value in Python six
times, about 4x slower. No other module imports whylogs.
"""

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import polars as pl

from mlplatform.core.io import write_text_atomic

# whylogs posts usage statistics from a thread at import time; the platform must not reach the network.
os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "1")

from whylogs.core import DatasetProfile, DatasetProfileView, DatasetSchema  # noqa: E402
from whylogs.core.datatypes import DataType, StandardTypeMapper, String  # noqa: E402
from whylogs.core.preprocessing import ColumnProperties  # noqa: E402

_SUMMARY_METRICS = {
    "count": "counts/n",
    "null_count": "counts/null",
    "mean": "distribution/mean",
    "stddev": "distribution/stddev",
    "min": "distribution/min",
    "max": "distribution/max",
    "distinct_estimate": "cardinality/est",
}

# The columns of :func:`profile_summary`, also the schema of an empty summary (nothing to profile).
SUMMARY_SCHEMA = {"column": pl.String, "count": pl.Int64, "null_count": pl.Int64, "mean": pl.Float64,
                  "stddev": pl.Float64, "min": pl.Float64, "max": pl.Float64, "distinct_estimate": pl.Float64}


class _TypeMapper(StandardTypeMapper):
    """whylogs' type mapper, with pandas' ``string`` dtype mapped before its NumPy-1-only check."""

    def __call__(self, dtype_or_type: object) -> DataType:
        if isinstance(dtype_or_type, pd.StringDtype):
            return String()
        return super().__call__(dtype_or_type)


def _whylogs_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with every column cast to a dtype whylogs handles on NumPy 2 (see the module docstring).

    Raises:
        TypeError: a column's dtype has no safe representation (lists, structs, binary, ...).
    """
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum):
            exprs.append(col.cast(pl.String))
        elif dtype == pl.Boolean or dtype.is_integer():
            exprs.append(col.cast(pl.Int64))
        elif dtype.is_float() or isinstance(dtype, pl.Decimal):
            exprs.append(col.cast(pl.Float64))
        elif dtype == pl.Date:
            exprs.append(col.dt.epoch("d").cast(pl.Int64))
        elif isinstance(dtype, pl.Datetime):
            exprs.append(col.dt.epoch("s"))
        else:
            raise TypeError(f"column '{name}' has dtype {dtype}, which cannot be profiled; cast it to a "
                            "number, string, boolean, date or datetime first")
    return frame.select(exprs)


def _to_pandas(safe: pl.DataFrame) -> pd.DataFrame:
    """A frame from :func:`_whylogs_safe` as pandas, with the dtypes whylogs handles on NumPy 2."""
    columns = {}
    for series in safe.iter_columns():
        if series.dtype == pl.String:
            columns[series.name] = pd.Series(series.to_numpy(), dtype=pd.StringDtype("python"))
        elif series.dtype == pl.Int64:
            # Nullable Int64 keeps integers exact when nulls are present (numpy would make them float).
            values, nulls = series.fill_null(0).to_numpy(), series.is_null().to_numpy()
            columns[series.name] = pd.Series(pd.arrays.IntegerArray(values, nulls))
        else:
            columns[series.name] = pd.Series(series.to_numpy(), dtype="float64")
    # copy=False: pandas would otherwise copy the float and the integer columns into one 2-D block each
    # (consolidation), about a fifth of a profile's time; whylogs reads the columns one at a time.
    return pd.DataFrame(columns, copy=False)


def profile_frame(frame: pl.DataFrame) -> DatasetProfileView:
    """A whylogs profile of a polars frame (counts, nulls, types, distribution, cardinality, frequent items).

    Nulls stay nulls: whylogs counts them in ``counts/null``. Dates and datetimes are profiled as numbers
    (days / seconds since the epoch), booleans as 0/1.

    Raises:
        TypeError: a column's dtype cannot be profiled.
    """
    safe = _whylogs_safe(frame)
    if safe.height == 0:
        return _track(safe)
    # A float column whose only gaps are nulls or NaN (no inf) is profiled as two parts merged: its values, declared
    # homogeneous, and its gaps; whylogs would otherwise test every value for inf in Python (see _track).
    split = [name for name, series in safe.to_dict().items() if series.dtype == pl.Float64
             and series.fill_nan(None).null_count() > 0 and not series.is_infinite().any()]
    # A text column of a few values over many rows (a plan, a region) is profiled per value: each value's copies from
    # its one-row profile by doubling; whylogs would otherwise pass every string through Python several times.
    few = [name for name, series in safe.to_dict().items() if series.dtype == pl.String
           and series.n_unique() <= min(_FEW_VALUES, safe.height // _ROWS_PER_FEW_VALUE)]
    if not split and not few:
        return _track(safe)
    parts = [_track(safe.drop(*split, *few))] if len(split) + len(few) < safe.width else []
    for name in split:
        gaps = safe[name].fill_nan(None).is_null()
        values = safe.select(name).filter(~gaps)
        parts += [_track(values)] if values.height else []
        parts.append(_repeated(safe.select(name).filter(gaps).head(1), int(gaps.sum())))
    for name in few:
        counts = safe.group_by(name, maintain_order=True).len()
        parts += [_repeated(counts.slice(k, 1).select(name), times) for k, times in enumerate(counts["len"])]
    return merge_profiles(parts)


# Text columns with at most this many distinct values (null counted as one), and at least this many rows per value,
# are profiled per value (profile_frame): whylogs' frequent-items and cardinality sketches hold so few values exactly,
# so merged copies equal the sketches of the whole column; below that many rows whylogs' own pass is cheaper.
_FEW_VALUES = 32
_ROWS_PER_FEW_VALUE = 1 << 16


def _repeated(row: pl.DataFrame, times: int) -> DatasetProfileView:
    """whylogs' profile of ``times`` copies of a one-row frame, merged from the profile of the row alone by doubling
    (about 2·log2(times) merges). For a gap (null, NaN) or a text value this is the profile whylogs builds of the
    copies: a gap has only counts, which merging adds; a text value adds its count to the frequent items (exact
    while they hold few values) and the same entry to the cardinality sketch, which a merge keeps once."""
    power, result = _track(row), None
    while True:
        if times & 1:
            result = power if result is None else result.merge(power)
        times >>= 1
        if not times:
            break
        power = power.merge(power)
    assert result is not None, "_repeated needs at least one copy"
    return result


def _track(safe: pl.DataFrame) -> DatasetProfileView:
    """whylogs' profile of a :func:`_whylogs_safe` frame."""
    data = _to_pandas(safe)
    # whylogs inspects each value of a column that may hold missing values in Python (~5 µs a value);
    # a column declared homogeneous (no null, NaN or inf) goes to its sketches in one vectorised step.
    complete = {
        name: (data[name].dtype, ColumnProperties.homogeneous)
        for name, series in safe.to_dict().items()
        if series.null_count() == 0 and (series.dtype != pl.Float64 or series.is_finite().all())
    }
    profile = DatasetProfile(schema=DatasetSchema(types=complete, type_mapper=_TypeMapper()))
    profile.track(pandas=data)
    return profile.view()


def write_profile(view: DatasetProfileView, path: Path) -> Path:
    """Write a profile in whylogs' binary format, atomically (readers never see half a file).

    Returns:
        ``path``; by convention it ends in ``.bin``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(view.serialize())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_profile(path: Path) -> DatasetProfileView:
    """Read a profile written by :func:`write_profile`.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a whylogs profile.
    """
    data = Path(path).read_bytes()
    try:
        return DatasetProfileView.deserialize(data)
    except Exception as exc:  # whylogs raises protobuf/IO errors of several kinds on bad input
        raise ValueError(f"{path} is not a whylogs profile ({exc}); rewrite it with write_profile") from None


def merge_profiles(views: Iterable[DatasetProfileView]) -> DatasetProfileView:
    """One profile of all the batches the given profiles describe (whylogs sketches merge exactly).

    Raises:
        ValueError: no profiles were given.
    """
    views = list(views)
    if not views:
        raise ValueError("merge_profiles needs at least one profile")
    return functools.reduce(lambda left, right: left.merge(right), views)


def profile_summary(view: DatasetProfileView) -> pl.DataFrame:
    """Per column: count, null count, mean, stddev, min, max and the estimated number of distinct values.

    Distribution statistics are null for string columns, and for numeric ones with no non-null value.
    """
    table = view.to_pandas()
    rows = []
    for column, metrics in table.iterrows():
        has_numbers = metrics.get("distribution/n", 0) > 0
        row: dict[str, object] = {"column": str(column)}
        for name, metric in _SUMMARY_METRICS.items():
            value = metrics.get(metric)
            numeric = metric.startswith("distribution/")
            row[name] = None if pd.isna(value) or (numeric and not has_numbers) else value
        rows.append(row)
    return pl.DataFrame(rows, schema=SUMMARY_SCHEMA).sort("column")


def served_frame(log: pl.DataFrame, *, features: str = "features",
                 outputs: tuple[str, ...] = ("prediction", "probability")) -> pl.DataFrame:
    """A prediction log as the model saw and answered it: one column per served feature, then the outputs.

    Args:
        log: the serving app's prediction log; ``features`` holds each row's model input as JSON text.
        features: the JSON column.
        outputs: the answer columns kept beside the features.

    Raises:
        ValueError: a column is missing, or a served feature has an output's name.
    """
    missing = [c for c in (features, *outputs) if c not in log.columns]
    if missing:
        raise ValueError(f"the prediction log lacks the column(s) {missing}; profile a log written by the serving "
                         "app's PredictionLog")
    # Versions with different inputs share the log: every row is read to find the union of their features.
    decoded = log[features].str.json_decode(infer_schema_length=None)
    has_fields = isinstance(decoded.dtype, pl.Struct) and bool(decoded.dtype.fields)
    inputs = decoded.struct.unnest() if has_fields else pl.DataFrame()
    # A feature missing (JSON null) in every logged row has no type of its own: it is an unknown number.
    inputs = inputs.with_columns(pl.col(pl.Null).cast(pl.Float64)) if inputs.width else inputs
    clash = sorted(set(inputs.columns) & set(outputs))
    if clash:
        raise ValueError(f"served feature(s) {clash} have the name of a prediction output; rename the feature")
    return pl.concat([inputs, log.select(outputs)], how="horizontal")


def _periods(frame: pl.DataFrame, period: str) -> list[tuple[str, pl.DataFrame]]:
    """The rows of each value of the ``period`` column, without that column; oldest first."""
    if period not in frame.columns:
        raise ValueError(f"period column '{period}' is not in the frame")
    parts = frame.partition_by(period, as_dict=True)
    return [(str(key), parts[(key,)].drop(period)) for (key,) in sorted(parts, key=lambda k: str(k[0]))]


def profile_by_period(frame: pl.DataFrame, period: str) -> dict[str, DatasetProfileView]:
    """One profile per value of the ``period`` column (e.g. each day), of every other column; oldest first.

    Raises:
        ValueError: ``period`` is not a column.
        TypeError: a column's dtype cannot be profiled.
    """
    return {value: profile_frame(rows) for value, rows in _periods(frame, period)}


# Beside the period profiles: each period's row fingerprint when its profile was written.
PERIOD_FINGERPRINTS = "fingerprints.json"


def _fingerprint(rows: pl.DataFrame) -> str:
    """The rows' schema and values, hashed in order (polars' row hash, so the polars version is part of it)."""
    digest = hashlib.sha256(f"{pl.__version__}|{rows.schema}|{rows.height}".encode())
    digest.update(rows.hash_rows(seed=0).to_numpy().tobytes())
    return digest.hexdigest()[:32]


def _read_fingerprints(manifest: Path) -> dict[str, str]:
    """The fingerprints kept beside the period profiles; none when the file is missing or unreadable (every period
    is then profiled again and the file rewritten)."""
    try:
        known = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def _profile_kept(path: Path) -> DatasetProfileView | None:
    """The profile written for a period earlier; None when it is missing or unreadable (the period is profiled
    again and the file rewritten)."""
    try:
        return read_profile(path)
    except (OSError, ValueError):
        return None


def write_profiles_by_period(frame: pl.DataFrame, period: str, folder: Path) -> pl.DataFrame:
    """Profile ``frame`` per value of its ``period`` column (:func:`profile_by_period`), write each profile to
    ``folder/<value>.bin`` and return their summaries (:func:`profile_summary`) with the value in a first column
    named ``period``, oldest first.

    A period whose rows are those profiled last time (the fingerprint kept in ``folder/fingerprints.json``) is read
    back from its file instead: a log that grows day by day is profiled once per new or changed day, not whole on
    every run. A missing or unreadable fingerprint file or profile only means profiling that period again.

    Raises:
        ValueError: ``period`` is not a column, or ``frame`` has no rows (nothing to profile).
        TypeError: a column's dtype cannot be profiled.
    """
    periods = _periods(frame, period)
    if not periods:
        raise ValueError(f"no rows to profile by {period}: profile a frame with at least one row")
    manifest = folder / PERIOD_FINGERPRINTS
    known = _read_fingerprints(manifest)
    fingerprints, summaries = {}, []
    for value, rows in periods:
        path, fingerprints[value] = folder / f"{value}.bin", _fingerprint(rows)
        view = _profile_kept(path) if known.get(value) == fingerprints[value] else None
        if view is None:
            view = profile_frame(rows)
            write_profile(view, path)
        summaries.append(profile_summary(view).select(pl.lit(value).alias(period), pl.all()))
    write_text_atomic(json.dumps(fingerprints, indent=1), manifest)
    return pl.concat(summaries)
