"""The feature catalogue: one typed record per feature, derived from the brief before any data exists.

Every reader of the features takes their types and meaning from here instead of guessing from names: the feature
store's field types and known issues, the serving API's request types and contracts, and the model inputs (every
feature that is not a protected attribute). Names, order and descriptions are the feature builder's own
(:func:`mlplatform.core.features.feature_columns`); this module adds what each definition implies:

- ``dtype``: the value type the feature table holds (``int``, ``float``, ``str``, ``bool``, ``date``,
  ``datetime``): sums, means, extremes, spreads, recencies, encodings and interactions are floats, event counts
  and tenure whole numbers, source columns keep their declared type.
- ``source_table`` / ``source_column`` / ``kind`` / ``aggregation``: which source table and column, and which
  transformation made it.
- ``nullable`` and ``caveats``: whether the value can be missing, what a missing value means, and what the
  definition cannot see.
- ``protected``: a protected attribute, kept for fairness checks and per-group thresholds, never a model input.

The built feature table is checked against it (:func:`check_schema`): a column whose type differs is an error.
"""

from collections.abc import Collection, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Literal, NamedTuple

import polars as pl

from mlplatform.brief import (
    Brief,
    ColumnSpec,
    DailyLag,
    DType,
    EventCount,
    Features,
    RollingAggregate,
    Source,
    TableFeatures,
)
from mlplatform.core.feature_names import entity_column
from mlplatform.core.features import days_since_column, feature_columns
from mlplatform.schemas import POLARS_DTYPES

Kind = Literal["attribute", "column", "tenure", "rolling", "count", "days_since", "lag", "cyclical", "interaction"]

# Aggregations whose value over no (non-null) event is null; sums and counts of nothing are 0.
_NULL_WHEN_EMPTY = {"mean": "Null when the window holds no non-null value.",
                    "min": "Null when the window holds no non-null value.",
                    "max": "Null when the window holds no non-null value.",
                    "std": "Null when the window holds fewer than two non-null values."}
_UNDERCOUNT = "Windows reaching before the first ingested event undercount."
ROW_TIME = "event_timestamp"  # the feature table's row time, which cyclical encodings read


@dataclass(frozen=True)
class CatalogueFeature:
    """One feature of the feature table, as its definition in the brief makes it.

    Attributes:
        name: the feature column, ``{entity}_{...}``.
        dtype: the type of its values in the feature table (one of the brief's column types).
        kind: which kind of definition made it (an entity ``attribute``, a plain table's ``column``, ``tenure``,
            ``rolling`` window, event ``count``, ``days_since``, daily ``lag``, ``cyclical`` encoding,
            ``interaction``).
        source_table: the brief's source the values come from.
        source_column: the source column it reads (an interaction: its two operand features, ``left, right``).
        aggregation: the aggregation or operation (``sum``, ``count``, ``ratio``, ``sin``…); "" for a column as is.
        description: one line, from the definition.
        caveats: what a missing value means and what the definition cannot see.
        nullable: whether the feature table may hold nulls in this column.
        protected: a protected attribute (fairness checks and per-group thresholds only, never a model input).
    """

    name: str
    dtype: DType
    kind: Kind
    source_table: str
    source_column: str
    aggregation: str
    description: str
    caveats: str
    nullable: bool
    protected: bool

    @property
    def polars_dtype(self) -> pl.DataType:
        """The column type of the feature in the feature table."""
        return POLARS_DTYPES[self.dtype]


@dataclass(frozen=True)
class FeatureCatalogue:
    """The brief's features in feature-table order (see the module docstring)."""

    features: tuple[CatalogueFeature, ...]

    def __getitem__(self, name: str) -> CatalogueFeature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(f"'{name}' is not a feature of the brief; features: {self.names}")

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def model_inputs(self) -> list[str]:
        """The model's input columns: every feature but the protected attributes."""
        return [f.name for f in self.features if not f.protected]

    def frame(self) -> pl.DataFrame:
        """One row per feature (the lake table ``features/catalogue``), columns as :class:`CatalogueFeature`."""
        schema = {f.name: pl.Boolean if f.type is bool else pl.String for f in fields(CatalogueFeature)}
        return pl.DataFrame([asdict(f) for f in self.features], schema=schema, orient="row")


class FeatureTypeError(ValueError):
    """The feature table disagrees with the catalogue."""


def check_schema(catalogue: FeatureCatalogue, schema: Mapping[str, pl.DataType]) -> None:
    """Raise :class:`FeatureTypeError` naming every feature missing from ``schema`` (a feature table's) or held
    there with a type other than the catalogue's."""
    wrong = [f"{f.name} is {schema[f.name]}, the catalogue says {f.dtype} ({f.polars_dtype})" if f.name in schema
             else f"{f.name} is missing" for f in catalogue.features
             if f.name not in schema or schema[f.name] != f.polars_dtype]
    if wrong:
        raise FeatureTypeError(f"the feature table does not match the feature catalogue: {'; '.join(wrong)}. The "
                               "feature builder and mlplatform.core.feature_catalogue disagree: fix the one that is "
                               "wrong, then rebuild the feature table")


def feature_catalogue(brief: Brief) -> FeatureCatalogue:
    """The catalogue of ``brief``'s features, in the order the feature table holds them."""
    return build_catalogue(brief.features, entity=brief.entity, sources=brief.sources,
                           protected_attributes=brief.protected_attributes)


