"""The faust application: a thin adapter that feeds the pure processor (streams/processor.py) batches and delivers
its outputs.

Two kinds of agent, each at concurrency 1 (faust #606 loses data above 1): one normalizer over every mapped agency
topic (routing each event to its dataset's mapping by topic name) and the erasures, with the per-key state of every
dataset in one table; and one joiner per joined entity (person, parcel, region) over ``canonical.<entity>``, with the
join state in that entity's table. Tables are faust Tables (changelog topics, recovery and rebalancing are faust's),
stored in RocksDB, one database per partition (an erasure looks through its partition's).

Each partition's events are processed in their topic's order (streams/ownership.py: faust drops some while a
worker starts or rebalances, and they are read again before any later one). For each batch: the processor decides;
its outputs, then the changelog records of its state writes (the last write of each key, once) go out through one
confluent-kafka producer (streams/delivery.py), each confirmed by the broker; only then are the writes applied to
the tables' stores and the events acknowledged, so that their offsets may be committed (at-least-once; the guards
per key and per part make it effectively-once). The changelog records are serialized by the table's own changelog
topic, so faust recovers the tables from them as from its own.
A retriable error (the registry or the broker unavailable) runs the batch again after a backoff; nothing is
dead-lettered for it.
"""

from __future__ import annotations

import datetime as dt
import logging
import ssl
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, cast

import faust
from faust.streams import _current_event
from faust.types import TP

from satubus import access, pseudonym_key
from satubus.kafka import Login, ensure_topics, login
from satubus.pseudonym_key import PseudonymKey
from satubus.registry import registry_client
from satubus.retry import Backoff, retry, retry_async
from satubus.schemas.envelope import AGENCIES_DIR
from satubus.schemas.regions import load_regions
from satubus.schemas.topics import (
    ACTIVITY,
    DEAD_LETTERS,
    ERASURES,
    JOINED_ENTITIES,
    PERSON_NIK,
    UNIFIED_ENTITIES,
    agency_topic,
    canonical_contract,
    record_contract,
    unified_contract,
    value_subject,
)
from satubus.serde import AvroSerde
from satubus.settings import Settings
from satubus.streams import changelog_keys, commit_guard, live_config
from satubus.streams.delivery import BATCH_ITEMS, Delivery
from satubus.streams.joins import JOINS
from satubus.streams.mapping import DatasetMapping, discover_mappings
from satubus.streams.metrics import CONFIGURATION, Meter
from satubus.streams.ownership import InOrder, StuckPartitions, owned
from satubus.streams.processor import EntityJoiner, Input, Joiner, Normalizer, RegionJoiner, Result, StateView

STORE = "rocksdb://"  # partitioned on disk: faust's memory store cannot say which partition holds a key

log = logging.getLogger(__name__)

APP_ID = access.STREAMS  # the faust application id, its consumer group and its Kafka principal

# The stream processor waits for the registry and the broker as long as it takes (a dead letter would blame the
# agency, and a worker that exits only restarts into the same wait); the log shows every retry.
UNTIL_IT_ANSWERS = Backoff(first=0.5, longest=10.0, attempts=None)

# RocksDB, per table and partition (4 tables x 4 partitions here): faust's defaults are a 2 GiB block cache and
# 3 x 64 MiB write buffers each, far beyond a worker's memory. Reads hit a small cache (state is read once per key
# and batch; the OS page cache holds the files), writes are merged per batch: 16 x (4 + 2 x 2) MiB = 128 MiB at most.
ROCKSDB_OPTIONS = {
    "block_cache_size": 4 << 20,
    "write_buffer_size": 2 << 20,
    "max_write_buffer_number": 2,
    "max_open_files": 256,
}

# How often to look for partitions whose events wait but are not read, and for partitions whose head offset the
# commit guard does not know yet (streams/ownership.py).
STUCK_LOOK_SECONDS = 10.0
HEADS_LOOK_SECONDS = 1.0

# Every contract topic the processor writes to.
OUTPUTS = [
    *(unified_contract(e) for e in UNIFIED_ENTITIES),
    *(canonical_contract(e) for e in JOINED_ENTITIES),
    DEAD_LETTERS,
    ACTIVITY,
    PERSON_NIK,
]


def build_app(settings: Settings) -> faust.App:
    commit_guard.install()
    changelog_keys.install()
    key = pseudonym_key.load(settings)  # ConfigurationError before anything starts
    app = faust.App(
        settings.topic(APP_ID),
        broker=[f"kafka://{server}" for server in settings.kafka_servers],
        broker_credentials=_credentials(login(settings, access.STREAMS)),
        store=STORE,
        datadir=str(local_state(settings) / settings.instance_id),  # each worker its own
        topic_replication_factor=settings.topic_replication_factor,
        topic_partitions=settings.topic_partitions,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=False,
        Table=changelog_keys.Table,  # a changelog key the bus did not write must not stall a table's recovery
        # Batches are taken from each agent's buffer (its size: see Adapter._agent); fetch a batch per poll.
        stream_buffer_maxsize=2 * settings.stream_batch_size,
        broker_max_poll_records=settings.stream_batch_size,
        broker_session_timeout=settings.stream_session_timeout,
    )
    serde = AvroSerde(registry_client(settings))
    root = settings.mappings_dir or AGENCIES_DIR
    running = live_config.fingerprint(root)  # before loading: a change while loading is seen at the next look
    mappings = discover_mappings(root)
    Adapter(app, settings, serde, key).install(mappings)
    CONFIGURATION.labels(running).set(1)
    watch = live_config.ConfigurationWatch(root, running, discover_mappings)
    app.timer(live_config.LOOK_SECONDS)(watch.look)
    return app


