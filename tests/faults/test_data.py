"""Faults in what the agencies send: a whole day sent again, in shuffled order, so that every event is a duplicate
and versions arrive out of order (F10)."""

from __future__ import annotations

import random

import pytest
from confluent_kafka import Producer

from satubus import access
from satubus.kafka import producer_config, read_to_end
from satubus.settings import Settings
from tests.faults.scenario import City, Results, settle_and_record
from tests.integration.conftest import Pipeline
from tests.integration.test_streams_against_truth import MAPPED

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1500)]


def test_f10_the_whole_day_sent_again_out_of_order(bus: Settings, pipeline: Pipeline, results: Results) -> None:
    city = City(bus, seed=3110)
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
