"""End-to-end benchmark: simulated agencies -> stream processor -> materializer -> PostgreSQL, each its own process.

Two measurements, in one run on the local stack:
- **sustained rate**: a backlog of every mapped agency dataset is published first; the pipeline then drains it, and
  the rate is events / (last row committed - the stream worker ready). Every table is then checked against the
  simulator's ground truth, and the CPU time each process spent is divided by the events.
- **latency at a fixed load**: the agencies publish open-loop at a fixed rate while the pipeline runs; the latency
  of a row is the time from its latest event's ``occurred_at`` to the commit that wrote it (``committed_at -
  updated_at``), as p50/p99/p99.9 over every person, parcel and incident row.

Run: ``SATUBUS_ENV_FILE=deploy/local/dev.env .venv/bin/python -m bench.pipeline [--residents N] [--rate R ...]``
(stack up, no other pipeline running). It empties the bus's topics and uses its own database (``satubus_bench``).
Writes bench/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time
from pathlib import Path
from typing import Any

from bench.common import bench_settings, cpu_seconds, empty_topics, metric, pipeline, query, report
from satubus.consumers.migrate import recreate
from satubus.consumers.tables import TABLES
from satubus.database import dsn as owner_dsn
from satubus.producers.simulate import Simulation, simulate
from satubus.schemas.topics import all_contracts
from satubus.settings import Settings
from satubus.streams.mapping import discover_mappings

RESULTS = Path(__file__).parent / "results" / "pipeline.json"
MEASURED = ("person", "parcel", "incident")  # rows whose updated_at is the event time of their latest change
QUIET = 5  # seconds without a new commit after which the pipeline has drained
STALL = 180  # seconds without progress after which the run is called failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=10_000, help="size of the backlog's city (default 10000)")
    parser.add_argument("--rate", type=float, nargs="*", default=[], help="also measure latency at these events/s")
    parser.add_argument("--duration", type=float, default=60, help="seconds of publishing per latency run (60)")
    args = parser.parse_args()
    settings = bench_settings()
    results: dict[str, Any] = {"sustained": sustained(settings, residents=args.residents)}
    for rate in args.rate:
        results[f"latency at {rate:g} events/s"] = latency(settings, rate=rate, duration=args.duration)
    report(results, RESULTS)


def sustained(settings: Settings, *, residents: int) -> dict[str, Any]:
    _fresh(settings)
    cpu = time.process_time()
    simulation = _simulate(settings, residents=residents, seed=1)
    events = len(simulation.published)
    publisher_cpu = time.process_time() - cpu
    with pipeline(settings, "stream", "materialize") as processes:
        ready, used = time.time(), {name: cpu_seconds(p.pid) for name, p in processes.items()}
        last_commit = _drained(settings, events)
        used = {name: cpu_seconds(p.pid) - used[name] for name, p in processes.items()}
    missing = _missing_rows(settings, simulation)
    if missing:
        raise SystemExit(f"the pipeline drained but rows are missing from the view: {missing}")
    return {
        "events": events,
        "events/s, backlog drained to committed rows": round(events / (last_commit - ready)),
        "CPU per event, simulated agencies publishing (µs)": round(publisher_cpu / events * 1e6),
        **{f"CPU per event, {name} process (µs)": round(seconds / events * 1e6) for name, seconds in used.items()},
    }


WARM_UP = 10  # seconds of publishing left out of the steady-state percentiles


def latency(settings: Settings, *, rate: float, duration: float) -> dict[str, Any]:
    _fresh(settings)
    with pipeline(settings, "stream", "materialize") as processes:
        used = {name: cpu_seconds(p.pid) for name, p in processes.items()}
        simulation = _simulate(
            settings, residents=int(rate * duration / 2) + 100, seed=3, rate=rate, duration=duration
        )  # about 2.2 events per resident
        events = len(simulation.published)
        _drained(settings, events)
        used = {name: cpu_seconds(p.pid) - used[name] for name, p in processes.items()}
    rows, percentiles = _latencies(settings)
    return {
        "events": events,
        "achieved events/s": round(events / duration),
        "rows measured": rows,
        **{f"latency {name} (ms)": round(value * 1000) for name, value in percentiles.items()},
        **{f"CPU per event, {name} process (µs)": round(seconds / events * 1e6) for name, seconds in used.items()},
    }


def _fresh(settings: Settings) -> None:
    empty_topics(settings, [c.name for c in all_contracts()])
    asyncio.run(recreate(owner_dsn(settings)))


def _simulate(settings: Settings, **options: Any) -> Simulation:
    agencies = {m.agency for m in discover_mappings()}
    return simulate(settings, agencies=agencies, progress=io.StringIO(), **options)


def _drained(settings: Settings, events: int) -> float:
    """Wait until the stream worker has read every event and no row has been committed for QUIET seconds; return
    the time of the last commit."""
    last: float | None = None
    changed = progressed = time.monotonic()
    read = 0.0
    while True:
        time.sleep(0.5)
        now = time.monotonic()
        if (done := metric(settings, "satubus_events_in_total")) > read:
            read, progressed = done, now
        if (latest := _last_commit(settings)) != last:
            last, changed = latest, now
            progressed = now
        if read >= events and last is not None and now - changed >= QUIET:
            return last
        if now - progressed > STALL:
            raise SystemExit(f"the pipeline read {read:.0f} of {events} events and then nothing for {STALL} s")


def _last_commit(settings: Settings) -> float | None:
    union = " UNION ALL ".join(f"SELECT max(committed_at) AS at FROM {spec.table}" for spec in TABLES.values())
    at = query(settings, f"SELECT extract(epoch FROM max(at)) AS at FROM ({union}) commits")["at"]
    return None if at is None else float(at)


def _missing_rows(settings: Settings, simulation: Simulation) -> dict[str, int]:
    truth = simulation.truth
    expected = {"person": len(truth.persons), "parcel": len(truth.parcels), "incident": len(truth.incidents)}
    found = query(settings, "SELECT " + ", ".join(f"(SELECT count(*) FROM {TABLES[e].table}) AS {e}" for e in expected))
    return {e: expected[e] - found[e] for e in expected if found[e] != expected[e]}


def _latencies(settings: Settings) -> tuple[int, dict[str, float]]:
    """Percentiles of occurred-to-committed over every row, and over the rows after the first WARM_UP seconds of
    publishing (the agencies' producers connect then: TLS, SCRAM and a producer id each; a long-running agency
    system pays that once, not per event)."""
    union = " UNION ALL ".join(
        f"SELECT updated_at, extract(epoch FROM committed_at - updated_at) AS seconds FROM {TABLES[e].table}"
        for e in MEASURED
    )
    row = query(
        settings,
        f"WITH latencies AS ({union}), started AS (SELECT min(updated_at) AS at FROM latencies) "
        "SELECT count(*) AS rows, "
        "percentile_cont(ARRAY[0.5, 0.99, 0.999]) WITHIN GROUP (ORDER BY seconds) AS p, "
        "percentile_cont(ARRAY[0.5, 0.99, 0.999]) WITHIN GROUP (ORDER BY seconds) "
        f"FILTER (WHERE updated_at >= (SELECT at FROM started) + interval '{WARM_UP} seconds') AS warm "
        "FROM latencies",
    )
    p50, p99, p999 = row["p"]
    warm50, warm99, warm999 = row["warm"]
    return row["rows"], {
        "p50": p50,
        "p99": p99,
        "p99.9": p999,
        f"p50 after the first {WARM_UP} s": warm50,
        f"p99 after the first {WARM_UP} s": warm99,
        f"p99.9 after the first {WARM_UP} s": warm999,
    }


if __name__ == "__main__":
    main()
