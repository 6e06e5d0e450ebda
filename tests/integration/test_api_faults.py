"""The live API when a service behind it fails: PostgreSQL unavailable answers 503 with Retry-After (not a 500
traceback), a live change stream whose consumer dies ends with an ``error`` event and makes /health fail, and a
registry outage only delays the live changes: none is missed. Real services, real failures (a port nothing listens
on, a proxy cut in front of the real registry)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from confluent_kafka import Producer

from satubus import access
from satubus.consumers import changes
from satubus.consumers.api import create_app
from satubus.consumers.changes import Changes, ViewChange
from satubus.kafka import producer_config
from satubus.registry import registry_client
from satubus.retry import Backoff
from satubus.schemas.topics import UNIFIED_PERSON
from satubus.serde import AvroSerde
from satubus.settings import Settings
from tests.integration.conftest import process_env, unanswered_address
from tests.integration.proxy import CuttableProxy
from tests.samples import unified_person

PERSON_ID = "0" * 64


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_up(client: httpx.Client, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert process is None or process.poll() is None, f"the API exited with {process.returncode}"
        try:
            client.get("/health")
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the API did not come up"
            time.sleep(0.3)


def test_postgresql_unavailable_answers_503_with_retry_after(bus: Settings) -> None:
    port = _free_port()
    database = urlsplit(bus.database_url)._replace(netloc=f"satubus@{unanswered_address()}").geturl()
    env = process_env(bus) | {"SATUBUS_DATABASE_URL": database, "SATUBUS_API_PORT": str(port)}
    log = bus.state_dir.resolve() / "logs" / f"{bus.namespace}-api-without-database.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("satubus")), "api"], stdout=output, stderr=subprocess.STDOUT, env=env
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            _wait_until_up(client, process)  # before: the API did not even start without its database
            for path in ("/v1/scoreboard", "/v1/regions/31.71.06.1001", "/v1/incidents/bpbd:1"):
                answer = client.get(path)
                assert answer.status_code == 503, (path, answer.text)
                assert int(answer.headers["Retry-After"]) > 0
                assert "PostgreSQL is unavailable" in answer.json()["detail"]
            assert client.get("/v1/persons/not-a-person-id").status_code == 422  # checked before any query
            # No key can be checked without the database: a personal read is refused, not served.
            assert client.get(f"/v1/persons/{PERSON_ID}", params={"purpose": "pelayanan"}).status_code == 401
            health = client.get("/health")
            assert health.status_code == 503
            assert set(health.json()["problems"]) == {"database"}  # the live changes flow
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0
    assert "Traceback" not in log.read_text(), f"a traceback in {log}"


class Serving:
    """The API app served by uvicorn on a thread of this process."""

    def __init__(self, settings: Settings) -> None:
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=settings.api_port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.server.config.port}", timeout=30)
        _wait_until_up(self.client)
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the API did not stop"


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(changes, "BACKOFF", Backoff(first=0.2, longest=0.5, attempts=4))
    monkeypatch.setattr(changes, "METADATA_TIMEOUT", 1.0)
    yield


def test_a_dead_change_stream_ends_with_an_error_and_fails_health(bus: Settings, quick_retries: None) -> None:
    settings = bus.model_copy(update={"kafka_bootstrap": unanswered_address(), "api_port": _free_port()})
    with Serving(settings) as client:
        with client.stream("GET", "/v1/changes") as stream:
            lines = stream.iter_lines()
            assert next(lines) == ": connected"
            deadline = time.monotonic() + 30
            received = []
            for line in lines:  # before: keep-alives forever
                received.append(line)
                assert time.monotonic() < deadline, f"the stream did not end: {received}"
        event, data = [line for line in received if line]  # then the stream ended
        assert event == "event: error"
        assert data.startswith("data: ") and "BrokerUnavailable" in json.loads(data[6:])["detail"]

        again = client.get("/v1/changes")
        assert again.status_code == 503
        assert int(again.headers["Retry-After"]) > 0
        health = client.get("/health")
        assert health.status_code == 503
        assert set(health.json()["problems"]) == {"changes"}  # PostgreSQL answers
        assert "BrokerUnavailable" in health.json()["problems"]["changes"]


def test_a_registry_outage_delays_live_changes_and_loses_none(
    bus: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(changes, "BACKOFF", Backoff(first=0.2, longest=1.0, attempts=20))
    proxy = CuttableProxy(bus.registry_port)
    registry = urlsplit(bus.registry_url)._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
    live = Changes(bus.model_copy(update={"registry_url": registry, "registry_timeout": 2.0}), [UNIFIED_PERSON])
    producer = Producer(producer_config(bus, "test-live-changes", access.ADMIN))
    topic = bus.topic(UNIFIED_PERSON.name)
    record = unified_person(3_000_001)

    async def scenario() -> ViewChange:
        live.start(asyncio.get_running_loop())
        with live.subscribe() as queue:
            # A deletion needs no schema: once one arrives, the stream follows the topic.
            first: ViewChange | None = None
            deadline = time.monotonic() + 60
            while first is None:
                assert time.monotonic() < deadline, "the stream did not start following the topic"
                producer.produce(topic, key=b"test-live-deleted", value=None)
                await asyncio.to_thread(producer.flush, 10)
                with contextlib.suppress(TimeoutError):
                    first = await asyncio.wait_for(queue.get(), timeout=1)
            assert (first.entity, first.key, first.record) == ("person", "test-live-deleted", None)

            # A record of a schema the stream has not seen, while the registry is cut: decoding it needs the registry.
            proxy.cut()
            contract = UNIFIED_PERSON.within(bus.namespace)
            with AvroSerde(registry_client(bus)) as serde:
                value = serde.encode(contract.subject, contract.value_schema(), record)
            producer.produce(topic, key=str(record["person_id"]).encode(), value=value)
            await asyncio.to_thread(producer.flush, 10)
            # The registry client retries on its own first; cut until the stream has noticed the outage.
            deadline = time.monotonic() + 60
            while not any("resuming in" in r.getMessage() for r in caplog.records):
                assert time.monotonic() < deadline, "the outage was not noticed"
                await asyncio.sleep(0.2)
            assert live.failure is None  # retrying, not dead
            proxy.restore()
            while (change := await asyncio.wait_for(queue.get(), timeout=60)).key == "test-live-deleted":
                pass
            return change

    try:
        with caplog.at_level(logging.WARNING, logger=changes.__name__):
            change = asyncio.run(scenario())
    finally:
        live.stop()
        proxy.close()
    assert (change.entity, change.key) == ("person", record["person_id"])
    assert change.record is not None and change.record["person_id"] == record["person_id"]
    assert live.failure is None
