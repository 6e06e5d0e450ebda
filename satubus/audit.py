"""The audit log of reads of personal data: appending to it, ``satubus audit verify`` and ``satubus audit report``.

Every row is appended by audit.append in PostgreSQL (consumers/migrations/0010_api_keys_and_audit.sql), which
chains it: ``hash = SHA-256(previous hash || canonical text of the row)``. ``verify`` recomputes the chain here,
independently of the database's functions, as the auditor's login (the only one that may read the log), and names
the first row that does not fit: changed, inserted or removed rows all break it. ``report`` answers a person's
request under UU PDP Pasal 32 (who accessed my data, when and why) for a person_id, or for a NIK, turned into its
person_id with the pseudonym key.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import sys
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from satubus import database, pseudonym_key
from satubus.schemas.nik import InvalidNik, parse_nik
from satubus.schemas.pseudonym import person_id
from satubus.settings import Settings

GENESIS = bytes(32)  # the previous hash of the first row
COLUMNS = ("seq", "at", "principal", "purpose", "action", "entity", "keys", "fields", "client", "detail")


@dataclass(frozen=True)
class Access:
    principal: str
    purpose: str
    action: str
    entity: str
    keys: Sequence[str]
    fields: Sequence[str]
    client: str
    detail: str = ""


async def append(connection: asyncpg.Connection, access: Access) -> int:
    """Append ``access`` to the log; its sequence number."""
    seq: int = await connection.fetchval(
        "SELECT audit.append($1, $2, $3, $4, $5, $6, $7, $8)",
        access.principal,
        access.purpose,
        access.action,
        access.entity,
        list(access.keys),
        list(access.fields),
        access.client,
        access.detail,
    )
    return seq


def _netstring(value: str) -> str:
    return f"{len(value)}:{value},"


def canonical(row: Mapping[str, Any]) -> str:
    """The text a row's hash covers; the same as audit.canonical in the database."""
    at: dt.datetime = row["at"]
    return "".join(
        (
            _netstring(str(row["seq"])),
            _netstring(at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
            *(_netstring(row[name]) for name in ("principal", "purpose", "action", "entity")),
            _netstring("".join(_netstring(k) for k in row["keys"])),
            _netstring("".join(_netstring(f) for f in row["fields"])),
            _netstring(row["client"]),
            _netstring(row["detail"]),
        )
    )


def row_hash(previous: bytes, row: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(previous + canonical(row).encode()).digest()


@dataclass(frozen=True)
class Broken:
    seq: int
    why: str


class Chain:
    """Checks rows in ``seq`` order, one at a time (the log may be longer than memory)."""

    def __init__(self) -> None:
        self.previous, self.next_seq, self.checked = GENESIS, 1, 0

    def check(self, row: Mapping[str, Any]) -> Broken | None:
        """None while the chain holds; else why ``row`` breaks it."""
        self.checked += 1
        if row["seq"] != self.next_seq:
            return Broken(row["seq"], f"expected row {self.next_seq} here: rows were removed or inserted")
        if bytes(row["prev_hash"]) != self.previous:
            return Broken(row["seq"], "its previous hash is not the hash of the row before it")
        if bytes(row["hash"]) != row_hash(self.previous, row):
            return Broken(row["seq"], "its content does not match its hash: the row was changed")
        self.previous, self.next_seq = bytes(row["hash"]), self.next_seq + 1
        return None


def first_broken(rows: Iterable[Mapping[str, Any]]) -> tuple[int, Broken | None]:
    """How many rows were read, and the first that breaks the chain (None: the chain holds)."""
    chain = Chain()
    for row in rows:
        if (broken := chain.check(row)) is not None:
            return chain.checked, broken
    return chain.checked, None


async def _rows(connection: asyncpg.Connection) -> AsyncGenerator[asyncpg.Record, None]:
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        async for row in connection.cursor(
            f"SELECT {', '.join(COLUMNS)}, prev_hash, hash FROM audit.access_log ORDER BY seq", prefetch=5000
        ):
            yield row


async def verify(settings: Settings) -> tuple[int, Broken | None]:
    chain = Chain()
    connection = await asyncpg.connect(database.dsn(settings, database.AUDITOR))
    try:
        async with contextlib.aclosing(_rows(connection)) as rows:
            async for row in rows:
                if (broken := chain.check(row)) is not None:
                    return chain.checked, broken
    finally:
        await connection.close()
    return chain.checked, None


async def report(settings: Settings, person: str) -> list[asyncpg.Record]:
    """Every logged access that concerns ``person``, oldest first."""
    connection = await asyncpg.connect(database.dsn(settings, database.AUDITOR))
    try:
        rows: list[asyncpg.Record] = await connection.fetch(
            f"SELECT {', '.join(COLUMNS)} FROM audit.access_log WHERE keys @> ARRAY[$1::text] ORDER BY seq", person
        )
        return rows
    finally:
        await connection.close()


def main(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "verify":
        checked, broken = asyncio.run(verify(settings))
        if broken is not None:
            print(f"audit log BROKEN at row {broken.seq}: {broken.why} ({checked} row(s) read)", file=sys.stderr)
            return 1
        print(f"audit log intact: {checked} row(s), every hash chained")
        return 0
    if not (args.person or args.nik):
        print("satubus audit report: say whose: --person <person_id> or --nik <NIK>", file=sys.stderr)
        return 2
    subject = args.person or _person_of(args.nik, settings)
    if subject is None:
        return 2
    rows = asyncio.run(report(settings, subject))
    for row in rows:
        if args.json:
            print(json.dumps({name: row[name] for name in COLUMNS if name != "keys"}, default=str, sort_keys=True))
        else:
            print(
                f"{row['at']:%Y-%m-%d %H:%M:%S} UTC  {row['principal']}  purpose {row['purpose']}  {row['action']}  "
                f"{row['entity']} fields: {', '.join(row['fields']) or '-'}  from {row['client']}"
                + (f"  ({row['detail']})" if row["detail"] else "")
            )
    print(f"{len(rows)} access(es) to person {subject[:12]}…", file=sys.stderr)
    return 0


def _person_of(nik: str, settings: Settings) -> str | None:
    try:
        parse_nik(nik)
    except InvalidNik as exc:
        print(f"satubus audit report: {exc}", file=sys.stderr)
        return None
    return person_id(pseudonym_key.load(settings).secret, nik)
