"""The agency publisher (SDK) against the real broker and registry."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from satubus.deploy.local.stack import Stack
from satubus.producers.publisher import AgencyPublisher, Change
from satubus.registry import registry_client
from satubus.schemas.record_models import RecordRejected
from satubus.schemas.topics import agency_topic, value_subject
from satubus.serde import AvroSerde
from satubus.settings import Settings
from tests.integration.conftest import unanswered_address
from tests.integration.test_dukcapil_end_to_end import read_topic

TOPIC = agency_topic("bpbd", "kejadian")


def incident(i: int) -> dict[str, Any]:
    return {
        "id_kejadian": f"B-{i}",
        "jenis": "BANJIR",
        "kelurahan": "Kampung Melayu",
        "status": "BERLANGSUNG",
        "waktu_kejadian": dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC),
        "tinggi_air_cm": 40 + i % 100,
    }


@pytest.fixture
def publisher(bus: Settings) -> Iterator[AgencyPublisher]:
    with (
        AvroSerde(registry_client(bus)) as serde,
        AgencyPublisher(bus, serde, agency="bpbd", dataset="kejadian", system="pusdatin") as publisher,
    ):
        yield publisher


def event_ids(settings: Settings, system: str = "pusdatin") -> Counter[str]:
    """The event ids in the topic sent by ``system`` (other tests publish simulated events to the same topic)."""
    with AvroSerde(registry_client(settings)) as serde:
        events = [serde.decode(m.value(), value_subject(m.topic())) for m in read_topic(settings, TOPIC)]
    return Counter(str(e["event_id"]) for e in events if e["source"]["system"] == system)


def test_an_invalid_record_is_refused_before_anything_is_sent(publisher: AgencyPublisher) -> None:
    before = publisher.acknowledged
    with pytest.raises(RecordRejected, match="tinggi_air_cm: Input should be a valid integer"):
        publisher.publish("B-x", incident(0) | {"tinggi_air_cm": "40cm"}, version=1)
    publisher.flush()
    assert publisher.acknowledged == before


def test_the_batch_path_publishes_the_valid_and_returns_the_rest(bus: Settings, publisher: AgencyPublisher) -> None:
    assert publisher.topic == bus.topic(TOPIC)  # the contract topic in the suite's namespace
    changes = [Change(f"B-{i}", incident(i), version=1) for i in range(100)]
    changes[7] = Change("B-7", incident(7) | {"jenis": None}, version=1)
    changes[42] = Change("B-42", None, version=2, op="u")
    outcomes = publisher.publish_batch(changes)
    assert [o.index for o in outcomes] == list(range(100))
    assert [o.index for o in outcomes if o.status == "rejected"] == [7, 42]
    assert "jenis: Input should be a valid string" in outcomes[7].reason
    published = [o.event_id for o in outcomes if o.status == "published"]
    assert len(published) == 98
    in_topic = event_ids(bus)
    assert all(in_topic[str(event_id)] == 1 for event_id in published)


def test_a_batch_the_broker_never_answers_fails_each_event_within_the_timeout(bus: Settings) -> None:
    down = bus.model_copy(update={"kafka_bootstrap": unanswered_address()})
    changes = [Change(f"D-{i}", incident(i), version=1) for i in range(5)]
    changes[2] = Change("D-2", incident(2) | {"tinggi_air_cm": "tinggi"}, version=1)
    with AvroSerde(registry_client(bus)) as serde:
        publisher = AgencyPublisher(
            down, serde, agency="bpbd", dataset="kejadian", system="pusdatin", delivery_timeout=2
        )
        started = time.monotonic()
        outcomes = publisher.publish_batch(changes)
        elapsed = time.monotonic() - started
        publisher.flush(timeout=5)  # the batch's failures are in its outcomes, not raised again
    assert elapsed < 2 + 5
    assert [o.status for o in outcomes] == ["failed", "failed", "rejected", "failed", "failed"]
    assert {o.reason for o in outcomes if o.status == "failed"} == {"<broker>: Local: Message timed out"}


def test_a_broker_restart_mid_stream_loses_and_duplicates_nothing(
    bus: Settings, stack: Stack, publisher: AgencyPublisher
) -> None:
    acknowledged: list[uuid.UUID] = []
    failed: list[uuid.UUID] = []

    def delivered(event_id: uuid.UUID, error: object) -> None:
        (failed if error else acknowledged).append(event_id)

    def publish_stream() -> None:
        for i in range(20_000):
            publisher.publish(f"R-{i}", incident(i), version=1, on_delivery=delivered)
            if i % 200 == 0:
                time.sleep(0.01)  # a steady stream, so the restart lands in the middle of it
        publisher.flush(timeout=180)

    producer_thread = threading.Thread(target=publish_stream)
    producer_thread.start()
    while len(acknowledged) < 3_000:
        time.sleep(0.01)
    stack.kafka.stop()
    acknowledged_while_down = len(acknowledged)
    assert stack.kafka.start() is not None
    producer_thread.join(timeout=300)
    assert not producer_thread.is_alive()
    assert acknowledged_while_down < 20_000, "the restart did not land in the middle of the stream"

    assert failed == []
    assert len(acknowledged) == 20_000
    in_topic = event_ids(bus)
    duplicates = {event_id for event_id, n in in_topic.items() if n > 1}
    assert duplicates == set()
    assert {str(e) for e in acknowledged} <= set(in_topic)
