"""Dukcapil residents -> agency topic -> stream processor -> unified.person.v1 -> materializer -> PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import time
import urllib.request
from collections import Counter
from typing import Any

import asyncpg
import avro.io
import avro.schema
import pytest
from confluent_kafka import Producer

from satubus import access
from satubus.consumers.tables import PERSON
from satubus.database import dsn as owner_dsn
from satubus.kafka import producer_config, read_to_end
from satubus.producers.publisher import AgencyPublisher
from satubus.producers.simulate import simulate
from satubus.registry import registry_client
from satubus.schemas.pseudonym import person_id
from satubus.schemas.topics import DEAD_LETTERS, DUKCAPIL_PENDUDUK, UNIFIED_PERSON
from satubus.serde import AvroSerde
from satubus.settings import Settings
from tests.integration.conftest import PSEUDONYM_KEY, Pipeline

RESIDENTS = 2_000
PARTITIONS = range(4)


def read_topic(settings: Settings, topic: str) -> list[Any]:
    """Every message of the contract topic ``topic`` in the suite's namespace, from the beginning to the current
    end, with a plain consumer."""
    return read_to_end(settings, settings.topic(topic))


def publish_malformed(settings: Settings) -> dict[tuple[int, int], str]:
    """One non-Avro value and one value with an unknown schema id on every partition; returns their offsets."""
    producer = Producer(producer_config(settings, "test-malformed", access.ADMIN))
    offsets: dict[tuple[int, int], str] = {}
    kinds = {
        "NotWireFormat": b"this is not Avro",
        "UnknownSchemaId": b"\x00" + struct.pack(">I", 987654) + b"\x02",
    }
    for partition in PARTITIONS:
        for kind, value in kinds.items():

            def delivered(error: Any, message: Any, kind: str = kind) -> None:
                assert error is None
                offsets[(message.partition(), message.offset())] = kind

            producer.produce(
                settings.topic(DUKCAPIL_PENDUDUK.name),
                value=value,
                key=b"malformed",
                partition=partition,
                on_delivery=delivered,
            )
    assert producer.flush(30) == 0
    return offsets


async def wait_for_rows(
    settings: Settings, expected: int, pipeline: Pipeline, patience: float = 300, *, at_most: bool = False
) -> None:
    """Until the view holds at least ``expected`` rows (with ``at_most``: at most)."""
    conn = await asyncpg.connect(owner_dsn(settings))
    try:
        deadline = time.monotonic() + patience
        while True:
            count = await conn.fetchval("SELECT count(*) FROM unified.person")
            if (count <= expected) if at_most else (count >= expected):
                return
            pipeline.assert_running()
            assert time.monotonic() < deadline, f"{count} rows, not {expected}, after {patience}s"
            await asyncio.sleep(0.25)
    finally:
        await conn.close()


async def fetch_rows(settings: Settings) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(owner_dsn(settings))
    try:
        return [dict(r) for r in await conn.fetch("SELECT * FROM unified.person")]
    finally:
        await conn.close()


def scrape(port: int, **labels: str) -> dict[str, float]:
    """Each satubus_ metric summed over its series (only the series with ``labels``, when given)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    wanted = [f'{name}="{value}"' for name, value in labels.items()]
    totals: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith("satubus_") and all(w in line for w in wanted):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            totals[name] += float(line.rsplit(" ", 1)[1])
    return dict(totals)


@pytest.fixture(scope="module")
def run(bus: Settings, pipeline: Pipeline) -> dict[str, Any]:
    malformed = publish_malformed(bus)
    started = time.monotonic()
    simulation = simulate(bus, residents=RESIDENTS, seed=20261128, dirty=0, agencies={"dukcapil"})
    asyncio.run(wait_for_rows(bus, RESIDENTS, pipeline))
    elapsed = time.monotonic() - started
    print(f"\nend to end: {RESIDENTS} residents in {elapsed:.2f}s = {RESIDENTS / elapsed:,.0f} events/s")
    return {"simulation": simulation, "malformed": malformed, "elapsed": elapsed}


def test_postgres_holds_exactly_the_expected_view(bus: Settings, run: dict[str, Any]) -> None:
    expected = {pid: p.model_dump() for pid, p in run["simulation"].truth.persons.items()}
    rows = asyncio.run(fetch_rows(bus))
    assert len(rows) == RESIDENTS
    jsonb = PERSON.json_columns
    actual = {
        r["person_id"]: {k: json.loads(v) if k in jsonb else v for k, v in r.items() if k != "committed_at"}
        for r in rows
    }
    assert actual == expected


def test_unified_topic_carries_one_record_per_person_and_no_clear_nik(bus: Settings, run: dict[str, Any]) -> None:
    messages = read_topic(bus, UNIFIED_PERSON.name)
    assert len(messages) == RESIDENTS
    assert {m.key().decode() for m in messages} == set(run["simulation"].truth.persons)
    niks = [r.nik.encode() for r in run["simulation"].world.residents]
    family_cards = [r.family_card.encode() for r in run["simulation"].world.residents]
    for message in messages:
        payload = message.key() + message.value()
        assert not any(nik in payload for nik in niks)
        assert not any(kk in payload for kk in family_cards)


