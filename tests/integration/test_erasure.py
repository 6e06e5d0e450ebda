"""``satubus erase`` on a small simulated city, with the real pipeline: the person is gone from the unified view,
the restricted NIKs, the findings, the stream processor's state (the person joiner's, and the normalizer's routing
of each agency record) and every compacted topic once Kafka compacted them (the suite sets a bound of seconds
instead of the default hours), while the other residents stay."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import asyncpg
import pytest
from confluent_kafka import Producer

from satubus import access
from satubus.database import dsn as owner_dsn
from satubus.kafka import admin_client, configure_topics, producer_config, read_to_end
from satubus.producers.simulate import Simulation, simulate
from satubus.producers.simulator.world import Resident
from satubus.schemas.pseudonym import person_id
from satubus.schemas.topics import PERSON_NIK, UNIFIED_ENTITIES, unified_topic
from satubus.settings import Settings
from satubus.streams.app import APP_ID
from tests.integration.conftest import PSEUDONYM_KEY, Pipeline, run_satubus
from tests.integration.test_streams_against_truth import table

RESIDENTS = 300  # enough for residents with aid who died: a finding about them
BOUND_HOURS = 2 / 3600  # two seconds: Kafka's max.compaction.lag.ms and delete.retention.ms for this test


@pytest.fixture(scope="module")
def city(bus: Settings, pipeline: Pipeline) -> Simulation:
    simulation = simulate(bus, residents=RESIDENTS, seed=11, dirty=0)
    deadline = time.monotonic() + 300
    while len(asyncio.run(table(bus, "person"))) < len(simulation.truth.persons):
        pipeline.assert_running()
        assert time.monotonic() < deadline, "the pipeline did not take in the city"
        time.sleep(0.5)
    return simulation


def _compacted_topics(settings: Settings) -> list[str]:
    """The unified and restricted topics and the stream processor's changelogs, in the suite's namespace."""
    changelogs = f"{settings.topic(APP_ID)}-"
    existing = admin_client(settings).list_topics(timeout=15).topics
    ours = [settings.topic(unified_topic(e)) for e in UNIFIED_ENTITIES] + [settings.topic(PERSON_NIK.name)]
    return ours + sorted(t for t in existing if t.startswith(changelogs) and t.endswith("-changelog"))


def _appended_everywhere(settings: Settings, topics: list[str]) -> None:
    """A record appended to every partition: Kafka rolls a segment (and so lets it be compacted) only on append."""
    producer = Producer(producer_config(settings, "test-erasure-roll", access.ADMIN))
    for topic in topics:
        for partition in range(settings.topic_partitions):
            # A JSON string: the changelogs' keys are, and a worker recovering one must be able to read it.
            producer.produce(topic, key=b'"satubus.test.roll"', value=None, partition=partition)
    assert producer.flush(30) == 0


def _holding(settings: Settings, topics: list[str], needles: dict[str, bytes]) -> dict[str, list[str]]:
    """Which topics still hold each needle, in a key or a value."""
    found: dict[str, list[str]] = {}
    for topic in topics:
        for message in read_to_end(settings, topic):
            data = (message.key() or b"") + b"\0" + (message.value() or b"")
            for name, needle in needles.items():
                if needle in data:
                    found.setdefault(name, []).append(topic)
    return {name: sorted(set(where)) for name, where in found.items()}


async def _rows_of(settings: Settings, subject: str) -> dict[str, int]:
    connection = await asyncpg.connect(owner_dsn(settings))
    try:
        return {
            table_name: await connection.fetchval(f"SELECT count(*) FROM {table_name} WHERE {column} = $1", subject)
            for table_name, column in (
                ("unified.person", "person_id"),
                ("restricted.person_nik", "person_id"),
                ("unified.finding", "subject_id"),
            )
        }
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def erased(bus: Settings, city: Simulation) -> Iterator[tuple[Resident, str]]:
    """A resident with aid and a finding about them, erased."""
    findings = {subject for _, subject in city.truth.findings}
    resident = next(
        r
        for r in city.world.residents
        if (pid := person_id(PSEUDONYM_KEY.encode(), r.nik)) in findings
        and pid in city.truth.persons
        and city.truth.persons[pid].aid
    )
    subject = person_id(PSEUDONYM_KEY.encode(), resident.nik)
    assert asyncio.run(_rows_of(bus, subject))["unified.person"] == 1
    erased = run_satubus(bus, "erase", "--nik", resident.nik, "--reason", "TIKET-2026-0042", "--by", "tests")
    assert erased.returncode == 0, erased.stdout + erased.stderr
    assert resident.nik not in erased.stdout + erased.stderr
    yield resident, subject


def test_the_view_the_restricted_nik_and_the_findings_lose_the_person(
    bus: Settings, city: Simulation, erased: tuple[Resident, str]
) -> None:
    _, subject = erased
    left = asyncio.run(_rows_of(bus, subject))
    assert left == {"unified.person": 0, "restricted.person_nik": 0, "unified.finding": 0}
    others = asyncio.run(table(bus, "person"))
    assert len(others) == len(city.truth.persons) - 1


def test_the_erasure_is_audited(bus: Settings, erased: tuple[Resident, str]) -> None:
    _, subject = erased
    report = run_satubus(bus, "audit", "report", "--person", subject)
    assert report.returncode == 0, report.stderr
    out = report.stdout
    assert "erase" in out and "TIKET-2026-0042" in out and "tests" in out


def test_after_compaction_no_topic_holds_the_nik_the_name_or_the_person_id(
    bus: Settings, erased: tuple[Resident, str]
) -> None:
    resident, subject = erased
    topics = _compacted_topics(bus)
    short = bus.model_copy(update={"erasure_bound_hours": BOUND_HOURS})
    configure_topics(short, [(topic, True) for topic in topics])
    needles = {"nik": resident.nik.encode(), "name": resident.name.encode(), "person_id": subject.encode()}
    deadline = time.monotonic() + 240
    while True:
        time.sleep(3)  # past max.compaction.lag.ms, then an append rolls the segment
        _appended_everywhere(bus, topics)
        held = _holding(bus, topics, needles)
        if not held:
            return
        assert time.monotonic() < deadline, f"still held after compaction: {held}"
