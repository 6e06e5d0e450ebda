"""Materializer benchmark: unified person records from Kafka into PostgreSQL through the materializer, side by side
with PostgreSQL's ceilings for the same rows here, without Kafka: asyncpg ``copy_records_to_table`` straight into
the table (insert only), a batched upsert (``executemany`` of INSERT ... ON CONFLICT), and COPY into a staging table
with one merge per batch (what the materializer does), in one run on the local stack.

Run: ``SATUBUS_ENV_FILE=deploy/local/dev.env .venv/bin/python -m bench.materialize [--rows N]`` (stack up first).
It uses its own topic and database (``bench.unified.person``, ``satubus_bench``). Writes
bench/results/materialize.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from confluent_kafka import Producer

from bench.common import bench_settings, recreate_topic, report
from satubus import access
from satubus.consumers.materializer import BATCH_MAX, Materializer
from satubus.consumers.migrate import recreate
from satubus.consumers.tables import PERSON, TableSpec
from satubus.database import dsn as owner_dsn
from satubus.kafka import producer_config
from satubus.registry import register_contract, registry_client
from satubus.schemas.topics import TopicContract, TopicName
from satubus.serde import AvroSerde
from satubus.settings import Settings
from tests.samples import unified_person

RESULTS = Path(__file__).parent / "results" / "materialize.json"
TOPIC = TopicName("unified.bench-person")  # under unified.*, which the materializer's principal may read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="person records to materialize (default 100000)")
    args = parser.parse_args()
    results = measure(bench_settings(), rows=args.rows)
    report(results, RESULTS)


def measure(settings: Settings, *, rows: int) -> dict[str, Any]:
    records = [unified_person(n) for n in range(rows)]
    ceilings = {}
    for name, method in CEILINGS.items():
        asyncio.run(recreate(owner_dsn(settings)))
        ceilings[name] = asyncio.run(_ceiling(settings, records, method))
    asyncio.run(recreate(owner_dsn(settings)))
    recreate_topic(settings, TOPIC, compacted=True)
    produce(settings, PERSON, TOPIC, records)
    rate = asyncio.run(materialized(settings, PERSON, TOPIC, len(records)))
    upsert = max(ceilings["upsert"], ceilings["merge"])
    return {
        "rows": len(records),
        "PostgreSQL: copy_records_to_table into the table, insert only (rows/s)": round(ceilings["copy"]),
        f"PostgreSQL: executemany upsert, batches of {BATCH_MAX} (rows/s)": round(ceilings["upsert"]),
        f"PostgreSQL: COPY to staging + one merge per {BATCH_MAX} (rows/s)": round(ceilings["merge"]),
        "materializer, Kafka to committed rows (rows/s)": round(rate),
        "ratio materializer / best upsert": round(rate / upsert, 3),
    }


def _upsert_sql(source: str) -> str:
    columns = PERSON.columns
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != PERSON.key)
    return (
        f"INSERT INTO {PERSON.table} ({', '.join(columns)}) {source} "
        f"ON CONFLICT ({PERSON.key}) DO UPDATE SET {updates} WHERE {PERSON.table}.version <= EXCLUDED.version"
    )


async def _copy(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    schema, table = PERSON.table.split(".")
    await conn.copy_records_to_table(table, schema_name=schema, records=rows, columns=PERSON.columns)


async def _upsert(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    values = ", ".join(f"${n}" for n in range(1, len(PERSON.columns) + 1))
    await conn.executemany(_upsert_sql(f"VALUES ({values})"), rows)


async def _merge(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    await conn.execute("TRUNCATE bench_staging")
    await conn.copy_records_to_table("bench_staging", records=rows, columns=PERSON.columns)
    await conn.execute(_upsert_sql(f"SELECT {', '.join(PERSON.columns)} FROM bench_staging"))


Rows = list[tuple[Any, ...]]
CEILINGS: dict[str, Callable[[asyncpg.Connection, Rows], Awaitable[None]]] = {
    "copy": _copy,
    "upsert": _upsert,
    "merge": _merge,
}


async def _ceiling(
    settings: Settings, records: list[dict[str, Any]], method: Callable[[asyncpg.Connection, Rows], Awaitable[None]]
) -> float:
    """Rows per second writing the records in the materializer's batch size, one transaction per batch, no Kafka."""
    conn = await asyncpg.connect(owner_dsn(settings))
    rows = [PERSON.row(r) for r in records]
    try:
        await conn.execute(f"CREATE TEMP TABLE bench_staging (LIKE {PERSON.table} INCLUDING DEFAULTS)")
        started = time.perf_counter()
        for at in range(0, len(rows), BATCH_MAX):
            async with conn.transaction():
                await method(conn, rows[at : at + BATCH_MAX])
        return len(rows) / (time.perf_counter() - started)
    finally:
        await conn.close()


def produce(settings: Settings, spec: TableSpec, topic: str, records: list[dict[str, Any]]) -> None:
    """The records, encoded with the unified contract's schema, into the topic; the schema is registered for the topic
    first (a value is decoded only with a schema its topic's subject holds)."""
    contract = TopicContract(TopicName(topic), spec.contract.schema, compacted=True)
    with registry_client(settings, admin=True) as registry:
        register_contract(registry, contract)
    producer = Producer(producer_config(settings, "bench-materialize", access.ADMIN))
    with AvroSerde(registry_client(settings)) as serde:
        encoder = serde.encoder(contract.subject, contract.value_schema())
        for record in records:
            while True:
                try:
                    producer.produce(topic, key=record[spec.key].encode(), value=encoder.encode(record))
                    break
                except BufferError:
                    producer.poll(0.1)
    if producer.flush(60):
        raise SystemExit("the records were not acknowledged within 60 s")


async def materialized(settings: Settings, spec: TableSpec, topic: str, rows: int) -> float:
    """Rows per second the materializer commits from the topic into the spec's table, from its first committed
    batch to its last."""
    spec = dataclasses.replace(spec, contract=TopicContract(TopicName(topic), spec.contract.schema, compacted=True))
    materializer = Materializer(settings, spec, group_id=f"{access.MATERIALIZER_GROUPS}bench-{time.time_ns()}")
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
