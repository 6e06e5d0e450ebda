"""``/health`` of the real ``satubus stream``, ``satubus materialize`` and ``satubus gateway`` processes: ready (200)
once running on the suite's bus; not ready (503) naming the schema registry when the registry they are given does
not answer, with the retries counted in their metrics. The registry's outage is real: a port nothing listens on."""

from __future__ import annotations

import datetime as dt
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Producer

from satubus import access
from satubus.kafka import ensure_topics, producer_config
from satubus.registry import registry_client
from satubus.schemas.topics import ACTIVITY
from satubus.serde import AvroSerde
from satubus.settings import Settings
from satubus.streams.app import APP_ID
from tests.integration.conftest import Pipeline, _reset_topics, unanswered_address
from tests.integration.test_gateway import running_gateway

PROCESSES = ("stream", "materialize")
GUARD_SECONDS = 180  # only so that a test that fails does not hang: nothing below is timed
DEPENDENCIES = {"broker", "registry", "database"}


def ask(port: int, path: str = "/health") -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def scrape(port: int, name: str) -> dict[str, float]:
    """The series of metric ``name``: by dependency (the only other label is the process's)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        lines = response.read().decode().splitlines()
    return {
        line.split('dependency="', 1)[1].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith(f"{name}{{")
    }


def ports(settings: Settings) -> dict[str, int]:
    return {"stream": settings.stream_metrics_port, "materialize": settings.materializer_metrics_port}


def until(pipeline: Pipeline, condition: Callable[[], tuple[bool, Any]], what: str) -> Any:
    """Poll ``condition`` (whether it holds, and what it saw) while the processes run."""
    deadline = time.monotonic() + GUARD_SECONDS
    while True:
        try:
            holds, seen = condition()
        except OSError as exc:  # the process has not opened its port yet
            holds, seen = False, exc
        if holds:
            return seen
        pipeline.assert_running()
        assert time.monotonic() < deadline, f"{what}; last seen: {seen}; see {pipeline.logs}"
        time.sleep(0.5)


@pytest.fixture
def started(bus: Settings) -> Iterator[Callable[[dict[str, str]], Pipeline]]:
    """Start the stream worker and the materializer, on a clean bus, with extra environment; stopped at the end."""
    _reset_topics(bus)  # what earlier modules left in the changelogs is theirs to recover, not these workers'
    logs = bus.state_dir.resolve() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    running: list[Pipeline] = []

    def start(env: dict[str, str]) -> Pipeline:
        pipeline = Pipeline(bus, logs, env)
        running.append(pipeline)
        for name in PROCESSES:
            pipeline.start(name)
        return pipeline

    yield start
    for pipeline in running:
        pipeline.stop()


def test_both_processes_are_ready_once_running_and_wait_for_nothing(
    bus: Settings, started: Callable[[dict[str, str]], Pipeline]
) -> None:
    pipeline = started({})
    for name, port in ports(bus).items():
        # Ready once the worker has its partitions and tables, the materializer of every entity its partitions.
        body = until(pipeline, lambda port=port: _status_is(port, 200), f"{name}'s /health did not answer 200")
        assert body == {"status": "ok", "process": name, "problems": []}
        assert ask(port, "/health/live") == (200, {"status": "alive", "process": name})
        assert scrape(port, "satubus_waiting_on") == dict.fromkeys(DEPENDENCIES, 0)
        assert set(scrape(port, "satubus_retries_total")) == DEPENDENCIES
    codes = pipeline.stop()
    assert codes == dict.fromkeys(PROCESSES, 0), f"unclean exit; see {pipeline.logs}"


def test_a_record_in_a_changelog_that_the_bus_did_not_write_does_not_keep_the_worker_from_becoming_ready(
    bus: Settings, started: Callable[[dict[str, str]], Pipeline]
) -> None:
    """A changelog record whose key is not a JSON string (as faust writes keys) used to stall the table's recovery
    for good: the worker stayed ``starting``. It is now left alone, logged and counted."""
    changelog = f"{bus.topic(APP_ID)}-keys-changelog"
    ensure_topics(bus, [(changelog, True)])
    producer = Producer(producer_config(bus, "foreign-writer", access.ADMIN))
    producer.produce(changelog, key=b"not json", value=b"whatever", partition=0)
    assert producer.flush(30) == 0
    pipeline = started({})
    port = bus.stream_metrics_port
    until(pipeline, lambda: _status_is(port, 200), "the worker's /health did not answer 200")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        lines = response.read().decode().splitlines()
    [counted] = [line for line in lines if line.startswith("satubus_changelog_keys_unreadable_total ")]
    assert float(counted.split()[1]) >= 1


def test_a_registry_that_does_not_answer_is_named_by_both_processes(
    bus: Settings, started: Callable[[dict[str, str]], Pipeline]
) -> None:
    # Records the materializer must decode: a fresh process knows no schema, and asks the registry for it.
    publish_activity(bus, records=5)
    registry = f"http://{unanswered_address()}/apis/ccompat/v7"
    pipeline = started({"SATUBUS_REGISTRY_URL": registry, "SATUBUS_REGISTRY_TIMEOUT": "2"})
    for name, port in ports(bus).items():
        body = until(pipeline, lambda port=port: _waits_for_registry(port), f"{name}'s /health did not name it")
        assert body["status"] == "unhealthy" and body["process"] == name
        [problem] = [p for p in body["problems"] if p["name"] == "registry"]
        assert problem["retries"] >= 1 and problem["detail"]
        assert ask(port, "/health/live")[0] == 200  # waiting, and alive: a restart would not bring it back
        assert scrape(port, "satubus_retries_total")["registry"] >= 1
        assert scrape(port, "satubus_waiting_on")["registry"] >= 1
    # Nothing was lost meanwhile: the stream worker never started, and the materializer stops while it waits.
    codes = pipeline.stop()
    assert codes["materialize"] == 0, f"unclean exit; see {pipeline.logs}"


def test_the_gateway_is_ready_and_names_a_registry_that_does_not_answer(bus: Settings) -> None:
    with running_gateway(bus, free_port()) as gateway:
        response = gateway.get("/health")
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "ok", "process": "gateway", "problems": []}

    registry = f"http://{unanswered_address()}/apis/ccompat/v7"
    with running_gateway(bus, free_port(), SATUBUS_REGISTRY_URL=registry) as gateway:
        response = gateway.get("/health")
        assert gateway.get("/health/live").status_code == 200
    assert response.status_code == 503, response.text
    assert [p["name"] for p in response.json()["problems"]] == ["registry"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _status_is(port: int, status: int) -> tuple[bool, Any]:
    code, body = ask(port)
    return code == status, body


def _waits_for_registry(port: int) -> tuple[bool, Any]:
    code, body = ask(port)
    return code == 503 and any(p["name"] == "registry" for p in body["problems"]), body


def publish_activity(settings: Settings, records: int) -> None:
    """Counts of a made-up agency to ``bus.activity``, with the real registry."""
    producer = Producer(producer_config(settings, "test-health", access.ADMIN))
    contract = ACTIVITY.within(settings.namespace)
    with AvroSerde(registry_client(settings)) as serde:
        encoder = serde.encoder(contract.subject, contract.value_schema())
        for n in range(records):
            record = {
                "agency": "health-check",
                "dataset": "health",
                "processed_at": dt.datetime.now(dt.UTC),
                "events_in": n,
                "accepted": n,
                "invalid": 0,
                "dropped": 0,
            }
            producer.produce(contract.name, key=b"health-check.health", value=encoder.encode(record))
    assert producer.flush(30) == 0