def _credentials(identity: Login) -> faust.SASLCredentials:
    """aiokafka's side of kafka.client_config: SCRAM-SHA-512 over TLS, the broker's certificate and name checked."""
    return faust.SASLCredentials(
        username=identity.username,
        password=identity.password,
        mechanism="SCRAM-SHA-512",
        ssl_context=ssl.create_default_context(cafile=str(identity.ca_file)),
    )


def local_state(settings: Settings) -> Path:
    """Where this bus's stream workers keep their tables' RocksDB files. A table whose changelog topic is deleted
    must lose these too (faust refuses to start on a store ahead of its changelog)."""
    return settings.state_dir / "streams" / settings.topic(APP_ID)


class Adapter:
    def __init__(self, app: faust.App, settings: Settings, serde: AvroSerde, key: PseudonymKey) -> None:
        self.app = app
        self.settings = settings
        self.serde = serde
        self.key = key.secret
        self.key_id = key.key_id
        self.meter = Meter()
        self.outputs = list(OUTPUTS)  # and the unified topics of the datasets that are records of their own
        self.stuck = StuckPartitions(app, topics=(), every=STUCK_LOOK_SECONDS)
        app.timer(STUCK_LOOK_SECONDS)(self.stuck.look)
        app.timer(HEADS_LOOK_SECONDS)(self.stuck.learn_heads)

    def install(self, mappings: list[DatasetMapping]) -> None:
        self.outputs = [*OUTPUTS, *(record_contract(m.record) for m in mappings if m.record is not None)]
        regions = load_regions()
        topic = self.settings.topic  # the Kafka name of a contract topic, in the bus's namespace
        by_topic: dict[str, DatasetMapping] = {topic(agency_topic(m.agency, m.dataset)): m for m in mappings}
        normalizer = Normalizer(by_topic, regions, self.key, self._decode, erasures=topic(ERASURES.name))
        keys = self._table("keys")
        self._agent(
            "normalize",
            [*by_topic, topic(ERASURES.name)],
            keys,
            lambda batch, state: normalizer.process(batch, state, partial(_scan, keys), dt.datetime.now(dt.UTC)),
        )
        joined = {m.spec.entity for m in mappings if m.spec.part is not None} - {"region"}
        joiners: list[Joiner] = [EntityJoiner(JOINS[entity], self._decode) for entity in sorted(joined)]
        for joiner in [*joiners, RegionJoiner(regions, self._decode)]:
            parts = topic(canonical_contract(joiner.entity).name)
            self._agent(f"join-{joiner.entity}", [parts], self._table(f"join-{joiner.entity}"), joiner.process)
        # Created here, not by faust, so that they have the bus's compaction bound for erased values from the start.
        changelogs = [(table.changelog_topic.get_topic_name(), True) for table in self.app.tables.values()]
        ensure_topics(self.settings, changelogs, role=access.STREAMS)
        log.info("normalizing %d agency datasets; joining %s", len(by_topic), ", ".join(sorted(joined | {"region"})))

    def _decode(self, value: bytes, origin: Any, reader: dict[str, Any] | None) -> dict[str, Any]:
        return self.serde.decode(value, value_subject(origin.topic), origin, reader=reader)

    def _table(self, name: str) -> Any:
        return self.app.Table(
            name, key_type=str, value_type=bytes, partitions=self.settings.topic_partitions, options=ROCKSDB_OPTIONS
        )

    def _agent(
        self,
        name: str,
        topics: list[str],
        table: Any,
        process: Callable[[Sequence[Input], StateView], Result],
    ) -> None:
        stage = "normalize" if name == "normalize" else "join"
        # A joiner's records are batches of up to BATCH_ITEMS parts: it takes, and buffers, about as many parts as
        # a normalizer events (its buffer, counted in records, would otherwise hold hundreds of megabytes).
        batch_size = self.settings.stream_batch_size
        records_per_batch = batch_size if stage == "normalize" else max(1, batch_size * 10 // BATCH_ITEMS)
        self.stuck.topics.update(topics)
        source = self.app.topic(*topics, key_type=bytes, value_type=bytes, maxsize=2 * records_per_batch)
        # A producer of its own: an agent confirms its own batch's deliveries, not another agent's. Made before the
        # worker starts, with the outputs' schema ids and partitions: a worker started while the registry or the
        # broker does not answer waits for them (its /health names which), as a running one does.
        make_delivery = partial(
            Delivery,
            self.settings,
            self.serde,
            self.outputs,
            client_id=f"{self.app.conf.id}-{name}",
            key_id=self.key_id,
        )
        delivery = retry(make_delivery, backoff=UNTIL_IT_ANSWERS, what=f"{name}: looking up its outputs")
        in_order = InOrder(self.app)

        async def agent(stream: faust.StreamT[bytes]) -> None:
            # Not ``take_events``: a worker stopping in the middle of a batch would acknowledge the whole batch, and
            # the events not yet processed would be committed and lost. Each event is acknowledged once done.
            batches = cast(faust.Stream[bytes], stream).noack_take(
                records_per_batch, within=self.settings.stream_batch_seconds
            )
            async for taken in batches:
                started = time.perf_counter()
                # noack_take gives the events, not their values; those after a gap wait for it (#596)
                events = await in_order.admit(owned(self.app, cast(list[Any], taken)))
                if not events:
                    continue
                run = partial(self._run, name, process, events, table, delivery)
                events, batch, result = await retry_async(run, backoff=UNTIL_IT_ANSWERS, what=name)
                # A worker that is stopping, or was expelled (a batch longer than the rebalance timeout), has lost its
                # partitions meanwhile: their writes would reopen stores that are no longer its own.
                events = owned(self.app, events)
                self._apply_state(result, events, table, delivery)
                for event in events:
                    await cast(faust.Stream[bytes], stream).ack(event)
                self.meter.batch(stage, batch, result, time.perf_counter() - started)

        self.app.agent(source, name=name, concurrency=1)(agent)

    async def _run(
        self,
        name: str,
        process: Callable[[Sequence[Input], StateView], Result],
        events: list[Any],
        table: Any,
        delivery: Delivery,
    ) -> tuple[list[Any], list[Input], Result]:
        """Process the events this worker still owns (checked at each attempt: a rebalance may come while it waits)
        and deliver the outcome."""
        events = owned(self.app, events)
        batch = [self._input(event.message) for event in events]
        state = partial(self._held, table, {event.message.partition: event for event in events})
        try:
            result = process(batch, state)
            # The outputs are confirmed before the state that records them is sent: a worker that dies in between
            # leaves state behind its outputs (the batch runs again, and sends them again), never ahead of them
            # (the batch would run again against state that calls its events duplicates, and send nothing).
            delivery.send(result.outputs)
            await delivery.confirm()
            changelog = table.changelog_topic  # the records faust's Table would write, serialized by faust
            for key, write in result.state.items():
                record_key, _ = changelog.prepare_key(key, None)
                record_value = None if write.value is None else changelog.prepare_value(write.value, None)[0]
                delivery.send_changelog(changelog.get_topic_name(), write.partition, record_key, record_value)
            await delivery.confirm()
        except Exception:
            self.stuck.paused.add(name)  # waiting for the registry or the broker: no partition is stuck meanwhile
            raise
        self.stuck.paused.discard(name)
        return events, batch, result

    @staticmethod
    def _input(message: Any) -> Input:
        headers = message.headers or ()
        pairs = tuple(headers.items()) if isinstance(headers, dict) else tuple(headers)
        return Input(message.topic, message.partition, message.offset, message.key, message.value, pairs)

    @staticmethod
    def _held(table: Any, of_partition: dict[int, Any], key: str, partition: int) -> bytes | None:
        """The table's value of ``key`` in ``partition``: a RocksDB store looks in the partition of the task's
        current event (see ``_apply_state``). Read from the store, as the writes go: ``table.get`` would look the key
        up twice (``in``, then the value)."""
        _current_event.set(weakref.ref(of_partition[partition]))
        try:
            value: bytes = table.data[key]
        except KeyError:
            return None
        return value

    @staticmethod
    def _apply_state(result: Result, events: list[Any], table: Any, delivery: Delivery) -> None:
        """Put the batch's writes, already in the changelog, into the table's store (not through the table, which
        would send each again). A store keeps a key in the partition of the task's current event: each write is
        attributed to an event of the partition the processor named. Only the task-local variable is set: the
        stream's own ``current_event`` is what its take buffer reads for the next event. A RocksDB store also
        records the changelog offset it holds, so that a restart recovers only what came after. Partitions that
        are no longer this worker's (no event of theirs is left in ``events``) are left alone."""
        of_partition = {event.message.partition: event for event in events}
        for key, write in result.state.items():
            if write.partition in of_partition:
                _current_event.set(weakref.ref(of_partition[write.partition]))
                if write.value is None:  # forgotten (an erasure): a tombstone in the changelog, gone from the store
                    table.data.pop(key, None)
                else:
                    table.data[key] = write.value
        changelog = table.changelog_topic.get_topic_name()
        for (topic, partition), offset in delivery.changelog_offsets.items():
            if topic == changelog and partition in of_partition:
                table.data.set_persisted_offset(TP(topic, partition), offset)


def _scan(table: Any, partition: int) -> Iterator[tuple[str, bytes]]:
    """Every key the table's store keeps in ``partition`` (one RocksDB database per partition) and its value."""
    store = table.data
    for raw_key, value in store._visible_items(store._db_for_partition(partition)):
        key = store._decode_key(raw_key)
        if changelog_keys.is_readable(key):
            yield key, store._decode_value(value)
