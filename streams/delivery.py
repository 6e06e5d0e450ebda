"""Sends the stream processor's outputs with one confluent-kafka producer, and confirms a batch's delivery at once.

faust's ``Topic.send`` costs tens of microseconds per record and has no batch API; librdkafka's ``produce`` costs a
few. Every output of a batch is queued, then ``confirm`` waits (in a thread, off the event loop) until the broker
has acknowledged them all; only then may the batch's offsets be committed, so delivery stays at-least-once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from satubus.errors import BrokerUnavailable
from satubus.kafka import producer_config
from satubus.schemas.topics import TopicContract
from satubus.serde import AvroSerde, Encoder
from satubus.settings import Settings
from satubus.streams.processor import Output

CONFIRM_SECONDS = 60.0


class Delivery:
    def __init__(self, settings: Settings, serde: AvroSerde, contracts: list[TopicContract], client_id: str) -> None:
        self._producer = Producer(
            producer_config(settings, client_id) | {"linger.ms": 2, "queue.buffering.max.messages": 1_000_000}
        )
        # Contract topic name -> (Kafka topic name in the bus's namespace, encoder; None: raw bytes, the dead letters)
        self._topics: dict[str, tuple[str, Encoder | None]] = {}
        for contract in contracts:
            namespaced = contract.within(settings.namespace)
            encoder = None if contract.schema is None else serde.encoder(namespaced.subject, contract.value_schema())
            self._topics[contract.name] = (namespaced.name, encoder)
        self._failed: list[KafkaError] = []

    def send(self, outputs: list[Output]) -> None:
        for output in outputs:
            topic, encoder = self._topics[output.topic]
            value: Any = output.value
            if isinstance(value, dict):
                assert encoder is not None, f"{output.topic} has no Avro contract"
                value = encoder.encode(value)
            try:
                self._producer.produce(
                    topic, value=value, key=output.key, headers=list(output.headers), on_delivery=self._delivered
                )
            except BufferError as exc:  # the queue is emptied by every confirm: only a broker that is away fills it
                raise BrokerUnavailable(f"the producer's queue is full: {exc}") from exc

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
