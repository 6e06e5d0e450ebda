"""The outbox relay against a real agency database and broker, killed with SIGKILL while rows keep coming."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from satubus.database import dsn as owner_dsn
from satubus.producers.outbox import install
from satubus.registry import registry_client
from satubus.schemas.topics import agency_topic, value_subject
from satubus.serde import AvroSerde
from satubus.settings import Settings
from tests.integration.conftest import process_env
from tests.integration.proxy import CuttableProxy
from tests.integration.test_dukcapil_end_to_end import read_topic

KILLS = 6
TOPIC = agency_topic("dinsos", "penerima_bansos")


def payload(i: int, rng: random.Random) -> dict[str, Any]:
    return {
        "id_penyaluran": f"PKH-2026-11-{i:06d}",
        "nik": f"317106{rng.randint(1, 28):02d}{rng.randint(1, 12):02d}85{rng.randint(1, 9999):04d}",
        "nama_penerima": "PENERIMA " + str(i),
        "program": rng.choice(["PKH", "BPNT", "KLJ", "KPDJ"]),
        "periode": "2026-11",
        "nominal": rng.choice([300_000, 600_000, 750_000]),
        "status_salur": "SALUR",
        "tgl_salur": "2026/11/20",
        "kelurahan": "Kel. Menteng",
        "alamat": None,
    }


@pytest.fixture
def agency_db(bus: Settings) -> Iterator[str]:
    name = "agency_dinsos_" + re.sub(r"\W", "_", bus.namespace)  # one per suite's namespace
    admin = owner_dsn(bus).rsplit("/", 1)[0] + "/postgres"
    dsn = owner_dsn(bus).rsplit("/", 1)[0] + f"/{name}"

    async def fresh() -> None:
        conn = await asyncpg.connect(admin)
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {name}")
        await conn.close()
        await install(dsn)

    asyncio.run(fresh())
    yield dsn


async def write_rows(dsn: str, rng: random.Random, until: asyncio.Event) -> tuple[set[str], set[str]]:
    """The agency's own transactions, business change + outbox row, until told to stop. Returns (valid ids, invalid
    ids)."""
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE IF NOT EXISTS penyaluran (id text PRIMARY KEY, data jsonb)")
    valid, invalid = set(), set()
    i = 0
    while not until.is_set():
        async with conn.transaction():
            for _ in range(rng.randint(1, 40)):
                body = payload(i, rng)
                if i % 500 == 250:
                    body["nominal"] = "enam ratus ribu"  # a string where the schema wants a number
                event_id = str(uuid.uuid4())
                (invalid if i % 500 == 250 else valid).add(event_id)
                key = f"KK-{i % 700}"  # several changes per aggregate, to check the order
                await conn.execute(
                    "INSERT INTO penyaluran VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET data = $2",
                    key,
                    json.dumps(body),
                )
                await conn.execute(
                    "INSERT INTO satubus_outbox (id, aggregatetype, aggregateid, type, payload) "
                    "VALUES ($1, 'penerima_bansos', $2, 'u', $3)",
                    uuid.UUID(event_id),
                    key,
                    json.dumps(body),
                )
                i += 1
        await asyncio.sleep(rng.uniform(0, 0.1))
    await conn.close()
    return valid, invalid


def start_relay(settings: Settings, dsn: str, log: Path) -> subprocess.Popen[bytes]:
    log.touch()
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                str(Path(sys.executable).with_name("satubus")),
                "outbox",
                "relay",
                "--dsn",
                dsn,
                "--agency",
                "dinsos",
                "--dataset",
                "penerima_bansos",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=process_env(settings),
        )


async def count(dsn: str, where: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM satubus_outbox WHERE {where}"))
    finally:
        await conn.close()


async def pending(dsn: str) -> int:
    return await count(dsn, "published_at IS NULL AND rejected IS NULL")


def test_every_row_reaches_the_topic_through_repeated_kill_9(bus: Settings, agency_db: str) -> None:
    rng = random.Random(606)
    log = bus.state_dir.resolve() / "logs" / f"{bus.namespace}-outbox-relay.log"
    log.unlink(missing_ok=True)
    relay = start_relay(bus, agency_db, log)
    kills = last_start = 0
    waiting: list[int] = []

    async def kill_mid_stream() -> tuple[set[str], set[str]]:
        """Each relay is killed once it has published rows and slept a little, while the agency keeps writing."""
        nonlocal relay, kills, last_start
        done = asyncio.Event()
        writer = asyncio.ensure_future(write_rows(agency_db, rng, done))
        deadline = time.monotonic() + 180
        while kills < KILLS:
            published = await count(agency_db, "published_at IS NOT NULL")
            while await count(agency_db, "published_at IS NOT NULL") == published:
                assert relay.poll() is None, f"the relay exited; see {log}"
                assert not writer.done(), writer.result()  # the agency stopped writing: show why
                assert time.monotonic() < deadline, f"the relay published nothing for a long time; see {log}"
                await asyncio.sleep(0.05)
            await asyncio.sleep(rng.uniform(0.1, 0.8))
            os.kill(relay.pid, signal.SIGKILL)
            relay.wait()
            kills += 1
            while not await pending(agency_db):  # rows keep coming while no relay runs
                assert not writer.done(), writer.result()
                await asyncio.sleep(0.05)
            waiting.append(await pending(agency_db))
            last_start = log.stat().st_size
            relay = start_relay(bus, agency_db, log)
        done.set()
        return await writer

    started = time.monotonic()
    try:
        valid, invalid = asyncio.run(kill_mid_stream())
        deadline = time.monotonic() + 180
        while asyncio.run(pending(agency_db)):
            assert relay.poll() is None, f"the relay exited; see {log}"
            assert time.monotonic() < deadline, "rows still pending after 180s"
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        while b"relaying penerima_bansos" not in log.read_bytes()[last_start:]:  # the last relay is up
            assert relay.poll() is None and time.monotonic() < deadline, f"the relay did not start; see {log}"
            time.sleep(0.1)
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(timeout=60) == 0
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait()

    with AvroSerde(registry_client(bus)) as serde:
        events = [serde.decode(m.value(), value_subject(m.topic())) for m in read_topic(bus, TOPIC)]
    events = [e for e in events if e["source"]["system"] == "outbox"]  # not other tests' simulated events
    seen = [str(e["event_id"]) for e in events]
    assert set(seen) == valid  # every valid row, nothing else: dedupe by event_id gives exactly the rows
    assert not set(seen) & invalid

    first_versions: dict[str, list[int]] = defaultdict(list)
    deduped: set[str] = set()
    for event in events:
        if str(event["event_id"]) not in deduped:
            deduped.add(str(event["event_id"]))
            first_versions[event["key"]].append(event["version"])
    assert all(versions == sorted(versions) for versions in first_versions.values()), "order per aggregate broken"
    print(
        f"\noutbox relay: {len(valid)} rows through {kills} kill -9 in {elapsed:.1f}s (rows waiting after each kill: "
        f"{waiting}), {len(seen) - len(valid)} republished duplicates, {len(invalid)} rejected"
    )


async def insert_rows(dsn: str, numbers: range) -> set[str]:
    """Outbox rows written straight to the agency's database; returns their event ids."""
    rng = random.Random(numbers.start)
    conn = await asyncpg.connect(dsn)
    ids = [str(uuid.uuid4()) for _ in numbers]
    for event_id, i in zip(ids, numbers, strict=True):
        await conn.execute(
            "INSERT INTO satubus_outbox (id, aggregatetype, aggregateid, type, payload) "
            "VALUES ($1, 'penerima_bansos', $2, 'c', $3)",
            uuid.UUID(event_id),
            f"OUT-{i}",
            json.dumps(payload(i, rng)),
        )
    await conn.close()
    return set(ids)


