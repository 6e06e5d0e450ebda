"""Hostile values against the serde, with a stand-in registry: a schema id its topic does not hold, an unknown id,
and bodies that claim more than they carry. Each is refused with a typed error, in bounded time (a regression would
hang or crash the test process, hence the timeouts, whose thread method also stops a loop in C)."""

from __future__ import annotations

import json
import struct
from collections import Counter
from typing import Any, cast

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.common.schema_registry_client import SchemaVersion
from confluent_kafka.schema_registry.error import SchemaRegistryError

from satubus.schemas.avro_limits import MAX_DEPTH, MAX_ITEMS_WITHOUT_BYTES, MAX_MESSAGE_BYTES, scan_needed
from satubus.schemas.errors import ForeignSchemaId, LimitExceeded, MalformedBody, Origin, UnknownSchemaId
from satubus.schemas.topics import all_contracts
from satubus.serde import REFUSAL_SECONDS, REFUSALS_KEPT, AvroSerde, Encoder

SUBJECT = "agency.bpbd.kejadian.v1-value"
ORIGIN = Origin("agency.bpbd.kejadian.v1", 1, 42)
bounded = pytest.mark.timeout(20, method="thread")


class Registry:
    """Schemas by id and the subjects that hold each, as the registry's ccompat API answers; counts the lookups."""

    def __init__(self) -> None:
        self.schemas: dict[int, dict[str, Any]] = {}
        self.holders: dict[int, list[str]] = {}
        self.asked: Counter[int] = Counter()  # lookups of the subjects that hold an id

    def register(self, schema_id: int, subject: str, schema: dict[str, Any]) -> None:
        self.schemas[schema_id] = schema
        self.holders.setdefault(schema_id, []).append(subject)

    def get_schema_versions(self, schema_id: int, *args: Any, **kwargs: Any) -> list[SchemaVersion]:
        self.asked[schema_id] += 1
        if schema_id not in self.schemas:
            raise SchemaRegistryError(404, 40403, f"Schema {schema_id} not found.")
        return [SchemaVersion(subject, 1) for subject in self.holders[schema_id]]

    def get_schema(self, schema_id: int, *args: Any, **kwargs: Any) -> Schema:
        return Schema(json.dumps(self.schemas[schema_id]), "AVRO")

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def serde_over(registry: Registry, clock: Clock | None = None) -> AvroSerde:
    return AvroSerde(cast(SchemaRegistryClient, registry), clock=clock or Clock())


