"""The Confluent wire format against the real schema registry."""

from __future__ import annotations

import datetime as dt
import struct
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from satubus.registry import registry_client
from satubus.schemas.errors import (
    DecodeError,
    ForeignSchemaId,
    MalformedBody,
    NotWireFormat,
    Origin,
    SchemaNotRegistered,
    UnknownSchemaId,
)
from satubus.schemas.topics import DUKCAPIL_PENDUDUK, UNIFIED_PERSON, TopicContract, all_contracts, value_subject
from satubus.serde import AvroSerde, RecordInvalid
from satubus.settings import Settings
from tests.integration.conftest import NAMESPACE

PERSON = {
    "person_id": "a" * 64,
    "household_id": "b" * 64,
    "full_name": "Siti Rahmawati",
    "birth_date": dt.date(1995, 8, 15),
    "sex": "FEMALE",
    "address": "Jl. Kenari II No. 5 RT 003/RW 011",
    "kelurahan_code": "31.71.06.1001",
    "kecamatan_code": "31.71.06",
    "kota_code": "31.71",
    "is_deceased": False,
    "deceased_on": None,
    "version": 3,
    "updated_at": dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC),
    "source_event_id": "00000000-0000-4000-8000-000000000001",
    "aid": [
        {
            "disbursement_id": "KLJ-2026-10-000001",
            "programme": "KLJ",
            "period": "2026-10",
            "amount": 300000,
            "status": "PAID",
            "paid_on": dt.date(2026, 10, 5),
        }
    ],
    "schooling": [],
    "health_visits": 1,
    "last_health_visit_at": dt.datetime(2026, 11, 1, 3, 0, tzinfo=dt.UTC),
    "immunisations": [],
}

PERSON_CONTRACT = UNIFIED_PERSON.within(NAMESPACE)  # registered by the suite, in its namespace


@pytest.fixture
def serde(bus: Settings) -> Iterator[AvroSerde]:
    with AvroSerde(registry_client(bus)) as serde:
        yield serde


def test_round_trip_and_the_frame(serde: AvroSerde) -> None:
    encoder = serde.encoder(PERSON_CONTRACT.subject, PERSON_CONTRACT.value_schema())
    data = encoder.encode(PERSON)
    assert data[0] == 0 and struct.unpack(">I", data[1:5])[0] == encoder.schema_id
    assert serde.decode(data, PERSON_CONTRACT.subject) == PERSON


def test_confluents_own_deserializer_reads_our_bytes(bus: Settings, serde: AvroSerde) -> None:
    data = serde.encode(PERSON_CONTRACT.subject, PERSON_CONTRACT.value_schema(), PERSON)
    with registry_client(bus) as client:
        # Apicurio has no subject associations, the client's default lookup: consumers name the strategy.
        deserializer = AvroDeserializer(client, conf={"subject.name.strategy.type": "TOPIC"})
        decoded = deserializer(data, SerializationContext(PERSON_CONTRACT.name, MessageField.VALUE))
    assert decoded == PERSON


def test_producing_with_an_unregistered_schema_fails_clearly(serde: AvroSerde) -> None:
    schema = PERSON_CONTRACT.value_schema()
    schema["fields"] = [*schema["fields"], {"name": "invented", "type": "string", "doc": "not in the registry"}]
    with pytest.raises(SchemaNotRegistered, match="producers do not register schemas"):
        serde.encoder(PERSON_CONTRACT.subject, schema)