def test_the_relay_outlives_a_database_outage(bus: Settings, agency_db: str) -> None:
    """Before, the first error of the agency's database ended the relay; now it waits with bounded backoff."""
    proxy = CuttableProxy(urlsplit(agency_db).port or 5432)
    login = urlsplit(agency_db).netloc.rpartition("@")[0]  # user and password
    through_proxy = urlsplit(agency_db)._replace(netloc=f"{login}@127.0.0.1:{proxy.port}")
    log = bus.state_dir.resolve() / "logs" / f"{bus.namespace}-outbox-outage.log"
    log.unlink(missing_ok=True)
    relay = start_relay(bus, through_proxy.geturl(), log)

    def wait_until_relayed() -> None:
        deadline = time.monotonic() + 90
        while asyncio.run(pending(agency_db)):
            assert relay.poll() is None, f"the relay exited; see {log}"
            assert time.monotonic() < deadline, f"rows still pending after 90s; see {log}"
            time.sleep(0.2)

    try:
        before = asyncio.run(insert_rows(agency_db, range(0, 50)))
        wait_until_relayed()
        proxy.cut()
        during = asyncio.run(insert_rows(agency_db, range(50, 100)))
        time.sleep(6)  # the relay finds its connection gone and fails to make another, several times
        assert relay.poll() is None, f"the relay exited during the outage; see {log}"
        assert asyncio.run(pending(agency_db)) == 50
        proxy.restore()
        wait_until_relayed()
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(timeout=60) == 0
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait()
        proxy.close()
    assert "the agency database is unavailable" in log.read_text()
    with AvroSerde(registry_client(bus)) as serde:
        in_topic = {str(serde.decode(m.value(), value_subject(m.topic()))["event_id"]) for m in read_topic(bus, TOPIC)}
    assert before | during <= in_topic


def test_rejected_rows_keep_the_reason(bus: Settings, agency_db: str) -> None:
    async def run() -> list[Any]:
        conn = await asyncpg.connect(agency_db)
        await conn.execute(
            "INSERT INTO satubus_outbox (aggregatetype, aggregateid, type, payload) VALUES "
            "('penerima_bansos', 'KK-1', 'c', $1)",
            json.dumps(payload(1, random.Random(1)) | {"program": None}),
        )
        await conn.close()
        from satubus.producers.outbox import OutboxRelay
        from satubus.producers.publisher import AgencyPublisher

        with (
            AvroSerde(registry_client(bus)) as serde,
            AgencyPublisher(bus, serde, agency="dinsos", dataset="penerima_bansos", system="test") as publisher,
        ):
            conn = await asyncpg.connect(agency_db)
            await OutboxRelay(publisher, agency_db, dataset="penerima_bansos").relay_once(conn)
            rows = await conn.fetch("SELECT published_at, rejected FROM satubus_outbox")
            await conn.close()
        return list(rows)

    (row,) = asyncio.run(run())
    assert row["published_at"] is None
    assert "program: Input should be a valid string" in row["rejected"]