def test_an_independent_client_reads_the_unified_topic(bus: Settings, run: dict[str, Any]) -> None:
    """Downstream apps need no code of ours: the registry's REST API and the reference ``avro`` implementation."""
    writers: dict[int, avro.schema.Schema] = {}
    records = {}
    for message in read_topic(bus, UNIFIED_PERSON.name):
        value = message.value()
        assert value[0] == 0, "Confluent wire format: magic byte 0"
        schema_id = struct.unpack(">I", value[1:5])[0]
        if schema_id not in writers:
            with urllib.request.urlopen(f"{bus.registry_url}/schemas/ids/{schema_id}", timeout=10) as response:
                writers[schema_id] = avro.schema.parse(json.load(response)["schema"])
        decoder = avro.io.BinaryDecoder(io.BytesIO(value[5:]))
        record = avro.io.DatumReader(writers[schema_id]).read(decoder)
        records[record["person_id"]] = record
    expected = {pid: p.model_dump() for pid, p in run["simulation"].truth.persons.items()}
    assert records == expected


def test_malformed_messages_are_dead_lettered_and_counted(bus: Settings, run: dict[str, Any]) -> None:
    letters = read_topic(bus, DEAD_LETTERS.name)
    assert len(letters) == len(run["malformed"])
    seen = {}
    for letter in letters:
        headers = {k: v.decode() for k, v in letter.headers()}
        assert headers["satubus.error.stage"] == "decode"
        assert headers["satubus.error.topic"] == bus.topic(DUKCAPIL_PENDUDUK.name)
        assert headers["satubus.error.agency"] == "dukcapil"
        assert headers["satubus.error.message"]
        seen[(int(headers["satubus.error.partition"]), int(headers["satubus.error.offset"]))] = headers[
            "satubus.error.reason"
        ]
    assert seen == run["malformed"]

    metrics = scrape(bus.stream_metrics_port)
    assert metrics["satubus_events_in_total"] == RESIDENTS + len(run["malformed"])
    assert metrics["satubus_events_invalid_total"] == len(run["malformed"])
    assert metrics["satubus_events_accepted_total"] == RESIDENTS


def test_materializer_metrics_account_for_every_row(bus: Settings, run: dict[str, Any]) -> None:
    person = scrape(bus.materializer_metrics_port, entity="person")
    assert person["satubus_rows_upserted_total"] == RESIDENTS
    assert person["satubus_end_to_end_latency_seconds_count"] == RESIDENTS
    assert scrape(bus.materializer_metrics_port, entity="person_nik")["satubus_rows_upserted_total"] == RESIDENTS


def test_deletes_at_the_source_remove_rows_through_tombstones(
    bus: Settings, run: dict[str, Any], pipeline: Pipeline
) -> None:
    """Runs last: it changes the view the tests above compare."""
    doomed = run["simulation"].world.residents[:25]
    with (
        AvroSerde(registry_client(bus)) as serde,
        AgencyPublisher(bus, serde, agency="dukcapil", dataset="penduduk", system="siak") as publisher,
    ):
        for resident in doomed:
            publisher.publish(resident.nik, None, version=2, op="d")
    asyncio.run(wait_for_rows(bus, RESIDENTS - len(doomed), pipeline, at_most=True))
    remaining = {r["person_id"] for r in asyncio.run(fetch_rows(bus))}
    gone = {person_id(PSEUDONYM_KEY.encode(), r.nik) for r in doomed}
    assert not remaining & gone
    assert len(remaining) == RESIDENTS - len(doomed)
    tombstones = [m for m in read_topic(bus, UNIFIED_PERSON.name) if m.value() is None]
    assert {m.key().decode() for m in tombstones} == gone


def test_a_row_the_database_refuses_is_dead_lettered_and_the_rest_is_written(
    bus: Settings, run: dict[str, Any], pipeline: Pipeline
) -> None:
    """A NUL character is valid Avro but PostgreSQL text refuses it: that row alone goes to the dead letters."""
    good, poisoned = (
        p.model_copy(update={"person_id": f"{n:064x}", "version": 1})
        for n, p in enumerate(list(run["simulation"].truth.persons.values())[:2], start=1)
    )
    poisoned = poisoned.model_copy(update={"full_name": "Nama\x00Rusak"})
    producer = Producer(producer_config(bus, "test-poison", access.ADMIN))
    with AvroSerde(registry_client(bus)) as serde:
        unified_person = UNIFIED_PERSON.within(bus.namespace)
        encoder = serde.encoder(unified_person.subject, unified_person.value_schema())
        for person in (poisoned, good):
            producer.produce(unified_person.name, key=person.person_id.encode(), value=encoder.encode(person.to_avro()))
    assert producer.flush(30) == 0
    deadline = time.monotonic() + 120
    while good.person_id not in {r["person_id"] for r in asyncio.run(fetch_rows(bus))}:
        pipeline.assert_running()
        assert time.monotonic() < deadline, "the materializer did not write the good row"
        time.sleep(0.25)
    assert poisoned.person_id not in {r["person_id"] for r in asyncio.run(fetch_rows(bus))}
    letters = [dict((k, v.decode()) for k, v in m.headers()) for m in read_topic(bus, DEAD_LETTERS.name)]
    refused = [h for h in letters if h["satubus.error.stage"] == "materialize"]
    assert len(refused) == 1
    assert refused[0]["satubus.error.reason"] == "CharacterNotInRepertoireError"
