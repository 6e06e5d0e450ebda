"""Materializer benchmark: unified person records from Kafka into PostgreSQL through the materializer, side by side
with PostgreSQL's ceiling for the same rows here (asyncpg COPY into a staging table and one merge per batch, no
Kafka), in one run on the local stack.

Run: ``SATUBUS_ENV_FILE=deploy/local/dev.env .venv/bin/python -m bench.materialize [--rows N]`` (stack up first).
It uses its own topic and database (``bench.unified.person``, ``satubus_bench``). Writes
bench/results/materialize.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import asyncpg
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from consumers.materializer import BATCH_MAX, Materializer
from consumers.migrate import recreate
from consumers.tables import PERSON
from satubus.kafka import ensure_topics, producer_config
from satubus.settings import Settings, get_settings
from schemas.registry import registry_client
from schemas.serde import AvroSerde
from schemas.topics import TopicContract, TopicName
from tests.samples import unified_person

RESULTS = Path(__file__).parent / "results" / "materialize.json"
TOPIC = TopicName("bench.unified.person")
DATABASE = "satubus_bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="person records to materialize (default 100000)")
    args = parser.parse_args()
    base = get_settings()
    settings = Settings(**{**base.model_dump(), "database_url": base.database_url.rsplit("/", 1)[0] + f"/{DATABASE}"})
    records = [unified_person(n) for n in range(args.rows)]
    asyncio.run(recreate(settings.database_url))

    ceiling = asyncio.run(_copy_and_merge(settings, records))
    asyncio.run(recreate(settings.database_url))
    _fresh_topic(settings)
    _produce(settings, records)
    rate = asyncio.run(_materialize(settings, len(records)))

    results = {
        "rows": len(records),
        "PostgreSQL ceiling: COPY + merge per batch of the same size (rows/s)": round(ceiling),
        "materializer, Kafka to committed rows (rows/s)": round(rate),
        "ratio materializer / ceiling": round(rate / ceiling, 3),
    }
    for name, value in results.items():
        print(f"{name:<72}{value:>10}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


async def _copy_and_merge(settings: Settings, records: list[dict[str, Any]]) -> float:
    """What the materializer does per batch, minus Kafka and decoding: the ceiling it can approach."""
    conn = await asyncpg.connect(settings.database_url)
    columns = PERSON.columns
    rows = [PERSON.row(r) for r in records]
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != PERSON.key)
    merge = (
        f"INSERT INTO {PERSON.table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM bench_staging "
        f"ON CONFLICT ({PERSON.key}) DO UPDATE SET {updates} WHERE {PERSON.table}.version <= EXCLUDED.version"
    )
    try:
        await conn.execute(f"CREATE TEMP TABLE bench_staging (LIKE {PERSON.table} INCLUDING DEFAULTS)")
        started = time.perf_counter()
        for at in range(0, len(rows), BATCH_MAX):
            async with conn.transaction():
                await conn.execute("TRUNCATE bench_staging")
                await conn.copy_records_to_table("bench_staging", records=rows[at : at + BATCH_MAX], columns=columns)
                await conn.execute(merge)
        return len(rows) / (time.perf_counter() - started)
    finally:
        await conn.close()


def _fresh_topic(settings: Settings) -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    if TOPIC in admin.list_topics(timeout=15).topics:
        for future in admin.delete_topics([TOPIC], operation_timeout=30).values():
            future.result()
        while TOPIC in admin.list_topics(timeout=15).topics:
            time.sleep(0.2)
    while True:
        try:
            ensure_topics(settings, [(TOPIC, True)])
            return
        except KafkaException:  # a just-deleted topic can be refused for a moment
            time.sleep(0.5)


def _produce(settings: Settings, records: list[dict[str, Any]]) -> None:
    producer = Producer(producer_config(settings, "bench-materialize"))
    with AvroSerde(registry_client(settings)) as serde:
        encoder = serde.encoder(PERSON.contract.subject, PERSON.contract.value_schema())
        for record in records:
            while True:
                try:
                    producer.produce(TOPIC, key=record["person_id"].encode(), value=encoder.encode(record))
                    break
                except BufferError:
                    producer.poll(0.1)
    if producer.flush(60):
        raise SystemExit("the records were not acknowledged within 60 s")


async def _materialize(settings: Settings, rows: int) -> float:
    """Rows per second from the first committed batch to the last."""
    spec = dataclasses.replace(PERSON, contract=TopicContract(TOPIC, PERSON.contract.schema, compacted=True))
    materializer = Materializer(settings, spec, group_id=f"bench-materializer-{time.time_ns()}")
    stop = asyncio.Event()
    running = asyncio.create_task(materializer.run(stop))
    first: tuple[float, int] | None = None
    while materializer.committed < rows:
        if materializer.committed and first is None:
            first = (time.perf_counter(), materializer.committed)
        if running.done():
            running.result()  # raises what stopped it
        await asyncio.sleep(0.02)
    finished = time.perf_counter()
    stop.set()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    assert first is not None
    return (rows - first[1]) / (finished - first[0])


if __name__ == "__main__":
    main()
