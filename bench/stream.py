"""Stream benchmark: the faust stream processor (normalizers and joiners) on the simulator's workload of every mapped
agency dataset, side by side with the same mappings applied in a plain loop (the ceiling of the pure
normalization), in one run on the local stack.

One worker drains the backlog: its rate, its CPU time per event (from /proc, from the first batch counted to the
last part joined) and its peak RSS (VmHWM); then, with nothing flowing, its CPU over ``--idle`` seconds as a share of
one core. Then the same backlog again with two workers (each its own instance id, RocksDB files and metrics port),
started together: whichever joins the group first takes every partition and starts reading, and the other's arrival
rebalances the group during the drain. (A second worker started only once the first has counted events would join
after a small city's drain is over: a worker takes 3 to 6 s to start here.) After each drain, the stream
application's committed offsets are compared with the ends of the topics it reads: records left uncommitted 30 s
later were never read again by their partition's new owner (or not committed).

Run: ``SATUBUS_ENV_FILE=deploy/local/dev.env .venv/bin/python -m bench.stream [--residents N]`` (stack up, no
other stream worker running). It empties the topics it uses. Writes bench/results/stream.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import StreamWorker, empty_topics, group_lag, progress, report
from satubus import pseudonym_key
from satubus.producers.simulate import simulate
from satubus.schemas.regions import load_regions
from satubus.schemas.topics import JOINED_ENTITIES, agency_topic, all_contracts, canonical_topic
from satubus.settings import Settings, get_settings
from satubus.streams.app import APP_ID
from satubus.streams.errors import Rejected
from satubus.streams.mapping import discover_mappings

RESULTS = Path(__file__).parent / "results" / "stream.json"
STALL = 120  # seconds without progress after which the run is called failed
IDLE = 20.0  # seconds of the idle measurement
QUIET = 3.0  # seconds without a new part after which the joiners are done
EVENTS_IN, PARTS_IN = "satubus_events_in_total", "satubus_join_parts_in_total"
TWO_WORKERS_NOTE = (
    "On this 2-core machine, shared with the broker, the registry and PostgreSQL, a second worker shows that the "
    "group shares the partitions and what a rebalance and the standby replicas cost, not a speed-up: both workers "
    "compete for the same cores. Events read twice are those whose offsets were not committed yet when the "
    "rebalance moved their partition (faust commits every few seconds); the per-key guards drop them."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=10_000, help="size of the simulated city (default 10000)")
    parser.add_argument("--idle", type=float, default=IDLE, help=f"seconds of the idle measurement (default {IDLE:g})")
    parser.add_argument(
        "--second-port", type=int, help="metrics port of the second worker (default: the stream metrics port + 10)"
    )
    args = parser.parse_args()
    results = measure(get_settings(), residents=args.residents, idle=args.idle, second_port=args.second_port)
    report(results, RESULTS)


def measure(
    settings: Settings, *, residents: int, idle: float = IDLE, second_port: int | None = None
) -> dict[str, Any]:
    """Publish a simulated city to emptied topics, then time one stream worker draining it, measure it idle, and
    drain the same events again with two workers. The agency topics are left as they are, for the Quix Streams peer
    to read the same events."""
    mappings = {(m.agency, m.dataset): m for m in discover_mappings()}
    empty_topics(settings, [c.name for c in all_contracts()])
    agencies = {agency for agency, _ in mappings}
    simulation = simulate(settings, residents=residents, seed=1, dirty=0.02, agencies=agencies, progress=io.StringIO())
    events = [e for e in simulation.published if (e.planned.agency, e.planned.dataset) in mappings]

    key, regions, now = pseudonym_key.load(settings).secret, load_regions(), dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    for event in events:
        p = event.planned
        with contextlib.suppress(Rejected):  # dirty records are rejected here as in the stream
            mappings[(p.agency, p.dataset)].apply(event.envelope(), regions=regions, pseudonym_key=key, now=now)
    pure = len(events) / (time.perf_counter() - started)

    read = [agency_topic(agency, dataset) for agency, dataset in mappings] + [
        canonical_topic(e) for e in JOINED_ENTITIES
    ]  # what the stream application reads
    progress(f"one worker draining {len(events):,} events...")
    workers = [StreamWorker(settings)]
    try:
        one = drain(workers, len(events))
        one_lag = uncommitted(settings, read)
        progress(f"drained; {idle:g} s idle...")
        before = workers[0].cpu()
        time.sleep(idle)  # no look at /metrics meanwhile: it costs the worker
        idle_share = (workers[0].cpu() - before) / idle
        rss = workers[0].peak_rss()
    finally:
        for worker in workers:
            worker.stop()

    # The same events again: the agency topics stay, everything downstream (and the group's offsets) goes.
    empty_topics(settings, [c.name for c in all_contracts() if not c.name.startswith("agency.")])
    progress(f"two workers draining the same {len(events):,} events...")
    port = second_port or settings.stream_metrics_port + 10
    pair = [StreamWorker(settings)]
    try:
        pair.append(StreamWorker(settings, instance_id=f"{settings.instance_id}-2", port=port))
        two = drain(pair, len(events))
        two_lag = uncommitted(settings, read)
        pair_rss = [w.peak_rss() for w in pair]
    finally:
        for worker in pair:
            worker.stop()
    # faust logs the group's generation at each assignment a worker receives: the first is generation 1
    generations = [int(g) for w in pair for g in re.findall(r"generation id (\d+)", w.logged())]

    normalizing = one.rate(len(events))
    return {
        "events": len(events),
        "parts joined (canonical.person, .parcel, .region)": round(one.parts),
        "mapping applied in a plain loop (events/s)": round(pure),
        "normalizers, after start-up (events/s)": round(normalizing),
        "joiners, alongside (parts/s)": round(one.parts / (one.settled - one.begun)),
        "all events normalized and joined (s)": round(one.settled - one.begun, 1),
        "worker start-up incl. group join and table recovery (s)": round(one.begun - one.started, 1),
        "ratio normalizers / plain loop": round(normalizing / pure, 3),
        "CPU per event at drain, normalizers and joiners (µs)": round(one.cpu_per_event(len(events)) * 1e6),
        "worker peak RSS (MB)": round(rss / 1e6),
        f"worker idle after the drain, CPU over {idle:g} s (% of one core)": round(idle_share * 100, 2),
        "records left uncommitted after the drain (0: all read and committed)": one_lag,
        "two workers: events/s": round(two.rate(len(events))),
        "two workers / one worker (events/s)": round(two.rate(len(events)) / normalizing, 3),
        "two workers: all events normalized and joined (s)": round(two.settled - two.begun, 1),
        "two workers: CPU per event, both (µs)": round(two.cpu_per_event(len(events)) * 1e6),
        "two workers: events read by each": {f"worker {n}": round(r) for n, r in enumerate(two.read_by, 1)},
        "two workers: events read twice (redelivered by the rebalance)": round(sum(two.read_by) - len(events)),
        "two workers: rebalances (group generations after the first)": max(generations, default=1) - 1,
        "two workers: each ready, s after the first batch counted (negative: before)": {
            f"worker {n}": r for n, r in enumerate(two.ready, 1)
        },
        "two workers: records left uncommitted after the drain": two_lag,
        "two workers: peak RSS of each (MB)": {f"worker {n}": round(b / 1e6) for n, b in enumerate(pair_rss, 1)},
        "note": TWO_WORKERS_NOTE,
    }


@dataclass
class Drain:
    """What the stream workers did with a backlog (times from ``time.perf_counter``)."""

    started: float  # the first worker was started
    begun: float  # its first batch was counted: it had joined its group and recovered its tables
    normalized: float  # every event was counted
    settled: float  # the joiners' count last grew
    counted_at_first: float  # events counted at ``begun`` (their CPU time is not in ``cpu``)
    parts: float  # parts joined
    cpu: float  # CPU seconds of every worker from ``begun`` to ``settled``
    read_by: list[float]  # events each worker counted (more than published in all when some were read twice)
    ready: list[float | None]  # when each worker logged "Worker ready", in s after ``begun`` (None: it did not)

    def rate(self, events: int) -> float:
        return events / (self.normalized - self.begun)

    def cpu_per_event(self, events: int) -> float:
        return self.cpu / max(events - self.counted_at_first, 1)


def drain(workers: list[StreamWorker], events: int) -> Drain:
    """Wait until the workers have counted every event and neither they nor their joiners have counted anything new
    for QUIET s: after a rebalance, events whose offsets were not committed yet are read again, so that the count
    passes the number published before the drain is over."""
    started = workers[0].started
    ready: dict[int, float] = {}  # worker -> when it logged "Worker ready"

    def total(name: str) -> float:
        return sum(w.metric(name) for w in workers)

    def cpu() -> dict[int, float]:
        return {w.pid: w.cpu() for w in workers}

    begun: float | None = None
    counted_at_first = read = parts = 0.0
    normalized = settled = started  # when the count of events, of parts, last grew
    cpu_from, cpu_to = {w.pid: 0.0 for w in workers}, cpu()
    while True:
        now = time.perf_counter()
        done, joined = total(EVENTS_IN), total(PARTS_IN)
        for n, worker in enumerate(workers):
            if n not in ready and "Worker ready" in worker.logged():
                ready[n] = now
        if done > 0 and begun is None:
            begun, counted_at_first, cpu_from = now, done, cpu()
        if done > read or joined > parts:
            normalized = now if done > read else normalized
            settled = now if joined > parts else settled
            read, parts, cpu_to = done, joined, cpu()
        last = max(normalized, settled)
        if done >= events and now - last >= QUIET:
            break
        if now - last > STALL:
            sys.exit(f"the workers read {done:.0f} of {events} events and then nothing for {STALL} s")
        # Each look at /metrics costs the workers: every 0.1 s until the first batch (to start the clock close to
        # it), then every 0.5 s.
        time.sleep(0.1 if begun is None else 0.5)
    if begun is None:  # all of it in the first look: count from the start
        begun = started
    return Drain(
        started=started,
        begun=begun,
        normalized=normalized,
        settled=max(settled, normalized),
        counted_at_first=counted_at_first,
        parts=parts,
        cpu=sum(cpu_to[pid] - cpu_from.get(pid, 0.0) for pid in cpu_to),
        read_by=[w.metric(EVENTS_IN) for w in workers],
        ready=[round(ready[n] - begun, 1) if n in ready else None for n in range(len(workers))],
    )


def uncommitted(settings: Settings, topics: Sequence[str], *, patience: float = 30) -> int:
    """The stream application's lag on ``topics`` once it is zero, or after ``patience`` seconds (faust commits
    every few seconds)."""
    deadline = time.monotonic() + patience
    while (lag := group_lag(settings, settings.topic(APP_ID), [settings.topic(t) for t in topics])) > 0:
        if time.monotonic() > deadline:
            break
        time.sleep(1)
    return lag


if __name__ == "__main__":
    main()
