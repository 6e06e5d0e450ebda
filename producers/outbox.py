"""The outbox relay: publishes an agency database's outbox rows, in order, marking them only once acknowledged.

Wakes on LISTEN/NOTIFY and polls as a fallback. A crash between the broker's acknowledgement and the mark
republishes those rows on restart with the same event_id, so consumers that dedupe by event_id see each row
exactly once. A row whose payload does not fit the schema is marked ``rejected`` with the reasons.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import asyncpg
from prometheus_client import Counter

from satubus.metrics import NAMESPACE, REGISTRY
from satubus.producers.publisher import AgencyPublisher
from satubus.registry import registry_client
from satubus.schemas.record_models import RecordRejected, validate_json
from satubus.serde import AvroSerde
from satubus.settings import Settings

CHANNEL = "satubus_outbox"
SCHEMA_SQL = Path(__file__).with_name("outbox.sql")

RELAYED = Counter(
    "outbox_relayed", "Outbox rows published and marked", ["agency", "dataset"], namespace=NAMESPACE, registry=REGISTRY
)
REJECTED = Counter(
    "outbox_rejected",
    "Outbox rows whose payload does not fit the schema",
    ["agency", "dataset"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)

log = logging.getLogger(__name__)


async def install(dsn: str) -> None:
    """Create the outbox table and its NOTIFY trigger in the agency's database (idempotent)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA_SQL.read_text(encoding="utf-8"))
    finally:
        await conn.close()


class OutboxRelay:
    def __init__(
        self, publisher: AgencyPublisher, dsn: str, *, dataset: str, batch: int = 1000, poll_seconds: float = 1.0
    ) -> None:
        self.publisher = publisher
        self.dsn = dsn
        self.dataset = dataset
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.relayed = 0
        self._agency = publisher.dataset.split(".", 1)[0]

    async def run(self, stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(self.dsn)
        wake = asyncio.Event()
        await conn.add_listener(CHANNEL, lambda *_: wake.set())
        try:
            while not stop.is_set():
                wake.clear()
                if await self.relay_once(conn) == self.batch:
                    continue  # more are waiting
                stopping = asyncio.ensure_future(stop.wait())
                woken = asyncio.ensure_future(wake.wait())
                await asyncio.wait({stopping, woken}, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                woken.cancel()
        finally:
            await conn.close()

    async def relay_once(self, conn: Any) -> int:
        """Publish one batch of pending rows; returns how many rows it handled."""
        rows = await conn.fetch(
            "SELECT seq, id, aggregateid, type, payload::text AS payload, created_at FROM satubus_outbox "
            "WHERE published_at IS NULL AND rejected IS NULL AND aggregatetype = $1 ORDER BY seq LIMIT $2",
            self.dataset,
            self.batch,
        )
        published, rejected = [], []
        for row in rows:
            try:
                record = (
                    None
                    if row["payload"] is None
                    else validate_json(self.publisher.model, row["payload"], self.publisher.dataset)
                )
                self.publisher.publish(
                    row["aggregateid"],
                    record,
                    version=row["seq"],
                    op=row["type"],
                    occurred_at=row["created_at"],
                    event_id=row["id"],
                )
                published.append(row["seq"])
            except RecordRejected as exc:
                rejected.append((row["seq"], str(exc)))
        self.publisher.flush()  # raises unless the broker acknowledged every row
        async with conn.transaction():
            await conn.execute(
                "UPDATE satubus_outbox SET published_at = clock_timestamp() WHERE seq = ANY($1::bigint[])", published
            )
            if rejected:
                await conn.executemany("UPDATE satubus_outbox SET rejected = $2 WHERE seq = $1", rejected)
        RELAYED.labels(self._agency, self.dataset).inc(len(published))
        REJECTED.labels(self._agency, self.dataset).inc(len(rejected))
        self.relayed += len(published)
        for seq, reason in rejected:
            log.warning("outbox row %d rejected: %s", seq, reason)
        return len(rows)


def main(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "install":
        asyncio.run(install(args.dsn))
        print("outbox table satubus_outbox and its trigger are in place")
        return 0
    if not (args.agency and args.dataset):
        print("satubus outbox relay: --agency and --dataset are required", file=sys.stderr)
        return 2
    asyncio.run(_relay(settings, args))
    return 0


async def _relay(settings: Settings, args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with (
        AvroSerde(registry_client(settings)) as serde,
        AgencyPublisher(settings, serde, agency=args.agency, dataset=args.dataset, system=args.system) as publisher,
    ):
        log.info("relaying %s outbox rows of %s to %s", args.dataset, args.agency, publisher.topic)
        await OutboxRelay(publisher, args.dsn, dataset=args.dataset).run(stop)
