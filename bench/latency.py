"""End-to-end latency benchmark: the simulated agencies publish at a fixed rate (open loop) through the whole pipeline
(stream processor and materializer as their own processes); the latency of each row is the time from its latest
event's ``occurred_at`` to the commit that wrote it (``committed_at - updated_at`` in PostgreSQL).

Run: ``SATUBUS_ENV_FILE=deploy/local/dev.env .venv/bin/python -m bench.latency [--rate R] [--duration S]``
(stack up, no other pipeline running). It empties the bus's topics and uses its own database (``satubus_bench``).
Writes bench/results/latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from bench.materialize import DATABASE
from bench.stream import _empty_topics
from consumers.migrate import recreate
from consumers.tables import TABLES
from producers.simulate import simulate
from satubus.settings import Settings, get_settings
from schemas.topics import all_contracts
from streams.mapping import discover_mappings

RESULTS = Path(__file__).parent / "results" / "latency.json"
MEASURED = ("person", "parcel", "incident")  # rows whose updated_at is the event time of their latest change


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200, help="events per second, all agencies (default 200)")
    parser.add_argument("--duration", type=float, default=60, help="seconds of publishing (default 60)")
    args = parser.parse_args()
    base = get_settings()
    settings = Settings(**{**base.model_dump(), "database_url": base.database_url.rsplit("/", 1)[0] + f"/{DATABASE}"})
    _empty_topics(settings, [c.name for c in all_contracts()])
    asyncio.run(recreate(settings.database_url))
    logs = settings.state_dir.resolve() / "logs"
    env = {"SATUBUS_DATABASE_URL": settings.database_url}
    satubus = str(Path(sys.executable).with_name("satubus"))
    stream_log = logs / "bench-stream.log"
    offset = stream_log.stat().st_size if stream_log.exists() else 0
    workers = [
        subprocess.Popen(
            [satubus, name],
            stdout=(logs / f"bench-{name}.log").open("ab"),
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
        for name in ("stream", "materialize")
    ]
    try:
        deadline = time.monotonic() + 180
        while b"Worker ready" not in stream_log.read_bytes()[offset:]:  # joined its group, recovered its tables
            if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                raise SystemExit(f"the stream worker did not get ready; see {stream_log}")
            time.sleep(0.2)
        agencies = {m.agency for m in discover_mappings()}
        simulation = simulate(
            settings,
            residents=int(args.rate * args.duration / 2) + 100,  # about 2.2 events per resident
            seed=3,
            rate=args.rate,
            duration=args.duration,
            agencies=agencies,
            progress=io.StringIO(),
        )
        published = len(simulation.published)
        time.sleep(20)  # the last events drain
        rows, percentiles = asyncio.run(_latencies(settings))
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(60)
    results = {
        "target rate (events/s)": args.rate,
        "published": published,
        "achieved rate (events/s)": round(published / args.duration),
        "rows measured": rows,
        **{f"latency {name} (ms)": round(value * 1000) for name, value in percentiles.items()},
    }
    for name, value in results.items():
        print(f"{name:<40}{value:>10}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


async def _latencies(settings: Settings) -> tuple[int, dict[str, float]]:
    union = " UNION ALL ".join(
        f"SELECT extract(epoch FROM committed_at - updated_at) AS seconds FROM {TABLES[e].table}" for e in MEASURED
    )
    conn = await asyncpg.connect(settings.database_url)
    try:
        row = await conn.fetchrow(
            f"SELECT count(*) AS rows, percentile_cont(ARRAY[0.5, 0.99, 0.999]) WITHIN GROUP (ORDER BY seconds) AS p "
            f"FROM ({union}) latencies"
        )
    finally:
        await conn.close()
    p50, p99, p999 = row["p"]
    return row["rows"], {"p50": p50, "p99": p99, "p99.9": p999}


if __name__ == "__main__":
    main()
