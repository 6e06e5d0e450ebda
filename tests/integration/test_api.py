"""The live API as a real ``satubus api`` process over the pipeline's view: the scoreboard of all 52 agencies and
its metrics, lookups, findings and the live change stream; who may read what (API keys, scopes, purposes) and the
audit log of those reads."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import random
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from satubus.consumers import api_keys, api_scopes
from satubus.consumers.scoreboard import Rules
from satubus.database import dsn as owner_dsn
from satubus.producers.publisher import AgencyPublisher
from satubus.producers.simulate import Simulation, simulate
from satubus.registry import registry_client
from satubus.schemas import pseudonym
from satubus.schemas.models import Person
from satubus.schemas.topics import agency_topic
from satubus.serde import AvroSerde
from satubus.settings import Settings
from satubus.streams.mapping import discover_mappings
from tests.integration.conftest import Pipeline, run_satubus
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


def issue_key(settings: Settings, caller: str, *scopes: str, wait: bool = True) -> dict[str, str]:
    """The headers of a caller with a new key of ``scopes`` and a purpose; by default once the running API knows
    the key (it rereads the keys every 2 s)."""
    issued = asyncio.run(api_keys.issue(settings, caller, frozenset(scopes), "tests"))
    headers = {"Authorization": f"Bearer {issued.token}", "Satubus-Purpose": "pelayanan"}
    deadline = time.monotonic() + 30
    while wait and _get(settings, "/v1/findings", headers, limit=1).status_code == 401:
        assert time.monotonic() < deadline, "the API did not accept a new key within 30 s"
        time.sleep(0.2)
    return headers


@pytest.fixture(scope="module")
def api(bus: Settings, pipeline: Pipeline, simulation: Simulation) -> Iterator[httpx.Client]:
    """A client with every scope: the API's answers as such."""
    headers = issue_key(bus, "api-test-all", *api_scopes.SCOPES, wait=False)  # read when the API starts
    pipeline.start("api")
    with httpx.Client(base_url=f"http://127.0.0.1:{bus.api_port}", timeout=30, headers=headers) as client:
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
    body = got.json()
    assert body.pop("withheld") == []
    assert Person.model_validate(body) == person
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
        events = _events(lines, until=time.monotonic() + 60)
        event = next(e for e in events if e.get("event") == "incident" and incident_key in e.get("data", ""))
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


def _get(settings: Settings, path: str, headers: dict[str, str] | None = None, **params: Any) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{settings.api_port}{path}", headers=headers, params=params, timeout=30)


def test_without_a_key_only_the_public_parts_answer(bus: Settings, api: httpx.Client, simulation: Simulation) -> None:
    person_id, nop = next(iter(simulation.truth.persons)), next(iter(simulation.truth.parcels))
    code, incident = next(iter(simulation.truth.regions)), next(iter(simulation.truth.incidents))
    for path in ("/v1/scoreboard", f"/v1/regions/{code}", f"/v1/incidents/{incident}", "/openapi.json", "/health"):
        assert _get(bus, path).status_code == 200, path
    nik = f"/v1/restricted/persons/{person_id}/nik"
    for path in (f"/v1/persons/{person_id}", f"/v1/parcels/{nop}", "/v1/findings", nik):
        refused = _get(bus, path, purpose="pelayanan")
        assert (refused.status_code, refused.headers.get("WWW-Authenticate")) == (401, "Bearer"), path
        assert person_id not in refused.text
    assert _get(bus, "/v1/changes", entity="person", purpose="pelayanan").status_code == 401
    wrong = _get(bus, f"/v1/persons/{person_id}", {"Authorization": "Bearer sdb.nothere.secret"}, purpose="statistik")
    assert wrong.status_code == 401
    rebinding = httpx.get(f"http://127.0.0.1:{bus.api_port}/v1/scoreboard", headers={"Host": "attacker.example"})
    assert rebinding.status_code == 400