def build_catalogue(spec: Features | TableFeatures, *, entity: str, sources: Mapping[str, Source],
                    protected_attributes: Collection[str] = ()) -> FeatureCatalogue:
    """The catalogue of the features ``spec`` defines over ``sources`` (whose declared columns type the features
    that are source columns as they are); ``protected_attributes`` are source columns, as in the brief."""
    protected = {entity_column(entity, column) for column in protected_attributes}
    described = feature_columns(spec, entity)
    facts = (_table_facts(spec, entity, sources) if isinstance(spec, TableFeatures)
             else _event_facts(spec, entity, sources))
    if list(facts) != list(described):  # both walk the brief's definitions in the same order
        raise AssertionError(f"the feature catalogue is out of step with the feature builder: {list(facts)} != "
                             f"{list(described)}")
    return FeatureCatalogue(tuple(
        CatalogueFeature(name=name, description=described[name], protected=name in protected, **fact._asdict())
        for name, fact in facts.items()))


class _Facts(NamedTuple):
    """What a feature's definition implies (see :class:`CatalogueFeature`)."""

    dtype: DType
    kind: Kind
    source_table: str
    source_column: str
    aggregation: str
    nullable: bool
    caveats: str


def _missing(spec: ColumnSpec, where: str) -> str:
    return f" Null where {where} is missing." if spec.nullable else ""


def _table_facts(spec: TableFeatures, entity: str, sources: Mapping[str, Source]) -> dict[str, _Facts]:
    columns = sources[spec.source].columns
    return {entity_column(entity, column): _Facts(
        columns[column].dtype, "column", spec.source, column, "", columns[column].nullable,
        f"As recorded in {spec.source}; the platform cannot tell whether it was known at the row's time."
        + _missing(columns[column], f"{spec.source}.{column}")) for column in spec.columns or []}


def _event_facts(spec: Features, entity: str, sources: Mapping[str, Source]) -> dict[str, _Facts]:
    """Each feature's facts in ``feature_columns`` order; the interactions last, from their operands' facts."""
    facts = dict(_definition_facts(spec, entity, sources[spec.entities_source].columns))
    for pair, name in zip(spec.interactions, list(feature_columns(spec, entity))[len(facts):], strict=True):
        operands = [entity_column(entity, pair.left), entity_column(entity, pair.right)]
        nullable = pair.kind == "ratio" or any(facts[operand].nullable for operand in operands)
        caveat = (f"Null when {pair.right} is 0 or null." if pair.kind == "ratio"
                  else "Null when either operand is null." if nullable else "As its operands'.")
        tables = ", ".join(dict.fromkeys(facts[operand].source_table for operand in operands))
        facts[name] = _Facts("float", "interaction", tables, ", ".join(operands), pair.kind, nullable, caveat)
    return facts


def _window(kind: Kind, table: str, column: str, aggregation: str) -> _Facts:
    """A rolling window's or a day's aggregate of an event column: counts are whole numbers, the rest floats."""
    return _Facts("int" if aggregation == "count" else "float", kind, table, column, aggregation,
                  aggregation in _NULL_WHEN_EMPTY, _NULL_WHEN_EMPTY.get(aggregation, _UNDERCOUNT))


def _definition_facts(spec: Features, entity: str, declared: Mapping[str, ColumnSpec]
                      ) -> Iterator[tuple[str, _Facts]]:
    """The features before the interactions, one definition at a time, each named by the feature builder;
    ``declared``: the entity source's columns."""
    events, entities = spec.events_source, spec.entities_source

    def named(**only) -> list[str]:
        """The builder's names of the features that ``only`` (a part of the spec) defines."""
        bare: dict[str, object] = {"entity_attributes": [], "tenure_from": None, "rolling": [], "counts": [],
                                   "days_since": [], "lags": [], "cyclical": [], "interactions": []}
        return list(feature_columns(spec.model_copy(update={**bare, **only}), entity))

    for item in spec.rolling:
        for days in item.windows_days:
            for agg in item.aggregations:
                (name,) = named(rolling=[RollingAggregate(column=item.column, aggregations=[agg], windows_days=[days])])
                yield name, _window("rolling", events, item.column, agg)
    for count in spec.counts:
        for value in count.values:
            for days in count.windows_days:
                (name,) = named(counts=[EventCount(column=count.column, values=[value], windows_days=[days])])
                yield name, _Facts("int", "count", events, count.column, f"count of {value}", False, _UNDERCOUNT)
    for value in spec.days_since:
        (name,) = [n for n in named(counts=spec.counts, days_since=[value]) if n not in named(counts=spec.counts)]
        yield name, _Facts("float", "days_since", events, days_since_column(spec, value), f"days since {value}",
                           True, "Null until the first such event; events before the data's start are not seen.")
    for lag in spec.lags:
        for days in lag.lags_days:
            for agg in lag.aggregations:
                (name,) = named(lags=[DailyLag(column=lag.column, aggregations=[agg], lags_days=[days])])
                yield name, _window("lag", events, lag.column, agg)
    for column in spec.entity_attributes:
        (name,) = named(entity_attributes=[column])
        spec_of = declared[column]
        yield name, _Facts(spec_of.dtype, "attribute", entities, column, "", spec_of.nullable,
                           "Current value from the entity table, not the value as of the row time: point-in-time "
                           "only while the attribute never changes." + _missing(spec_of, f"{entities}.{column}"))
    if spec.tenure_from:
        (name,) = named(tenure_from=spec.tenure_from)
        nullable = declared[spec.tenure_from].nullable
        yield name, _Facts("int", "tenure", entities, spec.tenure_from, "whole days since", nullable,
                           f"From the entity table's current {spec.tenure_from}"
                           + (f"; null when {spec.tenure_from} is missing." if nullable else "."))
    for cycle in spec.cyclical:
        for name, wave in zip(named(cyclical=[cycle]), ("sin", "cos"), strict=True):
            yield name, _Facts("float", "cyclical", events, ROW_TIME, f"{wave} of {cycle}", False,
                               "Depends on the row time alone.")
