"""Feast's online-store bytes for whole Arrow columns at once.

Feast writes an online row per feature value: the entity key as ``serialize_entity_key``'s bytes, the value as a
serialised ``feast.types.Value`` proto and its text (``extract_text_and_num``). Feast builds one proto object per value
(``python_values_to_proto_values``) and serialises it, in Python, which is most of a large materialisation's time.
This module produces the same bytes for a whole column with numpy, for the scalar types the feature catalogue gives
(Int64, Float64, String, Bool) and an Int64 join key:

- ``Value`` is a proto3 ``oneof``: a set field is written even when it is zero; a null (Feast: ``None``, NaN or NaT,
  ``pd.isnull``) is an empty ``Value`` and serialises to ``b""``, with no text.
- Int64 (field 4): tag ``0x20``, then the value as a base-128 varint of its 64-bit two's complement (10 bytes for a
  negative value). Feast reads an integer column with nulls through a float64 array (Arrow's ``to_numpy``) and
  writes ``int(value)``, so such a column is rounded through float64 here too.
- Float64 (field 5): tag ``0x29``, then 8 little-endian IEEE bytes; NaN is a null.
- String (field 2): tag ``0x12``, the UTF-8 length as a varint, the UTF-8 bytes.
- Bool (field 7): tag ``0x38``, then ``0x00`` or ``0x01``.
- Entity key (serialisation version 3, one join key): ``<I`` 1 (keys), ``<I`` STRING, ``<I`` the name's length, the
  name, ``<I`` INT64, ``<I`` 8, ``<q`` the value.

A column of any other type (or Arrow type) is not encoded here: :func:`encodable` says so and the caller keeps
Feast's own path. Tests compare every byte with Feast's serialisation.
"""

import struct
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]  # no py.typed marker
import pyarrow.compute as pc  # type: ignore[import-untyped]  # no py.typed marker

import mlplatform.core.feast_import  # noqa: F401  # first: Feast without typeguard's rewrites (see the module)

# isort: split
from feast.value_type import ValueType

_INT64, _DOUBLE, _STRING, _BOOL = ValueType.INT64, ValueType.DOUBLE, ValueType.STRING, ValueType.BOOL
# The field tag byte (field number << 3 | wire type) of each scalar in feast.types.Value.
_TAG = {_INT64: 0x20, _DOUBLE: 0x29, _STRING: 0x12, _BOOL: 0x38}


@dataclass(frozen=True)
class EncodedColumn:
    """One feature column as Feast's SQLite online store holds it: per row the serialised value (``b""`` for a
    null) and its text (None for a null)."""

    values: list[bytes]
    texts: list[str | None]


def encodable(value_type: ValueType, arrow_type: pa.DataType) -> bool:
    """Whether :func:`encode_column` writes Feast's bytes for a feature of ``value_type`` stored as ``arrow_type``."""
    if value_type == _INT64:
        return pa.types.is_integer(arrow_type)
    if value_type == _DOUBLE:
        return pa.types.is_float64(arrow_type)
    if value_type == _STRING:
        return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
    if value_type == _BOOL:
        return pa.types.is_boolean(arrow_type)
    return False


def encode_column(column: pa.Array, value_type: ValueType) -> EncodedColumn:
    """The serialised ``Value`` of every row of ``column`` and the text Feast stores beside it.

    Raises:
        ValueError: the type pair is not one :func:`encodable` accepts.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if not encodable(value_type, column.type):
        raise ValueError(f"no encoder for a Feast {value_type.name} feature stored as Arrow {column.type}; "
                         "write it through Feast's online_write_batch")
    n = len(column)
    valid = np.ones(n, dtype=bool) if column.null_count == 0 else column.is_valid().to_numpy(zero_copy_only=False)
    if value_type == _INT64:
        ints = column.cast(pa.int64()).fill_null(0).to_numpy()
        if column.null_count:  # Feast goes through Arrow's float64 array of a column with nulls
            rounded = ints.astype(np.float64)
            if (np.abs(rounded) >= 2.0**63).any():  # Feast's proto refuses them ("Value out of range")
                raise ValueError("an Int64 feature with nulls holds a value that rounds (through float64, as Feast "
                                 "reads it) beyond the int64 range; store it as Float64 or keep it within ±2^63")
            ints = rounded.astype(np.int64)
        body, lengths = _varints(ints.view(np.uint64))
        texts: list[str | None] = list(map(str, ints.tolist()))
        rows = _prefixed(_INT64, body, lengths, valid)
    elif value_type == _DOUBLE:
        doubles = column.fill_null(np.nan).to_numpy()
        valid &= ~np.isnan(doubles)
        rows = _prefixed(_DOUBLE, doubles.astype("<f8").view(np.uint8).reshape(n, 8), np.full(n, 8), valid)
        texts = list(map(str, doubles.tolist()))
    elif value_type == _BOOL:
        flags = column.fill_null(False).to_numpy(zero_copy_only=False)
        rows = _prefixed(_BOOL, flags.astype(np.uint8).reshape(n, 1), np.ones(n, dtype=np.int64), valid)
        texts = ["True" if flag else "False" for flag in flags.tolist()]
    else:
        rows = _strings(column, valid)
        texts = column.to_pylist()
    if not valid.all():
        for i in np.flatnonzero(~valid).tolist():
            texts[i] = None
    return EncodedColumn(values=rows, texts=texts)


def entity_key_prefix(join_key: str) -> bytes:
    """``serialize_entity_key``'s bytes (version 3) of an entity of one Int64 join key, up to the value."""
    name = join_key.encode("utf8")
    head = struct.pack("<III", 1, ValueType.STRING.value, len(name))
    return head + name + struct.pack("<II", ValueType.INT64.value, 8)


