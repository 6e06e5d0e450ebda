"""The HTTP ingest gateway as a real server, in front of the real broker and registry."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from satubus.credentials import add_token
from satubus.registry import registry_client
from satubus.schemas.topics import agency_topic, value_subject
from satubus.serde import AvroSerde
from satubus.settings import Settings
from tests.integration.conftest import process_env, unanswered_address
from tests.integration.test_dukcapil_end_to_end import read_topic

URL = "/v1/agencies/bpbd/datasets/kejadian/events"
TOPIC = agency_topic("bpbd", "kejadian")
MAX_BODY = 100_000


def incident(i: int) -> dict[str, Any]:
    return {
        "id_kejadian": f"G-{i}",
        "jenis": "KEBAKARAN",
        "kelurahan": "Kebon Melati",
        "status": "SELESAI",
        "waktu_kejadian": "2026-11-28T03:04:05+00:00",
        "pengungsi": i,
    }


@contextlib.contextmanager
def running_gateway(bus: Settings, port: int, **env: str) -> Iterator[httpx.Client]:
    log = bus.state_dir.resolve() / "logs" / f"test-gateway-{port}.log"
    env = process_env(bus) | {"SATUBUS_GATEWAY_PORT": str(port)} | env
    with log.open("ab") as out:
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("satubus")), "gateway"], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        with httpx.Client(base_url=f"http://{bus.gateway_host}:{port}", timeout=60) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.get("/openapi.json")
                    break
                except httpx.TransportError:
                    assert server.poll() is None and time.monotonic() < deadline, f"gateway did not start; see {log}"
                    time.sleep(0.2)
            yield client
    finally:
        server.terminate()
        # uvicorn shuts down gracefully, then re-raises the signal it caught (the Unix convention).
        assert server.wait(timeout=60) == -signal.SIGTERM
    assert "Application shutdown complete" in log.read_text()


@pytest.fixture(scope="module")
def tokens(bus: Settings) -> dict[str, str]:
    """A token for each of two agencies, issued as `satubus agency credentials` does, into the suite's database."""
    return {agency: asyncio.run(add_token(bus, agency, "test")).token for agency in ("bpbd", "dinsos")}


@pytest.fixture(scope="module")
def gateway(bus: Settings, tokens: dict[str, str]) -> Iterator[httpx.Client]:
    limits = {"SATUBUS_GATEWAY_MAX_EVENTS": "50", "SATUBUS_GATEWAY_MAX_BODY_BYTES": str(MAX_BODY)}
    with running_gateway(bus, bus.gateway_port, **limits) as client:
        yield client


Auth = Callable[..., dict[str, str]]


@pytest.fixture(scope="module")
def auth(tokens: dict[str, str]) -> Auth:
    def header(agency: str = "bpbd") -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[agency]}"}

    return header


def test_a_batch_is_acknowledged_after_the_broker_and_lists_rejections(
    bus: Settings, gateway: httpx.Client, auth: Auth
) -> None:
    events = [{"key": f"G-{i}", "version": 1, "record": incident(i)} for i in range(20)]
    events[3]["record"] = incident(3) | {"pengungsi": "banyak", "status": None}
    events[11] = {"key": "G-11", "version": 1, "op": "c", "record": None}
    fixed_id = str(uuid.uuid4())
    events[5]["event_id"] = fixed_id
    response = gateway.post(URL, json={"events": events}, headers=auth())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["topic"] == bus.topic(TOPIC)  # the Kafka name: the contract topic in the bus's namespace
    assert [r["index"] for r in body["rejected"]] == [3, 11]
    assert {(e["field"], e["reason"]) for e in body["rejected"][0]["errors"]} == {
        ("pengungsi", "Input should be a valid integer"),
        ("status", "Input should be a valid string"),
    }
    assert len(body["accepted"]) == 18
    assert {"index": 5, "event_id": fixed_id} in body["accepted"]
    with AvroSerde(registry_client(bus)) as serde:
        in_topic = {str(serde.decode(m.value(), value_subject(m.topic()))["event_id"]) for m in read_topic(bus, TOPIC)}
    assert {a["event_id"] for a in body["accepted"]} <= in_topic
    scraped = gateway.get("/metrics/").text  # the publishing process's own Prometheus endpoint
    assert 'satubus_events_published_total{agency="bpbd",dataset="kejadian"} 18.0' in scraped


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer wrong"}, 401), ({"Authorization": "Basic Ymw6Ymw="}, 401)],
)
def test_credentials_are_required(gateway: httpx.Client, headers: dict[str, str], status: int) -> None:
    response = gateway.post(URL, json={"events": []}, headers=headers)
    assert response.status_code == status
    assert response.headers["www-authenticate"] == "Bearer"


