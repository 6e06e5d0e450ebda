"""Hostile values among valid events on an agency topic: the stream worker dead-letters each with its reason, at
once, and goes on with the others. Before: a 9-byte message naming a schema whose array claims 2^26 (or 2^40) items
stalled the worker, and a version near 2^63 overflowed the joined versions and froze its key."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema

from satubus import access
from satubus.kafka import producer_config
from satubus.producers.publisher import AgencyPublisher
from satubus.registry import registry_client
from satubus.schemas.pseudonym import person_id
from satubus.schemas.topics import DEAD_LETTERS, DUKCAPIL_PENDUDUK, TopicContract
from satubus.serde import AvroSerde, Encoder
from satubus.settings import Settings
from tests.integration.conftest import PSEUDONYM_KEY, Pipeline
from tests.integration.test_dukcapil_end_to_end import fetch_rows, read_topic, wait_for_rows
from tests.samples import DUKCAPIL_RESIDENT, NIK
from tests.unit.test_serde_hostile import frame, varint

RESIDENTS = [f"{NIK[:12]}{serial:04d}" for serial in range(100, 140)]  # her sisters: same birth date, other serials
TOP = 2**63 - 1
NULLS = {
    "type": "record",
    "name": "Nulls",
    "namespace": "test.hostile",
    "doc": "Nothing but an array whose items take no bytes.",
    "fields": [{"name": "a", "type": {"type": "array", "items": "null"}, "doc": "Nulls."}],
}
PADDING = {
    "name": "padding",
    "type": ["null", {"type": "array", "items": "null"}],
    "default": None,
    "doc": "Nulls: a compatible change an administrator could register.",
}


def event(nik: str, version: int) -> dict[str, Any]:
    """A Dukcapil change event, as the envelope schema holds it."""
    return {
        "event_id": uuid.uuid4(),
        "op": "c",
        "occurred_at": dt.datetime(2026, 11, 28, 3, 0, tzinfo=dt.UTC),
        "source": {"agency": "dukcapil", "system": "siak", "version": "1"},
        "key": nik,
        "version": version,
        "after": DUKCAPIL_RESIDENT | {"nik": nik},
        "before": None,
    }


@pytest.fixture(scope="module")
def contract(bus: Settings) -> TopicContract:
    return DUKCAPIL_PENDUDUK.within(bus.namespace)


@pytest.fixture(scope="module")
def schemas(bus: Settings, contract: TopicContract) -> Iterator[dict[str, Any]]:
    """The schemas hostile messages name, registered by the registry's administrator: one under a subject of no
    topic of the bus, and a compatible evolution of Dukcapil's own contract, each with an array of nulls."""
    stray = f"{bus.namespace}.hostile.nulls-value"
    evolved = contract.value_schema()
    evolved["fields"] = [*evolved["fields"], PADDING]
    with registry_client(bus, admin=True) as registry:
        stray_id = registry.register_schema(stray, Schema(json.dumps(NULLS), "AVRO"))
        evolved_id = registry.register_schema(contract.subject, Schema(json.dumps(evolved), "AVRO"))
        own = registry.lookup_schema(contract.subject, Schema(json.dumps(contract.value_schema()), "AVRO"))
        try:
            yield {"stray": stray_id, "evolved": evolved_id, "contract": own.schema_id, "evolved schema": evolved}
        finally:  # the bus's contracts as the suite registered them
            version = registry.lookup_schema(contract.subject, Schema(json.dumps(evolved), "AVRO")).version
            assert version is not None
            registry.delete_version(contract.subject, version)
            registry.delete_version(contract.subject, version, permanent=True)
            registry.delete_subject(stray)
            registry.delete_subject(stray, permanent=True)


def hostile_messages(schemas: dict[str, Any]) -> dict[bytes, bytes]:
    """Key -> value of each hostile message."""
    evolved = Encoder(schemas["evolved"], schemas["evolved schema"]).encode(event(RESIDENTS[0], 1) | {"padding": None})
    assert evolved.endswith(b"\x00")  # the padding, null: the last byte
    return {
        b"nine": frame(schemas["stray"], varint(2**26)),  # 9 bytes: 2^26 nulls of a schema of no topic
        b"eleven": frame(schemas["stray"], varint(2**40)),
        b"limits": evolved[:-1] + b"\x02" + varint(2**40),  # Dukcapil's own evolved contract: 2^40 nulls
    }


@pytest.fixture(scope="module")
def run(bus: Settings, pipeline: Pipeline, contract: TopicContract, schemas: dict[str, Any]) -> dict[str, Any]:
    """The hostile messages first, on the topic the valid residents follow them on."""
    producer = Producer(producer_config(bus, "test-hostile", access.ADMIN))
    hostile = hostile_messages(schemas)
    top = Encoder(schemas["contract"], contract.value_schema()).encode(event(NIK, TOP))
    for key, value in [*hostile.items(), (NIK.encode(), top)]:
        producer.produce(contract.name, key=key, value=value)
    assert producer.flush(30) == 0
    with (
        AvroSerde(registry_client(bus)) as serde,
        AgencyPublisher(bus, serde, agency="dukcapil", dataset="penduduk", system="siak") as publisher,
    ):
        for nik in [*RESIDENTS, NIK]:  # her own version 1 after the version near 2^63 that was refused
            publisher.publish(nik, DUKCAPIL_RESIDENT | {"nik": nik}, version=1)
    asyncio.run(wait_for_rows(bus, len(RESIDENTS) + 1, pipeline, patience=180))
    pipeline.assert_running()
    return {"hostile": hostile | {NIK.encode(): top}}


def test_every_valid_event_reaches_the_view_and_no_key_is_frozen(bus: Settings, run: dict[str, Any]) -> None:
    rows = {r["person_id"]: r for r in asyncio.run(fetch_rows(bus))}
    key = PSEUDONYM_KEY.encode()
    assert set(rows) == {person_id(key, nik) for nik in [*RESIDENTS, NIK]}
    assert rows[person_id(key, NIK)]["version"] == 1  # the joined version: the key's revision


def test_every_hostile_message_is_dead_lettered_with_its_reason(bus: Settings, run: dict[str, Any]) -> None:
    letters = {
        m.key(): (m.value(), {k: v.decode() for k, v in m.headers()}) for m in read_topic(bus, DEAD_LETTERS.name)
    }
    assert set(letters) == set(run["hostile"])
    reasons = {
        key: (headers["satubus.error.stage"], headers["satubus.error.reason"]) for key, (_, headers) in letters.items()
    }
    assert reasons == {
        b"nine": ("decode", "ForeignSchemaId"),
        b"eleven": ("decode", "ForeignSchemaId"),
        b"limits": ("decode", "LimitExceeded"),
        NIK.encode(): ("normalize", "invalid_version"),
    }
    assert {key: value for key, (value, _) in letters.items()} == run["hostile"]  # the original bytes, to replay
    assert "items that take no bytes" in letters[b"limits"][1]["satubus.error.message"]
