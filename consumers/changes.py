"""Unified records as they are published, fanned out to live subscribers (the API's Server-Sent Events).

One consumer thread reads every unified topic from its end (no consumer group: nothing is committed) and hands each
decoded record to the event loop, which puts it in every subscriber's queue. A subscriber too slow to keep up gets
an ``overflow`` change and is dropped, so that it knows to reload instead of silently missing changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

from satubus.registry import registry_client
from satubus.schemas.errors import DecodeError, Origin
from satubus.schemas.topics import TopicContract
from satubus.serde import AvroSerde
from satubus.settings import Settings

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Change:
    entity: str  # "overflow": the subscriber fell behind and was dropped
    key: str
    record: dict[str, Any] | None  # None: the record was deleted
    position: str  # topic:partition:offset


class Changes:
    def __init__(self, settings: Settings, contracts: Sequence[TopicContract]) -> None:
        self._settings = settings
        # Kafka topic (in the bus's namespace) -> its entity and the reader of this version, parsed once.
        self._entities = {settings.topic(c.name): c.name.split(".")[1] for c in contracts}
        self._readers = {settings.topic(c.name): c.value_schema() for c in contracts}
        self._subscribers: set[asyncio.Queue[Change]] = set()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._consume, name="unified-changes", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[Change]]:
        queue: asyncio.Queue[Change] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def _deliver(self, change: Change) -> None:  # on the event loop
        for queue in list(self._subscribers):
            if queue.qsize() >= QUEUE_SIZE - 1:
                self._subscribers.discard(queue)
                queue.put_nowait(Change("overflow", "", None, change.position))
            else:
                queue.put_nowait(change)

    def _consume(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self._settings.kafka_bootstrap,
                # Required by the client; offsets are never committed.
                "group.id": self._settings.topic("satubus-api-changes"),
                "enable.auto.commit": False,
                "enable.partition.eof": False,
            }
        )
        assert self._loop is not None
        try:
            metadata = consumer.list_topics(timeout=30).topics
            consumer.assign(
                [
                    TopicPartition(topic, partition, OFFSET_END)
                    for topic in self._readers
                    for partition in (metadata[topic].partitions if topic in metadata else ())
                ]
            )
            with AvroSerde(registry_client(self._settings)) as serde:
                while not self._stopping.is_set():
                    message = consumer.poll(0.5)
                    if message is None or message.error():
                        continue
                    change = self._change(serde, message)
                    if change is not None:
                        self._loop.call_soon_threadsafe(self._deliver, change)
        except KafkaException as exc:
            log.error("live changes stopped: %s", exc)
        finally:
            consumer.close()

    def _change(self, serde: AvroSerde, message: Any) -> Change | None:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        try:
            value = message.value()
            reader = self._readers[topic]
            record = None if value is None else serde.decode(value, Origin(topic, partition, offset), reader=reader)
        except DecodeError as exc:  # the materializer dead-letters it; here it is only not shown
            log.warning("not shown live: %s", exc)
            return None
        entity = self._entities[topic]
        return Change(entity, (message.key() or b"").decode(), record, f"{topic}:{partition}:{offset}")
