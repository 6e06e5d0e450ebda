"""The materializer's offsets live in PostgreSQL, named by topic and partition. A topic deleted and created again
keeps its name but starts again at offset 0: its old offsets must not make the materializer skip the new records."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid

import asyncpg
from confluent_kafka import Producer

from satubus import access
from satubus.consumers.materializer import Materializer
from satubus.consumers.tables import PERSON, TableSpec
from satubus.database import dsn as owner_dsn
from satubus.kafka import admin_client, ensure_topics, producer_config
from satubus.registry import register_contract, registry_client
from satubus.schemas.topics import TopicContract, TopicName
from satubus.serde import AvroSerde
from satubus.settings import Settings
from tests.samples import unified_person

# In the suite's namespace and under unified.*, like every topic the materializer's principal may read.
TOPIC = TopicName("unified.test-recreated.v1")


def test_a_topic_created_again_is_read_from_its_start(bus: Settings) -> None:
    spec = dataclasses.replace(PERSON, contract=TopicContract(TOPIC, PERSON.contract.schema, compacted=True))
    group = f"{access.MATERIALIZER_GROUPS}test-recreated-{uuid.uuid4().hex[:8]}"
    first = [unified_person(n) for n in range(1_000_000, 1_000_020)]
    second = [unified_person(n) for n in range(2_000_000, 2_000_200)]

    _create_again(bus)
    _produce(bus, first)
    asyncio.run(_materialize(bus, spec, group, [r["person_id"] for r in first]))
    # The new topic's offsets start at 0 again and pass those stored for the old one: read from those, the first
    # records of the new topic would be skipped.
    _create_again(bus)
    _produce(bus, second)
    asyncio.run(_materialize(bus, spec, group, [r["person_id"] for r in second]))


async def _materialize(settings: Settings, spec: TableSpec, group: str, person_ids: list[str]) -> None:
    """Run a materializer until every one of ``person_ids`` is a row; fails after 60 s."""
    materializer = Materializer(settings, spec, group_id=group)
    stop = asyncio.Event()
    running = asyncio.create_task(materializer.run(stop))
    conn = await asyncpg.connect(owner_dsn(settings))
    try:
        deadline = time.monotonic() + 60
        query = "SELECT count(*) FROM unified.person WHERE person_id = ANY($1::text[])"
        while (found := await conn.fetchval(query, person_ids)) < len(person_ids):
            assert not running.done(), running.exception()
            assert time.monotonic() < deadline, f"{found} of {len(person_ids)} rows after 60 s"
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await running


def _create_again(settings: Settings) -> None:
    topic = settings.topic(TOPIC)
    admin = admin_client(settings)
    if topic in admin.list_topics(timeout=15).topics:
        for future in admin.delete_topics([topic], operation_timeout=30).values():
            future.result()
    deadline = time.monotonic() + 60
    while True:
        try:
            ensure_topics(settings, [(topic, True)])
            return
        except Exception:  # deletion completes asynchronously: creating the name again is refused for a moment
            assert time.monotonic() < deadline, f"could not create {topic} again"
            time.sleep(0.5)


def _produce(settings: Settings, records: list[dict[str, object]]) -> None:
    producer = Producer(producer_config(settings, "test-recreated", access.ADMIN))
    # The topic's own contract (the person's schema): a value is decoded only with a schema its topic's subject holds.
    contract = TopicContract(TOPIC, PERSON.contract.schema).within(settings.namespace)
    with registry_client(settings, admin=True) as registry:
        register_contract(registry, contract)
    with AvroSerde(registry_client(settings)) as serde:
        encoder = serde.encoder(contract.subject, contract.value_schema())
        for record in records:
            producer.produce(settings.topic(TOPIC), key=str(record["person_id"]).encode(), value=encoder.encode(record))
    assert producer.flush(30) == 0
