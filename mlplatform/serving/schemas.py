"""Request and response models of the serving API, generated from the brief.

The entity key and the model's features (every feature of the feature service except protected attributes)
come from the brief, so a new brief gets its own validated API without code changes.
"""

from datetime import date, datetime
from types import GenericAlias
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, create_model

from mlplatform.brief import Brief, ColumnSpec, TableFeatures
from mlplatform.core.features import feature_columns

_PYTHON_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool, "date": date,
                                  "datetime": datetime}
_POLARS_TYPES: dict[type, pl.DataType] = {int: pl.Int64(), float: pl.Float64(), str: pl.String(),
                                          bool: pl.Boolean(), date: pl.Date(), datetime: pl.Datetime()}


def feature_types(brief: Brief) -> dict[str, type]:
    """The model's input features in feature-service order, each with the Python type its values have.

    The types follow what ``build_features`` writes: sums, means and recencies are floats, counts and
    tenure are whole days or events, entity attributes keep their declared column type.
    """
    entity, spec = brief.entity, brief.features
    attributes = {f"{entity}_{column}": _PYTHON_TYPES[declared.dtype] for column, declared in
                  _attribute_columns(brief).items()}
    protected = {f"{entity}_{column}" for column in brief.protected_attributes}
    types = {}
    for name in feature_columns(spec, entity):
        if name in protected:
            continue  # kept in the feature service for fairness checks, never a model input
        if name in attributes:
            types[name] = attributes[name]
        elif name.endswith("_count") or name == f"{entity}_tenure_days":
            types[name] = int
        else:
            types[name] = float
    return types


def _attribute_columns(brief: Brief) -> dict[str, ColumnSpec]:
    """The columns whose values are model inputs as they are: the entity attributes, or a plain table's inputs."""
    spec = brief.features
    if isinstance(spec, TableFeatures):
        return {column: brief.sources[spec.source].columns[column] for column in spec.columns or []}
    entities = brief.sources[spec.entities_source].columns
    return {column: entities[column] for column in spec.entity_attributes}


def feature_frame(rows: list[dict], types: dict[str, type]) -> pl.DataFrame:
    """One row per feature dict, typed like the feature table (missing values are nulls)."""
    schema = {name: polars_type(kind) for name, kind in types.items()}
    return pl.DataFrame(rows, schema=schema, orient="row", strict=False)


def entity_key_type(brief: Brief) -> type:
    """The Python type of the brief's entity key."""
    return _PYTHON_TYPES[brief.sources[brief.label.source].columns[brief.entity_key].dtype]


def polars_type(kind: type) -> pl.DataType:
    """The polars column type of values of Python type ``kind``."""
    return _POLARS_TYPES[kind]


class _Strict(BaseModel):
    # model_name / model_version are API fields, not pydantic internals.
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def api_models(brief: Brief) -> tuple[type[BaseModel], type[BaseModel], type[BaseModel]]:
    """The ``(PredictRequest, PredictResponse, BatchResponse)`` models of ``brief``.

    A request names the entity and optionally gives every model feature explicitly (each may be null, a
    missing value); without ``features`` they come from the online store.
    """
    key = brief.entity_key
    key_type = entity_key_type(brief)
    # Field definitions hold type expressions built at run time (the brief's types), typed Any for that reason.
    feature_fields: dict[str, Any] = {name: (kind | None, Field(description=f"{kind.__name__} or null"))
                                      for name, kind in feature_types(brief).items()}
    features = create_model(f"{brief.entity.title()}Features", __base__=_Strict, **feature_fields)
    request_fields: dict[str, Any] = {
        key: (key_type, Field(description=f"the {brief.entity} to score")),
        "features": (features | None, Field(default=None, description="omit to read the online store"))}
    request = create_model("PredictRequest", __base__=_Strict, **request_fields)
    response_fields: dict[str, Any] = {
        key: (key_type, ...),
        "prediction": (float | int, Field(description="class at the model's threshold, or the regression value")),
        "probability": (float | None, Field(description="positive-class (binary) or top-class probability")),
        "model_name": (str, ...),
        "model_version": (str | None, Field(description="registry version; null for the rules fallback")),
        "fallback": (bool, Field(description="true when the brief's rules answered because no model is loaded")),
        "arm": (Literal["champion", "challenger"], Field(description="the A/B arm the entity is assigned to")),
        "latency_ms": (float, ...)}
    response = create_model("PredictResponse", __base__=_Strict, **response_fields)
    # GenericAlias(list, (response,)) is list[PredictResponse], spelled so for a class that exists at run time only.
    batch_fields: dict[str, Any] = {"predictions": (GenericAlias(list, (response,)), ...), "latency_ms": (float, ...)}
    batch = create_model("BatchResponse", __base__=_Strict, **batch_fields)
    return request, response, batch
