"""The column encoders against Feast's own per-value serialisation, value type by value type."""

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import extract_text_and_num
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.type_map import python_values_to_proto_values
from feast.utils import to_naive_utc
from feast.value_type import ValueType

from mlplatform.core.feast_values import encodable, encode_column, encode_entity_keys, naive_utc_times

RNG = np.random.default_rng(5)
N = 3_000
EDGE_INTS = [0, 1, -1, 127, 128, -128, 255, 16_383, 16_384, 2**31, -(2**31), 2**53, 2**63 - 1, -(2**63)]
INTS = np.concatenate([EDGE_INTS, RNG.integers(-(2**62), 2**62, N), RNG.integers(-300, 300, N)])
NULLS = RNG.random(len(INTS)) < 0.3

COLUMNS = {
    "int64": (ValueType.INT64, pa.array(INTS)),
    "int64 with nulls (read through float64, as Feast does)": (
        ValueType.INT64, pa.array((INTS >> 11).tolist(), mask=NULLS)),
    "int32 column of an Int64 feature": (ValueType.INT64, pa.array(RNG.integers(-9, 9, N).astype(np.int32))),
    "all-null int64": (ValueType.INT64, pa.array([None] * 5, pa.int64())),
    "float64 with NaN and nulls": (ValueType.DOUBLE, pa.array(
        np.where(RNG.random(N) < 0.2, np.nan, RNG.normal(size=N) * 10.0 ** RNG.integers(-300, 300, N)),
        mask=RNG.random(N) < 0.2)),
    "float64 edges": (ValueType.DOUBLE, pa.array([0.0, -0.0, np.inf, -np.inf, 1e-5, 1e16, 0.1, 5e-324, np.nan])),
    "string": (ValueType.STRING, pa.array(["", "a", "ü-plan", None, "x" * 127, "y" * 128, "z" * 20_000, "日本",
                                           None, ""])),
    "large string, sliced": (ValueType.STRING, pa.array(["a", "bb", None, "ccc"] * 40, pa.large_string()).slice(3, 90)),
    "all-null string": (ValueType.STRING, pa.array([None, None], pa.string())),
    "bool with nulls": (ValueType.BOOL, pa.array([True, False, None, True, None])),
    "bool": (ValueType.BOOL, pa.array(RNG.random(N) < 0.5)),
}


@pytest.mark.parametrize("case", list(COLUMNS))
def test_every_value_type_encodes_to_feasts_bytes_and_text(case):
    """Bytes are Feast's ``Value.SerializeToString()`` of ``python_values_to_proto_values`` (what materialize writes);
    texts are ``extract_text_and_num``'s; a null, NaN included, is an empty Value (b"") without text."""
    value_type, column = COLUMNS[case]
    protos = python_values_to_proto_values(column.to_numpy(zero_copy_only=False), value_type)

    encoded = encode_column(column, value_type)

    assert encoded.values == [proto.SerializeToString() for proto in protos]
    assert encoded.texts == [extract_text_and_num(proto, False)[0] for proto in protos]
    nulls = [i for i, proto in enumerate(protos) if proto.WhichOneof("val") is None]
    assert all(encoded.values[i] == b"" and encoded.texts[i] is None for i in nulls)


def test_a_chunked_column_encodes_like_its_chunks_together():
    chunked = pa.chunked_array([pa.array([1, None, 3]), pa.array([4, 5])])
    assert encode_column(chunked, ValueType.INT64) == encode_column(chunked.combine_chunks(), ValueType.INT64)


def test_entity_keys_are_feasts_serialised_keys():
    keys = pa.array(INTS)
    expected = [serialize_entity_key(EntityKey(join_keys=["customer_id"], entity_values=[proto]), 3)
                for proto in python_values_to_proto_values(keys.to_numpy(), ValueType.INT64)]
    assert encode_entity_keys("customer_id", keys) == expected
    assert encode_entity_keys("customer_id", keys.cast(pa.int32(), safe=False)[:5]) == [
        serialize_entity_key(EntityKey(join_keys=["customer_id"], entity_values=[proto]), 3)
        for proto in python_values_to_proto_values(keys.cast(pa.int32(), safe=False)[:5].to_numpy(), ValueType.INT64)]


def test_times_are_feasts_naive_utc():
    moments = [datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=UTC) + timedelta(hours=h) for h in range(5)]
    zoned = pa.array(moments, pa.timestamp("us", tz="America/New_York"))
    assert naive_utc_times(zoned) == [to_naive_utc(moment) for moment in moments]
    naive = pa.array([moment.replace(tzinfo=None) for moment in moments], pa.timestamp("ns"))
    assert naive_utc_times(naive) == [moment.replace(tzinfo=None) for moment in moments]
    assert naive_utc_times(pa.array([None], pa.timestamp("us", tz="UTC"))) == [None]
    # Built from the instant's epoch microseconds: how pyarrow converts an aware datetime to a zoned array is not
    # what is tested here (in one process of the suite it kept the wall time of a fixed-offset datetime).
    offset = datetime(2025, 3, 1, tzinfo=timezone(timedelta(hours=5)))
    epoch_us = (offset - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    assert naive_utc_times(pa.array([epoch_us], pa.timestamp("us", tz="+05:00"))) == [to_naive_utc(offset)]
    assert to_naive_utc(offset) == datetime(2025, 2, 28, 19, 0)


def test_unsupported_columns_are_refused_with_the_way_out():
    assert not encodable(ValueType.DOUBLE, pa.float32())
    assert not encodable(ValueType.FLOAT, pa.float32())
    assert not encodable(ValueType.STRING, pa.dictionary(pa.int8(), pa.string()))
    with pytest.raises(ValueError, match="no encoder for a Feast FLOAT feature.*online_write_batch"):
        encode_column(pa.array([1.5], pa.float32()), ValueType.FLOAT)
    with pytest.raises(ValueError, match="join key 'customer_id' must be integers without nulls"):
        encode_entity_keys("customer_id", pa.array([1, None]))
    with pytest.raises(ValueError, match="rounds .* beyond the int64 range"):
        encode_column(pa.array([2**63 - 1, None]), ValueType.INT64)