def test_scopes_open_records_and_fields_and_a_purpose_is_required(
    bus: Settings, api: httpx.Client, simulation: Simulation
) -> None:
    person_id = next(p for p, person in simulation.truth.persons.items() if person.aid and person.health_visits)
    health_fields = sorted(f for f, scope in api_scopes.FIELD_SCOPES["person"].items() if scope == api_scopes.HEALTH)

    person_only = issue_key(bus, "api-test-person", api_scopes.PERSON)
    got = _get(bus, f"/v1/persons/{person_id}", person_only).json()
    assert got["withheld"] == sorted(["aid", *health_fields])
    assert not {"aid", *health_fields} & set(got)
    assert got["full_name"] == simulation.truth.persons[person_id].full_name

    with_aid = issue_key(bus, "api-test-aid", api_scopes.PERSON, api_scopes.AID)
    got = _get(bus, f"/v1/persons/{person_id}", with_aid).json()
    assert (got["withheld"], len(got["aid"])) == (health_fields, len(simulation.truth.persons[person_id].aid))

    no_purpose = {k: v for k, v in person_only.items() if k != "Satubus-Purpose"}
    assert "purpose" in _get(bus, f"/v1/persons/{person_id}", no_purpose).json()["detail"]
    assert _get(bus, f"/v1/persons/{person_id}", no_purpose, purpose="curiosity").status_code == 422
    assert _get(bus, f"/v1/persons/{person_id}", no_purpose, purpose="statistik").status_code == 200

    forbidden = _get(bus, f"/v1/restricted/persons/{person_id}/nik", person_only)
    assert (forbidden.status_code, "read:restricted" in forbidden.json()["detail"]) == (403, True)
    restricted = issue_key(bus, "api-test-restricted", api_scopes.RESTRICTED)
    nik = _get(bus, f"/v1/restricted/persons/{person_id}/nik", restricted).json()["nik"]
    assert bus.pseudonym_key is not None
    assert pseudonym.person_id(bus.pseudonym_key.get_secret_value().encode(), nik) == person_id

    revoked = issue_key(bus, "api-test-revoked", api_scopes.PERSON)
    assert _get(bus, f"/v1/persons/{person_id}", revoked).status_code == 200
    assert run_satubus(bus, "api-key", "revoke", "api-test-revoked", "--by", "tests").returncode == 0
    deadline = time.monotonic() + 30  # the API reloads the keys every 2 s
    while _get(bus, f"/v1/persons/{person_id}", revoked).status_code != 401:
        assert time.monotonic() < deadline, "a revoked key was still accepted after 30 s"
        time.sleep(0.5)


def test_every_personal_read_is_audited_and_the_chain_detects_tampering(
    bus: Settings, api: httpx.Client, simulation: Simulation
) -> None:
    person_id = list(simulation.truth.persons)[1]
    reader = issue_key(bus, "api-test-auditee", api_scopes.PERSON) | {"Satubus-Purpose": "penegakan"}
    assert _get(bus, f"/v1/persons/{person_id}", reader).status_code == 200
    restricted = issue_key(bus, "api-test-nik", api_scopes.RESTRICTED) | {"Satubus-Purpose": "hak_subjek"}
    assert _get(bus, f"/v1/restricted/persons/{person_id}/nik", restricted).status_code == 200

    report = run_satubus(bus, "audit", "report", "--person", person_id, "--json")
    assert report.returncode == 0, report.stderr
    rows = [json.loads(line) for line in report.stdout.splitlines()]
    reads = {(r["principal"], r["purpose"], r["entity"], r["action"]) for r in rows}
    assert ("api-test-auditee", "penegakan", "person", "GET /v1/persons/{person_id}") in reads
    assert ("api-test-nik", "hak_subjek", "person_nik", "GET /v1/restricted/persons/{person_id}/nik") in reads
    audited = next(r for r in rows if r["principal"] == "api-test-auditee")
    assert "full_name" in audited["fields"] and "aid" not in audited["fields"]
    assert audited["client"] == "127.0.0.1"

    assert run_satubus(bus, "audit", "verify").returncode == 0
    seq = audited["seq"]
    asyncio.run(_tamper(bus, seq, "purpose", "statistik"))
    try:
        broken = run_satubus(bus, "audit", "verify")
        assert (broken.returncode, f"BROKEN at row {seq}" in broken.stderr) == (1, True), broken.stderr
    finally:
        asyncio.run(_tamper(bus, seq, "purpose", "penegakan"))
    assert run_satubus(bus, "audit", "verify").returncode == 0


