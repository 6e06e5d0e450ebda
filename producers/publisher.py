"""The agency publisher: wraps a record in the change-event envelope and sends it idempotently.

Schemas are looked up, never registered: a publisher cannot invent a contract. Two ways to send:

- ``publish_batch`` validates each change once, sends the valid ones, waits for the broker and returns one
  ``Outcome`` per change (published, rejected or failed, with the reasons): the gateway, the upload, the outbox relay
  and the simulator all publish this way and map the outcomes to their own reports;
- ``publish`` queues one event (``RecordRejected`` at once if it does not fit); ``flush`` raises if any event was
  not acknowledged by the broker, so a caller never believes an event was published when it was not.

Both block (librdkafka's ``poll``/``flush``): from a coroutine, run them in a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from prometheus_client import Counter

from satubus import access
from satubus.errors import BrokerUnavailable
from satubus.kafka import producer_config
from satubus.metrics import NAMESPACE, REGISTRY
from satubus.schemas.envelope import AGENCIES_DIR, agency_record_schema, envelope_schema
from satubus.schemas.record_models import (
    FieldError,
    RecordRejected,
    agency_model,
    model_for,
    validate,
    validate_json,
)
from satubus.schemas.topics import agency_topic, value_subject
from satubus.serde import AvroSerde, Encoder, RecordInvalid
from satubus.settings import Settings

Op = Literal["c", "u", "d", "r"]
Status = Literal["published", "rejected", "failed"]
Record = dict[str, Any] | str | bytes  # the record's fields, or the record as a JSON document
BROKER = "<broker>"  # the field a failed event's reason is filed under
_TOO_LARGE = {KafkaError.MSG_SIZE_TOO_LARGE}

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
    """Counts the broker's answers. Failures of events sent by ``publish`` are kept for ``flush`` to raise; those of
    a batch are reported in its outcomes instead."""

    agency: str
    dataset: str
    acknowledged: int = 0
    failed: int = 0  # since the last flush
    first_error: KafkaError | None = None

    def count(self, error: KafkaError | None) -> None:
        if error is None:
            self.acknowledged += 1
            PUBLISHED.labels(self.agency, self.dataset).inc()
        else:
            PUBLISH_FAILED.labels(self.agency, self.dataset).inc()

    def __call__(self, error: KafkaError | None, message: Message) -> None:
        self.count(error)
        if error is not None:
            self.failed += 1
            self.first_error = self.first_error or error

    def also(self, event_id: uuid.UUID, callback: DeliveryCallback) -> Callable[[KafkaError | None, Message], None]:
        def report(error: KafkaError | None, message: Message) -> None:
            self(error, message)
            callback(event_id, error)

        return report


@dataclass(frozen=True, slots=True)
class Change:
    """One change of one record at the agency: the input of ``AgencyPublisher.publish_batch``."""

    key: str
    record: Record | None  # None for a delete; a JSON document (str or bytes) has its dates as ISO strings
    version: int
    op: Op = "c"
    occurred_at: dt.datetime | None = None
    event_id: uuid.UUID | None = None  # generated when absent


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one change of a batch.

    ``published``: the broker acknowledged it. ``rejected``: the record is wrong (``errors`` names each bad field,
    NIKs masked); it was not sent, and sending it again changes nothing. ``failed``: the broker refused it or did not
    acknowledge it in time (``errors`` holds one ``<broker>`` entry: the broker's reason, or "not acknowledged within
    Ns"); sending it again, with the same event_id, may succeed.
    """

    index: int  # the change's position in the batch
    event_id: uuid.UUID
    status: Status
    errors: tuple[FieldError, ...] = ()

    @property
    def reason(self) -> str:
        return "; ".join(map(str, self.errors))


DeliveryCallback = Callable[[uuid.UUID, KafkaError | None], None]


