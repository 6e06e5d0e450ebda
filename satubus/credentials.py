"""``satubus agency onboard <code>``, ``satubus agency credentials issue|rotate|revoke|list <code>`` and
``satubus agency block|unblock <code>``. ``onboard`` issues credentials and prints, in Bahasa Indonesia, what the
agency's IT staff need: the credentials, the addresses, the topics they may write and the first commands.

An agency has one Kafka identity (``agency-<code>``: a SCRAM-SHA-512 user that may write only its own topics) and
any number of gateway tokens. Both are printed once, when issued; Kafka keeps a salted SCRAM verifier, PostgreSQL
the token's digest, nobody the secret. Several tokens may be live at once, so a rotation has overlap: the old
tokens stay valid for ``--old-valid-for`` hours (a SCRAM user has one password, so its rotation has none: the new
password works at once and the old one stops).

A block is the province's central switch: the agency's ACLs are removed (its next publish is refused), the gateway
refuses its tokens, and the scoreboard shows it as blocked, with who and why. ``unblock`` restores both; tokens
revoked in the meantime stay revoked.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import secrets
import sys
from typing import Any

import asyncpg

from satubus import access, acl, database, tokens
from satubus.consumers import api_keys
from satubus.kafka import admin_client
from satubus.schemas.catalogue import Agency
from satubus.schemas.catalogue import agency as catalogue_agency
from satubus.schemas.topics import agency_topic
from satubus.secrets import LocalSecrets
from satubus.settings import Settings


def main(args: argparse.Namespace, settings: Settings) -> int:
    try:
        catalogue_agency(args.code)
    except KeyError as exc:
        print(f"satubus agency: {exc.args[0]}", file=sys.stderr)
        return 2
    by = args.by or getpass.getuser()
    if args.command_group == "onboard":
        return _onboard(args, settings, by)
    if args.command_group == "credentials":
        return _credentials(args, settings, by)
    if args.action == "block":
        asyncio.run(_execute(settings, BLOCK, args.code, by, args.reason))
    else:
        asyncio.run(_execute(settings, "DELETE FROM bus.agency_blocks WHERE agency = $1", args.code))
    changes = acl.apply(settings)
    state = "blocked" if args.action == "block" else "unblocked"
    print(f"{args.code} {state} by {by}: {len(changes.remove)} ACL(s) removed, {len(changes.add)} added")
    return 0


BLOCK = """
INSERT INTO bus.agency_blocks (agency, blocked_by, reason) VALUES ($1, $2, $3)
ON CONFLICT (agency) DO UPDATE SET blocked_at = clock_timestamp(), blocked_by = $2, reason = $3
"""


def _credentials(args: argparse.Namespace, settings: Settings, by: str) -> int:
    user = access.principal(settings.namespace, access.agency_principal(args.code))
    if args.action == "list":
        for row in asyncio.run(_fetch(settings, args.code)):
            state = (
                "revoked"
                if row["revoked_at"]
                else ("expires " + str(row["expires_at"]) if row["expires_at"] else "live")
            )
            print(f"{row['token_id']}  issued {row['created_at']:%Y-%m-%d %H:%M} by {row['created_by']}  {state}")
        return 0
    if args.action == "revoke":
        if args.token:
            revoked = asyncio.run(
                _execute(settings, REVOKE + " AND token_id = $3", args.code, by, args.token, result=True)
            )
            print(f"revoked {revoked} token(s) of {args.code}")
            return 0 if revoked else 1
        revoked = asyncio.run(_execute(settings, REVOKE, args.code, by, result=True))
        acl.delete_user(admin_client(settings), user)
        _forget_local(settings, user)
        print(f"revoked {revoked} token(s) of {args.code} and deleted its Kafka user {user}")
        return 0
    expires = None if args.expires_in is None else _now() + dt.timedelta(days=args.expires_in)
    if args.action == "rotate":
        asyncio.run(
            _execute(
                settings,
                "UPDATE bus.gateway_tokens SET expires_at = LEAST(COALESCE(expires_at, $2), $2) "
                "WHERE agency = $1 AND revoked_at IS NULL",
                args.code,
                _now() + dt.timedelta(hours=args.old_valid_for),
            )
        )
    password = secrets.token_urlsafe(24)
    acl.set_password(admin_client(settings), user, password)
    issued = asyncio.run(add_token(settings, args.code, by, expires))
    local = _update_local(settings, user, password)
    print(f"Credentials of {args.code}, shown this once (only their digests are kept):")
    print(f"  Kafka   SATUBUS_KAFKA_USERNAME={user}")
    print(f"          SATUBUS_KAFKA_PASSWORD={password}")
    print(f"  gateway Authorization: Bearer {issued.token}")
    print(f"          token id {issued.token_id}" + (f", expires {expires:%Y-%m-%d %H:%M} UTC" if expires else ""))
    if args.action == "rotate":
        print(f"  the older tokens stay valid for {args.old_valid_for} h; the old Kafka password no longer works")
    if local:
        print(f"  (the local stack's processes now use the new Kafka password, from {settings.secrets_dir})")
    return 0


def _onboard(args: argparse.Namespace, settings: Settings, by: str) -> int:
    """Issue the agency's first credentials (or new ones) and print what its IT staff need, in Bahasa Indonesia."""
    user = access.principal(settings.namespace, access.agency_principal(args.code))
    password = secrets.token_urlsafe(24)
    acl.set_password(admin_client(settings), user, password)
    acl.apply(settings)  # its topics' ACLs, if the agency is new to the cluster
    issued = asyncio.run(add_token(settings, args.code, by))
    reader = asyncio.run(api_keys.issue(settings, f"agency-{args.code}", frozenset(), by, agency=args.code))
    _update_local(settings, user, password)
    print(onboarding_sheet(catalogue_agency(args.code), settings, user, password, issued, reader))
    return 0


