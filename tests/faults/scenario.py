"""A fault scenario's frame: a simulated city published in the background while the fault happens, then the view
compared with the ground truth until it matches (or a deadline), and the scenario's row of the results table."""

from __future__ import annotations

import asyncio
import io
import math
import random
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from satubus.database import dsn as owner_dsn
from satubus.producers.simulate import Simulation, simulate
from satubus.settings import Settings
from satubus.streams.mapping import discover_mappings
from tests.faults.ground_truth import Compared, Read, compare
from tests.integration.conftest import Pipeline
from tests.integration.test_streams_against_truth import expected_rows

RESIDENTS = 9_500  # with every mapped agency dataset: over 20,000 events
# Events per second the city publishes at: about 140 s for the city, below what the pipeline sustains here, so that
# the view grows while the faults happen and events keep arriving through each one.
RATE = 150.0
SETTLE_SECONDS = 420.0  # how long the view may take to match the truth once the faults are over


class City:
    """A simulated city of every mapped agency, published in a thread as fast as the cluster takes it."""

    def __init__(
        self, bus: Settings, *, seed: int, residents: int = RESIDENTS, dirty: float = 0.02, rate: float = RATE
    ) -> None:
        """``rate``: events per second; 0 publishes as fast as the cluster takes them."""
        self.bus = bus
        self.residents = residents
        self.rng = random.Random(seed)
        self._result: list[Simulation] = []
        self._error: list[BaseException] = []
        agencies = {m.agency for m in discover_mappings()}

        def publish() -> None:
            try:
                self._result.append(
                    simulate(
                        bus,
                        residents=residents,
                        seed=seed,
                        dirty=dirty,
                        rate=rate,
                        agencies=agencies,
                        progress=io.StringIO(),
                    )
                )
            except BaseException as exc:  # re-raised by finish()
                self._error.append(exc)

        self._thread = threading.Thread(target=publish, name="city")
        self._thread.start()

    def fault_points(self, count: int) -> list[int]:
        """Person counts of the view at which to strike: one in each of ``count`` slices of the first three
        quarters, so that each fault lands mid-flow."""
        return [int(self.residents * 3 / 4 * (n + self.rng.random()) / count) + 1 for n in range(count)]

    def wait_for_persons(self, at_least: int, pipeline: Pipeline | None, timeout: float = 600) -> int:
        deadline = time.monotonic() + timeout
        while (rows := persons(self.bus)) < at_least:
            if pipeline is not None:
                pipeline.assert_running()
            self.raise_if_failed()
            assert time.monotonic() < deadline, f"{rows} persons in the view, not {at_least}, after {timeout:.0f}s"
            time.sleep(0.05)
        return rows

    def recovery(self, pipeline: Pipeline | None, timeout: float = 600) -> float:
        """Seconds from now (the fault's end) until the view has taken in another 1% of the city: the pipeline
        flows again (records already in flight at the fault are fewer). If the city is published and fewer of its
        persons are left to come, until the last of them; nan if none is left: there was no flow to recover."""
        started = time.monotonic()
        target = persons(self.bus) + self.residents // 100
        if not self._thread.is_alive():
            everyone = len(expected_rows(self.finish().truth)["person"])
            if persons(self.bus) >= everyone:
                return math.nan
            target = min(target, everyone)
        self.wait_for_persons(target, pipeline, timeout)
        return time.monotonic() - started

    def raise_if_failed(self) -> None:
        if self._error:
            raise self._error[0]

    def finish(self) -> Simulation:
        self._thread.join()
        if self._error:
            raise self._error[0]
        return self._result[0]


def persons(settings: Settings) -> int:
    async def count() -> int:
        connection = await asyncpg.connect(owner_dsn(settings))
        try:
            return int(await connection.fetchval("SELECT count(*) FROM unified.person"))
        finally:
            await connection.close()

    return asyncio.run(count())


@dataclass
class Measured:
    scenario: str
    events: int
    compared: Compared
    recovery_seconds: float  # the longest, over the scenario's faults, until the view took in events again (nan: none)
    matched_after: float  # seconds from the city's last event until the view matched the truth (nan: never)


@dataclass
class Results:
    """The suite's table, written to ``path`` after each scenario (a run stopped halfway keeps its rows)."""

    path: Path
    rows: list[Measured] = field(default_factory=list)

    def add(self, row: Measured) -> None:
        self.rows.append(row)
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(self.markdown() + "\n")

    def markdown(self) -> str:
        lines = [
            "| scenario | events | lost | duplicated | wrongly dead-lettered | recovery (s) | view = truth after (s) "
            "| letters repeated in bus.dlq |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in self.rows:
            c = row.compared
            matched = "never" if math.isnan(row.matched_after) else f"{row.matched_after:.0f}"
            recovery = "n/a" if math.isnan(row.recovery_seconds) else f"{row.recovery_seconds:.1f}"
            lines.append(
                f"| {row.scenario} | {row.events:,} | {c.lost} | {c.duplicated} | {c.wrongly_dead_lettered} | "
                f"{recovery} | {matched} | {c.repeated_letters} |"
            )
        return "\n".join(lines)


def settle_and_record(
    results: Results,
    scenario: str,
    city: City,
    pipeline: Pipeline,
    recoveries: list[float],
    poison: Collection[Read] = (),
    settle_seconds: float = SETTLE_SECONDS,
) -> Measured:
    """Once the city is published, compare the view with the truth until they match (or a deadline); record the
    scenario's row and print what differs. ``poison``: messages sent besides the city's, each to be dead-lettered."""
    simulation = city.finish()
    published = time.monotonic()
    deadline = published + settle_seconds
    while True:
        compared = compare(city.bus, simulation, poison)
        if compared.clean:
            matched = time.monotonic() - published
            break
        if time.monotonic() > deadline:
            matched = math.nan
            break
        pipeline.assert_running()
        time.sleep(2)
    measured = Measured(
        scenario,
        len(simulation.published) + len(poison),
        compared,
        max((r for r in recoveries if not math.isnan(r)), default=math.nan),
        matched,
    )
    results.add(measured)
    print(f"\n{scenario}: {measured.events} events, {compared}")
    for line in compared.details:
        print(f"  {line}")
    return measured
