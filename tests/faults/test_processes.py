"""Faults of the bus's own processes on the three-broker cluster: kill -9 of the stream worker (F1) and of the
materializer (F2), each five times mid-flow; a materializer stalled past its session while a second one takes over
(F4); a second worker killed and a third added (F7); the worker's local state wiped while events flow (F8)."""

from __future__ import annotations

import os
import shutil
import signal
import time

import pytest

from satubus.settings import Settings
from satubus.streams.app import local_state
from tests.faults.scenario import City, Results, settle_and_record
from tests.integration.conftest import Pipeline
from tests.integration.test_scale_out import Worker, free_port

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1500)]

KILLS = 5
STALL_SECONDS = 60  # longer than the materializers' session timeout (librdkafka's default, 45 s)
FENCED_LINE = b"was advanced by another instance; re-reading the stored offsets"


@pytest.mark.parametrize(
    ("scenario", "process", "seed"),
    [
        ("F1 kill -9 of the stream worker, 5 times", "stream", 3101),
        ("F2 kill -9 of the materializer, 5 times", "materialize", 3102),
    ],
)
def test_kill_9_mid_flow(
    bus: Settings, pipeline: Pipeline, results: Results, scenario: str, process: str, seed: int
) -> None:
    city = City(bus, seed=seed)
    recoveries = []
    for point in city.fault_points(KILLS):
        city.wait_for_persons(point, pipeline)
        pipeline.kill(process)
        recoveries.append(city.recovery(pipeline))
    measured = settle_and_record(results, scenario, city, pipeline, recoveries)
    assert measured.events >= 20_000
    assert measured.compared.clean, measured.compared.details


def test_f8_local_state_wiped_while_events_flow(bus: Settings, pipeline: Pipeline, results: Results) -> None:
    """The worker is killed, its RocksDB files deleted, and started again: its tables come back from their
    changelog topics, or events seen before would be applied again (or routed wrongly)."""
    city = City(bus, seed=3108)
    recoveries = []
    for point in city.fault_points(2):
        city.wait_for_persons(point, pipeline)
        pipeline.processes["stream"].kill()
        pipeline.processes["stream"].wait(timeout=60)
        shutil.rmtree(local_state(bus), ignore_errors=True)
        pipeline.start("stream")
        recoveries.append(city.recovery(pipeline))
    measured = settle_and_record(results, "F8 local state of the worker wiped, twice", city, pipeline, recoveries)
    assert measured.compared.clean, measured.compared.details


def test_f7_a_worker_killed_and_another_added_mid_run(bus: Settings, pipeline: Pipeline, results: Results) -> None:
    """Two workers share the partitions; one is killed (its partitions and tables move to the other), later a new
    one joins (they move again)."""
    logs = bus.state_dir.resolve() / "logs"
    city = City(bus, seed=3107)
    second = Worker(bus, logs, "f7-w2", free_port())
    third: Worker | None = None
    recoveries = []
    try:
        first_point, second_point = city.fault_points(2)
        city.wait_for_persons(first_point, pipeline)
        second.process.kill()
        second.process.wait(timeout=60)
        recoveries.append(city.recovery(pipeline))
        city.wait_for_persons(second_point, pipeline)
        third = Worker(bus, logs, "f7-w3", free_port())
        recoveries.append(city.recovery(pipeline))
        measured = settle_and_record(results, "F7 two workers: one killed, one added", city, pipeline, recoveries)
    finally:
        if third is not None:
            third.stop()
    assert measured.compared.clean, measured.compared.details


def test_f4_a_stalled_materializer_cannot_commit_after_another_took_over(
    bus: Settings, pipeline: Pipeline, results: Results
) -> None:
    """SIGSTOP of the materializer for longer than its session: a second instance takes its partitions over. On
    SIGCONT it still holds batches fetched before the stall; their transactions' compare-and-set on the stored
    offsets fails, so they roll back and it re-reads. Nothing is written twice."""
    logs = bus.state_dir.resolve() / "logs"
    city = City(bus, seed=3104)
    second = Worker(bus, logs, "f4-m2", free_port(), command="materialize")
    try:
        city.wait_for_persons(city.fault_points(1)[0], pipeline)
        zombie = pipeline.processes["materialize"]
        zombie_log = pipeline.log("materialize")
        logged_before = zombie_log.stat().st_size
        os.kill(zombie.pid, signal.SIGSTOP)
        stalled = time.monotonic()
        recovery = city.recovery(pipeline)  # the second instance took the partitions over
        time.sleep(max(0.0, STALL_SECONDS - (time.monotonic() - stalled)))
        os.kill(zombie.pid, signal.SIGCONT)
        measured = settle_and_record(
            results, "F4 materializer stalled 60 s (SIGSTOP), a second takes over", city, pipeline, [recovery]
        )
        fenced = zombie_log.read_bytes()[logged_before:].count(FENCED_LINE)
        print(f"  the stalled materializer's commits refused after SIGCONT: {fenced}")
    finally:
        second.stop()
    assert measured.compared.clean, measured.compared.details