def encode_entity_keys(join_key: str, column: pa.Array) -> list[bytes]:
    """``serialize_entity_key`` (version 3) of each value of an Int64 join-key column without nulls.

    Raises:
        ValueError: the column has nulls or is not of integers.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if not pa.types.is_integer(column.type) or column.null_count:
        raise ValueError(f"join key '{join_key}' must be integers without nulls to be encoded here (got "
                         f"{column.type}, {column.null_count} nulls); write it through Feast's online_write_batch")
    prefix = np.frombuffer(entity_key_prefix(join_key), dtype=np.uint8)
    n = len(column)
    table = np.empty((n, len(prefix) + 8), dtype=np.uint8)
    table[:, : len(prefix)] = prefix
    table[:, len(prefix):] = column.cast(pa.int64()).to_numpy().astype("<i8").view(np.uint8).reshape(n, 8)
    return _split(table.tobytes(), np.arange(n) * table.shape[1], np.full(n, table.shape[1]))


def naive_utc_times(column: pa.Array) -> list[datetime | None]:
    """The column's instants as naive UTC datetimes (microseconds), as Feast's ``to_naive_utc`` gives them."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return pc.cast(column, pa.timestamp("us"), safe=False).to_pylist()


def _varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Base-128 varints of unsigned 64-bit values: an (n, 10) byte table and each row's used length (1-10)."""
    groups = np.empty((len(values), 10), dtype=np.uint8)
    lengths = np.ones(len(values), dtype=np.int64)
    for k in range(10):
        shifted = values >> np.uint64(7 * k)
        groups[:, k] = (shifted & np.uint64(0x7F)).astype(np.uint8)
        if k:
            lengths += shifted != 0
    more = np.arange(10) < (lengths - 1)[:, None]  # every byte but a value's last has the continuation bit
    groups[more] |= 0x80
    return groups, lengths


def _prefixed(value_type: ValueType, body: np.ndarray, lengths: np.ndarray, valid: np.ndarray) -> list[bytes]:
    """The tag byte then each row's first ``lengths`` bytes of ``body``; ``b""`` where not ``valid``."""
    n, width = body.shape
    table = np.empty((n, width + 1), dtype=np.uint8)
    table[:, 0] = _TAG[value_type]
    table[:, 1:] = body
    return _split(table.tobytes(), np.arange(n) * (width + 1), np.where(valid, lengths + 1, 0))


def _strings(column: pa.Array, valid: np.ndarray) -> list[bytes]:
    """Tag, varint length and UTF-8 bytes of each string; ``b""`` for a null."""
    n = len(column)
    offset_type = np.int64 if pa.types.is_large_string(column.type) else np.int32
    _, offsets_buffer, data_buffer = column.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[column.offset: column.offset + n + 1].astype(np.int64)
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.empty(0, dtype=np.uint8)
    sizes = np.where(valid, np.diff(offsets), 0)
    header, header_sizes = _varints(sizes.astype(np.uint64))
    header_sizes = np.where(valid, header_sizes + 1, 0)  # with the tag byte
    row_sizes = header_sizes + sizes
    starts = np.concatenate([[0], np.cumsum(row_sizes)[:-1]]).astype(np.int64)
    out = np.empty(int(row_sizes.sum()), dtype=np.uint8)
    tagged = np.empty((n, 11), dtype=np.uint8)
    tagged[:, 0] = _TAG[_STRING]
    tagged[:, 1:] = header
    used = np.arange(11) < header_sizes[:, None]
    out[(starts[:, None] + np.arange(11))[used]] = tagged[used]
    total = int(sizes.sum())
    if total:
        within = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        out[np.repeat(starts + header_sizes, sizes) + within] = data[np.repeat(offsets[:-1], sizes) + within]
    return _split(out.tobytes(), starts, row_sizes)


def _split(blob: bytes, starts: np.ndarray, sizes: np.ndarray) -> list[bytes]:
    """``blob[start:start + size]`` for each row."""
    ends = (starts + sizes).tolist()
    return [blob[start:end] for start, end in zip(starts.tolist(), ends, strict=True)]
