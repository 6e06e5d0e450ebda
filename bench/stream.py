"""Normalizer benchmark: the faust stream processor on the simulator's Dukcapil + BPBD workload, side by side with
the same mapping applied in a plain loop (the ceiling of the pure normalization), in one run on the local stack.

Run: ``SATUBUS_ENV_FILE=deploy/local/dev.env .venv/bin/python -m bench.stream [--residents N]`` (stack up, no
other stream worker running). It empties the agency and unified topics it uses. Writes bench/results/stream.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from producers.simulate import simulate
from satubus.settings import Settings, get_settings
from schemas.regions import load_regions
from schemas.topics import agency_topic, create_topics, unified_contract
from streams.app import APP_ID
from streams.errors import Rejected
from streams.mapping import discover_mappings

RESULTS = Path(__file__).parent / "results" / "stream.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=20_000, help="size of the simulated city (default 20000)")
    args = parser.parse_args()
    settings = get_settings()
    mappings = {(m.agency, m.dataset): m for m in discover_mappings()}
    _empty_topics(
        settings,
        [agency_topic(a, d) for a, d in mappings]
        + [unified_contract("person").name, unified_contract("incident").name],
    )
    simulation = simulate(settings, residents=args.residents, seed=1, dirty=0.02, agencies={"dukcapil", "bpbd"})
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
        started = time.perf_counter()
        first = None
        while (done := _consumed(settings)) < len(events):
            if done > 0 and first is None:
                first = time.perf_counter()  # the worker has joined the group and recovered its tables
            time.sleep(0.2)
        finished = time.perf_counter()
    finally:
        worker.terminate()
        worker.wait(60)
    streaming = len(events) / (finished - (first or started))
    results = {
        "events": len(events),
        "mapping applied in a plain loop (events/s)": round(pure),
        "faust stream processor, after start-up (events/s)": round(streaming),
        "worker start-up incl. group join and table recovery (s)": round((first or started) - started, 1),
        "ratio stream / plain loop": round(streaming / pure, 3),
    }
    for name, value in results.items():
        print(f"{name:<58}{value:>10}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


def _empty_topics(settings: Settings, topics: Sequence[str]) -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    existing = admin.list_topics(timeout=15).topics
    doomed = [t for t in existing if t in topics or t.startswith(f"{APP_ID}-")]
    for future in admin.delete_topics(doomed, operation_timeout=30).values():
        future.result()
    for future in admin.delete_consumer_groups([APP_ID]).values():
        with contextlib.suppress(KafkaException):  # the group did not exist
            future.result()
    while set(doomed) & set(admin.list_topics(timeout=15).topics):
        time.sleep(0.2)
    while True:
        try:
            create_topics(settings)
            return
        except KafkaException:  # a just-deleted topic can be refused for a moment
            time.sleep(0.5)


def _consumed(settings: Settings) -> float:
    try:
        with urllib.request.urlopen(f"http://{settings.metrics_host}:{settings.stream_metrics_port}/metrics") as r:
            text = r.read().decode()
    except OSError:
        return 0
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("satubus_events_in_total")
    )


if __name__ == "__main__":
    main()