def test_a_record_that_misfits_names_the_field_and_masks_niks(serde: AvroSerde) -> None:
    encoder = serde.encoder(PERSON_CONTRACT.subject, PERSON_CONTRACT.value_schema())
    with pytest.raises(RecordInvalid, match="version") as caught:
        encoder.encode(PERSON | {"version": "3171061508950001"})
    assert "3171061508950001" not in str(caught.value)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", NotWireFormat),
        (b"\x00\x00\x00", NotWireFormat),
        (b'{"json": true}', NotWireFormat),
        (b"\x00" + struct.pack(">I", 2_000_000_000) + b"\x02", UnknownSchemaId),
    ],
)
def test_malformed_input_raises_typed_errors_keeping_bytes_and_origin(
    serde: AvroSerde, data: bytes, error: type[Exception]
) -> None:
    origin = Origin("agency.dukcapil.penduduk.v1", 3, 1234)
    with pytest.raises(error) as caught:
        serde.decode(data, value_subject(origin.topic), origin)
    assert caught.value.raw == data  # type: ignore[attr-defined]
    assert caught.value.origin == origin  # type: ignore[attr-defined]


def test_a_schema_id_of_another_topic_is_refused_and_the_refusal_is_kept(serde: AvroSerde) -> None:
    """A person record, framed with the unified person's schema id, read as a value of Dukcapil's topic: the
    registry (its ccompat /schemas/ids/{id}/versions) says that topic's subject does not hold that id."""
    data = serde.encode(PERSON_CONTRACT.subject, PERSON_CONTRACT.value_schema(), PERSON)
    dukcapil = DUKCAPIL_PENDUDUK.within(NAMESPACE)
    origin = Origin(dukcapil.name, 0, 5)
    for _ in range(2):  # the second refusal comes from the serde's memory (unit-tested without a registry)
        with pytest.raises(ForeignSchemaId, match=f"not registered under {dukcapil.subject}") as caught:
            serde.decode(data, dukcapil.subject, origin)
        assert (caught.value.raw, caught.value.origin) == (data, origin)
    assert serde.decode(data, PERSON_CONTRACT.subject) == PERSON


def test_truncated_and_overlong_bodies_are_malformed(serde: AvroSerde) -> None:
    data = serde.encode(PERSON_CONTRACT.subject, PERSON_CONTRACT.value_schema(), PERSON)
    origin = Origin(PERSON_CONTRACT.name, 2, 77)
    for damaged, message in ((data[:-7], None), (data + b"\x00\x01", "left after")):
        with pytest.raises(MalformedBody, match=message) as caught:
            serde.decode(damaged, PERSON_CONTRACT.subject, origin)
        assert (caught.value.raw, caught.value.origin) == (damaged, origin)


def test_registering_again_is_idempotent(bus: Settings) -> None:
    with registry_client(bus, admin=True) as client:
        schema = Schema(__import__("json").dumps(PERSON_CONTRACT.value_schema()), "AVRO")
        assert client.register_schema(PERSON_CONTRACT.subject, schema) == client.register_schema(
            PERSON_CONTRACT.subject, schema
        )


hex64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
people = st.fixed_dictionaries(
    {
        "person_id": hex64,
        "household_id": hex64,
        "full_name": st.text(min_size=1, max_size=60),
        "birth_date": st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2030, 12, 31)),
        "sex": st.sampled_from(["MALE", "FEMALE"]),
        "address": st.text(max_size=120),
        "kelurahan_code": st.just("31.71.06.1001"),
        "kecamatan_code": st.just("31.71.06"),
        "kota_code": st.just("31.71"),
        "is_deceased": st.booleans(),
        "deceased_on": st.none() | st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2030, 12, 31)),
        "version": st.integers(min_value=0, max_value=2**63 - 1),
        "updated_at": st.datetimes(
            min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)
        ).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000)),
        "source_event_id": st.uuids().map(str),
        "aid": st.just([]),
        "schooling": st.just([]),
        "health_visits": st.integers(min_value=0, max_value=2**31 - 1),
        "last_health_visit_at": st.none(),
        "immunisations": st.lists(st.sampled_from(["BCG", "HB0", "MR1", "POLIO1"]), unique=True),
    }
)


