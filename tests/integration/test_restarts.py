"""Restarting the stream worker while agencies publish holds no event back: each run applies what it fetched (see
streams/ownership.py and streams/commit_guard.py)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from satubus.producers.simulate import simulate
from satubus.schemas.topics import unified_topic
from satubus.settings import Settings
from tests.integration.conftest import Pipeline
from tests.integration.test_streams_against_truth import latest_records

RESTARTS = 10
# Each round publishes about 400 events at RATE a second, about 10 s, and restarts the worker BEFORE_RESTART s in:
# events arrive while it stops, starts, joins its group and recovers its tables (about 4 s here), and after.
RATE = 40
BEFORE_RESTART = 3.0
# How long a run may take to apply the events published while it started (the generous bound of the issue: no
# timing is asserted below it).
RUN_BOUND = 60.0


def people_in(settings: Settings, expected: set[str], seconds: float) -> tuple[set[str], float]:
    """The expected people in the unified topic once all are there or ``seconds`` have passed, and when the last
    one came (seconds from now, as seen by polling every second)."""
    started = time.monotonic()
    while True:
        got = set(latest_records(settings, unified_topic("person")))
        waited = time.monotonic() - started
        if got >= expected or waited > seconds:
            return got & expected, waited
        time.sleep(1)


def test_events_published_while_the_worker_restarts_are_applied_in_the_same_run(
    bus: Settings, pipeline: Pipeline
) -> None:
    """Each round restarts the worker while events arrive, so they arrive while it stops (a batch cut short is read
    again by the next run), joins its group and recovers its tables: faust can drop those it fetched meanwhile
    (faust-streaming #596). The worker must read them again and apply them in the same run, before the next
    restart: none is held back, and there is no restart at the end to pick up what a run left behind."""
    expected: set[str] = set()
    held_back: list[int] = []
    with ThreadPoolExecutor(1) as publisher:
        for round_ in range(RESTARTS + 1):
            started = time.monotonic()
            publishing = publisher.submit(
                simulate, bus, residents=300, seed=100 + round_, dirty=0.3, agencies={"dukcapil"}, rate=RATE
            )
            if round_:  # round 0: the pipeline's first start, also while events arrive
                time.sleep(BEFORE_RESTART)
                pipeline.restart("stream")
            restarted = time.monotonic()
            simulation = publishing.result()
            published = time.monotonic()
            expected |= set(simulation.truth.persons)
            missing_once_published = len(expected - set(latest_records(bus, unified_topic("person"))))
            got, waited = people_in(bus, expected, RUN_BOUND)
            held_back.append(len(expected - got))
            pipeline.assert_running()
            restart = f"restart at {restarted - started:4.1f} s" if round_ else "no restart"
            print(
                f"\nround {round_:2d}: {restart}, {len(simulation.published)} events published by "
                f"{published - started:4.1f} s, {missing_once_published:3d} people missing then; "
                f"{'all in' if not held_back[-1] else 'gave up'} {published + waited - restarted:4.1f} s after the "
                f"{'restart' if round_ else 'round began'} ({waited:4.1f} s after the last event); "
                f"held back at the end of the round: {held_back[-1]}",
                end="",
            )
    print(f"\n{RESTARTS} restarts, {len(expected)} people: held back per round {held_back}")
    assert held_back == [0] * (RESTARTS + 1)
