"""Faults of capacity: a burst far above the rate the pipeline sustains (F11), and a broker's log directory that
fills up (F12)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from satubus.deploy.local.stack import Kafka, _read_pid
from satubus.settings import Settings
from tests.faults.scenario import RESIDENTS, City, Results, settle_and_record
from tests.faults.test_infrastructure import wait_until_in_sync
from tests.integration.conftest import Pipeline

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1500)]

BURST_RESIDENTS = 4 * RESIDENTS
BURST_SETTLE_SECONDS = 1200.0
MEMORY_BOUND = 1536 << 20  # bytes of resident memory per process: a backlog must not grow a process without end
HEADROOM = 24 << 20  # bytes free on the full broker's log directory when the city starts
DISK_FULL = "No space left on device"


class PeakMemory:
    """Samples the resident memory of processes (``/proc/<pid>/status``) twice a second in a thread."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak = dict.fromkeys(pids, 0)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="memory", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(0.5):
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], resident_bytes(pid))

    def stop(self) -> dict[str, int]:
        self._done.set()
        self._thread.join()
        return self.peak


def resident_bytes(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    line = next((line for line in status.splitlines() if line.startswith("VmRSS:")), "VmRSS: 0 kB")
    return int(line.split()[1]) * 1024


def test_f11_a_burst_far_above_the_sustained_rate(bus: Settings, pipeline: Pipeline, results: Results) -> None:
    """A city four times the others' size is published as fast as the cluster takes it while the pipeline's
    processes are stopped (SIGSTOP): when they go on, the whole city is waiting at once. They fall behind by all of
    it, hold their memory bounded (their buffers are sized in events, not in backlog) and drain the lag."""
    processes = list(pipeline.processes.values())
    memory = PeakMemory({name: process.pid for name, process in pipeline.processes.items()})
    for process in processes:
        process.send_signal(signal.SIGSTOP)
    started = time.monotonic()
    try:
        city = City(bus, seed=3111, residents=BURST_RESIDENTS, rate=0)
        events = len(city.finish().published)
    finally:
        for process in processes:
            process.send_signal(signal.SIGCONT)
    published_in = time.monotonic() - started
    measured = settle_and_record(
        results, "F11 a city 4x the size arriving at once", city, pipeline, [], settle_seconds=BURST_SETTLE_SECONDS
    )
    measured.recovery_seconds = measured.matched_after  # the lag drained: the view equals the truth
    results.save()
    peak = memory.stop()
    rate = events / measured.matched_after
    print(
        f"  burst: {events} events published in {published_in:.1f} s ({events / published_in:,.0f}/s) while the "
        f"pipeline was stopped; it took them in within {measured.matched_after:.0f} s after ({rate:,.0f}/s): a "
        f"backlog of {measured.matched_after:.0f} s of the rate it sustains here"
    )
    print("  peak resident memory: " + ", ".join(f"{name} {size >> 20} MiB" for name, size in peak.items()))
    assert measured.compared.clean, measured.compared.details
    assert all(size < MEMORY_BOUND for size in peak.values()), peak


@pytest.fixture
def small_log_dir(cluster: Kafka, bus: Settings) -> Iterator[Path]:
    """The last broker's log directory on a tmpfs of its files' size and ``HEADROOM`` more (its sparse index files
    take less than their size: the city fills the rest); put back on disk afterwards, and the broker back in sync."""
    if os.geteuid() != 0:
        pytest.skip("a size-limited log directory is a tmpfs mount here, and mounting needs root")
    node = cluster.nodes[-1]
    data = node.dir / "data"
    node.stop()
    used = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
    saved = data.with_name("data.on-disk")
    shutil.rmtree(saved, ignore_errors=True)
    data.rename(saved)
    data.mkdir()
    size = (used + HEADROOM) // (1 << 20) + 1
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}m", "tmpfs", str(data)], check=True)
    try:
        shutil.copytree(saved, data, dirs_exist_ok=True)
        node.start()
        wait_until_in_sync(bus)
        yield data
    finally:
        node.stop()
        shutil.rmtree(saved)
        shutil.copytree(data, saved)
        subprocess.run(["umount", str(data)], check=True)
        data.rmdir()
        saved.rename(data)
        node.start()
        wait_until_in_sync(bus)


def test_f12_a_broker_log_directory_fills_up(
    bus: Settings, cluster: Kafka, small_log_dir: Path, pipeline: Pipeline, results: Results
) -> None:
    """One broker's log directory fills up mid-run: that broker stops, saying why, and the two others (replication
    3, min.insync.replicas 2) carry every topic on; nothing is lost or applied twice."""
    node = cluster.nodes[-1]
    logged_before = node.log.stat().st_size
    city = City(bus, seed=3112, rate=0)  # as fast as it goes: the disk fills while the city is published
    deadline = time.monotonic() + 600
    while _read_pid(node.pidfile) is not None:
        assert time.monotonic() < deadline, f"broker {node.number} did not fill its {small_log_dir} in 600 s"
        pipeline.assert_running()
        time.sleep(0.5)
    said = node.log.read_text(errors="replace")[logged_before:]
    assert DISK_FULL in said, f"broker {node.number} stopped without saying its disk is full; see {node.log}"
    print(f"\nbroker {node.number} stopped: its log directory is full ({DISK_FULL!r} in {node.log})")
    recovery = city.recovery(pipeline)
    measured = settle_and_record(results, "F12 a broker's log directory full", city, pipeline, [recovery])
    assert measured.compared.clean, measured.compared.details
