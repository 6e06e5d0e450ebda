"""A process's health (satubus/health.py): what it answers on ``/health`` and ``/health/live``, what the retries
report to it (satubus/retry.py), the metrics read from it (satubus/metrics.py), and the gateway's own checks."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import generate_latest

from satubus import health, metrics, tokens
from satubus.errors import (
    BrokerUnavailable,
    DatabaseUnavailable,
    DataError,
    InfrastructureError,
    RegistryUnavailable,
    SatuBusError,
)
from satubus.producers import gateway
from satubus.producers.gateway_tokens import Tokens
from satubus.retry import Backoff, retry, retry_async
from satubus.settings import Settings
from tests.unit.fake_kafka import install

NO_WAIT = Backoff(first=0.0, attempts=None)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> health.Health:
    return health.Health("stream", clock=clock)


def test_a_process_with_no_problem_is_ready(state: health.Health) -> None:
    assert state.readiness() == (200, {"status": "ok", "process": "stream", "problems": []})
    assert state.liveness() == (200, {"status": "alive", "process": "stream"})


def test_a_component_that_starts_is_not_ready_until_started(state: health.Health, clock: Clock) -> None:
    state.starting("stream worker", "not yet assigned its partitions")
    clock.now += 2.5
    status, body = state.readiness()
    assert status == 503
    assert body["status"] == "unhealthy"
    assert body["problems"] == [
        {
            "name": "starting",
            "what": "stream worker",
            "detail": "not yet assigned its partitions",
            "seconds": 2.5,
            "retries": 0,
        }
    ]
    state.started("stream worker")
    assert state.readiness()[0] == 200


def test_a_wait_names_the_dependency_counts_retries_and_ends_when_recovered(state: health.Health, clock: Clock) -> None:
    token = object()
    state.waiting(token, "normalize", RegistryUnavailable("the schema registry does not answer"))
    clock.now += 3
    state.waiting(token, "normalize", RegistryUnavailable("the schema registry does not answer"))
    status, body = state.readiness()
    assert status == 503
    assert body["problems"] == [
        {
            "name": "registry",
            "what": "normalize",
            "detail": "the schema registry does not answer",
            "seconds": 3.0,
            "retries": 2,
        }
    ]
    assert state.waiting_on() == {"broker": 0, "registry": 1, "database": 0}

    state.recovered(token)
    assert state.readiness()[0] == 200
    assert state.waiting_on() == {"broker": 0, "registry": 0, "database": 0}
    assert state.retries() == {"broker": 0, "registry": 2, "database": 0}  # counted for good


def test_waiting_for_another_dependency_starts_a_new_wait(state: health.Health, clock: Clock) -> None:
    token = object()
    state.waiting(token, "normalize", RegistryUnavailable("down"))
    clock.now += 10
    state.waiting(token, "normalize", BrokerUnavailable("down"))
    [problem] = state.readiness()[1]["problems"]
    assert (problem["name"], problem["seconds"], problem["retries"]) == ("broker", 0.0, 1)
    assert state.retries() == {"broker": 1, "registry": 1, "database": 0}


def test_every_wait_is_listed_and_counted_per_dependency(state: health.Health) -> None:
    state.starting("materializer person", "not yet assigned its partitions")
    for n in range(2):
        state.waiting(object(), f"materializing {n}", DatabaseUnavailable("PostgreSQL is unavailable"))
    state.waiting(object(), "reading", BrokerUnavailable("Kafka is unavailable"))
    names = sorted(p["name"] for p in state.readiness()[1]["problems"])
    assert names == ["broker", "database", "database", "starting"]
    assert state.waiting_on() == {"broker": 1, "registry": 0, "database": 2}


def test_each_infrastructure_error_names_its_dependency() -> None:
    assert health.dependency_of(BrokerUnavailable("x")) == "broker"
    assert health.dependency_of(RegistryUnavailable("x")) == "registry"
    assert health.dependency_of(DatabaseUnavailable("x")) == "database"
    assert health.dependency_of(InfrastructureError("x")) == health.OTHER
    assert health.dependency_of(SatuBusError("x")) == health.OTHER


def test_a_problem_shows_no_clear_nik(state: health.Health) -> None:
    state.waiting(object(), "normalize", RegistryUnavailable("lookup for 3171064808850001 failed"))
    [problem] = state.readiness()[1]["problems"]
    assert "3171064808850001" not in problem["detail"]
    assert problem["detail"].startswith("lookup for 3171")


# --- the retries report to the process's health ---


def _problems() -> list[health.Problem]:
    return [p for p in health.STATE.problems() if p.what == "the test's operation"]


def test_a_blocking_retry_is_named_while_it_waits_and_forgotten_once_it_succeeds() -> None:
    before = health.STATE.retries()["broker"]
    seen: list[list[str]] = []

    def operation() -> str:
        seen.append([p.name for p in _problems()])
        if len(seen) < 3:
            raise BrokerUnavailable("Kafka is unavailable")
        return "done"

    assert retry(operation, backoff=NO_WAIT, what="the test's operation") == "done"
    assert seen == [[], ["broker"], ["broker"]]  # waiting on the broker from the first failure on
    assert _problems() == []
    assert health.STATE.retries()["broker"] == before + 2


def test_an_async_retry_is_named_while_it_waits_and_forgotten_once_it_gives_up() -> None:
    before = health.STATE.retries()["registry"]
    seen: list[list[str]] = []

    async def operation() -> None:
        seen.append([p.name for p in _problems()])
        raise RegistryUnavailable("the schema registry does not answer")

    with pytest.raises(RegistryUnavailable):
        asyncio.run(retry_async(operation, backoff=Backoff(first=0.0, attempts=3), what="the test's operation"))
    assert seen == [[], ["registry"], ["registry"]]
    assert _problems() == []
    assert health.STATE.retries()["registry"] == before + 2  # two retries, then it gave up


def test_an_error_in_the_data_is_no_wait() -> None:
    before = health.STATE.retries()

    def operation() -> None:
        raise DataError("the record is wrong")

    with pytest.raises(DataError):
        retry(operation, backoff=NO_WAIT, what="the test's operation")
    assert health.STATE.retries() == before
    assert _problems() == []


# --- /health and /health/live in front of the metrics ---


def _call(app: Any, path: str, method: str = "GET") -> tuple[str, dict[str, str], bytes]:
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        answer["status"], answer["headers"] = status, dict(headers)

    body = b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": method}, start_response))
    return answer["status"], answer["headers"], body


def _metrics_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"the metrics"]


def test_the_health_paths_answer_json_and_every_other_path_is_the_metrics(state: health.Health) -> None:
    app = health.wsgi(_metrics_app, state)
    status, headers, body = _call(app, "/health")
    assert (status, headers["Content-Type"], json.loads(body)["status"]) == ("200 OK", "application/json", "ok")
    assert "Retry-After" not in headers

    state.starting("stream worker", "not yet assigned its partitions")
    status, headers, body = _call(app, "/health")
    assert status == "503 Service Unavailable"
    assert headers["Retry-After"] == str(health.RETRY_AFTER_SECONDS)
    assert [p["name"] for p in json.loads(body)["problems"]] == ["starting"]
    assert int(headers["Content-Length"]) == len(body)

    status, _, body = _call(app, "/health/live")  # alive, whatever it waits for
    assert (status, json.loads(body)) == ("200 OK", {"status": "alive", "process": "stream"})
    assert _call(app, "/health", "HEAD")[2] == b""
    assert _call(app, "/metrics")[2] == b"the metrics"
    assert _call(app, "/")[2] == b"the metrics"


def test_the_metrics_export_retries_and_waits_per_process_and_dependency() -> None:
    token = object()
    health.STATE.waiting(token, "the test's operation", DatabaseUnavailable("PostgreSQL is unavailable"))
    try:
        samples = _samples()
        process = health.STATE.process
        retried = samples[("satubus_retries_total", process, "database")]
        assert samples[("satubus_waiting_on", process, "database")] >= 1
        assert {("satubus_waiting_on", process, d) for d in health.DEPENDENCIES} <= set(samples)
    finally:
        health.STATE.recovered(token)
    samples = _samples()
    assert samples[("satubus_retries_total", process, "database")] == retried  # a counter stays
    assert samples[("satubus_waiting_on", process, "database")] == 0


def _samples() -> dict[tuple[str, str, str], float]:
    samples = {}
    for line in generate_latest(metrics.REGISTRY).decode().splitlines():
        if line.startswith(("satubus_retries_total{", "satubus_waiting_on{")):
            name, rest = line.split("{", 1)
            labels = dict(pair.split("=", 1) for pair in rest.split("}", 1)[0].split(","))
            samples[(name, labels["process"].strip('"'), labels["dependency"].strip('"'))] = float(line.split()[-1])
    return samples


def test_the_metrics_server_answers_health_beside_the_metrics() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    metrics.serve("127.0.0.1", port, "SATUBUS_STREAM_METRICS_PORT")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert b"satubus_retries_total" in response.read()
    health.STATE.starting("the test's component", "not yet started")
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10)
        assert refused.value.code == 503
        problems = json.loads(refused.value.read())["problems"]
        assert {"the test's component"} <= {p["what"] for p in problems}
    finally:
        health.STATE.started("the test's component")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=10) as response:
        assert json.loads(response.read())["status"] == "alive"


# --- the gateway's readiness: it asks the broker and the registry, and needs its tokens read ---

ISSUED = {"bpbd": tokens.issue()}


@pytest.fixture
def down(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The services whose check fails (none at first)."""
    failing: set[str] = set()

    def broker(self: gateway.Probes) -> None:
        if "broker" in failing:
            raise BrokerUnavailable("Kafka does not answer: _TRANSPORT")

    def registry(self: gateway.Probes) -> None:
        if "registry" in failing:
            raise RegistryUnavailable("the schema registry does not answer")

    monkeypatch.setattr(health, "STATE", health.Health("gateway"))  # none of the other tests' problems
    monkeypatch.setattr(gateway.Probes, "broker", broker)
    monkeypatch.setattr(gateway.Probes, "registry", registry)
    fakes = install(monkeypatch)
    monkeypatch.setattr(gateway, "AvroSerde", fakes.serde)
    return failing


