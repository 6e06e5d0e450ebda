"""A schema registry that stops answering is an error of the infrastructure, not of the agency's events: the stream
processor waits for it and then processes every event; it dead-letters none of them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from satubus.producers.simulate import simulate
from satubus.schemas.topics import DEAD_LETTERS, unified_topic
from satubus.settings import Settings
from tests.integration.conftest import Pipeline
from tests.integration.proxy import CuttableProxy
from tests.integration.test_dukcapil_end_to_end import read_topic
from tests.integration.test_streams_against_truth import latest_records

OUTAGE_SECONDS = 8


@pytest.fixture(scope="module")
def registry_proxy(bus: Settings) -> Iterator[CuttableProxy]:
    proxy = CuttableProxy(bus.registry_port)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def pipeline_env(bus: Settings, registry_proxy: CuttableProxy) -> dict[str, str]:
    """Only the stream processor and the materializer reach the registry through the proxy."""
    url = urlsplit(bus.registry_url)._replace(netloc=f"127.0.0.1:{registry_proxy.port}").geturl()
    return {"SATUBUS_REGISTRY_URL": url, "SATUBUS_REGISTRY_TIMEOUT": "2"}


def test_events_wait_out_a_registry_outage_and_none_is_dead_lettered(
    bus: Settings, pipeline: Pipeline, registry_proxy: CuttableProxy
) -> None:
    # Incidents first, with the registry up: the worker is running and has looked up what it needs at start.
    incidents = simulate(bus, residents=100, seed=21, dirty=0, agencies={"bpbd"})
    deadline = time.monotonic() + 120
    while len(latest_records(bus, unified_topic("incident"))) < len(incidents.truth.incidents):
        pipeline.assert_running()
        assert time.monotonic() < deadline, "the incidents did not reach the unified topic"
        time.sleep(1)

    # Residents' events carry a schema id the worker has not seen: decoding them needs the registry, now cut.
    registry_proxy.cut()
    residents = simulate(bus, residents=100, seed=22, dirty=0, agencies={"dukcapil"})
    time.sleep(OUTAGE_SECONDS)
    pipeline.assert_running()
    assert read_topic(bus, DEAD_LETTERS.name) == [], "valid events were dead-lettered during the outage"
    assert latest_records(bus, unified_topic("person")) == {}

    registry_proxy.restore()
    expected = {k: v.model_dump() for k, v in residents.truth.persons.items()}
    deadline = time.monotonic() + 120
    while (persons := latest_records(bus, unified_topic("person"))) != expected:
        pipeline.assert_running()
        assert time.monotonic() < deadline, f"{len(persons)} of {len(expected)} persons after the outage"
        time.sleep(1)
    assert read_topic(bus, DEAD_LETTERS.name) == []
