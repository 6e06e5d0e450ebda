"""``satubus materialize`` and ``satubus migrate``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import Any

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
from satubus.schemas.mapping_spec import MappingError
from satubus.settings import Settings

log = logging.getLogger(__name__)

FOLLOW_SECONDS = 5.0  # how often materialize all (or datasets) looks for datasets applied while it runs
ALL, DATASETS = "all", "datasets"  # every table; the tables of the datasets that are records of their own


def materialize(args: argparse.Namespace, settings: Settings) -> int:
    known = materialized(settings)
    if args.entity not in (ALL, DATASETS, *known):
        raise ConfigurationError(f"--entity {args.entity}: not one of {ALL}, {DATASETS}, {', '.join(known)}")
    if args.entity == ALL:
        entities = sorted(known)
    elif args.entity == DATASETS:
        entities = sorted(set(known) - set(MATERIALIZED))
    else:
        entities = [args.entity]
    for entity in entities:  # until each is assigned its partitions, after the migrations are checked
        health.STATE.starting(component(entity), "not yet assigned its partitions")
    port = settings.materializer_metrics_port
    metrics.serve(settings.metrics_host, port, "SATUBUS_MATERIALIZER_METRICS_PORT", process="materialize")
    specs = [known[entity] for entity in entities]
    asyncio.run(_materialize(settings, specs, follow=args.entity in (ALL, DATASETS)))
    return 0


def materialized(settings: Settings) -> dict[str, TableSpec]:
    """Every table the materializer fills, by entity: the unified view, the bus's own and the datasets' tables."""
    records = dataset_records(settings.mappings_dir or AGENCIES_DIR)
    return {**MATERIALIZED, **{record.name: record_table(record) for record in records}}


async def _materialize(settings: Settings, specs: list[TableSpec], *, follow: bool = False) -> None:
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
    running = {spec.entity: asyncio.create_task(Materializer(settings, spec).run(stop)) for spec in specs}
    while follow and not stop.is_set():  # a dataset applied meanwhile is taken up: no restart
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), FOLLOW_SECONDS)
        for entity, spec in _new_tables(settings, running).items():
            log.info("new dataset %s: materializing it into %s", entity, spec.table)
            health.STATE.starting(component(entity), "not yet assigned its partitions")
            running[entity] = asyncio.create_task(Materializer(settings, spec).run(stop))
    await asyncio.gather(*running.values())


def _new_tables(settings: Settings, running: dict[str, Any]) -> dict[str, TableSpec]:
    """The datasets' tables not materialized yet (the others are there from the start); none while the mappings do
    not load (the log says why)."""
    try:
        known = materialized(settings)
    except (MappingError, OSError, ValueError) as exc:
        log.error("the mappings do not load, no new dataset taken up: %s", exc)
        return {}
    return {entity: spec for entity, spec in known.items() if entity not in running and entity not in MATERIALIZED}


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
