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
from satubus.serde import AvroSerde
from satubus.settings import Settings
from tests.integration.test_dukcapil_end_to_end import read_topic


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


def event_ids(settings: Settings, topic: str, system: str = "pusdatin") -> Counter[str]:
    """The event ids in ``topic`` sent by ``system`` (other tests publish simulated events to the same topic)."""
    with AvroSerde(registry_client(settings)) as serde:
        events = [serde.decode(m.value()) for m in read_topic(settings, topic)]
    return Counter(str(e["event_id"]) for e in events if e["source"]["system"] == system)


def test_an_invalid_record_is_refused_before_anything_is_sent(publisher: AgencyPublisher) -> None:
    before = publisher.acknowledged
    with pytest.raises(RecordRejected, match="tinggi_air_cm: Input should be a valid integer"):
        publisher.publish("B-x", incident(0) | {"tinggi_air_cm": "40cm"}, version=1)
    publisher.flush()
    assert publisher.acknowledged == before


def test_the_batch_path_publishes_the_valid_and_returns_the_rest(bus: Settings, publisher: AgencyPublisher) -> None:
    changes = [Change(f"B-{i}", incident(i), version=1) for i in range(100)]
    changes[7] = Change("B-7", incident(7) | {"jenis": None}, version=1)
    changes[42] = Change("B-42", None, version=2, op="u")
    result = publisher.publish_batch(changes)
    assert [index for index, _ in result.rejected] == [7, 42]
    assert "jenis: Input should be a valid string" in str(result.rejected[0][1])
    assert len(result.accepted) == 98
    in_topic = event_ids(bus, publisher.topic)
    assert all(in_topic[str(event_id)] == 1 for event_id in result.accepted)


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
    in_topic = event_ids(bus, publisher.topic)
    duplicates = {event_id for event_id, n in in_topic.items() if n > 1}
    assert duplicates == set()
    assert {str(e) for e in acknowledged} <= set(in_topic)
