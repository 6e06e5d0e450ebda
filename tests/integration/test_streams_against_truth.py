"""The stream processor and the materializer on a dirty simulated feed, compared with the simulator's ground truth."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import asyncpg
import pytest

from producers.publisher import AgencyPublisher
from producers.simulate import Simulation, simulate
from satubus.settings import Settings
from schemas.registry import registry_client
from schemas.serde import AvroSerde
from schemas.topics import DLQ, agency_topic
from streams.mapping import discover_mappings
from tests.integration.conftest import Pipeline
from tests.integration.test_dukcapil_end_to_end import read_topic, scrape

MAPPED = {agency_topic(m.agency, m.dataset) for m in discover_mappings()}


async def table(settings: Settings, name: str, key: str) -> dict[str, dict[str, Any]]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(f"SELECT * FROM {name}")
    finally:
        await conn.close()
    return {
        r[key]: {k: (list(v) if isinstance(v, list) else v) for k, v in r.items() if k != "committed_at"} for r in rows
    }


def consumed_so_far(settings: Settings) -> float:
    try:
        return scrape(settings.stream_metrics_port).get("satubus_events_in_total", 0)
    except OSError:  # the worker is still starting: its metrics endpoint is not up yet
        return 0


@pytest.fixture(scope="module")
def simulation(bus: Settings, pipeline: Pipeline) -> Simulation:
    simulation = simulate(bus, residents=3000, seed=77, dirty=0.05, agencies={"dukcapil", "bpbd"})
    consumed = sum(c["in"] for topic, c in simulation.truth.counts.items() if topic in MAPPED)
    deadline = time.monotonic() + 300
    while consumed_so_far(bus) < consumed:
        pipeline.assert_running()
        assert time.monotonic() < deadline, "the stream processor did not consume every event"
        time.sleep(0.5)
    truth = simulation.truth
    while True:  # the materializer follows
        people = asyncio.run(table(bus, "unified.person", "person_id"))
        incidents = asyncio.run(table(bus, "unified.incident", "incident_id"))
        if len(people) >= len(truth.persons) and len(incidents) >= len(truth.incidents):
            break
        assert time.monotonic() < deadline, "the materializer did not catch up"
        time.sleep(0.5)
    return simulation


def test_the_view_equals_the_ground_truth(bus: Settings, simulation: Simulation) -> None:
    truth = simulation.truth
    assert asyncio.run(table(bus, "unified.person", "person_id")) == {
        k: v.model_dump() for k, v in truth.persons.items()
    }
    assert asyncio.run(table(bus, "unified.incident", "incident_id")) == {
        k: v.model_dump() for k, v in truth.incidents.items()
    }


def test_every_dirty_record_is_dead_lettered_with_the_right_reason(bus: Settings, simulation: Simulation) -> None:
    expected = {(d["event_id"], d["reason"]) for d in simulation.truth.dead_letters if d["topic"] in MAPPED}
    with AvroSerde(registry_client(bus)) as serde:
        got = set()
        for letter in read_topic(bus, DLQ):
            headers = {k: v.decode() for k, v in letter.headers()}
            assert headers["satubus.error.stage"] == "normalize"
            got.add((str(serde.decode(letter.value())["event_id"]), headers["satubus.error.reason"]))
    assert got == expected


def test_counts_reconcile(bus: Settings, simulation: Simulation) -> None:
    truth = Counter[str]()
    for topic, counts in simulation.truth.counts.items():
        if topic in MAPPED:
            truth.update(counts)
    metrics = scrape(bus.stream_metrics_port)
    assert metrics["satubus_events_in_total"] == truth["in"]
    assert metrics["satubus_events_out_total"] == truth["unified"]
    assert metrics["satubus_events_invalid_total"] == truth["dlq"]
    assert metrics["satubus_events_dropped_total"] == truth["duplicate"] + truth["stale"]


def test_a_restarted_worker_rebuilds_its_state_and_the_output_is_unchanged(
    bus: Settings, pipeline: Pipeline, simulation: Simulation
) -> None:
    """Runs last. The store is in memory, so a restart starts with no local state: the dedupe tables must come
    back from their changelogs, or the same events sent again would be applied twice."""
    before_people = asyncio.run(table(bus, "unified.person", "person_id"))
    before_incidents = asyncio.run(table(bus, "unified.incident", "incident_id"))
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
    expected_dlq = sum(1 for e in resent if e.planned.expect.startswith("dlq:"))
    assert metrics["satubus_events_dropped_total"] == len(resent) - expected_dlq  # every valid one: seen before
    assert metrics["satubus_events_invalid_total"] == expected_dlq
    assert metrics.get("satubus_events_out_total", 0) == 0
    assert asyncio.run(table(bus, "unified.person", "person_id")) == before_people
    assert asyncio.run(table(bus, "unified.incident", "incident_id")) == before_incidents