class AgencyPublisher:
    """Publishes one agency dataset's change events to ``agency.<agency>.<dataset>.v<major>``.

    Each record is validated against the dataset's schema before anything is sent (``RecordRejected`` names every
    bad field). ``publish_batch`` returns each change's outcome. ``publish`` sends asynchronously; ``flush`` (also
    on ``close`` and leaving a ``with`` block) waits for the broker and raises ``DeliveryFailed`` if any event sent by
    ``publish`` was not acknowledged. The topic is the contract topic in the settings' namespace.
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
        role: str | None = None,
        check: Callable[[dict[str, Any]], None] | None = None,
        root: Path = AGENCIES_DIR,
    ) -> None:
        """``delivery_timeout``: seconds after which an unacknowledged event is reported failed (librdkafka's
        ``message.timeout.ms``; its default is 5 minutes). ``role``: whose Kafka identity publishes (default: the
        agency's own, which may write only its topics; the HTTP gateway publishes as itself). ``check``: called
        with each valid event before it is sent; raises ``RecordRejected`` for one that must not be (e.g. one its
        dataset's mapping rejects: ``LiveMappingCheck``, producers/mapping_check.py); such an event is refused as
        a record that does not fit. ``root``: where the dataset's schema is read, the mappings directory
        (``settings.mappings_dir`` on the bus's own machines), which holds the datasets ``satubus dataset apply``
        installed; by default the package's ``schemas/agencies/``."""
        self.topic = settings.topic(agency_topic(agency, dataset, major))
        self.dataset = f"{agency}.{dataset}"
        record_schema = agency_record_schema(agency, dataset, root)
        # The package's models are built once per process; another directory's with each publisher.
        self.model = agency_model(agency, dataset) if root == AGENCIES_DIR else model_for(record_schema)
        self._check = check
        self._encoder: Encoder = serde.encoder(value_subject(self.topic), envelope_schema(record_schema))
        self._source = {"agency": agency, "system": system, "version": "1"}
        config = producer_config(settings, f"{agency}-{system}", role or access.agency_principal(agency))
        if delivery_timeout is not None:
            config["message.timeout.ms"] = round(delivery_timeout * 1000)
        # How long publish_batch waits by default: past the delivery timeout, every event has a definite answer.
        self.batch_timeout = 60.0 if delivery_timeout is None else delivery_timeout + 5
        self._producer = Producer(config)
        self._deliveries = _Deliveries(agency, dataset)

    @property
    def acknowledged(self) -> int:
        return self._deliveries.acknowledged

    def publish(
        self,
        key: str,
        record: Record | None,
        *,
        version: int,
        op: Op = "c",
        occurred_at: dt.datetime | None = None,
        event_id: uuid.UUID | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> uuid.UUID:
        """Validate and queue one change event; returns its event_id. ``on_delivery(event_id, error)`` is called
        once the broker answered (error None: acknowledged)."""
        event_id = event_id or uuid.uuid4()
        value = self._encode(Change(key, record, version, op, occurred_at), event_id)
        callback = self._deliveries if on_delivery is None else self._deliveries.also(event_id, on_delivery)
        self._produce(key, value, callback)
        return event_id

    def publish_batch(self, changes: Iterable[Change], *, timeout: float | None = None) -> list[Outcome]:
        """Validate each change once, send the valid ones and wait for the broker's answers, at most ``timeout``
        seconds after the last one was sent (default ``batch_timeout``: the delivery timeout plus 5 s, or 60 s).

        Returns one ``Outcome`` per change, in input order; a change is ``published`` only once the broker
        acknowledged it. Raises nothing for a bad record or an unanswered event: that is what the outcomes say. An
        event still unanswered when the wait ends is ``failed``; unless the wait outlasts the ``delivery_timeout``,
        the broker may still take it later: send it again with the same event_id (consumers dedupe by it).
        Blocks for the wait: from a coroutine, call it in a thread.
        """
        wait = self.batch_timeout if timeout is None else timeout
        outcomes: list[Outcome | None] = []  # None: sent, the broker's answer pending
        sent: dict[int, uuid.UUID] = {}
        answers: dict[int, KafkaError | None] = {}  # filled by delivery callbacks, in whichever thread polls
        for index, change in enumerate(changes):
            event_id = change.event_id or uuid.uuid4()
            try:
                self._produce(change.key, self._encode(change, event_id), self._answer(answers, index))
            except (RecordRejected, RecordInvalid) as exc:
                errors = exc.errors if isinstance(exc, RecordRejected) else [FieldError("<record>", str(exc))]
                outcomes.append(Outcome(index, event_id, "rejected", tuple(errors)))
                continue
            except KafkaException as exc:  # the client refused it (too large, fatal producer error)
                outcomes.append(_refused(index, event_id, exc.args[0]))
                continue
            outcomes.append(None)
            sent[index] = event_id
        deadline = time.monotonic() + wait
        while len(answers) < len(sent) and (left := deadline - time.monotonic()) > 0:
            self._producer.poll(min(left, 0.1))
        answered = answers.copy()  # a late answer changes nothing now
        for index, event_id in sent.items():
            if index not in answered:
                reason = FieldError(BROKER, f"not acknowledged within {wait:g}s")
                outcomes[index] = Outcome(index, event_id, "failed", (reason,))
            elif (error := answered[index]) is None:
                outcomes[index] = Outcome(index, event_id, "published")
            else:
                outcomes[index] = _refused(index, event_id, error)
        return [outcome for outcome in outcomes if outcome is not None]

    def _encode(self, change: Change, event_id: uuid.UUID) -> bytes:
        """The change's envelope in the wire format; the record is validated here, and only here."""
        if (change.op == "d") != (change.record is None):
            raise RecordRejected(self.dataset, [FieldError("after", "a delete has no record; other ops need one")])
        if change.version < 1:
            raise RecordRejected(self.dataset, [FieldError("version", "versions count the record's changes from 1")])
        if change.record is None:
            after = None
        elif isinstance(change.record, dict):
            after = validate(self.model, change.record, self.dataset)
        else:
            after = validate_json(self.model, change.record, self.dataset)
        envelope = {
            "event_id": str(event_id),
            "op": change.op,
            "occurred_at": change.occurred_at or dt.datetime.now(dt.UTC),
            "source": self._source,
            "key": change.key,
            "version": change.version,
            "after": after,
            "before": None,
        }
        if self._check is not None:
            self._check(envelope)
        return self._encoder.encode(envelope)

    def _produce(self, key: str, value: bytes, callback: Callable[[KafkaError | None, Message], None]) -> None:
        while True:
            try:
                self._producer.produce(self.topic, value=value, key=key.encode(), on_delivery=callback)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.1)
        self._producer.poll(0)

    def _answer(
        self, answers: dict[int, KafkaError | None], index: int
    ) -> Callable[[KafkaError | None, Message], None]:
        def answer(error: KafkaError | None, message: Message) -> None:
            self._deliveries.count(error)
            answers[index] = error

        return answer

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


def _refused(index: int, event_id: uuid.UUID, error: KafkaError) -> Outcome:
    """The outcome of an event the client or the broker would not take: a record too large for the broker is
    rejected (it always will be); anything else failed (the broker's trouble, worth another try)."""
    if error.code() in _TOO_LARGE:
        return Outcome(index, event_id, "rejected", (FieldError("<record>", f"too large: {error.str()}"),))
    return Outcome(index, event_id, "failed", (FieldError(BROKER, error.str()),))
