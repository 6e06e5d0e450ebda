"""The outbox relay: publishes an agency database's outbox rows, in order, marking them only once acknowledged.

Wakes on LISTEN/NOTIFY and polls as a fallback. A crash between the broker's acknowledgement and the mark
republishes those rows on restart with the same event_id, so consumers that dedupe by event_id see each row
exactly once. A row whose payload does not fit the schema, or that the dataset's mapping rejects (as the stream
processor would: producers/mapping_check.py, following the mapping as ``satubus dataset apply`` changes it), is not
published: it is marked ``rejected`` with the field and the reason, where the agency sees it, and the rows after it
go on. A row the broker did not acknowledge stays unmarked; an unavailable broker or database is retried with
bounded backoff (the rows wait in the outbox meanwhile) instead of ending the relay.
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

from satubus.errors import BrokerUnavailable, DatabaseUnavailable
from satubus.metrics import NAMESPACE, REGISTRY
from satubus.producers.mapping_check import LiveMappingCheck
from satubus.producers.publisher import AgencyPublisher, Change
from satubus.registry import registry_client
from satubus.retry import Backoff, retry_async
from satubus.schemas.envelope import AGENCIES_DIR
from satubus.serde import AvroSerde
from satubus.settings import Settings

CHANNEL = "satubus_outbox"
SCHEMA_SQL = Path(__file__).with_name("outbox.sql")
ACK_TIMEOUT = 30.0  # seconds: a row the broker has not acknowledged by then failed (and waits for the next try)
# Until it succeeds: a relay outlives a broker or database restart; no wait is longer than 5 s (nor is a stop).
BACKOFF = Backoff(first=0.5, longest=5.0, attempts=None)
# The agency database is unavailable (not a bad query): refused, broken or shutting-down connections.
_DATABASE_DOWN = (OSError, asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError)

RELAYED = Counter(
    "outbox_relayed", "Outbox rows published and marked", ["agency", "dataset"], namespace=NAMESPACE, registry=REGISTRY
)
REJECTED = Counter(
    "outbox_rejected",
    "Outbox rows not published: their payload does not fit the schema or the mapping rejects it",
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
        self,
        publisher: AgencyPublisher,
        dsn: str,
        *,
        dataset: str,
        batch: int = 1000,
        poll_seconds: float = 1.0,
        backoff: Backoff = BACKOFF,
    ) -> None:
        self.publisher = publisher
        self.dsn = dsn
        self.dataset = dataset
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.backoff = backoff
        self.relayed = 0
        self._agency = publisher.dataset.split(".", 1)[0]
        self._conn: Any = None
        self._wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set. An ``InfrastructureError`` (broker or database unavailable) is retried with
        ``backoff``; anything else ends the relay."""

        async def one_pass() -> int:
            return 0 if stop.is_set() else await self._relay_pass()

        try:
            while not stop.is_set():
                self._wake.clear()
                handled = await retry_async(one_pass, backoff=self.backoff, what=f"relaying {self.dataset} rows")
                if handled == self.batch:
                    continue  # more are waiting
                stopping = asyncio.ensure_future(stop.wait())
                woken = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({stopping, woken}, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                woken.cancel()
        finally:
            await self._disconnect(graceful=True)

    async def _relay_pass(self) -> int:
        """One batch on the relay's connection, (re)connecting and listening first if needed."""
        try:
            if self._conn is None:
                self._conn = await asyncpg.connect(self.dsn)
                await self._conn.add_listener(CHANNEL, lambda *_: self._wake.set())
            return await self.relay_once(self._conn)
        except _DATABASE_DOWN as exc:
            await self._disconnect()
            raise DatabaseUnavailable(f"the agency database is unavailable: {exc!r}") from exc
        except asyncpg.InterfaceError as exc:
            if self._conn is None or not self._conn.is_closed():
                raise  # a misuse of the connection, not an outage
            await self._disconnect()
            raise DatabaseUnavailable(f"the connection to the agency database was lost: {exc}") from exc

    async def _disconnect(self, *, graceful: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if graceful:
                await conn.close(timeout=5)
                return
        except (*_DATABASE_DOWN, asyncpg.InterfaceError):
            pass
        conn.terminate()  # no goodbye to a server that may be gone

    async def relay_once(self, conn: Any) -> int:
        """Publish one batch of pending rows, mark the acknowledged ones published and the bad ones rejected;
        returns how many rows it handled. Raises ``BrokerUnavailable`` (after marking) when the broker did not
        acknowledge some rows: those stay pending, for the next try."""
        rows = await conn.fetch(
            "SELECT seq, id, aggregateid, type, payload::text AS payload, created_at FROM satubus_outbox "
            "WHERE published_at IS NULL AND rejected IS NULL AND aggregatetype = $1 ORDER BY seq LIMIT $2",
            self.dataset,
            self.batch,
        )
        changes = [
            Change(row["aggregateid"], row["payload"], row["seq"], row["type"], row["created_at"], row["id"])
            for row in rows
        ]
        # In a thread: publish_batch waits for the broker's acknowledgements.
        outcomes = await asyncio.to_thread(self.publisher.publish_batch, changes)
        published = [row["seq"] for row, o in zip(rows, outcomes, strict=True) if o.status == "published"]
        rejected = [
            (row["seq"], f"{self.publisher.dataset} record rejected: {o.reason}")
            for row, o in zip(rows, outcomes, strict=True)
            if o.status == "rejected"
        ]
        failed = [o for o in outcomes if o.status == "failed"]
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
        if failed:
            raise BrokerUnavailable(
                f"the broker did not acknowledge {len(failed)} of {len(rows)} outbox rows ({failed[0].reason}); "
                "they stay pending"
            )
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
    root = settings.mappings_dir or AGENCIES_DIR
    with AvroSerde(registry_client(settings)) as serde:
        # Made and closed in a thread: making asks the registry, closing flushes the producer.
        publisher = await asyncio.to_thread(
            AgencyPublisher,
            settings,
            serde,
            agency=args.agency,
            dataset=args.dataset,
            system=args.system,
            delivery_timeout=ACK_TIMEOUT,
            check=LiveMappingCheck(args.agency, args.dataset, root),
            root=root,
        )
        try:
            log.info("relaying %s outbox rows of %s to %s", args.dataset, args.agency, publisher.topic)
            await OutboxRelay(publisher, args.dsn, dataset=args.dataset).run(stop)
        finally:
            await asyncio.to_thread(publisher.close)
