"""Faults in what the agencies send: poison of every class in every agency topic, mixed into valid traffic (F9); a
whole day sent again, in shuffled order, so that every event is a duplicate and versions arrive out of order
(F10)."""

from __future__ import annotations

import random

import pytest
from confluent_kafka import Message, Producer

from satubus import access
from satubus.kafka import producer_config, read_to_end
from satubus.settings import Settings
from tests.faults.scenario import City, Results, settle_and_record
from tests.integration.conftest import Pipeline
from tests.integration.test_streams_against_truth import MAPPED

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1500)]


def test_f10_the_whole_day_sent_again_out_of_order(bus: Settings, pipeline: Pipeline, results: Results) -> None:
    city = City(bus, seed=3110, rate=0)  # the day first, as fast as it goes; then all of it again
    simulation = city.finish()
    day = [m for topic in sorted(MAPPED) for m in read_to_end(bus, bus.topic(topic))]
    random.Random(3110).shuffle(day)
    producer = Producer(producer_config(bus, "faults-resend", access.ADMIN))
    for message in day:
        producer.produce(message.topic(), message.value(), message.key(), headers=message.headers())
        producer.poll(0)
    assert producer.flush(60) == 0
    print(f"\nsent again: {len(day)} events of {len(simulation.published)} published, shuffled")
    measured = settle_and_record(results, "F10 the whole day sent again, shuffled", city, pipeline, [0.0])
    assert measured.compared.clean, measured.compared.details


def poison_for(own: bytes | None, other: bytes) -> dict[str, bytes | None]:
    """Every class of bad bytes an agency topic may receive, from ``own`` (a real event of the topic, when it has one
    yet) and ``other`` (one of another agency's topic); each the stream processor must dead-letter, and nothing
    else."""
    poison: dict[str, bytes | None] = {
        "a tombstone": None,
        "an empty value": b"",
        "not the wire format": b'{"event": "JSON, not Avro"}',
        "an unknown schema id": b"\x00\x7f\xff\xff\xff" + (own or other)[5:],
    }
    if own is not None:  # (a topic without an event yet may share its schema, and so its id, with the other's)
        poison["another topic's schema"] = other[:5] + own[5:]
        poison["a truncated body"] = own[: max(6, len(own) // 2)]
    return poison


def test_f9_poison_in_every_agency_topic_is_dead_lettered_once(
    bus: Settings, pipeline: Pipeline, results: Results
) -> None:
    """Mid-flow, each agency topic gets one message of every class of bad bytes (the city's own traffic holds the
    bad records: invalid NIKs, unknown kelurahan, events from the future, duplicates and older versions). Each is
    dead-lettered once, counted against its agency, and the flow goes on."""
    city = City(bus, seed=3109)
    city.wait_for_persons(city.fault_points(1)[0], pipeline)
    topics = sorted(MAPPED)
    samples = {topic: first_event(bus, topic) for topic in topics}
    published = [sample for sample in samples.values() if sample is not None]
    poisoned: list[tuple[str, int, int]] = []

    def delivered(error: object, message: Message) -> None:
        assert error is None, error
        poisoned.append((str(message.topic()), message.partition() or 0, message.offset() or 0))

    producer = Producer(producer_config(bus, "faults-poison", access.ADMIN))
    for n, topic in enumerate(topics):
        own = samples[topic]  # another topic's schema id: one that is not this topic's (datasets may share one)
        other = next(o for o in published[n % len(published) :] + published if own is None or o[:5] != own[:5])
        for what, value in poison_for(own, other).items():
            producer.produce(bus.topic(topic), value, f"poison: {what}".encode(), on_delivery=delivered)
    assert producer.flush(60) == 0
    recovery = city.recovery(pipeline)
    print(f"\npoisoned: {len(poisoned)} messages in {len(topics)} agency topics")
    measured = settle_and_record(
        results, "F9 poison of every class in every agency topic", city, pipeline, [recovery], poison=poisoned
    )
    assert measured.compared.clean, measured.compared.details


def first_event(settings: Settings, topic: str) -> bytes | None:
    """The value of the first event of an agency topic; None while it has none."""
    messages = read_to_end(settings, settings.topic(topic))
    return (messages[0].value() or b"") if messages else None
