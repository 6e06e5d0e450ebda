"""The stream processor and the materializer on a dirty simulated feed of every mapped agency, compared with the
simulator's ground truth: the unified view (joined people and parcels, incidents), the findings, the dead letters
and the counts."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from satubus.consumers.tables import TABLES
from satubus.database import dsn as owner_dsn
from satubus.producers.publisher import AgencyPublisher
from satubus.producers.simulate import Simulation, simulate
from satubus.producers.simulator.truth import Truth
from satubus.registry import registry_client
from satubus.schemas.pseudonym import person_id
from satubus.schemas.topics import DEAD_LETTERS, agency_topic, unified_topic, value_subject
from satubus.serde import AvroSerde
from satubus.settings import Settings
from satubus.streams.mapping import discover_mappings
from tests.integration.conftest import Pipeline
from tests.integration.test_dukcapil_end_to_end import read_topic, scrape

MAPPINGS = discover_mappings()
MAPPED = {agency_topic(m.agency, m.dataset) for m in MAPPINGS}
PARTS = {agency_topic(m.agency, m.dataset) for m in MAPPINGS if m.spec.part is not None}


async def table(settings: Settings, entity: str) -> dict[str, dict[str, Any]]:
    """The materialized view of ``entity``, keyed like its topic, JSON columns parsed."""
    spec = TABLES[entity]
    conn = await asyncpg.connect(owner_dsn(settings))
    try:
        rows = await conn.fetch(f"SELECT * FROM {spec.table}")
    finally:
        await conn.close()
    return {
        r[spec.key]: {
            k: json.loads(v) if k in spec.json_columns else list(v) if isinstance(v, list) else v
            for k, v in r.items()
            if k != "committed_at"
        }
        for r in rows
    }


def as_rows(entity: str, records: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Records (pydantic models or decoded Avro) as ``table`` returns them: JSON columns through JSON."""
    json_columns = TABLES[entity].json_columns
    rows = {}
    for key, record in records.items():
        row = record if isinstance(record, dict) else record.model_dump()
        rows[key] = {k: json.loads(json.dumps(v, default=str)) if k in json_columns else v for k, v in row.items()}
    return rows


def expected_rows(truth: Truth) -> dict[str, dict[str, dict[str, Any]]]:
    """The view's tables the truth expects, by entity, as ``table`` returns them (findings aside)."""
    return {
        "person": as_rows("person", truth.persons),
        "parcel": as_rows("parcel", truth.parcels),
        "incident": as_rows("incident", truth.incidents),
        "region": as_rows("region", {k: v.model_dump() for k, v in truth.regions.items()}),
    }


def latest_records(settings: Settings, topic: str) -> dict[str, dict[str, Any]]:
    """The compacted view of a unified topic: the latest record per key, tombstones removing their key."""
    latest: dict[str, dict[str, Any]] = {}
    with AvroSerde(registry_client(settings)) as serde:
        for message in read_topic(settings, topic):
            key = message.key().decode()
            if message.value() is None:
                latest.pop(key, None)
            else:
                latest[key] = serde.decode(message.value(), value_subject(message.topic()))
    return latest


