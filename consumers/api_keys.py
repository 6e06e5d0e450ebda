"""The live API's callers: ``satubus api-key issue|revoke|list``, and the API's view of the keys.

A key (``sdb.<key id>.<secret>``, satubus/tokens.py) belongs to one calling application (``caller``, the principal
the audit log names) and carries its scopes (consumers/api_scopes.py). A key may also belong to an agency
(``--agency``; ``satubus agency onboard`` issues one): it reads that agency's own rejections. It is printed once,
when issued; PostgreSQL keeps its SHA-256 digest. The API reloads the keys every ``api_key_refresh_seconds``, so a
revoked or expired key is refused within seconds, without a database round trip per request.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import sys
from dataclasses import dataclass

import asyncpg

from satubus import database, tokens
from satubus.consumers.api_scopes import SCOPES, unknown_scopes
from satubus.schemas.catalogue import load_catalogue
from satubus.settings import Settings


@dataclass(frozen=True)
class Caller:
    name: str
    scopes: frozenset[str]
    key_id: str | None = None
    agency: str | None = None  # the agency whose rejections it may read


ANONYMOUS = Caller("anonymous", frozenset())


@dataclass(frozen=True)
class StoredKey:
    caller: str
    digest: bytes
    scopes: frozenset[str]
    expires_at: dt.datetime | None = None
    agency: str | None = None


class Keys:
    def __init__(self, stored: dict[str, StoredKey] | None = None) -> None:
        self._stored = stored or {}

    @classmethod
    def of(cls, issued: dict[str, tuple[tokens.Issued, frozenset[str]]]) -> Keys:
        """Keys given in hand (caller -> issued key and its scopes), for an API without a database (tests)."""
        return cls({t.token_id: StoredKey(name, t.digest, scopes) for name, (t, scopes) in issued.items()})

    def caller(self, key: str, now: dt.datetime | None = None) -> Caller | None:
        """Whose live key ``key`` is; None when it is nobody's, revoked or expired."""
        found = tokens.live(key, self._stored, now)
        if found is None:
            return None
        key_id, stored = found
        return Caller(stored.caller, stored.scopes, key_id, stored.agency)

    async def load(self, connection: asyncpg.Connection) -> None:
        rows = await connection.fetch(
            "SELECT key_id, caller, digest, scopes, expires_at, agency FROM bus.api_keys WHERE revoked_at IS NULL"
        )
        self._stored = {
            r["key_id"]: StoredKey(
                r["caller"], bytes(r["digest"]), frozenset(r["scopes"]), r["expires_at"], r["agency"]
            )
            for r in rows
        }


async def follow(view: Keys, settings: Settings, stop: asyncio.Event, first: asyncio.Event) -> None:
    url = database.dsn(settings, database.API)
    await database.follow(view, url, settings.api_key_refresh_seconds, stop, first, "the API's keys")


async def issue(
    settings: Settings,
    caller: str,
    scopes: frozenset[str],
    by: str,
    expires: dt.datetime | None = None,
    agency: str | None = None,
) -> tokens.Issued:
    """A new key of ``caller`` with ``scopes`` (and of ``agency``, if given); only its digest is stored."""
    if unknown := unknown_scopes(scopes):
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; the scopes are {', '.join(SCOPES)}")
    issued = tokens.issue()
    connection = await asyncpg.connect(database.dsn(settings))
    try:
        await connection.execute(
            "INSERT INTO bus.api_keys (key_id, caller, digest, scopes, created_by, expires_at, agency) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            issued.token_id,
            caller,
            issued.digest,
            sorted(scopes),
            by,
            expires,
            agency,
        )
    finally:
        await connection.close()
    return issued


def main(args: argparse.Namespace, settings: Settings) -> int:
    by = args.by or getpass.getuser()
    if args.caller is None and args.action != "list":
        print(f"satubus api-key {args.action}: name the caller, e.g. dinsos-bansos-app", file=sys.stderr)
        return 2
    if args.action == "issue":
        if unknown := unknown_scopes(args.scope):
            print(f"satubus api-key: unknown scope(s) {', '.join(unknown)}; use {', '.join(SCOPES)}", file=sys.stderr)
            return 2
        expires = None if args.expires_in is None else dt.datetime.now(dt.UTC) + dt.timedelta(days=args.expires_in)
        if args.agency is not None and args.agency not in {a.code for a in load_catalogue()}:
            print(f"satubus api-key: no agency {args.agency!r} in the catalogue", file=sys.stderr)
            return 2
        issued = asyncio.run(issue(settings, args.caller, frozenset(args.scope), by, expires, args.agency))
        print(f"API key of {args.caller}, shown this once (only its digest is kept):")
        print(f"  Authorization: Bearer {issued.token}")
        print(f"  key id {issued.token_id}, scopes {' '.join(sorted(args.scope)) or '(public only)'}")
        if args.agency is not None:
            print(f"  reads the rejections of agency {args.agency}")
        return 0
    if args.action == "revoke":
        revoked = asyncio.run(_revoke(settings, args.caller, args.key, by))
        print(f"revoked {revoked} key(s) of {args.caller}")
        return 0 if revoked else 1
    for row in asyncio.run(_list(settings, args.caller)):
        state = "revoked" if row["revoked_at"] else (f"expires {row['expires_at']}" if row["expires_at"] else "live")
        agency = f"  agency {row['agency']}" if row["agency"] else ""
        print(
            f"{row['key_id']}  {row['caller']}{agency}  {' '.join(row['scopes'])}  "
            f"issued {row['created_at']:%Y-%m-%d %H:%M} by {row['created_by']}  {state}"
        )
    return 0


async def _revoke(settings: Settings, caller: str, key_id: str | None, by: str) -> int:
    connection = await asyncpg.connect(database.dsn(settings))
    try:
        status = await connection.execute(
            "UPDATE bus.api_keys SET revoked_at = clock_timestamp(), revoked_by = $3 "
            "WHERE caller = $1 AND ($2::text IS NULL OR key_id = $2) AND revoked_at IS NULL",
            caller,
            key_id,
            by,
        )
    finally:
        await connection.close()
    return int(status.rsplit(" ", 1)[1])


async def _list(settings: Settings, caller: str | None) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(database.dsn(settings))
    try:
        rows: list[asyncpg.Record] = await connection.fetch(
            "SELECT * FROM bus.api_keys WHERE $1::text IS NULL OR caller = $1 ORDER BY caller, created_at", caller
        )
        return rows
    finally:
        await connection.close()
