"""Request and response models of the serving API, generated from the brief.

The entity key and the model's features (every feature of the feature service except protected attributes)
come from the brief, so a new brief gets its own validated API without code changes. The request models carry
the brief's contracts, so a bad value is a 422 naming the field before it reaches the online store, the model or
the prediction log: ids and whole numbers within Int64 (and the column's declared range), text within the
declared levels, finite numbers only, and strict types (``true`` is neither an id nor a number).
"""

from dataclasses import dataclass
from datetime import date, datetime
from types import GenericAlias
from typing import Annotated, Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, create_model

from mlplatform.brief import Brief, ColumnSpec
from mlplatform.core.feature_catalogue import CatalogueFeature, feature_catalogue

_PYTHON_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool, "date": date,
                                  "datetime": datetime}
_POLARS_TYPES: dict[type, pl.DataType] = {int: pl.Int64(), float: pl.Float64(), str: pl.String(),
                                          bool: pl.Boolean(), date: pl.Date(), datetime: pl.Datetime()}
# Whole numbers are Int64 in every table (the entity key included): a larger one cannot be stored or looked up.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Text without declared levels: long enough for any id or label, short enough that no value floods the log.
MAX_TEXT_LENGTH = 1000


def feature_types(brief: Brief) -> dict[str, type]:
    """The features serving gives the model, in feature-service order, each with the Python type of its values in
    the feature table (the feature catalogue's dtype).

    Protected attributes are never model inputs; they are served only where the model decides per group (fairness
    mitigation ``threshold_optimizer``), for that decision.
    """
    return {feature.name: _PYTHON_TYPES[feature.dtype] for feature in _served(brief)}


def _served(brief: Brief) -> list[CatalogueFeature]:
    """The catalogue's features that serving takes: the model inputs, and the protected attributes where the model
    decides per group."""
    per_group = "threshold_optimizer" in brief.fairness.mitigation
    return [f for f in feature_catalogue(brief).features if per_group or not f.protected]


def feature_contracts(brief: Brief) -> dict[str, ColumnSpec | None]:
    """The declared column contract of each served feature that is a source column as it is (an entity attribute
    or a plain table's input); None for a derived feature (sums, counts, ratios), whose contract is its type."""
    return {f.name: brief.sources[f.source_table].columns[f.source_column] if f.kind in ("attribute", "column")
            else None for f in _served(brief)}


