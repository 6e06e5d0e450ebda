"""kill -9 of the materializer at random points while a simulated city flows through the whole pipeline; afterwards
PostgreSQL holds exactly the simulator's expected view: nothing lost, nothing applied twice, no older version over
a newer one."""

from __future__ import annotations

import asyncio
import functools
import io
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg

from satubus.consumers.tables import TABLES
from satubus.database import dsn as owner_dsn
from satubus.kafka import read_to_end
from satubus.producers.simulate import simulate
from satubus.schemas.topics import unified_topic
from satubus.settings import Settings
from satubus.streams.mapping import discover_mappings
from tests.integration.conftest import Pipeline
from tests.integration.test_streams_against_truth import as_rows, expected_rows, floored, latest_records, settled, table

RESIDENTS = 9_500  # with every mapped agency dataset: over 20,000 events
KILLS = 6
SEED = 2029


def test_kill_9_of_the_materializer_loses_and_duplicates_nothing(bus: Settings, pipeline: Pipeline) -> None:
    rng = random.Random(SEED)
    agencies = {m.agency for m in discover_mappings()}
    rows_at_kills = []
    # Each kill once the view holds a random number of persons, one in each of KILLS slices of the first three
    # quarters (a kill may then land on a materializer still starting): the pipeline is fast enough to be done
    # between kills at fixed intervals, and then they prove nothing.
    targets = [int(RESIDENTS * 3 / 4 * (n + rng.random()) / KILLS) + 1 for n in range(KILLS)]
    with ThreadPoolExecutor(1) as publishing:
        running = publishing.submit(
            simulate, bus, residents=RESIDENTS, seed=SEED, dirty=0.02, agencies=agencies, progress=io.StringIO()
        )
        deadline = time.monotonic() + 300
        for target in targets:
            while (rows := asyncio.run(_persons(bus))) < target:
                pipeline.assert_running()
                assert time.monotonic() < deadline, f"{rows} persons materialized, not {target}"
                time.sleep(0.02)
            rows_at_kills.append(rows)
            pipeline.kill("materialize")
        simulation = running.result()
    events = len(simulation.published)
    mid_flow = [rows for rows in rows_at_kills if 0 < rows < len(simulation.truth.persons)]
    print(f"\n{KILLS} kills during {events} events; person rows at each kill: {rows_at_kills}")
    assert events >= 20_000
    assert len(mid_flow) >= 5, "the view was complete before the kills: they proved nothing"

    truth = simulation.truth
    expected = expected_rows(truth)
    for entity, rows in expected.items():
        read = functools.partial(region_view, bus, rows) if entity == "region" else functools.partial(view, bus, entity)
        got = settled(read, rows, timeout=180)
        missing, extra = rows.keys() - got.keys(), got.keys() - rows.keys()
        different = [k for k in rows.keys() & got.keys() if rows[k] != got[k]]
        print(f"{entity}: {len(rows)} expected, {len(missing)} missing, {len(extra)} extra, {len(different)} differ")
        for key in different[:3]:
            print(
                f"  {key}: "
                + "; ".join(f"{f} {v!r} != {got[key][f]!r}" for f, v in rows[key].items() if got[key][f] != v)
            )
        assert got == rows
    findings = as_rows("finding", latest_records(bus, unified_topic("finding")))
    assert settled(functools.partial(view, bus, "finding"), findings) == findings

    # Every message of every unified topic is accounted for by the offsets stored with the rows, under the topic's
    # name in the suite's namespace.
    stored = asyncio.run(_stored_offsets(bus))
    for entity, spec in TABLES.items():
        topic = bus.topic(spec.contract.name)
        ends: dict[int, int] = {}
        for message in read_to_end(bus, topic):
            ends[message.partition() or 0] = (message.offset() or 0) + 1
        assert {p: stored.get((topic, p)) for p in ends} == ends, entity


def view(settings: Settings, entity: str) -> dict[str, dict[str, Any]]:
    return asyncio.run(table(settings, entity))


def region_view(settings: Settings, truth: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The region table, with the versions the truth bounds from below (producers/simulator/truth.py)."""
    return floored(view(settings, "region"), truth)


async def _persons(settings: Settings) -> int:
    conn = await asyncpg.connect(owner_dsn(settings))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM unified.person"))
    finally:
        await conn.close()


async def _stored_offsets(settings: Settings) -> dict[tuple[str, int], int]:
    conn = await asyncpg.connect(owner_dsn(settings))
    try:
        rows = await conn.fetch("SELECT topic, partition, next_offset FROM bus.consumer_offsets")
    finally:
        await conn.close()
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
