"""Make the cluster's ACLs (and, on the local stack, its users) what ``satubus/access.py`` says.

``satubus acl plan`` prints the difference between the namespace's wanted ACLs and the cluster's; ``satubus acl
apply`` creates what is missing and deletes what is not wanted, and is idempotent. Only the namespace's own
principals' ACLs are compared, so another bus on the same cluster is never touched.
"""

from __future__ import annotations

import argparse
import asyncio
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import cast, get_args

import asyncpg
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._acl import AclBinding, AclBindingFilter, AclOperation, AclPermissionType
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType
from confluent_kafka.admin._scram import (
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from satubus import access, database
from satubus.access import Grant, Operation, Pattern, ResourceKind
from satubus.errors import BrokerUnavailable
from satubus.kafka import admin_client
from satubus.retry import retry
from satubus.secrets import LocalSecrets
from satubus.settings import Settings

SCRAM_ITERATIONS = 8192
TIMEOUT = 30.0


@dataclass
class Plan:
    add: set[Grant] = field(default_factory=set)
    remove: set[Grant] = field(default_factory=set)
    # ACLs of the namespace's principals of a kind the plan never makes (DENY, one host, another operation)
    stray: list[AclBinding] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.add or self.remove or self.stray)

    def lines(self) -> list[str]:
        strays = [
            f"- {b.principal} {_name(b.permission_type)} {_name(b.operation)} {_name(b.restype).lower()} {b.name} "
            f"(host {b.host}, {_name(b.resource_pattern_type).lower()})"
            for b in self.stray
        ]
        return [f"+ {g}" for g in sorted(self.add)] + [f"- {g}" for g in sorted(self.remove)] + strays


def _name(value: object) -> str:
    """An enum member's name (the admin client's types also allow its str or int)."""
    return str(getattr(value, "name", value))


def binding(grant: Grant, kind: type[AclBinding] = AclBinding) -> AclBinding:
    return kind(
        ResourceType[grant.resource_type],
        grant.resource,
        ResourcePatternType[grant.pattern],
        f"User:{grant.principal}",
        "*",
        AclOperation[grant.operation],
        AclPermissionType.ALLOW,
    )


def _grant(binding: AclBinding) -> Grant | None:
    """The binding as a Grant, or None if it is not of a kind the plan makes (then it is always unwanted)."""
    kind, pattern, operation = (_name(v) for v in (binding.restype, binding.resource_pattern_type, binding.operation))
    if kind not in get_args(ResourceKind) or pattern not in get_args(Pattern) or operation not in get_args(Operation):
        return None
    return Grant(
        binding.principal.removeprefix("User:"),
        cast(ResourceKind, kind),
        binding.name,
        cast(Pattern, pattern),
        cast(Operation, operation),
    )


def _current(admin: AdminClient, namespace: str) -> tuple[set[Grant], list[AclBinding]]:
    """The namespace's principals' ACLs on the cluster, and those among them the plan can never want."""
    everything = AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type]  # None matches any name, principal and host
        ResourcePatternType.ANY,
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    bindings = admin.describe_acls(everything, request_timeout=TIMEOUT).result()
    grants: set[Grant] = set()
    foreign: list[AclBinding] = []
    for binding in bindings:
        if not access.is_managed(namespace, binding.principal.removeprefix("User:")):
            continue
        grant = _grant(binding)
        if grant is None or binding.host != "*" or binding.permission_type != AclPermissionType.ALLOW:
            foreign.append(binding)
        else:
            grants.add(grant)
    return grants, foreign


def blocked_agencies(settings: Settings) -> frozenset[str]:
    """The agencies the province has blocked (``satubus agency block``); none while the bus's database is not
    there yet (a stack being set up)."""

    async def read() -> frozenset[str]:
        try:
            connection = await asyncpg.connect(database.dsn(settings), timeout=10)
        except asyncpg.InvalidCatalogNameError:  # no database yet
            return frozenset()
        try:
            return frozenset(r["agency"] for r in await connection.fetch("SELECT agency FROM bus.agency_blocks"))
        except asyncpg.UndefinedTableError:  # not migrated yet
            return frozenset()
        finally:
            await connection.close()

    return asyncio.run(read())


