"""Stream benchmark: the faust stream processor (normalizers and joiners) on the simulator's workload of every mapped
agency dataset, side by side with the same mappings applied in a plain loop (the ceiling of the pure
normalization), in one run on the local stack.

Run: ``SATUBUS_ENV_FILE=deploy/local/dev.env .venv/bin/python -m bench.stream [--residents N]`` (stack up, no
other stream worker running). It empties the topics it uses. Writes bench/results/stream.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import empty_topics, metric, report
from satubus.producers.simulate import simulate
from satubus.schemas.regions import load_regions
from satubus.schemas.topics import all_contracts
from satubus.settings import Settings, get_settings
from satubus.streams.errors import Rejected
from satubus.streams.mapping import discover_mappings

RESULTS = Path(__file__).parent / "results" / "stream.json"
STALL = 120  # seconds without progress after which the run is called failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=10_000, help="size of the simulated city (default 10000)")
    args = parser.parse_args()
    results = measure(get_settings(), residents=args.residents)
    report(results, RESULTS)


def measure(settings: Settings, *, residents: int) -> dict[str, Any]:
    """Publish a simulated city to emptied topics, then time the stream worker draining it. The agency topics are
    left as they are, for the Quix Streams peer to read the same events."""
    mappings = {(m.agency, m.dataset): m for m in discover_mappings()}
    empty_topics(settings, [c.name for c in all_contracts()])
    agencies = {agency for agency, _ in mappings}
    simulation = simulate(settings, residents=residents, seed=1, dirty=0.02, agencies=agencies, progress=io.StringIO())
    events = [e for e in simulation.published if (e.planned.agency, e.planned.dataset) in mappings]

    assert settings.pseudonym_key is not None
    key, regions, now = settings.pseudonym_key.get_secret_value().encode(), load_regions(), dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    for event in events:
        p = event.planned
        with contextlib.suppress(Rejected):  # dirty records are rejected here as in the stream
            mappings[(p.agency, p.dataset)].apply(event.envelope(), regions=regions, pseudonym_key=key, now=now)
    pure = len(events) / (time.perf_counter() - started)

    worker = subprocess.Popen(
        [str(Path(sys.executable).with_name("satubus")), "stream"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        started = progressed = time.perf_counter()
        first, seen = None, 0.0
        while (done := metric(settings, "satubus_events_in_total")) < len(events):
            if done > 0 and first is None:
                first = time.perf_counter()  # the worker has joined the group and recovered its tables
            if done > seen:
                seen, progressed = done, time.perf_counter()
            elif time.perf_counter() - progressed > STALL:
                sys.exit(f"the worker read {done:.0f} of {len(events)} events and then nothing for {STALL} s")
            time.sleep(0.5)  # each look at /metrics costs the worker: not more often
        normalized = time.perf_counter()
        parts, settled = metric(settings, "satubus_join_parts_in_total"), normalized
        while time.perf_counter() - settled < 3:  # the joiners are done once their count stops growing
            time.sleep(0.5)
            if (now_parts := metric(settings, "satubus_join_parts_in_total")) > parts:
                parts, settled = now_parts, time.perf_counter()
    finally:
        worker.terminate()
        worker.wait(60)
    begun = first or started
    normalizing = len(events) / (normalized - begun)
    return {
        "events": len(events),
        "parts joined (canonical.person, .parcel, .region)": round(parts),
        "mapping applied in a plain loop (events/s)": round(pure),
        "normalizers, after start-up (events/s)": round(normalizing),
        "joiners, alongside (parts/s)": round(parts / (settled - begun)),
        "all events normalized and joined (s)": round(settled - begun, 1),
        "worker start-up incl. group join and table recovery (s)": round(begun - started, 1),
        "ratio normalizers / plain loop": round(normalizing / pure, 3),
    }


if __name__ == "__main__":
    main()