def record(name: str, *fields: tuple[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": [{"name": n, "type": t} for n, t in fields]}


def varint(n: int) -> bytes:
    """Avro's zig-zag varint."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes([*out, n])


def frame(schema_id: int, body: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + body


NULLS = record("Nulls", ("a", {"type": "array", "items": "null"}))
EMPTY_RECORDS = record("Empties", ("a", {"type": "array", "items": record("Nothing")}))
NESTED = record("Node", ("next", ["null", "Node"]))  # recursive: a linked list
INCIDENT = record("Incident", ("id", "string"), ("rw", {"type": "array", "items": "string"}))


@bounded
@pytest.mark.parametrize(
    ("schema", "body"),
    [
        (NULLS, varint(2**40)),  # the 11-byte message of the issue: 2^40 nulls
        (NULLS, varint(-(2**40)) + varint(0)),  # a block that also gives its (empty) size
        (NULLS, varint(MAX_ITEMS_WITHOUT_BYTES) + varint(1) + varint(0)),  # the total counts, not each block
        (EMPTY_RECORDS, varint(2**62)),
        (NESTED, b"\x02" * 10_000 + b"\x00"),  # fastavro overflows the C stack on this (the process dies)
    ],
    ids=["2^40 nulls", "negative block count", "blocks adding up", "2^62 empty records", "nested 10,000 deep"],
)
def test_a_body_claiming_more_than_the_limits_is_refused_before_fastavro_reads_it(
    schema: dict[str, Any], body: bytes
) -> None:
    registry = Registry()
    registry.register(7, SUBJECT, schema)
    data = frame(7, body)

    with serde_over(registry) as serde, pytest.raises(LimitExceeded) as caught:
        serde.decode(data, SUBJECT, ORIGIN)

    assert (caught.value.raw, caught.value.origin) == (data, ORIGIN)
    assert "schema 7" in str(caught.value)


def test_values_within_the_limits_of_a_scanned_schema_decode() -> None:
    registry = Registry()
    registry.register(1, SUBJECT, NULLS)
    registry.register(2, SUBJECT, NESTED)
    with serde_over(registry) as serde:
        assert serde.decode(frame(1, varint(MAX_ITEMS_WITHOUT_BYTES) + varint(0)), SUBJECT)["a"] == [None] * 10_000
        deep = serde.decode(frame(2, b"\x02" * (MAX_DEPTH - 1) + b"\x00"), SUBJECT)
    for _ in range(MAX_DEPTH - 1):
        deep = deep["next"]
    assert deep == {"next": None}


@bounded
@pytest.mark.parametrize(
    "body",
    [
        varint(2**62) + b"abc",  # a string claiming 2^62 bytes: fastavro checks it against the bytes left
        varint(3) + b"abc" + varint(2**40),  # 2^40 strings: each takes a byte at least
        varint(1) + b"x" + varint(-(2**63)) + varint(1),  # the most negative block count
    ],
    ids=["2^62-byte string", "2^40 strings", "block count -2^63"],
)
def test_claims_held_back_by_the_bytes_there_fail_at_once_as_malformed(body: bytes) -> None:
    registry = Registry()
    registry.register(3, SUBJECT, INCIDENT)
    with serde_over(registry) as serde, pytest.raises(MalformedBody):
        serde.decode(frame(3, body), SUBJECT, ORIGIN)


def test_a_value_larger_than_any_topic_takes_is_refused_unread() -> None:
    registry = Registry()
    data = frame(3, b"\x00" * MAX_MESSAGE_BYTES)
    with serde_over(registry) as serde, pytest.raises(LimitExceeded, match="largest value a topic takes"):
        serde.decode(data, SUBJECT, ORIGIN)
    assert registry.asked == Counter()


def test_no_contract_of_the_bus_needs_the_scan() -> None:
    """The scan costs about a decode in Python: the bus's own values never pay it."""
    for contract in all_contracts():
        if contract.schema is not None:
            assert not scan_needed(fastavro.parse_schema(contract.value_schema())), contract.name


def test_a_schema_id_its_topic_does_not_hold_is_refused_and_the_registry_asked_once_per_period() -> None:
    registry, clock = Registry(), Clock()
    registry.register(3, "agency.dukcapil.penduduk.v1-value", INCIDENT)
    data = Encoder(3, INCIDENT).encode({"id": "B-1", "rw": ["3"]})

    with serde_over(registry, clock) as serde:
        for _ in range(100):
            with pytest.raises(ForeignSchemaId, match=f"not registered under {SUBJECT}") as caught:
                serde.decode(data, SUBJECT, ORIGIN)
            assert (caught.value.raw, caught.value.origin) == (data, ORIGIN)
        assert registry.asked[3] == 1

        registry.register(3, SUBJECT, INCIDENT)  # registered later under the topic's subject
        clock.now += REFUSAL_SECONDS - 1
        with pytest.raises(ForeignSchemaId):
            serde.decode(data, SUBJECT, ORIGIN)
        clock.now += 1
        assert serde.decode(data, SUBJECT, ORIGIN) == {"id": "B-1", "rw": ["3"]}
        for _ in range(100):
            serde.decode(data, SUBJECT, ORIGIN)
    assert registry.asked[3] == 2


def test_an_unknown_schema_id_is_remembered_as_unknown() -> None:
    registry, clock = Registry(), Clock()
    data = frame(987654, b"\x02")
    with serde_over(registry, clock) as serde:
        for _ in range(100):
            with pytest.raises(UnknownSchemaId, match="not in the registry"):
                serde.decode(data, SUBJECT, ORIGIN)
        assert registry.asked[987654] == 1
        clock.now += REFUSAL_SECONDS
        with pytest.raises(UnknownSchemaId):
            serde.decode(data, SUBJECT, ORIGIN)
    assert registry.asked[987654] == 2


def test_refusals_kept_are_bounded_the_oldest_forgotten_first() -> None:
    registry = Registry()
    with serde_over(registry) as serde:
        for schema_id in range(REFUSALS_KEPT + 1):
            with pytest.raises(UnknownSchemaId):
                serde.decode(frame(schema_id, b""), SUBJECT)
        with pytest.raises(UnknownSchemaId):
            serde.decode(frame(REFUSALS_KEPT, b""), SUBJECT)  # still remembered
        with pytest.raises(UnknownSchemaId):
            serde.decode(frame(0, b""), SUBJECT)  # forgotten: asked again
    assert (registry.asked[0], registry.asked[REFUSALS_KEPT]) == (2, 1)
