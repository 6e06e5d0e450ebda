"""PostgreSQL or the schema registry unavailable is an error of the infrastructure: the materializer waits for it
(bounded backoff, the whole batch tried again) and then writes every record exactly once; it neither crashes nor
dead-letters anything. The outages are real: a TCP proxy in front of the real service, cut and restored.

The materializer here writes a table of counts (the agencies' activity), where a batch applied twice would show as
doubled sums, from a topic of its own in the suite's namespace."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from confluent_kafka import Producer

from satubus import access
from satubus.consumers.materializer import Materializer
from satubus.consumers.tables import AGENCY_ACTIVITY, TableSpec
from satubus.database import dsn as owner_dsn
from satubus.kafka import admin_client, ensure_topics, producer_config, read_to_end
from satubus.metrics import REGISTRY
from satubus.registry import register_contract, registry_client
from satubus.schemas.topics import ACTIVITY, TopicContract, TopicName
from satubus.serde import AvroSerde
from satubus.settings import Settings
from tests.integration.proxy import CuttableProxy


@pytest.fixture
def topic(bus: Settings) -> Iterator[TopicName]:
    """A topic of the test's own (its name in the suite's namespace is ``bus.topic(name)``), deleted afterwards."""
    # Under unified.*, which the materializer's principal may read.
    name = TopicName(f"unified.test-outage-{uuid.uuid4().hex[:8]}.v1")
    ensure_topics(bus, [(bus.topic(name), False)])
    yield name
    admin = admin_client(bus)
    for future in admin.delete_topics([bus.topic(name)], operation_timeout=30).values():
        future.result()
    with registry_client(bus, admin=True) as registry:  # the contract ``_produce`` registered
        subject = TopicContract(name, ACTIVITY.schema).within(bus.namespace).subject
        if subject in registry.get_subjects():
            registry.delete_subject(subject)
            registry.delete_subject(subject, permanent=True)


def _spec(topic: TopicName) -> TableSpec:
    return dataclasses.replace(AGENCY_ACTIVITY, contract=TopicContract(topic, ACTIVITY.schema))


def _counts(agency: str, n: int, rng: random.Random) -> list[dict[str, Any]]:
    """Activity records of one made-up agency (the table is shared: the agency's rows are the test's)."""
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    records = []
    for i in range(n):
        accepted, invalid, dropped = rng.randint(0, 9), rng.randint(0, 2), rng.randint(0, 2)
        records.append(
            {
                "agency": agency,
                "dataset": "outage",
                "processed_at": start + dt.timedelta(seconds=i),
                "events_in": accepted + invalid + dropped,
                "accepted": accepted,
                "invalid": invalid,
                "dropped": dropped,
            }
        )
    return records


def _produce(settings: Settings, topic: TopicName, records: list[dict[str, Any]]) -> None:
    producer = Producer(producer_config(settings, "test-outage", access.ADMIN))
    # The topic's own contract (the activity schema): a value is decoded only with a schema its topic's subject holds.
    contract = TopicContract(topic, ACTIVITY.schema).within(settings.namespace)
    with registry_client(settings, admin=True) as registry:
        register_contract(registry, contract)
    with AvroSerde(registry_client(settings)) as serde:
        encoder = serde.encoder(contract.subject, contract.value_schema())
        for record in records:
            value = encoder.encode(record)
            producer.produce(settings.topic(topic), key=f"{record['agency']}.outage".encode(), value=value)
    assert producer.flush(30) == 0


async def _events_in(settings: Settings, agency: str) -> int:
    conn = await asyncpg.connect(owner_dsn(settings))  # directly, not through the proxy
    try:
        total = await conn.fetchval("SELECT sum(events_in) FROM bus.agency_activity WHERE agency = $1", agency)
    finally:
        await conn.close()
    return int(total or 0)


def _dead_lettered() -> float:
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        for sample in metric.samples
        if sample.name.endswith("dead_letters_total") and sample.labels.get("stage") == "materialize"
    )


def _through(url: str, proxy: CuttableProxy) -> str:
    """``url`` with the proxy's address instead of the service's (its user kept)."""
    parts = urlsplit(url)
    user, at, _ = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"{user}{at}127.0.0.1:{proxy.port}").geturl()


class Running:
    """A materializer running on this test's event loop."""

    def __init__(self, settings: Settings, spec: TableSpec) -> None:
        self.materializer = Materializer(
            settings, spec, group_id=f"{access.MATERIALIZER_GROUPS}test-outage-{uuid.uuid4().hex[:8]}"
        )
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.materializer.run(self.stop))

    def assert_running(self) -> None:
        assert not self.task.done(), f"the materializer ended: {self.task.exception()!r}"

    async def until(self, condition: Callable[[], Any], what: str) -> None:
        deadline = time.monotonic() + 60
        while not await condition():
            self.assert_running()
            assert time.monotonic() < deadline, f"{what} within 60s"
            await asyncio.sleep(0.3)

    async def end(self) -> float:
        """Ask it to stop; how long it took."""
        asked = time.monotonic()
        self.stop.set()
        await asyncio.wait_for(self.task, timeout=60)
        return time.monotonic() - asked


