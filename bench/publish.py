"""Publish-path benchmark: the agency SDK (single and batch) and the outbox relay, measured side by side with a
bare confluent-kafka producer sending the same bytes, in one run on the local stack.

Run: ``SATUBUS_ENV_FILE=deploy/local/dev.env .venv/bin/python -m bench.publish [--events N]`` (stack up first).
Prints a table and writes bench/results/publish.json. Figures are ratios against the bare producer measured in
the same run, because this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from confluent_kafka import Producer

from satubus import access
from satubus.database import dsn as owner_dsn
from satubus.kafka import producer_config
from satubus.producers.outbox import OutboxRelay, install
from satubus.producers.publisher import AgencyPublisher, Change
from satubus.producers.simulator.render import penerima_bansos
from satubus.producers.simulator.world import generate_world
from satubus.registry import registry_client
from satubus.schemas.envelope import agency_event_schema
from satubus.schemas.regions import load_regions
from satubus.schemas.topics import value_subject
from satubus.serde import AvroSerde
from satubus.settings import Settings, get_settings

RESULTS = Path(__file__).parent / "results" / "publish.json"
BATCH = 1000
ROUNDS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000, help="events per measurement (default 50000)")
    args = parser.parse_args()
    results = measure(get_settings(), events=args.events)
    ceiling = results["bare confluent-kafka producer (pre-encoded)"]
    print(f"{'path':<58}{'events/s':>12}{'ratio':>8}")
    for name, rate in results.items():
        print(f"{name:<58}{rate:>12,.0f}{rate / ceiling:>8.2f}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"events": args.events, "events_per_second": results}, indent=2) + "\n")


def measure(settings: Settings, *, events: int) -> dict[str, float]:
    """Events per second of each publish path."""
    world = generate_world(events, seed=3, regions=load_regions(), now=dt.datetime.now(dt.UTC))
    rng = random.Random(1)
    records = [penerima_bansos(d, rng) for d in world.disbursements]
    records = (records * (events // max(len(records), 1) + 1))[:events]
    results: dict[str, float] = {}

    with AvroSerde(registry_client(settings)) as serde:
        publisher = AgencyPublisher(settings, serde, agency="dinsos", dataset="penerima_bansos", system="bench")
        encoder = serde.encoder(value_subject(publisher.topic), agency_event_schema("dinsos", "penerima_bansos"))
        encoded = [encoder.encode(_envelope(r)) for r in records[:1000]]
        raw = Producer(producer_config(settings, "bench-raw", access.ADMIN))
        started = time.perf_counter()
        for i in range(events):
            while True:
                try:
                    raw.produce(publisher.topic, value=encoded[i % 1000], key=records[i]["id_penyaluran"].encode())
                    break
                except BufferError:
                    raw.poll(0.05)
            raw.poll(0)
        raw.flush()
        results["bare confluent-kafka producer (pre-encoded)"] = events / (time.perf_counter() - started)

        synchronous = records[: max(events // 20, 100)]
        started = time.perf_counter()
        for record in synchronous:
            publisher.publish(record["id_penyaluran"], record, version=1)
            publisher.flush()
        results["SDK publish() + flush() per event (waits for each ack)"] = len(synchronous) / (
            time.perf_counter() - started
        )

        def streamed() -> None:
            for record in records:
                publisher.publish(record["id_penyaluran"], record, version=1)
            publisher.flush()

        def batched() -> None:
            for start in range(0, events, BATCH):
                publisher.publish_batch(
                    Change(r["id_penyaluran"], r, version=1) for r in records[start : start + BATCH]
                )

        # Alternated over rounds, median of each: neither path always runs first, on a warmer producer.
        rates: dict[str, list[float]] = {"SDK publish() streamed, one flush": [], f"SDK publish_batch() of {BATCH}": []}
        for round_ in range(ROUNDS):
            paths = list(zip(rates, (streamed, batched), strict=True))
            for name, run in paths if round_ % 2 == 0 else reversed(paths):
                started = time.perf_counter()
                run()
                rates[name].append(events / (time.perf_counter() - started))
        results |= {name: statistics.median(values) for name, values in rates.items()}

        results["outbox relay (PostgreSQL -> Kafka, marked)"] = asyncio.run(_relay(settings, publisher, records))
        publisher.close()
    return {name: round(rate) for name, rate in results.items()}


def _envelope(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "op": "c",
        "occurred_at": dt.datetime.now(dt.UTC),
        "source": {"agency": "dinsos", "system": "bench", "version": "1"},
        "key": str(record["id_penyaluran"]),
        "version": 1,
        "after": record,
        "before": None,
    }


async def _relay(settings: Settings, publisher: AgencyPublisher, records: list[dict[str, Any]]) -> float:
    admin = owner_dsn(settings).rsplit("/", 1)[0] + "/postgres"
    dsn = owner_dsn(settings).rsplit("/", 1)[0] + "/bench_outbox"
    conn = await asyncpg.connect(admin)
    await conn.execute("DROP DATABASE IF EXISTS bench_outbox WITH (FORCE)")
    await conn.execute("CREATE DATABASE bench_outbox")
    await conn.close()
    await install(dsn)
    conn = await asyncpg.connect(dsn)
    await conn.copy_records_to_table(
        "satubus_outbox",
        columns=["aggregatetype", "aggregateid", "type", "payload"],
        records=[("penerima_bansos", r["id_penyaluran"], "c", json.dumps(r)) for r in records],
    )
    relay = OutboxRelay(publisher, dsn, dataset="penerima_bansos")
    started = time.perf_counter()
    while await relay.relay_once(conn):
        pass
    rate = len(records) / (time.perf_counter() - started)
    await conn.close()
    return rate


if __name__ == "__main__":
    main()