def contracted_type(kind: type, spec: ColumnSpec | None) -> Any:
    """``kind`` annotated with what a request value must satisfy: strict type, Int64 range, finite numbers, the
    declared range and levels of ``spec``."""
    if kind is str:
        if spec is not None and spec.allowed:
            return Literal[tuple(spec.allowed)]
        return Annotated[str, Field(strict=True, max_length=MAX_TEXT_LENGTH)]
    if kind is bool:
        return Annotated[bool, Field(strict=True)]
    if kind not in (int, float):
        return kind  # dates and datetimes arrive as ISO text, which only the lax mode parses
    low = spec.min if spec is not None else None
    high = spec.max if spec is not None else None
    if kind is int:
        low = INT64_MIN if low is None else max(INT64_MIN, int(-(-low // 1)))  # the smallest whole number >= min
        high = INT64_MAX if high is None else min(INT64_MAX, int(high // 1))
        return Annotated[int, Field(strict=True, ge=low, le=high)]
    return Annotated[float, Field(strict=True, allow_inf_nan=False, ge=low, le=high)]


def feature_frame(rows: list[dict], types: dict[str, type]) -> pl.DataFrame:
    """One row per feature dict, typed like the feature table (missing values are nulls)."""
    schema = {name: polars_type(kind) for name, kind in types.items()}
    return pl.DataFrame(rows, schema=schema, orient="row", strict=False)


def entity_key_type(brief: Brief) -> type:
    """The Python type of the brief's entity key."""
    return _PYTHON_TYPES[brief.sources[brief.label.source].columns[brief.entity_key].dtype]


def entity_key_contract(brief: Brief) -> ColumnSpec:
    """The declared contract of the brief's entity key (its column in the label source)."""
    return brief.sources[brief.label.source].columns[brief.entity_key]


def polars_type(kind: type) -> pl.DataType:
    """The polars column type of values of Python type ``kind``."""
    return _POLARS_TYPES[kind]


class _Strict(BaseModel):
    # model_name / model_version are API fields, not pydantic internals.
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ErrorBody(_Strict):
    """A refused or failed request: one sentence naming the cause and what to do."""

    detail: str


class FieldError(_Strict):
    """One invalid field of a request: where it is and what is wrong. The value sent is never echoed back."""

    loc: list[str | int] = Field(description="path to the field, e.g. ['body', 0, 'features', 'customer_plan']")
    msg: str
    type: str = Field(description="pydantic's error type, e.g. 'finite_number', 'less_than_equal'")


class ValidationErrorBody(_Strict):
    """422: the request breaks the API's contract; nothing was scored or logged."""

    detail: list[FieldError] = Field(description="the first errors found, each naming its field")
    errors: int = Field(description="how many errors the request has (detail lists at most the first 20)")


class NotReady(_Strict):
    """503 from /ready: the model is loading, or the online store does not answer."""

    ready: Literal[False]
    reason: str


@dataclass(frozen=True)
class ApiModels:
    """The models of one brief's API.

    Attributes:
        request: one entity, with its features or without (then read from the online store).
        response: the answer of ``/predict``.
        batch: the answer of ``/predict/batch``: one row per entity, each with its own ``status``.
    """

    request: type[BaseModel]
    response: type[BaseModel]
    batch: type[BaseModel]


# What every answered row says, beside the entity id and the prediction itself.
_ANSWER_FIELDS: dict[str, Any] = {
    "model_name": (str, ...),
    "model_version": (str | None, Field(description="registry version; null for the rules fallback")),
    "fallback": (bool, Field(description="true when the brief's rules answered because no model is loaded")),
    "arm": (Literal["champion", "challenger"], Field(description="the A/B arm the entity is assigned to")),
    "latency_ms": (float, ...)}


def api_models(brief: Brief) -> ApiModels:
    """The request and response models of ``brief``.

    A request names the entity and optionally gives every model feature explicitly (each may be null, a
    missing value); without ``features`` they come from the online store. Every value must meet the brief's
    contract (see the module docstring), else the request is a 422 naming the field.
    """
    key = brief.entity_key
    key_type = entity_key_type(brief)
    # Field definitions hold type expressions built at run time (the brief's types), typed Any for that reason.
    contracts = feature_contracts(brief)
    feature_fields: dict[str, Any] = {}
    for feature in _served(brief):
        kind, contract = _PYTHON_TYPES[feature.dtype], contracts[feature.name]
        described = f"{_describe(kind, contract)}. {feature.description}"
        feature_fields[feature.name] = (contracted_type(kind, contract) | None, Field(
            default=None, description=f"{described}; optional: the per-group decision threshold reads it, and "
            "without it the model's default threshold decides") if feature.protected else Field(description=described))
    features = create_model(f"{brief.entity.title()}Features", __base__=_Strict, **feature_fields)
    request_fields: dict[str, Any] = {
        key: (contracted_type(key_type, entity_key_contract(brief)), Field(description=f"the {brief.entity} to score")),
        "features": (features | None, Field(default=None, description="omit to read the online store"))}
    request = create_model("PredictRequest", __base__=_Strict, **request_fields)
    response_fields: dict[str, Any] = {
        key: (key_type, ...),
        "prediction": (float | int, Field(description="class at the model's threshold, or the regression value")),
        "probability": (float | None, Field(description="positive-class (binary) or top-class probability")),
        **_ANSWER_FIELDS}
    response = create_model("PredictResponse", __base__=_Strict, **response_fields)
    row_fields: dict[str, Any] = {
        key: (key_type, ...),
        "status": (Literal["ok", "not_found"], Field(
            description="ok: scored; not_found: the online store has no features of this entity (unknown, or "
                        "not seen within the features' TTL) - send 'features' explicitly to score it")),
        "detail": (str | None, Field(default=None, description="why a row is not ok")),
        "prediction": (float | int | None, Field(description="null unless status is ok")),
        "probability": (float | None, Field(description="positive-class (binary) or top-class probability")),
        **_ANSWER_FIELDS}
    row = create_model("BatchPrediction", __base__=_Strict, **row_fields)
    # GenericAlias(list, (row,)) is list[BatchPrediction], spelled so for a class that exists at run time only.
    batch_fields: dict[str, Any] = {
        "predictions": (GenericAlias(list, (row,)), Field(description="one per request item, in request order")),
        "not_found": (int, Field(description="rows whose status is not_found")),
        "latency_ms": (float, ...)}
    batch = create_model("BatchResponse", __base__=_Strict, **batch_fields)
    return ApiModels(request, response, batch)


def _describe(kind: type, spec: ColumnSpec | None) -> str:
    """The OpenAPI description of a feature: its type and declared contract."""
    parts = [f"{kind.__name__} or null"]
    if spec is not None and spec.allowed:
        parts.append(f"one of {', '.join(spec.allowed)}")
    if spec is not None and (spec.min is not None or spec.max is not None):
        parts.append(f"within [{spec.min if spec.min is not None else '-inf'}, "
                     f"{spec.max if spec.max is not None else 'inf'}]")
    return "; ".join(parts)
