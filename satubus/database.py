"""Who connects to PostgreSQL: one login per process, with the least it needs (migrations run as the owner).

``SATUBUS_DATABASE_URL`` names the server and database. When it carries a password, it is used as it is: a
deployment gives each process its own URL. Without one (the local stack), each process replaces the URL's user by
its own login and takes that login's password from the local stack's secrets; the URL's user is the owner.

Logins, and the group roles whose privileges they get (consumers/migrations/0008_process_logins.sql, 0009, 0010):
  satubus_materializer      satubus_writer: writes the unified view and the bus's bookkeeping, never clear NIKs;
  satubus_nik_materializer  satubus_nik_writer: writes restricted.person_nik and its offsets, nothing else;
  satubus_api               satubus_reader: reads the unified view and the scoreboard's counts, not restricted.*;
  satubus_nik_api           satubus_restricted: what satubus_api reads, and the clear NIKs (the API's restricted
                            lookup only);
  satubus_gateway           satubus_token_reader: reads the digests of the agencies' tokens and the blocks;
  satubus_auditor           satubus_audit_reader: reads the audit log (audit.access_log), nothing else;
  satubus_registry          owns the schema registry's database, and nothing in the bus's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol
from urllib.parse import quote, urlsplit

import asyncpg

from satubus.errors import ConfigurationError
from satubus.secrets import LocalSecrets
from satubus.settings import Settings

log = logging.getLogger(__name__)

MATERIALIZER = "satubus_materializer"
NIK_MATERIALIZER = "satubus_nik_materializer"
API = "satubus_api"
NIK_API = "satubus_nik_api"
AUDITOR = "satubus_auditor"
GATEWAY = "satubus_gateway"
REGISTRY = "satubus_registry"
GROUPS = {
    MATERIALIZER: "satubus_writer",
    NIK_MATERIALIZER: "satubus_nik_writer",
    API: "satubus_reader",
    NIK_API: "satubus_restricted",
    AUDITOR: "satubus_audit_reader",
    GATEWAY: "satubus_token_reader",
}
LOGINS = (MATERIALIZER, NIK_MATERIALIZER, API, NIK_API, GATEWAY, AUDITOR, REGISTRY)


def owner(settings: Settings) -> str:
    return urlsplit(settings.database_url).username or "satubus"


def dsn(settings: Settings, login: str | None = None) -> str:
    """The URL to connect with as ``login`` (default: the owner, for migrations and set-up)."""
    parts = urlsplit(settings.database_url)
    if parts.password is not None:
        return settings.database_url
    user = login or owner(settings)
    password = LocalSecrets(settings.secrets_dir).get("postgres", user)
    if password is None:
        raise ConfigurationError(
            f"no PostgreSQL password for {user}: set SATUBUS_DATABASE_URL with this process's login and password "
            f"(postgresql://<login>:<password>@host:port/db), or on the local stack run `satubus stack up`, which "
            f"keeps every login's password in {settings.secrets_dir}"
        )
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


class View(Protocol):
    """What a process keeps in memory of a small table (tokens, keys, blocks), reloaded whole."""

    async def load(self, connection: asyncpg.Connection) -> None: ...


async def follow(view: View, url: str, every: float, stop: asyncio.Event, first: asyncio.Event, what: str) -> None:
    """Reload ``view`` every ``every`` seconds until ``stop``; ``first`` is set once the first read succeeded or
    failed. While PostgreSQL is unreachable the last view is kept (and logged): revocations wait for it, requests
    do not fail."""
    failing = False
    while not stop.is_set():
        try:
            connection = await asyncpg.connect(url, timeout=5)
            try:
                await view.load(connection)
            finally:
                await connection.close()
            if failing:
                log.info("%s are read from PostgreSQL again", what)
            failing = False
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            if not failing:
                log.warning("cannot read %s (%s); keeping the last ones read", what, exc)
            failing = True
        first.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
