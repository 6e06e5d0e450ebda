"""The outbox relay's marking and retrying, with a stand-in database connection, broker and registry: a row is
marked published only once acknowledged, and an unavailable broker or database is retried with bounded backoff."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from typing import Any

import asyncpg
import pytest

from satubus.errors import BrokerUnavailable, DatabaseUnavailable
from satubus.producers import outbox
from satubus.producers.outbox import OutboxRelay
from satubus.producers.publisher import AgencyPublisher
from satubus.retry import Backoff
from satubus.settings import Settings
from tests.unit.fake_kafka import Fakes, failed, install

FAST = Backoff(first=0.001, longest=0.001, attempts=None)


def payload(i: int) -> dict[str, Any]:
    return {
        "id_penyaluran": f"PKH-{i}",
        "nik": "3171064808850001",
        "nama_penerima": "SITI AMINAH",
        "program": "PKH",
        "periode": "2026-11",
        "nominal": 600000,
        "status_salur": "SALUR",
        "tgl_salur": "2026/11/20",
        "kelurahan": "Kel. Menteng",
        "alamat": None,
    }


class Transaction:
    async def __aenter__(self) -> None:
        pass

    async def __aexit__(self, *exc: object) -> None:
        pass


class FakeConnection:
    """The few asyncpg calls the relay makes, on rows held in memory."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.published: list[int] = []
        self.rejected: list[tuple[int, str]] = []
        self.terminated = False

    async def fetch(self, query: str, dataset: str, limit: int) -> list[dict[str, Any]]:
        done = set(self.published) | {seq for seq, _ in self.rejected}
        return [row for row in self.rows if row["seq"] not in done][:limit]

    def transaction(self) -> Transaction:
        return Transaction()

    async def execute(self, query: str, seqs: list[int]) -> None:
        assert "published_at" in query
        self.published += seqs

    async def executemany(self, query: str, rejected: list[tuple[int, str]]) -> None:
        assert "rejected" in query
        self.rejected += rejected

    async def add_listener(self, channel: str, callback: Any) -> None:
        pass

    def is_closed(self) -> bool:
        return self.terminated

    async def close(self, **options: Any) -> None:
        self.terminated = True

    def terminate(self) -> None:
        self.terminated = True


def row(seq: int, record: dict[str, Any] | None, op: str = "u") -> dict[str, Any]:
    return {
        "seq": seq,
        "id": uuid.uuid4(),
        "aggregateid": f"KK-{seq}",
        "type": op,
        "payload": None if record is None else json.dumps(record),
        "created_at": dt.datetime(2026, 11, 28, tzinfo=dt.UTC),
    }


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Fakes:
    return install(monkeypatch)


def relay(fakes: Fakes, **options: Any) -> OutboxRelay:
    serde: Any = fakes.serde()
    publisher = AgencyPublisher(Settings(), serde, agency="dinsos", dataset="penerima_bansos", system="outbox")
    return OutboxRelay(publisher, "postgresql://nowhere/agency", dataset="penerima_bansos", **options)


def test_only_acknowledged_rows_are_marked_published(fakes: Fakes) -> None:
    conn = FakeConnection(
        [
            row(1, payload(1)),  # sent 0
            row(2, payload(2) | {"program": None}),  # rejected
            row(3, payload(3)),  # sent 1: the broker fails it
            row(4, None, op="d"),  # sent 2
            row(5, payload(5), op="x"),  # not an op of the envelope: rejected, not a crash
        ]
    )
    fakes.fates = {1: failed()}
    with pytest.raises(BrokerUnavailable, match=r"did not acknowledge 1 of 5 outbox rows \(<broker>: Local: Message"):
        asyncio.run(relay(fakes).relay_once(conn))
    assert conn.published == [1, 4]
    assert [seq for seq, _ in conn.rejected] == [2, 5]
    assert "dinsos.penerima_bansos record rejected: program: Input should be a valid string" in conn.rejected[0][1]
    assert fakes.on_the_loop == [], "a blocking call ran on the event loop"

    fakes.fates = {}  # the broker is back: the failed row goes out on the next pass
    assert asyncio.run(relay(fakes).relay_once(conn)) == 1
    assert conn.published == [1, 4, 3]


def run_with(relayer: OutboxRelay, passes: list[BaseException | None]) -> list[int]:
    """Run the relay on a stand-in connection, each pass raising the next of ``passes`` (None: relays nothing);
    stops after the last. Returns one entry per pass made."""
    stop = asyncio.Event()
    calls: list[int] = []

    async def relay_once(conn: Any) -> int:
        calls.append(len(calls))
        outcome = passes[len(calls) - 1]
        if len(calls) == len(passes):
            stop.set()
        if outcome is not None:
            raise outcome
        return 0

    relayer.relay_once = relay_once  # type: ignore[method-assign]
    relayer._conn = FakeConnection([])
    asyncio.run(relayer.run(stop))
    return calls


def test_an_unavailable_broker_is_retried_instead_of_ending_the_relay(fakes: Fakes) -> None:
    passes: list[BaseException | None] = [BrokerUnavailable("down"), BrokerUnavailable("down"), None]
    assert len(run_with(relay(fakes, backoff=FAST), passes)) == 3


def test_a_lost_database_connection_is_made_again(fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[FakeConnection] = []

    async def connect(dsn: str) -> FakeConnection:
        made.append(FakeConnection([]))
        return made[-1]

    monkeypatch.setattr(outbox.asyncpg, "connect", connect)
    relayer = relay(fakes, backoff=FAST)
    passes: list[BaseException | None] = [asyncpg.ConnectionDoesNotExistError("gone"), ConnectionRefusedError(), None]
    assert len(run_with(relayer, passes)) == 3
    assert len(made) == 2  # after each failure
    assert made[0].terminated and made[1].terminated  # the last one closed at the stop


def test_retries_are_bounded_by_the_backoff(fakes: Fakes) -> None:
    with pytest.raises(DatabaseUnavailable):
        run_with(
            relay(fakes, backoff=Backoff(first=0.001, longest=0.001, attempts=3)),
            [OSError("refused")] * 3 + [None],
        )


def test_a_programming_error_ends_the_relay_at_once(fakes: Fakes) -> None:
    with pytest.raises(ValueError, match="bug"):
        run_with(relay(fakes, backoff=FAST), [ValueError("bug"), None])
