"""Unified topic -> PostgreSQL table, with an exactly-once effect.

Each batch is one transaction: the rows (COPY into a staging table, then one merge guarded by version) and the
next Kafka offset of every partition in the batch. The offset update is a compare-and-set on the offset this
instance last stored, so an instance that lost its partitions in a rebalance cannot commit: its transaction
rolls back and it re-reads where the new owner got to. On (re)assignment the consumer starts from the offsets
stored in PostgreSQL, not from Kafka's committed offsets (those are committed afterwards only for lag tools).
A table of counts (``TableSpec.additive``: the agencies' activity) adds every record's counts instead of keeping
the latest record per key (consumers/activity.py), in the same transaction as the offsets.

A record in error (it does not decode, or PostgreSQL refuses its row) is dead-lettered. PostgreSQL, Kafka or the
schema registry unavailable is not the record's fault: the whole batch (decoding, then its transaction) is tried
again with backoff until it goes through, and nothing is dead-lettered for it (meanwhile the process's /health
answers 503 naming the service). A retry cannot apply a batch twice:
if a commit went through unacknowledged, the retry's compare-and-set on the offsets fails and the materializer
re-reads from the stored offsets. Every call that may block (librdkafka, the registry) runs on the executor, never
on the event loop that the materializers of one process share.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka import TopicPartition as KafkaPartition

from satubus import access, database, health
from satubus.consumers import activity, faults, metrics
from satubus.consumers.tables import TableSpec
from satubus.errors import BrokerUnavailable
from satubus.kafka import consumer_config, producer_config, topic_id
from satubus.metrics import DEAD_LETTERED
from satubus.registry import registry_client
from satubus.schemas.dead_letters import DeadLetter
from satubus.schemas.errors import DecodeError, Origin
from satubus.schemas.masking import mask_text
from satubus.schemas.topics import DEAD_LETTERS, value_subject
from satubus.serde import AvroSerde
from satubus.settings import Settings

log = logging.getLogger(__name__)

GROUP_ID = "satubus-materializer"  # each entity's group is "<namespace>.satubus-materializer-<entity>"
BATCH_MAX = 2000
BATCH_WAIT = 0.1  # seconds a batch may wait to fill up: at low rates, the latency this adds
DEAD_LETTER_TIMEOUT = 30.0  # seconds for the broker to acknowledge a batch's dead letters

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Received:
    origin: Origin
    key: bytes | None
    value: bytes | None

    @classmethod
    def of(cls, message: Message) -> Received:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        assert topic is not None and partition is not None and offset is not None  # set on every fetched message
        return cls(Origin(topic, partition, offset), message.key(), message.value())


def entity_key(message: Message) -> bytes:
    key = message.key()
    if not key:
        raise DecodeError("unified records must be keyed by entity id; this one has no key", message.value() or b"")
    return key


def component(entity: str) -> str:
    """How the process's /health names the materializer of ``entity`` until it has its first assignment."""
    return f"materializer {entity}"


class Fenced(Exception):
    """The stored offset moved under us: another instance owns the partition now."""


@dataclass(slots=True)
class Batch:
    """One fetch of messages, decoded and sorted: what its transaction writes."""

    size: int
    ranges: dict[int, tuple[int, int]] = field(default_factory=dict)  # partition -> first and last offset
    # The row of each key's last record, with its message (to dead-letter it if PostgreSQL refuses the row).
    upserts: list[tuple[Message, tuple[Any, ...]]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)  # keys of tombstones
    counts: list[dict[str, Any]] = field(default_factory=list)  # every record, for a table of counts
    undecodable: list[tuple[Received, DecodeError]] = field(default_factory=list)


POOL_CLOSE_TIMEOUT = 10.0  # seconds


