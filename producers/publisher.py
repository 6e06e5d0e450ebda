"""The agency publisher: wraps a record in the change-event envelope and sends it idempotently.

Schemas are looked up, never registered: a publisher cannot invent a contract. ``flush`` raises if any event
was not acknowledged by the broker, so a caller never believes an event was published when it was not.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from confluent_kafka import KafkaError, Message, Producer
from prometheus_client import Counter

from satubus.errors import SatuBusError
from satubus.kafka import producer_config
from satubus.metrics import NAMESPACE, REGISTRY
from satubus.settings import Settings
from schemas.envelope import agency_event_schema
from schemas.serde import AvroSerde, Encoder
from schemas.topics import agency_topic, value_subject

Op = Literal["c", "u", "d", "r"]

PUBLISHED = Counter(
    "events_published",
    "Agency events acknowledged by the broker",
    ["agency", "dataset"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
PUBLISH_FAILED = Counter(
    "events_publish_failed",
    "Agency events the broker did not acknowledge",
    ["agency", "dataset"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)


class DeliveryFailed(SatuBusError):
    """The broker did not acknowledge some events; they were not published."""


@dataclass
class _Deliveries:
    agency: str
    dataset: str
    acknowledged: int = 0
    errors: list[KafkaError] = field(default_factory=list)

    def __call__(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.acknowledged += 1
            PUBLISHED.labels(self.agency, self.dataset).inc()
        else:
            self.errors.append(error)
            PUBLISH_FAILED.labels(self.agency, self.dataset).inc()


class AgencyPublisher:
    """Publishes one agency dataset's change events to ``agency.<agency>.<dataset>.v<major>``."""

    def __init__(
        self, settings: Settings, serde: AvroSerde, *, agency: str, dataset: str, system: str, major: int = 1
    ) -> None:
        self.topic = agency_topic(agency, dataset, major)
        self._encoder: Encoder = serde.encoder(value_subject(self.topic), agency_event_schema(agency, dataset))
        self._source = {"agency": agency, "system": system, "version": "1"}
        self._producer = Producer(producer_config(settings, client_id=f"{agency}-{system}"))
        self._deliveries = _Deliveries(agency, dataset)

    @property
    def acknowledged(self) -> int:
        return self._deliveries.acknowledged

    def publish(
        self,
        key: str,
        record: dict[str, Any] | None,
        *,
        version: int,
        op: Op = "c",
        occurred_at: dt.datetime | None = None,
        event_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        """Queue one change event; returns its event_id. Raises ``RecordInvalid`` if the record misfits."""
        event_id = event_id or uuid.uuid4()
        envelope = {
            "event_id": str(event_id),
            "op": op,
            "occurred_at": occurred_at or dt.datetime.now(dt.UTC),
            "source": self._source,
            "key": key,
            "version": version,
            "after": record,
            "before": None,
        }
        value = self._encoder.encode(envelope)
        while True:
            try:
                self._producer.produce(self.topic, value=value, key=key.encode(), on_delivery=self._deliveries)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.1)
        self._producer.poll(0)
        return event_id

    def flush(self, timeout: float = 60.0) -> None:
        remaining = self._producer.flush(timeout)
        if remaining:
            raise DeliveryFailed(f"{remaining} events still unacknowledged after {timeout:.0f}s; is Kafka up?")
        if self._deliveries.errors:
            errors, self._deliveries.errors = self._deliveries.errors, []
            raise DeliveryFailed(f"{len(errors)} events were not published; first error: {errors[0].str()}")

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> AgencyPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