def test_postgresql_outages_hold_batches_back_and_lose_or_repeat_none(bus: Settings, topic: TopicName) -> None:
    rng = random.Random(7)
    agency = f"outage-{uuid.uuid4().hex[:8]}"
    first, later = _counts(agency, 300, rng), _counts(agency, 1200, rng)
    proxy = CuttableProxy(bus.database_port)
    settings = bus.model_copy(update={"database_url": _through(bus.database_url, proxy)})
    dead_letters = _dead_lettered()

    async def scenario() -> None:
        proxy.cut()  # down from the start: the materializer must wait for it, not exit
        running = Running(settings, _spec(topic))
        await asyncio.to_thread(_produce, bus, topic, first)
        await asyncio.sleep(4)
        running.assert_running()
        assert await _events_in(bus, agency) == 0

        proxy.restore()
        expected = sum(r["events_in"] for r in first)
        await running.until(lambda: _is(_events_in(bus, agency), expected), "the first records were not written")

        # Cuts while batches flow: some fall in the middle of a transaction or of its commit.
        producing = threading.Thread(target=_produce_slowly, args=(bus, topic, later))
        producing.start()
        for _ in range(4):
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            proxy.cut()
            await asyncio.sleep(rng.uniform(0.5, 2))
            running.assert_running()
            proxy.restore()
        await asyncio.to_thread(producing.join)
        expected += sum(r["events_in"] for r in later)
        await running.until(lambda: _is(_events_in(bus, agency), expected), "not every record was written once")
        await asyncio.sleep(2)  # and nothing more arrives
        assert await _events_in(bus, agency) == expected
        assert await _stored_offsets(bus, running.materializer.group_id) == _ends(bus, topic)
        await running.end()

    try:
        asyncio.run(scenario())
    finally:
        proxy.close()
    assert _dead_lettered() == dead_letters, "records were dead-lettered for an outage"


def test_a_registry_outage_holds_the_records_back_without_dead_letters(bus: Settings, topic: TopicName) -> None:
    agency = f"outage-{uuid.uuid4().hex[:8]}"
    records = _counts(agency, 200, random.Random(8))
    expected = sum(r["events_in"] for r in records)
    proxy = CuttableProxy(bus.registry_port)
    settings = bus.model_copy(update={"registry_url": _through(bus.registry_url, proxy), "registry_timeout": 2.0})
    dead_letters = _dead_lettered()

    async def scenario() -> None:
        proxy.cut()  # a fresh materializer knows no schema: decoding its first record needs the registry
        running = Running(settings, _spec(topic))
        await asyncio.to_thread(_produce, bus, topic, records)
        await asyncio.sleep(6)
        running.assert_running()  # before: the registry's error ended the materializer
        assert await _events_in(bus, agency) == 0
        assert _dead_lettered() == dead_letters

        proxy.restore()
        await running.until(lambda: _is(_events_in(bus, agency), expected), "the records were not written")
        await running.end()

    try:
        asyncio.run(scenario())
    finally:
        proxy.close()
    assert _dead_lettered() == dead_letters, "records were dead-lettered for a registry outage"


def test_a_stop_during_an_outage_ends_the_materializer(bus: Settings, topic: TopicName) -> None:
    proxy = CuttableProxy(bus.database_port)
    proxy.cut()
    settings = bus.model_copy(update={"database_url": _through(bus.database_url, proxy)})

    async def scenario() -> float:
        running = Running(settings, _spec(topic))
        await asyncio.sleep(2)
        running.assert_running()
        return await running.end()

    try:
        took = asyncio.run(scenario())
    finally:
        proxy.close()
    assert took < 15, f"the materializer took {took:.0f}s to stop"


async def _is(value: Any, expected: Any) -> bool:
    return await value == expected


def _produce_slowly(settings: Settings, topic: TopicName, records: list[dict[str, Any]]) -> None:
    """Small batches for about 12 s: while the proxy is cut and restored."""
    for start in range(0, len(records), 25):
        _produce(settings, topic, records[start : start + 25])
        time.sleep(0.2)


async def _stored_offsets(settings: Settings, group: str) -> dict[int, int]:
    conn = await asyncpg.connect(owner_dsn(settings))
    try:
        rows = await conn.fetch("SELECT partition, next_offset FROM bus.consumer_offsets WHERE group_id = $1", group)
    finally:
        await conn.close()
    return {r["partition"]: r["next_offset"] for r in rows}


def _ends(settings: Settings, topic: TopicName) -> dict[int, int]:
    ends: dict[int, int] = {}
    for message in read_to_end(settings, settings.topic(topic)):
        ends[message.partition() or 0] = (message.offset() or 0) + 1
    return ends