def onboarding_sheet(
    agency: Agency, settings: Settings, user: str, password: str, issued: tokens.Issued, reader: tokens.Issued
) -> str:
    """What an agency's IT staff need to publish, in Bahasa Indonesia: credentials (shown once), addresses, their
    topics, how to read what the bus rejected (``reader``: the agency's API key), and the first commands."""
    gateway = f"http://{settings.gateway_host}:{settings.gateway_port}"
    api = f"http://{settings.api_host}:{settings.api_port}"
    topics = (
        "\n".join(f"    {settings.topic(agency_topic(agency.code, d))}" for d in agency.datasets) or "    (belum ada)"
    )
    dataset = agency.datasets[0] if agency.datasets else "<dataset>"
    return f"""\
Lembar orientasi {agency.name} ({agency.code}) untuk Satu Data Bus
Kredensial di bawah ini hanya ditampilkan SEKALI: simpan di tempat aman (yang disimpan bus hanya digest-nya).

1. Gateway HTTP (untuk sistem yang tidak memakai klien Kafka)
   Alamat : {gateway}/v1/agencies/{agency.code}/datasets/<dataset>/events
   Header : Authorization: Bearer {issued.token}
   (id token {issued.token_id}; minta token baru kepada operator bus bila bocor)

2. Kafka (untuk sistem yang memakai klien Kafka)
   Bootstrap : {settings.kafka_bootstrap}   (TLS, SASL SCRAM-SHA-512)
   Username  : {user}
   Password  : {password}
   Topic yang boleh Anda tulis:
{topics}

3. Event yang ditolak bus (alasan per event, hanya milik instansi Anda)
   Alamat : {api}/v1/agencies/{agency.code}/rejections
   Header : Authorization: Bearer {reader.token}
   (id kunci API {reader.token_id}; kunci ini hanya membaca penolakan {agency.code})

4. Langkah pertama
   satubus dataset init {agency.code} <dataset> --sample contoh.csv     (dataset baru dari contoh data)
   satubus upload --agency {agency.code} --dataset {dataset} --key <kolom kunci> data.csv
   Status integrasi Anda: {api}/  (papan skor)

Panduan lengkap: docs/id/onboarding.md, docs/id/gateway-and-upload.md, docs/id/rejections.md
"""


async def add_token(settings: Settings, agency: str, by: str, expires: dt.datetime | None = None) -> tokens.Issued:
    """A new gateway token of ``agency``; only its digest is stored."""
    issued = tokens.issue()
    await _execute(
        settings,
        "INSERT INTO bus.gateway_tokens (token_id, agency, digest, created_by, expires_at) VALUES ($1, $2, $3, $4, $5)",
        issued.token_id,
        agency,
        issued.digest,
        by,
        expires,
    )
    return issued


REVOKE = (
    "UPDATE bus.gateway_tokens SET revoked_at = clock_timestamp(), revoked_by = $2 "
    "WHERE agency = $1 AND revoked_at IS NULL"
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _update_local(settings: Settings, user: str, password: str) -> bool:
    """On the local stack, whose processes find their passwords in its secrets: keep them working."""
    local = LocalSecrets(settings.secrets_dir)
    if local.get("kafka", user) is None:
        return False
    local.put("kafka", user, password)
    return True


def _forget_local(settings: Settings, user: str) -> None:
    LocalSecrets(settings.secrets_dir).remove("kafka", user)


async def _execute(settings: Settings, sql: str, *values: Any, result: bool = False) -> int:
    connection = await asyncpg.connect(database.dsn(settings))
    try:
        status = await connection.execute(sql, *values)
    finally:
        await connection.close()
    return int(status.rsplit(" ", 1)[1]) if result else 0


async def _fetch(settings: Settings, agency: str) -> list[Any]:
    connection = await asyncpg.connect(database.dsn(settings))
    try:
        rows: list[Any] = await connection.fetch(
            "SELECT * FROM bus.gateway_tokens WHERE agency = $1 ORDER BY created_at", agency
        )
        return rows
    finally:
        await connection.close()
