"""The agency publisher: wraps a record in the change-event envelope and sends it idempotently.

Schemas are looked up, never registered: a publisher cannot invent a contract. ``flush`` raises if any event
was not acknowledged by the broker, so a caller never believes an event was published when it was not.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from confluent_kafka import KafkaError, Message, Producer
from prometheus_client import Counter

from satubus.errors import BrokerUnavailable
from satubus.kafka import producer_config
from satubus.metrics import NAMESPACE, REGISTRY
from satubus.schemas.envelope import agency_event_schema
from satubus.schemas.record_models import FieldError, RecordRejected, agency_model, validate
from satubus.schemas.topics import agency_topic, value_subject
from satubus.serde import AvroSerde, Encoder
from satubus.settings import Settings

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


class DeliveryFailed(BrokerUnavailable):
    """The broker did not acknowledge some events; they were not published."""


@dataclass
class _Deliveries:
    agency: str
    dataset: str
    acknowledged: int = 0
    failed: int = 0  # since the last flush
    first_error: KafkaError | None = None

    def __call__(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.acknowledged += 1
            PUBLISHED.labels(self.agency, self.dataset).inc()
        else:
            self.failed += 1
            self.first_error = self.first_error or error
            PUBLISH_FAILED.labels(self.agency, self.dataset).inc()

    def also(self, event_id: uuid.UUID, callback: DeliveryCallback) -> Callable[[KafkaError | None, Message], None]:
        def report(error: KafkaError | None, message: Message) -> None:
            self(error, message)
            callback(event_id, error)

        return report


@dataclass(frozen=True, slots=True)
class Change:
    """One change of one record at the agency: the input of ``AgencyPublisher.publish_batch``."""

    key: str
    record: dict[str, Any] | None
    version: int
    op: Op = "c"
    occurred_at: dt.datetime | None = None
    event_id: uuid.UUID | None = None


@dataclass
class BatchResult:
    accepted: list[uuid.UUID] = field(default_factory=list)  # published and acknowledged, in input order
    rejected: list[tuple[int, RecordRejected]] = field(default_factory=list)  # (input index, why)


DeliveryCallback = Callable[[uuid.UUID, KafkaError | None], None]


class AgencyPublisher:
    """Publishes one agency dataset's change events to ``agency.<agency>.<dataset>.v<major>``.

    Each record is validated against the dataset's schema before anything is sent (``RecordRejected`` names every
    bad field). Sends are asynchronous; ``flush`` (also on ``close`` and leaving a ``with`` block) waits for the
    broker and raises ``DeliveryFailed`` if any event was not acknowledged.
    """

    def __init__(
        self,
        settings: Settings,
        serde: AvroSerde,
        *,
        agency: str,
        dataset: str,
        system: str,
        major: int = 1,
        delivery_timeout: float | None = None,
    ) -> None:
        """``delivery_timeout``: seconds after which an unacknowledged event is reported failed (librdkafka's
        ``message.timeout.ms``; its default is 5 minutes)."""
        self.topic = agency_topic(agency, dataset, major)
        self.dataset = f"{agency}.{dataset}"
        self.model = agency_model(agency, dataset)
        self._encoder: Encoder = serde.encoder(value_subject(self.topic), agency_event_schema(agency, dataset))
        self._source = {"agency": agency, "system": system, "version": "1"}
        config = producer_config(settings, client_id=f"{agency}-{system}")
        if delivery_timeout is not None:
            config["message.timeout.ms"] = round(delivery_timeout * 1000)
        self._producer = Producer(config)
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
        on_delivery: DeliveryCallback | None = None,
    ) -> uuid.UUID:
        """Validate and queue one change event; returns its event_id. ``on_delivery(event_id, error)`` is called
        once the broker answered (error None: acknowledged)."""
        if (op == "d") != (record is None):
            raise RecordRejected(self.dataset, [FieldError("after", "a delete has no record; other ops need one")])
        after = None if record is None else validate(self.model, record, self.dataset)
        event_id = event_id or uuid.uuid4()
        envelope = {
            "event_id": str(event_id),
            "op": op,
            "occurred_at": occurred_at or dt.datetime.now(dt.UTC),
            "source": self._source,
            "key": key,
            "version": version,
            "after": after,
            "before": None,
        }
        value = self._encoder.encode(envelope)
        callback = self._deliveries if on_delivery is None else self._deliveries.also(event_id, on_delivery)
        while True:
            try:
                self._producer.produce(self.topic, value=value, key=key.encode(), on_delivery=callback)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.1)
        self._producer.poll(0)
        return event_id

    def publish_batch(self, changes: Iterable[Change]) -> BatchResult:
        """Publish every valid change and wait for the broker; invalid ones are returned, not sent."""
        result = BatchResult()
        for index, change in enumerate(changes):
            try:
                result.accepted.append(
                    self.publish(
                        change.key,
                        change.record,
                        version=change.version,
                        op=change.op,
                        occurred_at=change.occurred_at,
                        event_id=change.event_id,
                    )
                )
            except RecordRejected as rejected:
                result.rejected.append((index, rejected))
        self.flush()
        return result

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for the broker to answer every queued event; returns how many are still unanswered. Outcomes reach
        the ``on_delivery`` callbacks; unlike ``flush`` this raises nothing."""
        return int(self._producer.flush(timeout))

    def flush(self, timeout: float = 60.0) -> None:
        remaining = self.wait(timeout)
        if remaining:
            raise DeliveryFailed(f"{remaining} events still unacknowledged after {timeout:.0f}s; is Kafka up?")
        deliveries = self._deliveries
        if deliveries.failed:
            failed, first, deliveries.failed, deliveries.first_error = (
                deliveries.failed,
                deliveries.first_error,
                0,
                None,
            )
            raise DeliveryFailed(f"{failed} events were not published; first error: {first.str() if first else '?'}")

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> AgencyPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
