"""The live API as a real ``satubus api`` process over the pipeline's view: the scoreboard of all 52 agencies and
its metrics, lookups, findings and the live change stream."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from satubus.consumers.scoreboard import Rules
from satubus.producers.publisher import AgencyPublisher
from satubus.producers.simulate import Simulation, simulate
from satubus.registry import registry_client
from satubus.schemas.models import Person
from satubus.schemas.topics import agency_topic
from satubus.serde import AvroSerde
from satubus.settings import Settings
from satubus.streams.mapping import discover_mappings
from tests.integration.conftest import Pipeline
from tests.integration.test_dukcapil_end_to_end import scrape
from tests.integration.test_streams_against_truth import consumed_so_far, table

RESIDENTS = 300
MAPPED = {agency_topic(m.agency, m.dataset) for m in discover_mappings()}


@pytest.fixture(scope="module")
def pipeline_env() -> dict[str, str]:
    return {"SATUBUS_SCOREBOARD_REFRESH_SECONDS": "1"}


@pytest.fixture(scope="module")
def simulation(bus: Settings, pipeline: Pipeline) -> Simulation:
    simulation = simulate(bus, residents=RESIDENTS, seed=11, dirty=0.02)  # every integrated agency
    consumed = sum(c["in"] for topic, c in simulation.truth.counts.items() if topic in MAPPED)
    deadline = time.monotonic() + 300
    while consumed_so_far(bus) < consumed or len(_view(bus, "person")) < len(simulation.truth.persons):
        pipeline.assert_running()
        assert time.monotonic() < deadline, "the pipeline did not take in the simulation"
        time.sleep(0.5)
    return simulation


@pytest.fixture(scope="module")
def api(bus: Settings, pipeline: Pipeline, simulation: Simulation) -> Iterator[httpx.Client]:
    pipeline.start("api")
    with httpx.Client(base_url=f"http://127.0.0.1:{bus.api_port}", timeout=30) as client:
        deadline = time.monotonic() + 60
        while True:
            pipeline.assert_running()
            try:
                if client.get("/v1/scoreboard").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the API did not come up"
            time.sleep(0.3)
        yield client


def _view(settings: Settings, entity: str) -> dict[str, dict[str, Any]]:
    import asyncio

    return asyncio.run(table(settings, entity))


def _expected_statuses(simulation: Simulation) -> dict[str, str]:
    """Per agency, all its mapped datasets together: integrated when some event was valid and at most the allowed
    share dead-lettered (the scoreboard's rules), stale when more were; agencies missing here are silent."""
    sent: dict[str, Counter[str]] = defaultdict(Counter)
    for topic, counts in simulation.truth.counts.items():
        if topic in MAPPED:
            sent[topic.split(".")[1]].update({"in": counts["in"], "dlq": counts["dlq"]})
    ratio = Rules().max_invalid_ratio
    return {
        agency: "integrated" if c["dlq"] <= ratio * c["in"] else "stale"
        for agency, c in sent.items()
        if c["in"] > c["dlq"]
    }


def test_the_scoreboard_lists_all_52_agencies_and_counts_the_integrated_ones(
    bus: Settings, api: httpx.Client, simulation: Simulation
) -> None:
    board = api.get("/v1/scoreboard").json()
    statuses = {a["code"]: a for a in board["agencies"]}
    assert board["total"] == len(statuses) == 52
    expected = _expected_statuses(simulation)
    assert {code: a["status"] for code, a in statuses.items() if a["status"] != "silent"} == expected
    integrated = {code for code, status in expected.items() if status == "integrated"}
    assert (
        board["integrated"] == len(integrated) >= 30
    )  # the 12 not integrated, and any that sent nothing valid, are silent
    assert all(statuses[code]["events_per_minute"] > 0 for code in integrated)
    assert statuses["dukcapil"]["invalid_ratio"] is not None

    deadline = time.monotonic() + 30  # the API refreshes its scoreboard metrics every second here
    while (metrics := scrape(bus.api_port)).get("satubus_agencies_integrated") != len(integrated):
        assert time.monotonic() < deadline, (
            f"satubus_agencies_integrated is {metrics.get('satubus_agencies_integrated')}"
        )
        time.sleep(0.5)
    assert metrics["satubus_agency_integrated"] == len(integrated)


def test_lookups_return_the_unified_records_and_404_or_422_otherwise(api: httpx.Client, simulation: Simulation) -> None:
    truth = simulation.truth
    person_id, person = next(iter(truth.persons.items()))
    got = api.get(f"/v1/persons/{person_id}")
    assert got.status_code == 200
    assert Person.model_validate(got.json()) == person
    assert not re.search(r"\b\d{16}\b", got.text)  # no NIK (16 digits), nor a family card number

    nop = next(iter(truth.parcels))
    assert api.get(f"/v1/parcels/{nop}").json()["nop"] == nop
    code = next(iter(truth.regions))
    assert api.get(f"/v1/regions/{code}").json()["kelurahan_code"] == code

    missing = api.get(f"/v1/persons/{'0' * 64}")
    assert missing.status_code == 404
    assert "no person" in missing.json()["detail"]
    assert api.get("/v1/persons/not-a-person-id").status_code == 422
    assert api.get("/v1/regions/Menteng").status_code == 422
    assert api.get("/v1/parcels/123").status_code == 422


def test_findings_are_filtered_and_paginated(api: httpx.Client, simulation: Simulation) -> None:
    open_findings = [f for f in simulation.truth.findings if f[0] != "UNKNOWN_REGION_CODE"]
    deceased = {subject for kind, subject in open_findings if kind == "AID_TO_DECEASED"}
    page = api.get("/v1/findings", params={"kind": "AID_TO_DECEASED", "status": "OPEN", "limit": 500}).json()
    assert page["total"] == len(page["items"]) == len(deceased) > 0
    assert {f["subject_id"] for f in page["items"]} == deceased
    assert all("dinsos" in f["agencies"] for f in page["items"])

    everything = api.get("/v1/findings", params={"limit": 500}).json()
    pages, offset = [], 0
    while offset < everything["total"]:
        pages += api.get("/v1/findings", params={"limit": 7, "offset": offset}).json()["items"]
        offset += 7
    assert pages == everything["items"]
    assert api.get("/v1/findings", params={"agency": "dinsos", "limit": 1}).json()["total"] >= len(deceased)
    assert api.get("/v1/findings", params={"status": "MAYBE"}).status_code == 422
    assert api.get("/v1/findings", params={"limit": 501}).status_code == 422


def test_a_change_is_streamed_live(bus: Settings, api: httpx.Client) -> None:
    incident_key = f"BPBD-LIVE-{uuid.uuid4().hex[:8]}"
    incident = {
        "id_kejadian": incident_key,
        "jenis": "BANJIR",
        "waktu_kejadian": dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5),
        "kelurahan": "Kel. Menteng",
        "kecamatan": None,
        "rw_terdampak": ["4", "11"],
        "tinggi_air_cm": 40,
        "pengungsi": 12,
        "meninggal": 0,
        "luka": 1,
        "status": "BERLANGSUNG",
        "lintang": None,
        "bujur": None,
    }
    with api.stream("GET", "/v1/changes", params={"entity": "incident"}, timeout=90) as stream:
        lines = stream.iter_lines()
        assert next(lines) == ": connected"
        with AvroSerde(registry_client(bus)) as serde:
            publisher = AgencyPublisher(bus, serde, agency="bpbd", dataset="kejadian", system="api-test")
            publisher.publish(incident_key, incident, version=1)
            publisher.close()
        deadline = time.monotonic() + 60
        event: dict[str, str] = {}
        for line in lines:
            assert time.monotonic() < deadline, "the incident was not streamed within 60s"
            if line.startswith(("event:", "id:", "data:")):
                name, value = line.split(":", 1)
                event[name] = value.strip()
            elif line == "" and event:
                if event.get("event") == "incident" and incident_key in event.get("data", ""):
                    break
                event = {}
    change = json.loads(event["data"])
    assert change["key"] == f"bpbd:{incident_key}"
    assert (change["record"]["kind"], change["record"]["status"], change["record"]["affected_rw"]) == (
        "FLOOD",
        "ONGOING",
        ["004", "011"],
    )
    assert event["id"].startswith(f"{bus.topic('unified.incident.v1')}:")


def test_the_openapi_document_is_served(api: httpx.Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/v1/scoreboard", "/v1/persons/{person_id}", "/v1/findings", "/v1/changes"} <= set(paths)


def test_health_is_ok_when_the_database_answers_and_changes_flow(api: httpx.Client) -> None:
    health = api.get("/health")
    assert (health.status_code, health.json()) == (200, {"status": "ok", "problems": {}})
