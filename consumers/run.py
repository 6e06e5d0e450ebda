"""``satubus materialize`` and ``satubus migrate``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

import asyncpg

from satubus import database, health, metrics
from satubus.consumers import faults
from satubus.consumers.dataset_tables import ensure_tables
from satubus.consumers.materializer import Materializer, component
from satubus.consumers.migrate import migrate, pending
from satubus.consumers.tables import MATERIALIZED, TableSpec, record_table
from satubus.errors import ConfigurationError
from satubus.schemas.dataset_records import dataset_records
from satubus.schemas.envelope import AGENCIES_DIR
from satubus.settings import Settings

log = logging.getLogger(__name__)


def materialize(args: argparse.Namespace, settings: Settings) -> int:
    known = materialized(settings)
    if args.entity not in ("all", *known):
        raise ConfigurationError(f"--entity {args.entity}: not one of all, {', '.join(known)}")
    entities = sorted(known) if args.entity == "all" else [args.entity]
    for entity in entities:  # until each is assigned its partitions, after the migrations are checked
        health.STATE.starting(component(entity), "not yet assigned its partitions")
    port = settings.materializer_metrics_port
    metrics.serve(settings.metrics_host, port, "SATUBUS_MATERIALIZER_METRICS_PORT", process="materialize")
    asyncio.run(_materialize(settings, [known[entity] for entity in entities]))
    return 0


def materialized(settings: Settings) -> dict[str, TableSpec]:
    """Every table the materializer fills, by entity: the unified view, the bus's own and the datasets' tables."""
    records = dataset_records(settings.mappings_dir or AGENCIES_DIR)
    return {**MATERIALIZED, **{record.name: record_table(record) for record in records}}


async def _materialize(settings: Settings, specs: list[TableSpec]) -> None:
    """One materializer per entity, each with its own consumer group, in one process."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        missing = await faults.until_available(lambda: _pending(settings), what="reading the migrations", stop=stop)
    except faults.Stopped:
        return
    if missing:
        raise ConfigurationError(
            f"the database lacks migration(s) {', '.join(missing)}: run `satubus migrate` as its owner first "
            "(the materializer's login may write the view, not change its schema)"
        )
    await asyncio.gather(*(Materializer(settings, spec).run(stop) for spec in specs))


async def _migrate(settings: Settings) -> tuple[list[str], list[TableSpec]]:
    """The migrations applied and the datasets' tables made or completed, as the database's owner; PostgreSQL
    unavailable is ``DatabaseUnavailable``."""
    with faults.database_errors():
        applied = await migrate(database.dsn(settings))
        conn = await asyncpg.connect(database.dsn(settings))
        try:
            tables = await ensure_tables(conn, dataset_records(settings.mappings_dir or AGENCIES_DIR))
        finally:
            await conn.close()
        return applied, tables


async def _pending(settings: Settings) -> list[str]:
    """The migrations not applied yet, as seen by the materializer's login; unavailable: ``DatabaseUnavailable``,
    waited for by the caller."""
    with faults.database_errors():
        return await pending(database.dsn(settings, database.MATERIALIZER))


def run_migrations(args: argparse.Namespace, settings: Settings) -> int:
    applied, tables = asyncio.run(_migrate(settings))  # PostgreSQL unavailable: exit 3 with the reason
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    if tables:
        print(f"dataset tables up to date: {', '.join(spec.table for spec in tables)}")
    return 0