def test_an_agency_may_post_only_to_its_own_datasets(gateway: httpx.Client, auth: Auth) -> None:
    response = gateway.post(URL, json={"events": []}, headers=auth("dinsos"))
    assert response.status_code == 403
    assert "own datasets" in response.json()["detail"]
    assert (
        gateway.post("/v1/agencies/bpbd/datasets/penduduk/events", json={"events": []}, headers=auth()).status_code
        == 404
    )


def test_malformed_json_is_400_and_a_wrong_shape_is_422(gateway: httpx.Client, auth: Auth) -> None:
    response = gateway.post(URL, content=b'{"events": [', headers=auth() | {"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["detail"] == "the body is not valid JSON"
    response = gateway.post(URL, json={"events": [{"version": -1}]}, headers=auth())
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"events.0.key", "events.0.version"}


def test_oversized_batches_are_413(gateway: httpx.Client, auth: Auth) -> None:
    events = [{"key": f"G-{i}", "version": 1, "record": incident(i)} for i in range(51)]
    assert gateway.post(URL, json={"events": events}, headers=auth()).status_code == 413
    huge = b'{"events": [], "padding": "' + b"x" * MAX_BODY + b'"}'
    response = gateway.post(URL, content=huge, headers=auth() | {"Content-Type": "application/json"})
    assert response.status_code == 413


def test_an_oversized_chunked_body_is_413_as_it_streams_in(gateway: httpx.Client, auth: Auth) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the size is known only while reading
        yield b'{"events": [], "padding": "'
        for _ in range(MAX_BODY // 10_000 + 1):
            yield b"x" * 10_000
        yield b'"}'

    response = gateway.post(URL, content=chunks(), headers=auth() | {"Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    assert response.status_code == 413


def test_a_stranger_gets_401_before_the_body_is_judged(gateway: httpx.Client) -> None:
    for body in (b'{"events": [', b'{"events": [{"version": -1}]}'):
        response = gateway.post(URL, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 401, body


def test_a_batch_of_only_bad_records_is_422_and_never_echoes_a_nik(gateway: httpx.Client, auth: Auth) -> None:
    nik = "3171069935850001"  # day 99: impossible
    record = {
        "id_penyaluran": "PKH-1",
        "nik": nik,
        "nama_penerima": "A",
        "program": "PKH",
        "periode": "2026-11",
        "nominal": "enam ratus ribu " + nik,
        "status_salur": "SALUR",
        "tgl_salur": "2026/11/20",
        "kelurahan": "Kel. Menteng",
        "alamat": None,
    }
    response = gateway.post(
        "/v1/agencies/dinsos/datasets/penerima_bansos/events",
        json={"events": [{"key": "PKH-1", "version": 1, "record": record}]},
        headers=auth("dinsos"),
    )
    assert response.status_code == 422  # a data error: sending it again changes nothing
    assert response.json()["accepted"] == [] and response.json()["rejected"][0]["errors"]
    assert nik[:10] not in response.text


def test_openapi_describes_the_endpoint(gateway: httpx.Client) -> None:
    spec = gateway.get("/openapi.json").json()
    operation = spec["paths"]["/v1/agencies/{agency}/datasets/{dataset}/events"]["post"]
    assert {"400", "401", "403", "413", "422"} <= set(operation["responses"])
    assert gateway.get("/docs").status_code == 200


def test_a_broker_that_does_not_answer_gives_503_within_the_ack_timeout(bus: Settings, auth: Auth) -> None:
    down = unanswered_address()
    events = [{"key": f"G-{i}", "version": 1, "record": incident(i)} for i in range(3)]
    with running_gateway(
        bus, bus.gateway_port + 1, SATUBUS_KAFKA_BOOTSTRAP=down, SATUBUS_GATEWAY_ACK_TIMEOUT="2"
    ) as gateway:
        response = gateway.post(URL, json={"events": events}, headers=auth())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "10"
    assert "acknowledged none" in response.json()["detail"]
    assert {e["field"] for r in response.json()["rejected"] for e in r["errors"]} == {"<broker>"}


def test_a_registry_that_does_not_answer_gives_503_with_retry_after(bus: Settings, auth: Auth) -> None:
    down = f"http://{unanswered_address()}/apis/ccompat/v7"
    events = [{"key": "G-1", "version": 1, "record": incident(1)}]
    with running_gateway(bus, bus.gateway_port + 2, SATUBUS_REGISTRY_URL=down, SATUBUS_REGISTRY_TIMEOUT="2") as gateway:
        response = gateway.post(URL, json={"events": events}, headers=auth())
        assert gateway.get("/openapi.json").status_code == 200  # the gateway itself is still up
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "10"
    assert response.json()["detail"] == "the schema registry is unavailable; retry later"
