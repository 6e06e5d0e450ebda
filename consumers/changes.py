"""Unified records as they are published, fanned out to live subscribers (the API's Server-Sent Events).

One consumer thread reads every unified topic of the bus's namespace from its end (no consumer group: nothing is
committed) and hands each decoded record to the event loop, which puts it in every subscriber's queue. A subscriber
too slow to keep up gets an ``overflow`` change and is dropped, so that it knows to reload instead of silently
missing changes.

A broker or a schema registry that does not answer is retried with bounded backoff (``BACKOFF``), resuming after the
last record handed over, so that a subscriber misses nothing. If that fails too, or on any other error, the stream
is dead and says so: every subscriber gets an ``error`` change, ``subscribe`` raises ``ChangesStopped`` and
``failure`` says why (the API answers 503 and its /health reports it), instead of keep-alives over a dead thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from satubus import access
from satubus.consumers import faults
from satubus.errors import BrokerUnavailable, InfrastructureError
from satubus.kafka import client_config
from satubus.registry import registry_client
from satubus.retry import Backoff
from satubus.schemas.errors import DecodeError, Origin
from satubus.schemas.topics import TopicContract, value_subject
from satubus.serde import AvroSerde
from satubus.settings import Settings

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000
RECENT = QUEUE_SIZE - 1  # changes kept for a subscriber that resumes after a disconnection (SSE Last-Event-ID)
GROUP_ID = "satubus-api-changes"  # required by the client; offsets are never committed
METADATA_TIMEOUT = 10.0  # seconds for the broker to say which partitions the unified topics have
# Transient errors in a row before the stream is declared dead: with the metadata timeout, about two minutes of a
# broker that does not answer. A record handed over resets the count.
BACKOFF = Backoff(first=0.5, factor=2.0, longest=10.0, attempts=8)


@dataclass(frozen=True, slots=True)
class ViewChange:
    """A change of the unified view as the live stream sends it (not an agency's change event, which is
    ``satubus.producers.publisher.Change``)."""

    # or "overflow": the subscriber fell behind and was dropped; "error": the stream stopped; "gone": the changes
    # since the position a subscriber resumes from are no longer held
    entity: str
    key: str
    record: dict[str, Any] | None  # None: the record was deleted
    position: str  # topic:partition:offset


class ChangesStopped(InfrastructureError):
    """The live change stream is dead (``Changes.failure`` says why); the process needs a restart."""


class Changes:
    def __init__(self, settings: Settings, contracts: Sequence[TopicContract]) -> None:
        self._settings = settings
        # Kafka topic (in the bus's namespace) -> its entity and the reader of this version, parsed once.
        self._entities = {settings.topic(c.name): c.name.split(".")[1] for c in contracts}
        self._readers = {settings.topic(c.name): c.value_schema() for c in contracts}
        self._subscribers: set[asyncio.Queue[ViewChange]] = set()
        self._recent: collections.deque[ViewChange] = collections.deque(maxlen=RECENT)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next: dict[tuple[str, int], int] = {}  # (topic, partition) -> offset after the last record handed over
        self._handed_over = False  # since the last failure
        self._failure: str | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="unified-changes", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Blocks up to 10 s: call it off the event loop."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def failure(self) -> str | None:
        """Why the stream is dead, or None while it follows the topics (or retries a transient error)."""
        thread = self._thread
        if self._failure is None and thread is not None and not thread.is_alive() and not self._stopping.is_set():
            return "the consumer thread ended"
        return self._failure

    def ensure_running(self) -> None:
        """Raise ``ChangesStopped`` if the stream is dead."""
        if (failure := self.failure) is not None:
            raise ChangesStopped(f"the live change stream stopped: {failure}")

    @contextlib.contextmanager
    def subscribe(self, after: str | None = None) -> Iterator[asyncio.Queue[ViewChange]]:
        """A queue of every change from now on (on the event loop); ``ChangesStopped`` if the stream is dead.

        With ``after`` (the position of the last change a subscriber got before it was cut off), the queue starts
        with the changes since then; when they are no longer held, with a ``gone`` change instead."""
        self.ensure_running()
        queue: asyncio.Queue[ViewChange] = asyncio.Queue(QUEUE_SIZE)
        if after is not None:
            for change in self._since(after):
                queue.put_nowait(change)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def _since(self, position: str) -> list[ViewChange]:
        held = list(self._recent)
        for n in range(len(held) - 1, -1, -1):
            if held[n].position == position:
                return held[n + 1 :]  # fewer than RECENT < QUEUE_SIZE: they fit in the queue
        return [ViewChange("gone", "", None, position)]

    def _deliver(self, change: ViewChange) -> None:  # on the event loop
        self._recent.append(change)
        for queue in list(self._subscribers):
            if queue.qsize() >= QUEUE_SIZE - 1:
                self._subscribers.discard(queue)
                queue.put_nowait(ViewChange("overflow", "", None, change.position))
            else:
                queue.put_nowait(change)

    def _end(self) -> None:  # on the event loop: every subscriber learns that the stream stopped
        for queue in list(self._subscribers):
            self._subscribers.discard(queue)
            queue.put_nowait(ViewChange("error", "", None, ""))  # _deliver always leaves room for one more

    # --- the consumer thread ---

    def _run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                self._follow()
                return
            except Exception as exc:
                if self._handed_over:
                    attempt, self._handed_over = 0, False
                if not (isinstance(exc, InfrastructureError) and exc.retriable) or (
                    BACKOFF.attempts is not None and attempt + 1 >= BACKOFF.attempts
                ):
                    self._fail(exc)
                    return
                wait = BACKOFF.delay(attempt)
                log.warning("live changes interrupted (%s); resuming in %.1fs", exc, wait)
                self._stopping.wait(wait)
                attempt += 1

    def _fail(self, exc: Exception) -> None:
        self._failure = f"{type(exc).__name__}: {exc}"
        log.error("live changes stopped: %s", self._failure, exc_info=not isinstance(exc, InfrastructureError))
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening any more
            self._loop.call_soon_threadsafe(self._end)

    def _follow(self) -> None:
        """Follow the topics from where the last session left off (from their end, the first time) until stopped;
        ``BrokerUnavailable`` or ``RegistryUnavailable`` when a service does not answer."""
        consumer = Consumer(
            client_config(self._settings, access.API)
            | {
                "group.id": self._settings.topic(GROUP_ID),
                "enable.auto.commit": False,
                "enable.partition.eof": False,
            }
        )
        assert self._loop is not None
        try:
            with faults.kafka_errors():
                metadata = consumer.list_topics(timeout=METADATA_TIMEOUT).topics
                missing = sorted(topic for topic in self._readers if topic not in metadata)
                if missing:
                    raise BrokerUnavailable(f"the broker does not know the topics {missing}")
                partitions = [(name, p) for name in self._readers for p in metadata[name].partitions]
                for name, p in partitions:
                    if (name, p) not in self._next:  # from the end as it is now, kept for a resumption
                        _, end = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=METADATA_TIMEOUT)
                        self._next[(name, p)] = end
                consumer.assign([TopicPartition(name, p, self._next[(name, p)]) for name, p in partitions])
            with AvroSerde(registry_client(self._settings)) as serde:
                while not self._stopping.is_set():
                    message = consumer.poll(0.5)
                    if message is None:
                        continue
                    if (error := message.error()) is not None:
                        if error.fatal():
                            raise KafkaException(error)
                        continue  # the client reconnects by itself
                    change = self._change(serde, message)  # RegistryUnavailable: read again by the next session
                    topic, partition, offset = message.topic(), message.partition(), message.offset()
                    assert topic is not None and partition is not None and offset is not None
                    self._next[(topic, partition)] = offset + 1
                    self._handed_over = True
                    if change is not None:
                        self._loop.call_soon_threadsafe(self._deliver, change)
        finally:
            consumer.close()

    def _change(self, serde: AvroSerde, message: Any) -> ViewChange | None:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        try:
            value = message.value()
            reader = self._readers[topic]
            origin = Origin(topic, partition, offset)
            record = None if value is None else serde.decode(value, value_subject(topic), origin, reader=reader)
        except DecodeError as exc:  # the materializer dead-letters it; here it is only not shown
            log.warning("not shown live: %s", exc)
            return None
        entity = self._entities[topic]
        return ViewChange(entity, (message.key() or b"").decode(), record, f"{topic}:{partition}:{offset}")
