"""Plain, versioned SQL migrations (``consumers/migrations/NNNN_name.sql``), each applied once, in order."""

from __future__ import annotations

import logging
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_LOCK_ID = 0x5A7B_0001  # advisory lock: two migrators never interleave

log = logging.getLogger(__name__)


async def migrate(dsn: str) -> list[str]:
    """Apply the migrations not yet applied; returns their names."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS public.schema_migrations "
            "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM public.schema_migrations")}
        applied = []
        for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
            if path.name in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text(encoding="utf-8"))
                await conn.execute("INSERT INTO public.schema_migrations (name) VALUES ($1)", path.name)
            log.info("applied migration %s", path.name)
            applied.append(path.name)
        return applied
    finally:
        await conn.close()


async def pending(dsn: str) -> list[str]:
    """The migrations not applied to the database yet, in order (all of them before the first)."""
    conn = await asyncpg.connect(dsn)
    try:
        done = {r["name"] for r in await conn.fetch("SELECT name FROM public.schema_migrations")}
    except (asyncpg.UndefinedTableError, asyncpg.InsufficientPrivilegeError):  # never migrated
        done = set()
    finally:
        await conn.close()
    return [path.name for path in sorted(MIGRATIONS_DIR.glob("*.sql")) if path.name not in done]


async def recreate(dsn: str) -> list[str]:
    """Drop the database ``dsn`` names, create it empty and migrate it: for tests and benchmarks only."""
    server, name = dsn.rsplit("/", 1)
    conn = await asyncpg.connect(f"{server}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')  # owned by the connecting user, the owner
    finally:
        await conn.close()
    return await migrate(dsn)
