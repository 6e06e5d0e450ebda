"""Which agency a bearer token belongs to: the gateway's view of bus.gateway_tokens and bus.agency_blocks.

The gateway reads both tables every ``gateway_token_refresh_seconds`` (its own login may read nothing else), so a
token revoked, expired or of an agency just blocked is refused within seconds, without a database round trip per
request. While PostgreSQL is unreachable the last view is kept (and logged): revocations wait for it, requests do
not fail.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

import asyncpg

from satubus import database, tokens
from satubus.settings import Settings


@dataclass(frozen=True)
class StoredToken:
    agency: str
    digest: bytes
    expires_at: dt.datetime | None = None


class Tokens:
    def __init__(self, stored: dict[str, StoredToken] | None = None, blocked: frozenset[str] = frozenset()) -> None:
        self._stored = stored or {}
        self._blocked = blocked
        self.loaded = stored is not None  # False until read once: every token is refused meanwhile

    @classmethod
    def of(cls, issued: dict[str, tokens.Issued]) -> Tokens:
        """Tokens given in hand (agency -> issued token), for a gateway without a database (tests)."""
        return cls({t.token_id: StoredToken(agency, t.digest) for agency, t in issued.items()})

    def agency_of(self, token: str, now: dt.datetime | None = None) -> str | None:
        """The agency of a live token of an agency that is not blocked; else None."""
        found = tokens.live(token, self._stored, now)
        if found is None:
            return None
        agency = found[1].agency
        return None if agency in self._blocked else agency

    async def load(self, connection: asyncpg.Connection) -> None:
        rows = await connection.fetch(
            "SELECT token_id, agency, digest, expires_at FROM bus.gateway_tokens WHERE revoked_at IS NULL"
        )
        blocked = await connection.fetch("SELECT agency FROM bus.agency_blocks")
        self._stored = {r["token_id"]: StoredToken(r["agency"], bytes(r["digest"]), r["expires_at"]) for r in rows}
        self._blocked = frozenset(r["agency"] for r in blocked)
        self.loaded = True


async def follow(view: Tokens, settings: Settings, stop: asyncio.Event, first: asyncio.Event) -> None:
    """Keep ``view`` current until ``stop``; ``first`` is set once the first read succeeded or failed."""
    url = database.dsn(settings, database.GATEWAY)
    every = settings.gateway_token_refresh_seconds
    await database.follow(view, url, every, stop, first, "the gateway's tokens")