def plan(settings: Settings, admin: AdminClient | None = None) -> Plan:
    admin = admin or admin_client(settings)
    have, foreign = _current(admin, settings.namespace)
    wanted = access.grants(settings.namespace, blocked=blocked_agencies(settings))
    return Plan(add=wanted - have, remove=have - wanted, stray=foreign)


def apply(settings: Settings) -> Plan:
    """Make the cluster's ACLs of the namespace the wanted ones; returns what was changed."""
    admin = admin_client(settings)
    changes = plan(settings, admin)
    if changes.add:
        for future in admin.create_acls([binding(g) for g in sorted(changes.add)], request_timeout=TIMEOUT).values():
            future.result()
    filters = [cast(AclBindingFilter, binding(g, AclBindingFilter)) for g in sorted(changes.remove)]
    filters += [
        AclBindingFilter(
            b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation, b.permission_type
        )
        for b in changes.stray
    ]
    if filters:
        for future in admin.delete_acls(filters, request_timeout=TIMEOUT).values():
            future.result()
    return changes


# Errors of a connection, not of the request: a cluster that has just started replaces the bootstrap connection with
# one per broker and drops what was sent on it (_DESTROY_BROKER).
_CONNECTION_ERRORS = {KafkaError._DESTROY_BROKER, KafkaError._TRANSPORT, KafkaError._TIMED_OUT}


def set_password(admin: AdminClient, user: str, password: str) -> None:
    """Create the SCRAM-SHA-512 user, or change its password (an upsert: tried again while the connection fails)."""
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upsert = UserScramCredentialUpsertion(user, info, password.encode())

    def alter() -> None:
        try:
            for future in admin.alter_user_scram_credentials([upsert], request_timeout=TIMEOUT).values():
                future.result()
        except KafkaException as exc:
            error = exc.args[0]
            if error.retriable() or error.code() in _CONNECTION_ERRORS:
                raise BrokerUnavailable(f"Kafka did not set {user}'s password: {error.str()}") from exc
            raise

    retry(alter, what=f"setting the password of {user}")


def delete_user(admin: AdminClient, user: str) -> None:
    deletion = UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512)
    for future in admin.alter_user_scram_credentials([deletion], request_timeout=TIMEOUT).values():
        try:
            future.result()
        except KafkaException as exc:  # no such user: nothing to delete
            if "RESOURCE_NOT_FOUND" not in str(exc):
                raise


def existing_users(admin: AdminClient) -> set[str]:
    described = admin.describe_user_scram_credentials(request_timeout=TIMEOUT)
    assert isinstance(described, Future)  # one future when no users are named
    return set(described.result())


def provision_local(settings: Settings) -> tuple[list[str], Plan]:
    """On the local stack: every principal of the namespace gets a SCRAM user whose generated password is kept in
    the local secrets, then the ACLs are applied. Returns the users created and the ACL changes."""
    admin = admin_client(settings)
    secrets = LocalSecrets(settings.secrets_dir)
    users = existing_users(admin)
    created = []
    for user in access.principals(settings.namespace):
        if user not in users or secrets.get("kafka", user) is None:
            set_password(admin, user, secrets.ensure("kafka", user))
            created.append(user)
    return created, apply(settings)


def main(args: argparse.Namespace, settings: Settings) -> int:
    """``satubus acl plan|apply``: exit 0, or 2 from ``plan`` when the cluster differs (like ``terraform plan
    -detailed-exitcode``), so a CI job can fail on drift."""
    if args.action == "plan":
        changes = plan(settings)
        for line in changes.lines():
            print(line)
        print(f"{len(changes.add)} to add, {len(changes.remove) + len(changes.stray)} to remove")
        return 0 if changes.empty else 2
    changes = apply(settings)
    for line in changes.lines():
        print(line)
    print(f"added {len(changes.add)}, removed {len(changes.remove) + len(changes.stray)}; the cluster matches the plan")
    return 0