class Materializer:
    def __init__(self, settings: Settings, spec: TableSpec, *, group_id: str | None = None) -> None:
        self.settings = settings
        self.spec = spec
        self.group_id = settings.topic(group_id or f"{GROUP_ID}-{spec.entity}")
        self.topic = settings.topic(spec.contract.name)
        # Clear NIKs are read by their own principal: the materializer's cannot read restricted topics, nor the dead
        # letters (the events as sent).
        restricted = spec.contract.name.startswith("restricted.") or spec.contract.name == DEAD_LETTERS.name
        self.role = access.RESTRICTED if restricted else access.MATERIALIZER
        self.login = database.NIK_MATERIALIZER if restricted else database.MATERIALIZER
        self._reader = spec.contract.value_schema()  # records of older versions get this version's defaults
        self._subject = value_subject(self.topic)
        self._serde = AvroSerde(registry_client(settings))
        self._positions: dict[int, int | None] = {}  # partition -> next offset stored in PostgreSQL
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: Any = None
        self._consumer: Consumer | None = None
        self._topic_id: str | None = None  # the Kafka topic id of the topic read, stored with its offsets
        self._dead_letters: Producer | None = None
        self._stop = asyncio.Event()
        self.committed = 0  # messages whose effect is committed, for tests and progress

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._stop = stop
        try:
            self._pool = await self._until_available(self._create_pool, "connecting to PostgreSQL")
            self._dead_letters = Producer(producer_config(self.settings, self.group_id, self.role))
            self._topic_id = await self._until_available(self._fetch_topic_id, f"describing {self.topic}")
            consumer = self._consumer = Consumer(
                consumer_config(self.settings, self.group_id, self.role)
                # Static membership: a restarted instance takes its partitions back at once instead of waiting out
                # the dead one's session, and a second process with the same id fences the first.
                | {"group.instance.id": f"{self.group_id}-{self.settings.instance_id}"}
            )
            consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
            log.info("materializing %s into %s", self.topic, self.spec.table)
            while not stop.is_set():
                messages = await loop.run_in_executor(None, consumer.consume, BATCH_MAX, BATCH_WAIT)
                if messages:
                    what = f"materializing a batch of {len(messages)} from {self.topic}"
                    await self._until_available(functools.partial(self._apply, messages), what)
                self._record_lag()
        except faults.Stopped as exc:
            log.info("stopped while %s", exc)
        finally:
            if self._consumer is not None:
                await loop.run_in_executor(None, self._consumer.close)
            if self._dead_letters is not None:
                await loop.run_in_executor(None, self._dead_letters.flush, DEAD_LETTER_TIMEOUT)
            if self._pool is not None:
                try:  # a connection an interrupted batch never gave back would make close() wait for ever
                    await asyncio.wait_for(self._pool.close(), POOL_CLOSE_TIMEOUT)
                except TimeoutError:
                    log.warning("PostgreSQL connections still busy after %.0f s; closing them", POOL_CLOSE_TIMEOUT)
                    self._pool.terminate()
            self._serde.close()

    async def _until_available(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        """``operation()``, tried again while a service it needs is unavailable (``faults.UNTIL_AVAILABLE``: without
        end, since no offset moves past a batch that is not committed); a stop request ends the waiting."""
        return await faults.until_available(operation, what=what, stop=self._stop)

    async def _create_pool(self) -> Any:
        with faults.database_errors():
            return await asyncpg.create_pool(
                database.dsn(self.settings, self.login), min_size=1, max_size=2, init=self._init_connection
            )

    async def _fetch_topic_id(self) -> str:
        assert self._loop is not None
        with faults.kafka_errors():
            return await self._loop.run_in_executor(None, topic_id, self.settings, self.topic, self.role)

    async def _init_connection(self, conn: Any) -> None:
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {self.spec.staging} "
            f"(LIKE {self.spec.table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )

    # --- partition ownership (called by librdkafka inside consume(), on the executor thread) ---

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        assert self._loop is not None
        reading = self._until_available(self._stored_offsets, f"reading the stored offsets of {self.topic}")
        stored = asyncio.run_coroutine_threadsafe(reading, self._loop).result()  # Stopped: raised by consume()
        for tp in partitions:
            self._positions[tp.partition] = stored.get(tp.partition)
            tp.offset = stored.get(tp.partition, OFFSET_BEGINNING)
        log.info("assigned %s", {tp.partition: tp.offset for tp in partitions})
        consumer.assign(partitions)
        health.STATE.started(component(self.spec.entity))  # ready: an instance may well be assigned none

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        for tp in partitions:
            self._positions.pop(tp.partition, None)
        log.info("revoked partitions %s", [tp.partition for tp in partitions])

    async def _stored_offsets(self) -> dict[int, int]:
        """The offsets stored for this topic; those of an earlier topic of the same name are dropped."""
        topic = self.topic
        async with faults.connection(self._pool) as conn:
            rows = await conn.fetch(
                "SELECT partition, next_offset, topic_id FROM bus.consumer_offsets WHERE group_id = $1 AND topic = $2",
                self.group_id,
                topic,
            )
            if any(r["topic_id"] not in (None, self._topic_id) for r in rows):
                log.warning(
                    "%s was deleted and created again since its offsets were stored: reading it from the start", topic
                )
                await conn.execute(
                    "DELETE FROM bus.consumer_offsets WHERE group_id = $1 AND topic = $2 AND topic_id <> $3",
                    self.group_id,
                    topic,
                    self._topic_id,
                )
                rows = [r for r in rows if r["topic_id"] in (None, self._topic_id)]
        return {r["partition"]: r["next_offset"] for r in rows}

    # --- one batch, one transaction ---

    async def _apply(self, messages: list[Message]) -> None:
        """Decode the batch (on the executor: an unknown schema id is a request to the registry), then write it in
        one transaction. Raises an ``InfrastructureError`` when a service is unavailable, having changed nothing
        that counts: the caller tries the whole batch again."""
        assert self._loop is not None
        batch = await self._loop.run_in_executor(None, self._sort, messages)
        if not batch.ranges:
            return
        started = time.perf_counter()
        try:
            async with faults.transaction(self._pool) as conn:
                for partition, (_, last) in batch.ranges.items():
                    await self._advance_offset(conn, partition, last + 1)
                # Dead letters only once the compare-and-set succeeded (a fenced batch must not send them), and
                # acknowledged before the offsets that skip them commit.
                for received, decode_error in batch.undecodable:
                    self._dead_letter(received, decode_error, type(decode_error).__name__)
                written, refused = await self._upsert_all(conn, batch.upserts)
                added = await activity.add(conn, batch.counts)
                if batch.undecodable:
                    await self._flush_dead_letters()
                if batch.deletes:
                    await conn.execute(
                        f"DELETE FROM {self.spec.table} WHERE {self.spec.key} = ANY($1::text[])", batch.deletes
                    )
        except Fenced as exc:
            metrics.FENCED.labels(self.spec.entity).inc()
            log.warning("%s; re-reading the stored offsets", exc)
            await self._reseek()
            return
        for partition, (_, last) in batch.ranges.items():
            self._positions[partition] = last + 1
        self._commit_to_kafka(batch.ranges)

        entity = self.spec.entity
        now = dt.datetime.now(dt.UTC)
        metrics.COMMIT_SECONDS.labels(entity).observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.labels(entity).observe(batch.size)
        metrics.ROWS_UPSERTED.labels(entity).inc(written + added)
        metrics.STALE_SKIPPED.labels(entity).inc(len(batch.upserts) - written - refused)
        metrics.ROWS_DELETED.labels(entity).inc(len(batch.deletes))
        if batch.upserts:
            end_to_end = metrics.END_TO_END_SECONDS.labels(entity)
            updated_at = self.spec.columns.index(self.spec.clock)
            for _, row in batch.upserts:
                end_to_end.observe((now - row[updated_at]).total_seconds())
        self.committed += batch.size

    def _sort(self, messages: list[Message]) -> Batch:
        """The batch's last record per key (or every record, for a table of counts) as a row, tombstones and
        records that do not decode; a schema registry that does not answer raises ``RegistryUnavailable``."""
        batch = Batch(len(messages))
        latest: dict[bytes, tuple[Message, tuple[Any, ...]] | None] = {}  # key -> last message and row; None: deleted
        row = self.spec.row
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                if faults.broker_unavailable(KafkaException(error)):
                    log.warning("%s: %s (the client reconnects by itself)", self.topic, error)
                    continue
                raise KafkaException(error)
            partition, offset = message.partition(), message.offset()
            assert partition is not None and offset is not None  # set on every fetched message
            if partition not in self._positions:
                continue  # revoked while the batch was in flight
            first, _ = batch.ranges.get(partition, (offset, offset))
            batch.ranges[partition] = (first, offset)
            try:
                if self.spec.from_message is not None:
                    made = self.spec.from_message(message)
                    if made is not None:
                        latest[str(made[self.spec.key]).encode()] = (message, row(made))
                    continue
                record = self._decode(message.value())
                if self.spec.additive and record is not None:
                    batch.counts.append(record)
                else:  # only its row is kept: a record that dies young costs Python's garbage collector less
                    latest[entity_key(message)] = None if record is None else (message, row(record))
            except DecodeError as exc:
                batch.undecodable.append((Received.of(message), exc))
        batch.upserts = [upsert for upsert in latest.values() if upsert is not None]
        batch.deletes = [key.decode() for key, upsert in latest.items() if upsert is None]
        return batch

    def _decode(self, value: bytes | None) -> dict[str, Any] | None:
        """The record, or None for a tombstone. (A decode error's origin is left out: the dead letter has it.)"""
        if value is None:
            return None
        return self._serde.decode(value, self._subject, reader=self._reader)

    def _dead_letter(self, received: Received, exc: Exception, reason: str) -> None:
        origin = received.origin
        letter = DeadLetter("materialize", reason, exc, origin.topic, origin.partition, origin.offset, agency="")
        assert self._dead_letters is not None
        headers: Any = letter.headers(received.value)  # confluent-kafka's stubs type header lists invariantly
        self._dead_letters.produce(
            self.settings.topic(DEAD_LETTERS.name), value=received.value, key=received.key, headers=headers
        )
        DEAD_LETTERED.labels("materialize", reason).inc()
        log.warning("dead-lettered %s/%d@%d: %s", origin.topic, origin.partition, origin.offset, mask_text(str(exc)))

    async def _flush_dead_letters(self) -> None:
        """Wait (on the executor) for the broker to acknowledge the dead letters; ``BrokerUnavailable`` if it does
        not in time, which rolls the batch back to be tried again."""
        assert self._dead_letters is not None and self._loop is not None
        if await self._loop.run_in_executor(None, self._dead_letters.flush, DEAD_LETTER_TIMEOUT):
            raise BrokerUnavailable(f"dead letters not acknowledged within {DEAD_LETTER_TIMEOUT:.0f}s")

    async def _advance_offset(self, conn: Any, partition: int, next_offset: int) -> None:
        expected = self._positions[partition]
        topic = self.topic
        if expected is None:
            status = await conn.execute(
                "INSERT INTO bus.consumer_offsets (group_id, topic, partition, next_offset, topic_id) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                self.group_id,
                topic,
                partition,
                next_offset,
                self._topic_id,
            )
        else:
            status = await conn.execute(
                "UPDATE bus.consumer_offsets SET next_offset = $4, topic_id = $6, updated_at = now() "
                "WHERE group_id = $1 AND topic = $2 AND partition = $3 AND next_offset = $5",
                self.group_id,
                topic,
                partition,
                next_offset,
                expected,
                self._topic_id,
            )
        if status.endswith(" 0"):
            raise Fenced(f"partition {partition} of {topic} was advanced by another instance")

    async def _upsert_all(self, conn: Any, upserts: list[tuple[Message, tuple[Any, ...]]]) -> tuple[int, int]:
        """Upsert the batch in one merge; if the database refuses a row, find it row by row and dead-letter it
        (a poison record must not stop the materializer), then upsert the rest. Returns (written, refused)."""
        try:
            async with conn.transaction():  # a savepoint
                return await self._upsert(conn, [row for _, row in upserts]), 0
        except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError):
            pass
        written = refused = 0
        for message, row in upserts:
            try:
                async with conn.transaction():
                    written += await self._upsert(conn, [row])
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
                self._dead_letter(Received.of(message), exc, type(exc).__name__)
                refused += 1
        await self._flush_dead_letters()  # before the offsets that skip them are committed
        return written, refused

    async def _upsert(self, conn: Any, rows: list[tuple[Any, ...]]) -> int:
        """A row replaces the stored one unless that is newer. An equal version is the same state of a joined
        entity (its version grows with every change) or a finding reported again; the later one wins, as it does
        in the compacted topic."""
        if not rows:
            return 0
        await conn.execute(f"DELETE FROM {self.spec.staging}")
        columns = self.spec.columns
        await conn.copy_records_to_table(self.spec.staging, records=rows, columns=columns)
        column_list = ", ".join(columns)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in (*columns, "committed_at") if c != self.spec.key)
        status = await conn.execute(
            f"INSERT INTO {self.spec.table} ({column_list}, committed_at) "
            f"SELECT {column_list}, committed_at FROM {self.spec.staging} "
            f"ON CONFLICT ({self.spec.key}) DO UPDATE SET {updates} "
            f"WHERE {self.spec.table}.version <= EXCLUDED.version"
        )
        return int(status.rsplit(" ", 1)[1])

    async def _reseek(self) -> None:
        stored = await self._stored_offsets()
        assert self._loop is not None
        await self._loop.run_in_executor(None, self._seek, stored)

    def _seek(self, stored: dict[int, int]) -> None:
        """On the executor: librdkafka's seek may wait for the fetcher."""
        assert self._consumer is not None
        for partition in list(self._positions):
            self._positions[partition] = stored.get(partition)
            offset = stored.get(partition, OFFSET_BEGINNING)
            try:
                self._consumer.seek(KafkaPartition(self.topic, partition, offset))
            except KafkaException as exc:  # no longer ours: the next assignment reads the stored offset
                log.info("could not seek partition %d: %s", partition, exc)

    def _record_lag(self) -> None:
        """From the watermarks of the last fetch (``cached=True``): no request to the broker, nothing that blocks."""
        assert self._consumer is not None
        topic, lag = self.topic, 0
        for position in self._consumer.position([KafkaPartition(topic, p) for p in self._positions]):
            _, high = self._consumer.get_watermark_offsets(position, cached=True)
            if high >= 0 and position.offset >= 0:
                lag += high - position.offset
            elif high > 0:  # nothing consumed yet: all of it is lag
                lag += high
        metrics.CONSUMER_LAG.labels(self.spec.entity).set(lag)

    def _commit_to_kafka(self, ranges: dict[int, tuple[int, int]]) -> None:
        """Only so that lag tools see progress; PostgreSQL holds the offsets that count."""
        assert self._consumer is not None
        offsets = [KafkaPartition(self.topic, p, last + 1) for p, (_, last) in ranges.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            log.debug("lag-only offset commit failed: %s", exc)