@pytest.fixture
def gateway_client(down: set[str]) -> Iterator[TestClient]:
    with TestClient(gateway.create_app(Settings(namespace="kota"), Tokens.of(ISSUED))) as client:
        yield client


def test_the_gateway_is_ready_when_the_broker_and_the_registry_answer(gateway_client: TestClient) -> None:
    response = gateway_client.get("/health")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "process": "gateway", "problems": []}
    assert gateway_client.get("/health/live").json()["status"] == "alive"


@pytest.mark.parametrize("services", [{"registry"}, {"broker"}, {"broker", "registry"}])
def test_the_gateway_names_each_service_that_does_not_answer(
    gateway_client: TestClient, down: set[str], services: set[str]
) -> None:
    down |= services
    response = gateway_client.get("/health")
    assert response.status_code == 503
    assert response.headers["retry-after"] == gateway.RETRY_AFTER["Retry-After"]
    assert {p["name"] for p in response.json()["problems"]} == services
    assert gateway_client.get("/health/live").status_code == 200  # alive all the same


def test_a_gateway_that_never_read_its_tokens_is_not_ready(down: set[str]) -> None:
    with TestClient(gateway.create_app(Settings(namespace="kota"), Tokens())) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert [p["name"] for p in response.json()["problems"]] == ["database"]