@hypothesis_settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(person=people)
def test_property_every_person_round_trips(serde: AvroSerde, person: dict[str, object]) -> None:
    data = serde.encode(PERSON_CONTRACT.subject, PERSON_CONTRACT.value_schema(), person)
    assert serde.decode(data, PERSON_CONTRACT.subject) == person


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200), origin_offset=st.integers(min_value=0, max_value=10**9))
def test_property_random_bytes_raise_only_typed_decode_errors(
    serde: AvroSerde, data: bytes, origin_offset: int
) -> None:
    origin = Origin("agency.dukcapil.penduduk.v1", 0, origin_offset)
    try:
        serde.decode(data, value_subject(origin.topic), origin)
    except DecodeError as exc:
        assert exc.raw == data and exc.origin == origin


@hypothesis_settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(person=people, cut=st.integers(min_value=1, max_value=40))
def test_property_truncated_frames_are_refused(serde: AvroSerde, person: dict[str, object], cut: int) -> None:
    data = serde.encode(PERSON_CONTRACT.subject, PERSON_CONTRACT.value_schema(), person)
    with pytest.raises(DecodeError):
        serde.decode(data[: max(len(data) - cut, 0)], PERSON_CONTRACT.subject)


def avro_values(schema: Any, named: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Values of an Avro schema as the serde decodes them: every union branch, nested records, arrays of up to
    three items. Named types are found by their name as written (the contracts spell out what they reference)."""
    if isinstance(schema, list):
        return st.one_of([avro_values(branch, named) for branch in schema])
    if isinstance(schema, str):
        primitives: dict[str, st.SearchStrategy[Any]] = {
            "null": st.none(),
            "boolean": st.booleans(),
            "int": st.integers(-(2**31), 2**31 - 1),
            "long": st.integers(-(2**63), 2**63 - 1),
            "float": st.floats(width=32, allow_nan=False),
            "double": st.floats(allow_nan=False),
            "string": st.text(max_size=30),
            "bytes": st.binary(max_size=30),
        }
        return primitives[schema] if schema in primitives else st.deferred(lambda: named[schema])
    logical = schema.get("logicalType")
    if logical == "date":
        return st.dates(dt.date(1900, 1, 1), dt.date(2100, 1, 1))
    if logical == "timestamp-millis":
        moments = st.datetimes(dt.datetime(1970, 1, 1), dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC))
        return moments.map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))
    if logical == "uuid":
        return st.uuids()
    kind = schema["type"]
    if kind == "record":
        strategy = st.fixed_dictionaries({f["name"]: avro_values(f["type"], named) for f in schema["fields"]})
    elif kind == "enum":
        strategy = st.sampled_from(schema["symbols"])
    elif kind == "array":
        return st.lists(avro_values(schema["items"], named), max_size=3)
    elif kind == "map":
        return st.dictionaries(st.text(max_size=10), avro_values(schema["values"], named), max_size=3)
    else:
        return avro_values(kind, named)
    named[schema["name"]] = strategy
    if "namespace" in schema:
        named[f"{schema['namespace']}.{schema['name']}"] = strategy
    return strategy


def as_decoded(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: as_decoded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_decoded(v) for v in value]
    return str(value) if isinstance(value, uuid.UUID) else value


def distinct_shapes() -> list[TopicContract]:
    """One contract per schema shape: every agency dataset once (the 51 service-request topics share one), every
    canonical and unified entity."""
    seen: set[str] = set()
    shapes = []
    for contract in all_contracts(NAMESPACE):
        if contract.schema is not None and (shape := contract.value_schema()["name"]) not in seen:
            seen.add(shape)
            shapes.append(contract)
    return shapes


@pytest.mark.parametrize("contract", distinct_shapes(), ids=lambda c: c.subject)
def test_property_every_contract_round_trips(serde: AvroSerde, contract: TopicContract) -> None:
    schema = contract.value_schema()
    encoder = serde.encoder(contract.subject, schema)

    @hypothesis_settings(max_examples=40, deadline=None)
    @given(record=avro_values(schema, {}))
    def round_trip(record: dict[str, Any]) -> None:
        assert as_decoded(serde.decode(encoder.encode(record), contract.subject)) == as_decoded(record)

    round_trip()
