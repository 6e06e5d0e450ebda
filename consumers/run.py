"""``satubus materialize`` and ``satubus migrate``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from satubus import database, health, metrics
from satubus.consumers import faults
from satubus.consumers.materializer import Materializer, component
from satubus.consumers.migrate import migrate, pending
from satubus.consumers.tables import MATERIALIZED
from satubus.errors import ConfigurationError
from satubus.settings import Settings

log = logging.getLogger(__name__)


def materialize(args: argparse.Namespace, settings: Settings) -> int:
    entities = sorted(MATERIALIZED) if args.entity == "all" else [args.entity]
    for entity in entities:  # until each is assigned its partitions, after the migrations are checked
        health.STATE.starting(component(entity), "not yet assigned its partitions")
    port = settings.materializer_metrics_port
    metrics.serve(settings.metrics_host, port, "SATUBUS_MATERIALIZER_METRICS_PORT", process="materialize")
    asyncio.run(_materialize(settings, entities))
    return 0


async def _materialize(settings: Settings, entities: list[str]) -> None:
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
    await asyncio.gather(*(Materializer(settings, MATERIALIZED[entity]).run(stop) for entity in entities))


async def _migrate(settings: Settings) -> list[str]:
    """The migrations applied, as the database's owner; PostgreSQL unavailable is ``DatabaseUnavailable``."""
    with faults.database_errors():
        return await migrate(database.dsn(settings))


async def _pending(settings: Settings) -> list[str]:
    """The migrations not applied yet, as seen by the materializer's login; unavailable: ``DatabaseUnavailable``,
    waited for by the caller."""
    with faults.database_errors():
        return await pending(database.dsn(settings, database.MATERIALIZER))


def run_migrations(args: argparse.Namespace, settings: Settings) -> int:
    applied = asyncio.run(_migrate(settings))  # PostgreSQL unavailable: exit 3 with the reason, no traceback
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    return 0