async def _tamper(settings: Settings, seq: int, column: str, value: str) -> None:
    """What an owner with the right to disable triggers could do to the log."""
    connection = await asyncpg.connect(owner_dsn(settings))
    try:
        async with connection.transaction():
            await connection.execute("ALTER TABLE audit.access_log DISABLE TRIGGER append_only")
            await connection.execute(f"UPDATE audit.access_log SET {column} = $1 WHERE seq = $2", value, seq)
            await connection.execute("ALTER TABLE audit.access_log ENABLE TRIGGER append_only")
    finally:
        await connection.close()


def _events(lines: Iterator[str], until: float) -> Iterator[dict[str, str]]:
    event: dict[str, str] = {}
    for line in lines:
        assert time.monotonic() < until, "no such event in time"
        if line.startswith(("event:", "id:", "data:")):
            name, value = line.split(":", 1)
            event[name] = value.strip()
        elif line == "" and event:
            yield event
            event = {}


def test_live_changes_follow_the_scopes_resume_and_are_capped(bus: Settings, api: httpx.Client) -> None:
    headers = issue_key(bus, "api-test-stream", api_scopes.PERSON)
    url = f"http://127.0.0.1:{bus.api_port}/v1/changes"
    params = {"entity": "person", "purpose": "pelayanan"}
    with httpx.Client(headers=headers, timeout=90) as client:
        with client.stream("GET", url, params=params) as first:
            lines = first.iter_lines()
            assert next(lines) == ": connected"
            _republish_a_resident(bus, "Live Satu")
            event = next(e for e in _events(lines, time.monotonic() + 60) if "Live Satu" in e["data"])
            change = json.loads(event["data"])
            assert change["withheld"] == sorted(api_scopes.FIELD_SCOPES["person"])
            assert "aid" not in change["record"]
            seen = event["id"]

        _republish_a_resident(bus, "Live Dua")  # while nobody listens
        with client.stream("GET", url, params=params, headers={"Last-Event-ID": seen}) as resumed:
            lines = resumed.iter_lines()
            assert next(lines) == ": connected"
            assert any("Live Dua" in e["data"] for e in _events(lines, time.monotonic() + 60))

        with client.stream("GET", url, params=params, headers={"Last-Event-ID": "nowhere:0:0"}) as gone:
            lines = gone.iter_lines()
            assert next(lines) == ": connected"
            assert next(_events(lines, time.monotonic() + 30))["event"] == "gone"

        capped = issue_key(bus, "api-test-streams", api_scopes.PERSON)
        with contextlib.ExitStack() as open_streams:
            for _ in range(bus.api_streams_per_caller):
                stream = open_streams.enter_context(client.stream("GET", url, params=params, headers=capped))
                assert stream.status_code == 200
            with client.stream("GET", url, params=params, headers=capped) as one_too_many:
                assert one_too_many.status_code == 429


def _republish_a_resident(settings: Settings, name: str) -> None:
    """A new resident registered by Dukcapil, named ``name``."""
    nik = f"3171064808850{random.randrange(1, 1000):03d}"
    record = {
        "nik": nik,
        "no_kk": f"3171060101090{random.randrange(1, 1000):03d}",
        "nama_lgkp": name,
        "tgl_lhr": "08-08-1985",
        "jenis_klmin": "PEREMPUAN",
        "alamat": "Jl. Kebon Sirih No. 1",
        "no_rt": "001",
        "no_rw": "002",
        "kode_kel": "3171061001",
        "nama_kel": None,
        "stat_hidup": "HIDUP",
        "tgl_mati": None,
    }
    with (
        AvroSerde(registry_client(settings)) as serde,
        AgencyPublisher(settings, serde, agency="dukcapil", dataset="penduduk", system="api-test") as publisher,
    ):
        publisher.publish(nik, record, version=int(time.time() * 1000))
