"""Unified topic -> PostgreSQL table, with an exactly-once effect.

Each batch is one transaction: the rows (COPY into a staging table, then one merge guarded by version) and the
next Kafka offset of every partition in the batch. The offset update is a compare-and-set on the offset this
instance last stored, so an instance that lost its partitions in a rebalance cannot commit: its transaction
rolls back and it re-reads where the new owner got to. On (re)assignment the consumer starts from the offsets
stored in PostgreSQL, not from Kafka's committed offsets (those are committed afterwards only for lag tools).
A table of counts (``TableSpec.additive``: the agencies' activity) adds every record's counts instead of keeping
the latest record per key (consumers/activity.py), in the same transaction as the offsets.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka import TopicPartition as KafkaPartition

from satubus.consumers import activity, metrics
from satubus.consumers.tables import TableSpec
from satubus.kafka import consumer_config, producer_config, topic_id
from satubus.metrics import DEAD_LETTERED
from satubus.registry import registry_client
from satubus.schemas.dead_letters import DeadLetter
from satubus.schemas.errors import DecodeError, Origin
from satubus.schemas.nik import mask_nik
from satubus.schemas.topics import DEAD_LETTERS
from satubus.serde import AvroSerde
from satubus.settings import Settings

log = logging.getLogger(__name__)

GROUP_ID = "satubus-materializer"
BATCH_MAX = 2000
BATCH_WAIT = 0.1  # seconds a batch may wait to fill up: at low rates, the latency this adds


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

    def entity_key(self) -> bytes:
        if not self.key:
            raise DecodeError("unified records must be keyed by entity id; this one has no key", self.value or b"")
        return self.key


class Fenced(Exception):
    """The stored offset moved under us: another instance owns the partition now."""


class Materializer:
    def __init__(self, settings: Settings, spec: TableSpec, *, group_id: str | None = None) -> None:
        self.settings = settings
        self.spec = spec
        self.group_id = settings.topic(group_id or f"{GROUP_ID}-{spec.entity}")
        self.topic = settings.topic(spec.contract.name)
        self._reader = spec.contract.value_schema()  # records of older versions get this version's defaults
        self._serde = AvroSerde(registry_client(settings))
        self._positions: dict[int, int | None] = {}  # partition -> next offset stored in PostgreSQL
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: Any = None
        self._consumer: Consumer | None = None
        self._topic_id: str | None = None  # the Kafka topic id of the topic read, stored with its offsets
        self._dead_letters: Producer | None = None
        self.committed = 0  # messages whose effect is committed, for tests and progress

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._pool = await asyncpg.create_pool(
            self.settings.database_url, min_size=1, max_size=2, init=self._init_connection
        )
        self._dead_letters = Producer(producer_config(self.settings, client_id=self.group_id))
        self._topic_id = await self._loop.run_in_executor(None, topic_id, self.settings, self.topic)
        consumer = self._consumer = Consumer(
            consumer_config(self.settings, self.group_id)
            # Static membership: a restarted instance takes its partitions back at once instead of waiting out the
            # dead one's session, and a second process with the same id fences the first.
            | {"group.instance.id": f"{self.group_id}-{self.settings.instance_id}"}
        )
        consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        log.info("materializing %s into %s", self.topic, self.spec.table)
        try:
            while not stop.is_set():
                messages = await self._loop.run_in_executor(None, consumer.consume, BATCH_MAX, BATCH_WAIT)
                if messages:
                    await self._apply(messages)
                self._record_lag()
        finally:
            await self._loop.run_in_executor(None, consumer.close)
            self._dead_letters.flush(30)
            await self._pool.close()
            self._serde.close()

    async def _init_connection(self, conn: Any) -> None:
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {self.spec.staging} "
            f"(LIKE {self.spec.table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )

    # --- partition ownership (called by librdkafka inside consume(), on the executor thread) ---

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        assert self._loop is not None
        stored = asyncio.run_coroutine_threadsafe(self._stored_offsets(), self._loop).result()
        for tp in partitions:
            self._positions[tp.partition] = stored.get(tp.partition)
            tp.offset = stored.get(tp.partition, OFFSET_BEGINNING)
        log.info("assigned %s", {tp.partition: tp.offset for tp in partitions})
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        for tp in partitions:
            self._positions.pop(tp.partition, None)
        log.info("revoked partitions %s", [tp.partition for tp in partitions])

    async def _stored_offsets(self) -> dict[int, int]:
        """The offsets stored for this topic; those of an earlier topic of the same name are dropped."""
        topic = self.topic
        rows = await self._pool.fetch(
            "SELECT partition, next_offset, topic_id FROM bus.consumer_offsets WHERE group_id = $1 AND topic = $2",
            self.group_id,
            topic,
        )
        if any(r["topic_id"] not in (None, self._topic_id) for r in rows):
            log.warning(
                "%s was deleted and created again since its offsets were stored: reading it from the start", topic
            )
            await self._pool.execute(
                "DELETE FROM bus.consumer_offsets WHERE group_id = $1 AND topic = $2 AND topic_id <> $3",
                self.group_id,
                topic,
                self._topic_id,
            )
            rows = [r for r in rows if r["topic_id"] in (None, self._topic_id)]
        return {r["partition"]: r["next_offset"] for r in rows}

    # --- one batch, one transaction ---

    async def _apply(self, messages: list[Message]) -> None:
        latest: dict[bytes, tuple[Received, dict[str, Any] | None]] = {}  # key -> last record (None: tombstone)
        counts: list[dict[str, Any]] = []  # every record, for a table of counts
        ranges: dict[int, tuple[int, int]] = {}
        undecodable: list[tuple[Received, DecodeError]] = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(error)
            received = Received.of(message)
            partition, offset = received.origin.partition, received.origin.offset
            if partition not in self._positions:
                continue  # revoked while the batch was in flight
            first, _ = ranges.get(partition, (offset, offset))
            ranges[partition] = (first, offset)
            try:
                record = self._decode(received)
                if self.spec.additive and record is not None:
                    counts.append(record)
                else:
                    latest[received.entity_key()] = (received, record)
            except DecodeError as exc:
                undecodable.append((received, exc))

        if not ranges:
            return
        upserts = [(received, record) for received, record in latest.values() if record is not None]
        deletes = [key.decode() for key, (_, record) in latest.items() if record is None]
        started = time.perf_counter()
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                for partition, (_, last) in ranges.items():
                    await self._advance_offset(conn, partition, last + 1)
                # Dead letters only once the compare-and-set succeeded (a fenced batch must not send them), and
                # acknowledged before the offsets that skip them commit.
                for received, decode_error in undecodable:
                    self._dead_letter(received, decode_error, type(decode_error).__name__)
                written, refused = await self._upsert_all(conn, upserts)
                added = await activity.add(conn, counts)
                if undecodable:
                    self._flush_dead_letters()
                if deletes:
                    await conn.execute(
                        f"DELETE FROM {self.spec.table} WHERE {self.spec.key} = ANY($1::text[])", deletes
                    )
        except Fenced as exc:
            metrics.FENCED.labels(self.spec.entity).inc()
            log.warning("%s; re-reading the stored offsets", exc)
            await self._reseek()
            return
        for partition, (_, last) in ranges.items():
            self._positions[partition] = last + 1
        self._commit_to_kafka(ranges)

        entity = self.spec.entity
        now = dt.datetime.now(dt.UTC)
        metrics.COMMIT_SECONDS.labels(entity).observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.labels(entity).observe(len(messages))
        metrics.ROWS_UPSERTED.labels(entity).inc(written + added)
        metrics.STALE_SKIPPED.labels(entity).inc(len(upserts) - written - refused)
        metrics.ROWS_DELETED.labels(entity).inc(len(deletes))
        for _, record in upserts:
            metrics.END_TO_END_SECONDS.labels(entity).observe((now - record["updated_at"]).total_seconds())
        self.committed += len(messages)

    def _decode(self, received: Received) -> dict[str, Any] | None:
        """The record, or None for a tombstone."""
        if received.value is None:
            return None
        return self._serde.decode(received.value, received.origin, reader=self._reader)

    def _dead_letter(self, received: Received, exc: Exception, reason: str) -> None:
        origin = received.origin
        letter = DeadLetter("materialize", reason, exc, origin.topic, origin.partition, origin.offset, agency="")
        assert self._dead_letters is not None
        headers: Any = letter.headers(received.value)  # confluent-kafka's stubs type header lists invariantly
        self._dead_letters.produce(
            self.settings.topic(DEAD_LETTERS.name), value=received.value, key=received.key, headers=headers
        )
        DEAD_LETTERED.labels("materialize", reason).inc()
        log.warning("dead-lettered %s/%d@%d: %s", origin.topic, origin.partition, origin.offset, mask_nik(str(exc)))

    def _flush_dead_letters(self) -> None:
        assert self._dead_letters is not None
        if self._dead_letters.flush(30):
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "dead letters not acknowledged within 30s"))

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

    async def _upsert_all(self, conn: Any, upserts: list[tuple[Received, dict[str, Any]]]) -> tuple[int, int]:
        """Upsert the batch in one merge; if the database refuses a row, find it row by row and dead-letter it
        (a poison record must not stop the materializer), then upsert the rest. Returns (written, refused)."""
        try:
            async with conn.transaction():  # a savepoint
                return await self._upsert(conn, [record for _, record in upserts]), 0
        except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError):
            pass
        written = refused = 0
        for received, record in upserts:
            try:
                async with conn.transaction():
                    written += await self._upsert(conn, [record])
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
                self._dead_letter(received, exc, type(exc).__name__)
                refused += 1
        self._flush_dead_letters()  # before the offsets that skip them are committed
        return written, refused

    async def _upsert(self, conn: Any, records: list[dict[str, Any]]) -> int:
        """A record replaces the row unless the row is newer. An equal version is the same state of a joined
        entity (its version grows with every change) or a finding reported again; the later one wins, as it does
        in the compacted topic."""
        if not records:
            return 0
        await conn.execute(f"DELETE FROM {self.spec.staging}")
        columns = self.spec.columns
        await conn.copy_records_to_table(
            self.spec.staging, records=[self.spec.row(r) for r in records], columns=columns
        )
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
        assert self._consumer is not None
        for partition in list(self._positions):
            self._positions[partition] = stored.get(partition)
            offset = stored.get(partition, OFFSET_BEGINNING)
            try:
                self._consumer.seek(KafkaPartition(self.topic, partition, offset))
            except KafkaException as exc:  # no longer ours: the next assignment reads the stored offset
                log.info("could not seek partition %d: %s", partition, exc)

    def _record_lag(self) -> None:
        """From the watermarks of the last fetch: no request to the broker."""
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
