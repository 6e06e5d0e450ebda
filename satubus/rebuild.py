"""``satubus rebuild --yes``: rebuild the bus's view from the retained agency topics, e.g. under a new pseudonym key.

It deletes what the stream processor derives (its state, ``canonical.*``, ``unified.*``, ``restricted.*``,
``bus.activity``) and creates those topics empty, forgets the consumer groups' positions, and empties the view's
tables (the unified view, the clear NIKs, the scoreboard's counts, the materializers' offsets). The agency topics,
the dead letters, the audit log, the keys and the blocks are kept. The stream workers started next read the agency
topics from their start. Every stream worker, materializer and API must be stopped first: it refuses otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import time

import asyncpg
from confluent_kafka import ConsumerGroupState, KafkaException

from satubus import database
from satubus.consumers.changes import GROUP_ID as API_GROUP
from satubus.consumers.materializer import GROUP_ID as MATERIALIZER_GROUP
from satubus.consumers.tables import MATERIALIZED
from satubus.kafka import admin_client, create_topics
from satubus.schemas.envelope import AGENCIES_DIR
from satubus.schemas.topics import all_contracts
from satubus.settings import Settings
from satubus.streams.app import APP_ID, local_state

DERIVED = ("canonical.", "unified.", "restricted.", "bus.activity")
TABLES = (
    "unified.person",
    "unified.parcel",
    "unified.region",
    "unified.incident",
    "unified.finding",
    "restricted.person_nik",
    "bus.agency_activity",
    "bus.agency_activity_offsets",
    "bus.consumer_offsets",
)


def main(args: argparse.Namespace, settings: Settings) -> int:
    groups = [settings.topic(APP_ID), settings.topic(API_GROUP)]
    groups += [settings.topic(f"{MATERIALIZER_GROUP}-{entity}") for entity in MATERIALIZED]
    if not args.yes:
        print(
            "satubus rebuild deletes the bus's derived topics, the stream processor's state and the view's tables, "
            "to rebuild them from the agency topics; run it again with --yes",
            file=sys.stderr,
        )
        return 2
    if busy := _wait_until_left(settings, groups, args.wait):
        print(
            f"satubus rebuild: stop every stream worker, materializer and API first ({', '.join(busy)} still have "
            f"members after {args.wait:.0f}s)",
            file=sys.stderr,
        )
        return 1
    topics = _derived_topics(settings)
    print(f"deleting {len(topics)} derived topics and the stream processor's state...", flush=True)
    _delete_topics(settings, topics)
    shutil.rmtree(local_state(settings), ignore_errors=True)
    admin = admin_client(settings)  # kept while its futures are awaited
    for future in admin.delete_consumer_groups(groups).values():
        with contextlib.suppress(KafkaException):  # the group did not exist
            future.result(timeout=60)
    created = _create_again(settings)
    asyncio.run(_empty_tables(settings))
    print(
        f"rebuilt {len(created)} topics empty and emptied the view; start the stream workers (with the new key, if "
        "that is why), then the materializers and the API: they rebuild the view from the agency topics"
    )
    return 0


def _wait_until_left(settings: Settings, groups: list[str], patience: float) -> list[str]:
    """The groups that still have members after at most ``patience`` seconds. A stopped materializer is a static
    member: it stays in its group until its session expires (45 s)."""
    deadline = time.monotonic() + patience
    while (busy := _active(settings, groups)) and time.monotonic() < deadline:
        print(f"waiting for {len(busy)} consumer group(s) to empty (stopped members leave within 45 s)...", flush=True)
        time.sleep(5)
    return busy


def _active(settings: Settings, groups: list[str]) -> list[str]:
    busy = []
    admin = admin_client(settings)  # kept while its futures are awaited
    for group, future in admin.describe_consumer_groups(groups).items():
        with contextlib.suppress(KafkaException):
            if future.result(timeout=60).state not in (ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD):
                busy.append(group)
    return busy


def _derived_topics(settings: Settings) -> list[str]:
    existing = admin_client(settings).list_topics(timeout=15).topics
    derived = [settings.topic(prefix) for prefix in DERIVED]
    ours: list[str] = [
        c.name
        for c in all_contracts(settings.namespace, settings.mappings_dir or AGENCIES_DIR)
        if c.name.startswith(tuple(derived))
    ]
    ours += [name for name in existing if name.startswith(f"{settings.topic(APP_ID)}-")]
    return [name for name in ours if name in existing]


def _delete_topics(settings: Settings, topics: list[str]) -> None:
    admin = admin_client(settings)
    if topics:
        for future in admin.delete_topics(topics, operation_timeout=30).values():
            future.result()
    deadline = time.monotonic() + 60
    while set(topics) & set(admin.list_topics(timeout=15).topics):  # deletion completes asynchronously
        if time.monotonic() > deadline:
            raise TimeoutError("the derived topics were not deleted within 60s; run satubus rebuild again")
        time.sleep(0.2)


def _create_again(settings: Settings) -> list[str]:
    deadline = time.monotonic() + 60
    while True:  # creating a just-deleted topic can be refused for a moment
        try:
            return create_topics(settings)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


async def _empty_tables(settings: Settings) -> None:
    connection = await asyncpg.connect(database.dsn(settings))
    try:
        await connection.execute(f"TRUNCATE {', '.join(TABLES)}")
    finally:
        await connection.close()
