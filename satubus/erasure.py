"""``satubus erase --nik <NIK> --reason <ref>``: remove a person from every place the bus keeps them (UU PDP Pasal 43).

The command turns the NIK into its person_id, appends the erasure to the audit log, and sends an erasure part to the
person's key on ``canonical.person`` and the person_id to every partition of ``bus.erasure`` (as the restricted
principal, the only one allowed to). The stream processor's person joiner, which owns the person's state, then
empties that state (its changelog gets a tombstone), and sends tombstones for the unified person, the clear NIK and
the findings about them; the materializers delete the rows. Its normalizer forgets which agency records it routed
to the person. The command waits until the view and the restricted table no longer hold the person.

Kafka drops the erased values from the compacted topics within ``erasure_bound_hours`` (satubus/kafka.py:
topic_config), and the tombstones within as long again. The agency topics and the dead letters hold what agencies
sent until their retention ends (``retention_days``, ``dlq_retention_days``): the source agency erases its own
records, and an agency that sends the person again brings them back (README: "Personal data").
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import socket
import sys
import time
import uuid

import asyncpg
from confluent_kafka import Producer

from satubus import access, audit, database, pseudonym_key
from satubus.errors import BrokerUnavailable
from satubus.kafka import producer_config
from satubus.registry import registry_client
from satubus.schemas.nik import InvalidNik, parse_nik
from satubus.schemas.pseudonym import person_id
from satubus.schemas.topics import ERASURES, canonical_contract, partition_of
from satubus.serde import AvroSerde
from satubus.settings import Settings
from satubus.streams.joins import ERASURE_PART, PartChange


def erasure_part(subject: str, now: dt.datetime) -> PartChange:
    """The erasure as a part of ``canonical.person`` (schemas/canonical/part.avsc)."""
    return PartChange("person", subject, ERASURE_PART, "bus.erasure", "bus", "erasure", str(uuid.uuid4()), 0, now, None)


def main(args: argparse.Namespace, settings: Settings) -> int:
    try:
        parse_nik(args.nik)
    except InvalidNik as exc:
        print(f"satubus erase: {exc}", file=sys.stderr)
        return 2
    subject = person_id(pseudonym_key.load(settings).secret, args.nik)
    by = args.by or getpass.getuser()
    seq = asyncio.run(_audit(settings, subject, by, args.reason))
    print(f"erasure of person {subject[:12]}… recorded in the audit log (row {seq}); sending it to the bus")
    _send(settings, subject)
    started = time.monotonic()
    left = asyncio.run(_wait(settings, subject, args.wait))
    if left:
        print(
            f"satubus erase: after {args.wait:.0f}s the view still holds the person in {', '.join(left)}: is the "
            "pipeline (satubus stream, satubus materialize) running? The erasure stays queued on the bus.",
            file=sys.stderr,
        )
        return 1
    print(
        f"erased from the unified view, the restricted NIKs and the findings in {time.monotonic() - started:.1f}s; "
        f"Kafka's compacted topics drop the values within {settings.erasure_bound_hours:g} h"
    )
    return 0


async def _audit(settings: Settings, subject: str, by: str, reason: str) -> int:
    connection = await asyncpg.connect(database.dsn(settings))
    try:
        access_ = audit.Access(by, "hak_subjek", "erase", "person", [subject], [], socket.gethostname(), reason)
        return await audit.append(connection, access_)
    finally:
        await connection.close()


def _send(settings: Settings, subject: str) -> None:
    contract = canonical_contract("person").within(settings.namespace)
    erasures = settings.topic(ERASURES.name)
    producer = Producer(producer_config(settings, "satubus-erase", access.RESTRICTED))
    try:
        batch = {"parts": [erasure_part(subject, dt.datetime.now(dt.UTC)).to_avro()]}
        with AvroSerde(registry_client(settings)) as serde:
            value = serde.encode(contract.subject, contract.value_schema(), batch)
        producer.produce(
            contract.name, value, partition=partition_of(subject.encode(), _partitions(producer, contract.name))
        )
        for partition in range(_partitions(producer, erasures)):
            producer.produce(erasures, subject.encode(), partition=partition)
        if producer.flush(30):
            raise BrokerUnavailable("the broker did not acknowledge the erasure within 30s; run it again")
    finally:
        producer.flush(5)


def _partitions(producer: Producer, topic: str) -> int:
    return len(producer.list_topics(topic, timeout=30).topics[topic].partitions)


async def _wait(settings: Settings, subject: str, patience: float) -> list[str]:
    """Where the person is still held after at most ``patience`` seconds (empty: nowhere)."""
    deadline = time.monotonic() + patience
    connection = await asyncpg.connect(database.dsn(settings))
    try:
        while True:
            left = [
                table
                for table, column in (
                    ("unified.person", "person_id"),
                    ("restricted.person_nik", "person_id"),
                    ("unified.finding", "subject_id"),
                )
                if await connection.fetchval(f"SELECT count(*) FROM {table} WHERE {column} = $1", subject)
            ]
            if not left or time.monotonic() > deadline:
                return left
            await asyncio.sleep(0.5)
    finally:
        await connection.close()