def floored(regions: dict[str, dict[str, Any]], truth: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Region records (of the topic or the table), each version that is at least the truth's set to the truth's:
    the truth knows only the least a region's revision can be (producers/simulator/truth.py)."""
    return {
        code: region | {"version": truth[code]["version"]}
        if code in truth and region["version"] >= truth[code]["version"]
        else region
        for code, region in regions.items()
    }


def settled(read: Callable[[], Any], expected: Any, timeout: float = 60) -> Any:
    """What ``read`` returns once it equals ``expected``, or at the timeout (a stage one hop behind catching up)."""
    deadline = time.monotonic() + timeout
    while (got := read()) != expected and time.monotonic() < deadline:
        time.sleep(1)
    return got


def parts_joined(settings: Settings) -> float:
    try:
        return scrape(settings.stream_metrics_port).get("satubus_join_parts_in_total", 0)
    except OSError:
        return 0


def consumed_so_far(settings: Settings) -> float:
    try:
        return scrape(settings.stream_metrics_port).get("satubus_events_in_total", 0)
    except OSError:  # the worker is still starting: its metrics endpoint is not up yet
        return 0


@pytest.fixture(scope="module")
def simulation(bus: Settings, pipeline: Pipeline) -> Simulation:
    agencies = {m.agency for m in MAPPINGS}
    simulation = simulate(bus, residents=2000, seed=77, dirty=0.05, agencies=agencies)
    consumed = sum(c["in"] for topic, c in simulation.truth.counts.items() if topic in MAPPED)
    parts = sum(c["unified"] for topic, c in simulation.truth.counts.items() if topic in PARTS)
    started = time.monotonic()
    deadline = started + 600
    while consumed_so_far(bus) < consumed or parts_joined(bus) < parts:
        pipeline.assert_running()
        assert time.monotonic() < deadline, "the stream processor did not consume every event"
        time.sleep(0.5)
    took = time.monotonic() - started
    print(f"\n{consumed} events normalized and {parts} parts joined {took:.1f}s after the last was published")
    truth = simulation.truth
    expected = {"person": len(truth.persons), "parcel": len(truth.parcels), "incident": len(truth.incidents)}
    while any(len(asyncio.run(table(bus, e))) < n for e, n in expected.items()):  # the materializer follows
        assert time.monotonic() < deadline, "the materializer did not catch up"
        time.sleep(0.5)
    return simulation


def same(got: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What differs between two sets of records, field by field (empty: nothing), for a readable failure."""
    differences: dict[str, Any] = {"missing": sorted(expected.keys() - got.keys())[:5]}
    differences["unexpected"] = sorted(got.keys() - expected.keys())[:5]
    for key in sorted(got.keys() & expected.keys()):
        fields = {f: (got[key].get(f, "<absent>"), expected[key].get(f, "<absent>")) for f in got[key] | expected[key]}
        changed = {f: pair for f, pair in fields.items() if pair[0] != pair[1]}
        if changed and len(differences) < 8:
            differences[key] = changed
    return {k: v for k, v in differences.items() if v}


def test_the_view_equals_the_ground_truth(bus: Settings, simulation: Simulation) -> None:
    truth = simulation.truth
    assert same(asyncio.run(table(bus, "person")), as_rows("person", truth.persons)) == {}
    assert same(asyncio.run(table(bus, "parcel")), as_rows("parcel", truth.parcels)) == {}
    assert same(asyncio.run(table(bus, "incident")), as_rows("incident", truth.incidents)) == {}


def test_the_unified_topics_equal_the_ground_truth(bus: Settings, simulation: Simulation) -> None:
    truth = simulation.truth
    persons = {k: v.model_dump() for k, v in truth.persons.items()}
    assert same(latest_records(bus, unified_topic("person")), persons) == {}
    assert (
        same(latest_records(bus, unified_topic("parcel")), {k: v.model_dump() for k, v in truth.parcels.items()}) == {}
    )


def test_the_region_aggregates_equal_the_ground_truth(bus: Settings, simulation: Simulation) -> None:
    """The region joiner runs one hop behind the others: wait until its topic settles on the truth."""
    expected = {k: v.model_dump() for k, v in simulation.truth.regions.items()}
    deadline = time.monotonic() + 120
    while (
        regions := floored(latest_records(bus, unified_topic("region")), expected)
    ) != expected and time.monotonic() < deadline:
        time.sleep(1)
    assert regions == expected
    assert sum(r["population"] for r in regions.values()) == sum(
        not p.is_deceased for p in simulation.truth.persons.values()
    )
    assert sum(r["open_service_requests"] for r in regions.values()) > 0
    rows = as_rows("region", expected)
    assert settled(lambda: floored(asyncio.run(table(bus, "region")), rows), rows) == rows


def test_the_open_findings_equal_the_ground_truth(bus: Settings, simulation: Simulation) -> None:
    mapped = {f"{m.agency}.{m.dataset}" for m in MAPPINGS}
    expected = {
        (kind, subject)
        for kind, subject in simulation.truth.findings
        if kind != "UNKNOWN_REGION_CODE" or subject.split(":", 1)[0] in mapped
    }
    findings = latest_records(bus, unified_topic("finding"))
    assert {(f["kind"], f["subject_id"]) for f in findings.values() if f["status"] == "OPEN"} == expected
    assert {kind for kind, _ in expected} == {
        "AID_TO_DECEASED",
        "NO_CIVIL_REGISTRY_RECORD",
        "PERMIT_FORBIDDEN_BY_ZONING",
        "UNKNOWN_REGION_CODE",
    }
    niks = {r.nik for r in simulation.world.residents}
    assert not any(nik in json.dumps(f, default=str) for f in findings.values() for nik in niks)
    assert settled(lambda: asyncio.run(table(bus, "finding")), as_rows("finding", findings)) == as_rows(
        "finding", findings
    )


def test_clear_niks_are_only_in_the_restricted_schema(bus: Settings, simulation: Simulation) -> None:
    assert bus.pseudonym_key is not None
    key = bus.pseudonym_key.get_secret_value().encode()
    expected = {
        pid: r.nik for r in simulation.world.residents if (pid := person_id(key, r.nik)) in simulation.truth.persons
    }
    assert (
        settled(
            lambda: dict(asyncio.run(as_role(bus, None, "SELECT person_id, nik FROM restricted.person_nik"))), expected
        )
        == expected
    )

    person = next(iter(expected))
    assert asyncio.run(
        as_role(bus, "satubus_reader", f"SELECT person_id FROM unified.person WHERE person_id = '{person}'")
    )
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        asyncio.run(as_role(bus, "satubus_reader", "SELECT nik FROM restricted.person_nik LIMIT 1"))
    restricted = asyncio.run(
        as_role(bus, "satubus_restricted", f"SELECT nik FROM restricted.person_nik WHERE person_id = '{person}'")
    )
    assert restricted == [(expected[person],)]


async def as_role(settings: Settings, role: str | None, sql: str) -> list[tuple[Any, ...]]:
    """``sql`` run as ``role`` (None: the owner), as a login granted that role would run it."""
    conn = await asyncpg.connect(owner_dsn(settings))
    try:
        if role is not None:
            await conn.execute(f"SET ROLE {role}")
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


def test_every_dirty_record_is_dead_lettered_with_the_right_reason(bus: Settings, simulation: Simulation) -> None:
    expected = {(d["event_id"], d["reason"]) for d in simulation.truth.dead_letters if d["topic"] in MAPPED}
    with AvroSerde(registry_client(bus)) as serde:
        got = set()
        for letter in read_topic(bus, DEAD_LETTERS.name):
            headers = {k: v.decode() for k, v in letter.headers()}
            assert headers["satubus.error.stage"] == "normalize"
            event = serde.decode(letter.value(), value_subject(headers["satubus.error.topic"]))
            got.add((str(event["event_id"]), headers["satubus.error.reason"]))
    assert got == expected


def test_counts_reconcile(bus: Settings, simulation: Simulation) -> None:
    truth = Counter[str]()
    for topic, counts in simulation.truth.counts.items():
        if topic in MAPPED:
            truth.update(counts)
    metrics = scrape(bus.stream_metrics_port)
    assert metrics["satubus_events_in_total"] == truth["in"]
    assert metrics["satubus_events_accepted_total"] == truth["unified"]
    assert metrics["satubus_events_invalid_total"] == truth["dlq"]
    assert metrics["satubus_events_dropped_total"] == truth["duplicate"] + truth["stale"] + truth["unlinked"]
    assert truth["in"] == truth["unified"] + truth["dlq"] + truth["duplicate"] + truth["stale"] + truth["unlinked"]
    assert metrics.get("satubus_join_parts_dropped_total", 0) == 0  # the normalizers dedupe before the joiners


def test_a_restarted_worker_rebuilds_its_state_and_the_output_is_unchanged(
    bus: Settings, pipeline: Pipeline, simulation: Simulation
) -> None:
    """Runs last. The store is in memory, so a restart starts with no local state: the dedupe tables must come
    back from their changelogs, or the same events sent again would be applied twice."""
    before = {entity: asyncio.run(table(bus, entity)) for entity in TABLES}
    before_parcels = latest_records(bus, unified_topic("parcel"))
    restarted = time.monotonic()
    # Events are sent once the worker is ready: sending while it joins the group lost a message in other runs
    # (see the issue note); that race is under investigation, not tested here.
    pipeline.restart("stream", ready_line=b"Worker ready")

    resent = [e for e in simulation.published if agency_topic(e.planned.agency, e.planned.dataset) in MAPPED]
    with AvroSerde(registry_client(bus)) as serde:
        publishers: dict[tuple[str, str], AgencyPublisher] = {}
        for event in resent:
            p = event.planned
            publisher = publishers.setdefault(
                (p.agency, p.dataset), AgencyPublisher(bus, serde, agency=p.agency, dataset=p.dataset, system="resend")
            )
            publisher.publish(
                p.key, p.record, version=p.version, op=p.op, occurred_at=event.occurred_at, event_id=p.event_id
            )
        for publisher in publishers.values():
            publisher.close()
    deadline = time.monotonic() + 300
    while consumed_so_far(bus) < len(resent):
        pipeline.assert_running()
        assert time.monotonic() < deadline, "the restarted worker did not consume the resent events"
        time.sleep(0.5)
    caught_up = time.monotonic() - restarted
    print(f"\nrestart with empty local state: caught up with {len(resent)} resent events in {caught_up:.1f}s")

    metrics = scrape(bus.stream_metrics_port)
    # Every event was seen before, the dead-lettered ones included: their first letters account for them.
    assert metrics["satubus_events_dropped_total"] == len(resent)
    assert metrics.get("satubus_events_invalid_total", 0) == 0
    assert metrics.get("satubus_events_out_total", 0) == 0
    assert metrics.get("satubus_join_parts_in_total", 0) == 0
    assert {entity: asyncio.run(table(bus, entity)) for entity in TABLES} == before
    assert latest_records(bus, unified_topic("parcel")) == before_parcels
