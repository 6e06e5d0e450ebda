"""Sends the stream processor's outputs with one confluent-kafka producer, and confirms a batch's delivery at once.

faust's ``Topic.send`` (and a Table's changelog write) costs tens of microseconds per record and has no batch API;
librdkafka's ``produce`` costs a few. Every output of a batch, and every changelog record of its state writes, is
queued, then ``confirm`` waits (in a thread, off the event loop) until the broker has acknowledged them all; only
then may the batch's offsets be committed, so delivery stays at-least-once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from satubus import access
from satubus.errors import BrokerUnavailable, ConfigurationError
from satubus.kafka import producer_config
from satubus.pseudonym_key import KEY_ID_HEADER
from satubus.schemas.topics import PSEUDONYMOUS, TopicContract, partition_of
from satubus.serde import AvroSerde, Encoder
from satubus.settings import Settings
from satubus.streams.processor import Output

CONFIRM_SECONDS = 60.0
# Items per record of a batched topic: about 30 to 60 KB. Larger records cost the joiners memory, not time: a worker
# holds what a poll returns (up to a batch's worth of records) while its agents' buffers are full.
BATCH_ITEMS = 100


class Delivery:
    def __init__(
        self,
        settings: Settings,
        serde: AvroSerde,
        contracts: list[TopicContract],
        client_id: str,
        key_id: str | None = None,
    ) -> None:
        """``key_id``: of the pseudonym key, stamped on every record of a topic that carries person_ids."""
        self._producer = Producer(
            producer_config(settings, client_id, access.STREAMS)
            | {"linger.ms": 2, "queue.buffering.max.messages": 1_000_000}
        )
        # Contract topic name -> (Kafka topic name in the bus's namespace, encoder; None: raw bytes, the dead letters)
        self._topics: dict[str, tuple[str, Encoder | None]] = {}
        self._partitions: dict[str, int] = {}  # batched topics -> their number of partitions
        for contract in contracts:
            namespaced = contract.within(settings.namespace)
            encoder = None if contract.schema is None else serde.encoder(namespaced.subject, contract.value_schema())
            self._topics[contract.name] = (namespaced.name, encoder)
            if contract.batched:
                self._partitions[contract.name] = self._count_partitions(namespaced.name)
        self._failed: list[KafkaError] = []
        self._stamp = [] if key_id is None else [(KEY_ID_HEADER, key_id.encode())]
        self._stamped = PSEUDONYMOUS | {c.name for c in contracts if c.pseudonymous}
        # (changelog topic, partition) -> offset of the last record acknowledged there
        self.changelog_offsets: dict[tuple[str, int], int] = {}

    def send(self, outputs: list[Output]) -> None:
        """Queue every output; those of a batched topic go as one record per partition (and per ``BATCH_ITEMS``)."""
        batches: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for output in outputs:
            if output.topic in self._partitions:
                assert isinstance(output.value, dict) and output.key is not None, f"{output.topic} holds keyed records"
                partition = partition_of(output.key, self._partitions[output.topic])
                batches.setdefault((output.topic, partition), []).append(output.value)
                continue
            topic, encoder = self._topics[output.topic]
            value = output.value
            if isinstance(value, dict):
                assert encoder is not None, f"{output.topic} has no Avro contract"
                value = encoder.encode(value)
            stamp = self._stamp if output.topic in self._stamped else []
            self._produce(topic, value, key=output.key, headers=[*output.headers, *stamp])
        for (contract_topic, partition), items in batches.items():
            topic, encoder = self._topics[contract_topic]
            assert encoder is not None
            for start in range(0, len(items), BATCH_ITEMS):
                self._produce(topic, encoder.encode({"parts": items[start : start + BATCH_ITEMS]}), partition=partition)

    def send_changelog(self, topic: str, partition: int, key: bytes, value: bytes | None) -> None:
        """A table's change, as faust itself would write it to the table's changelog partition."""
        self._produce(topic, value, key=key, partition=partition, report=self._logged)

    def _produce(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: list[tuple[str, str | bytes | None]] | None = None,
        report: Callable[[KafkaError | None, Message], None] | None = None,
    ) -> None:
        where: dict[str, Any] = {} if partition is None else {"partition": partition}
        try:
            self._producer.produce(
                topic, value=value, key=key, headers=headers, on_delivery=report or self._delivered, **where
            )
        except BufferError as exc:  # the queue is emptied by every confirm: only a broker that is away fills it
            raise BrokerUnavailable(f"the producer's queue is full: {exc}") from exc

    def _count_partitions(self, topic: str) -> int:
        """From the broker's metadata (at start, before the event loop runs): the partitions really there."""
        try:
            metadata = self._producer.list_topics(topic, timeout=30).topics[topic]
        except KafkaException as exc:
            raise BrokerUnavailable(f"no metadata for {topic}: {exc}") from exc
        if metadata.error is not None or not metadata.partitions:
            raise ConfigurationError(f"topic {topic} does not exist: create the bus's topics with `satubus topics`")
        return len(metadata.partitions)

    async def confirm(self) -> None:
        """Return once the broker acknowledged every record sent so far; raise ``BrokerUnavailable`` otherwise."""
        remaining = await asyncio.to_thread(self._producer.flush, CONFIRM_SECONDS)
        failed, self._failed = self._failed, []
        if remaining:
            raise BrokerUnavailable(f"{remaining} outputs not acknowledged within {CONFIRM_SECONDS:.0f}s")
        if failed:
            raise BrokerUnavailable(f"{len(failed)} outputs were not delivered; first error: {failed[0].str()}")

    def close(self) -> None:
        self._producer.flush(CONFIRM_SECONDS)

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failed.append(error)

    def _logged(self, error: KafkaError | None, message: Message) -> None:
        self._delivered(error, message)
        if error is None:
            where = (str(message.topic()), message.partition() or 0)
            self.changelog_offsets[where] = max(message.offset() or 0, self.changelog_offsets.get(where, -1))
