"""Restarting the stream worker while agencies publish loses no event (see streams/commit_guard.py)."""

from __future__ import annotations

import time

from satubus.producers.simulate import simulate
from satubus.schemas.topics import unified_topic
from satubus.settings import Settings
from tests.integration.conftest import Pipeline
from tests.integration.test_streams_against_truth import latest_records

ROUNDS = 8


def people_once_there(settings: Settings, expected: set[str], seconds: float) -> set[str]:
    deadline = time.monotonic() + seconds
    while True:
        got = set(latest_records(settings, unified_topic("person")))
        if got >= expected or time.monotonic() > deadline:
            return got
        time.sleep(2)


def test_events_published_while_the_worker_restarts_all_reach_the_unified_topic(
    bus: Settings, pipeline: Pipeline
) -> None:
    """Each round restarts the worker and publishes at once, so events arrive while it joins its group and
    recovers its tables. faust can hold such an event back until a later start (faust-streaming #596); it must
    never lose one."""
    expected: set[str] = set()
    held_back = 0
    for round_ in range(ROUNDS):
        if round_:
            pipeline.restart("stream")
        simulation = simulate(bus, residents=300, seed=100 + round_, dirty=0.3, agencies={"dukcapil"}, rate=150)
        expected |= set(simulation.truth.persons)
        held_back += len(expected - people_once_there(bus, expected, 30))
    # A held-back event is read again at the next start, itself a start-up: give it up to three.
    final_restarts, missing = 0, expected
    while missing and final_restarts < 3:
        pipeline.restart("stream", ready_line=b"Worker ready")
        final_restarts += 1
        missing = expected - people_once_there(bus, expected, 60)
    print(
        f"\n{ROUNDS} restarts, {len(expected)} people: {held_back} held back at the end of a round, "
        f"{len(missing)} missing after {final_restarts} more restart(s)"
    )
    assert not missing
