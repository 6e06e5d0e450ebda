"""The registry workflow: check, register and diff every topic contract against the schema registry.

The registry decides; this module asks it and explains its answers. Apicurio's ccompat API answers a
compatibility test with a bare ``is_compatible`` (even with ``verbose=true``), so the reasons shown to people come
from the ``avro`` package's reader/writer checker (schemas/compatibility.py), run at the subject's own level. A
schema is incompatible when either of them says so; the report says which.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from confluent_kafka.schema_registry import ConfigCompatibilityLevel, Schema, SchemaRegistryClient, ServerConfig
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro import parse_schema
from fastavro.schema import SchemaParseException

from satubus.schemas.compatibility import field_changes, incompatibilities, same, undocumented
from satubus.schemas.errors import SchemaError
from satubus.schemas.topics import TopicContract
from satubus.secrets import LocalSecrets
from satubus.settings import Settings

Status = Literal["new", "unchanged", "compatible", "incompatible", "invalid", "registered", "refused"]
SUBJECT_NOT_FOUND = 40401


def registry_client(settings: Settings, *, admin: bool = False) -> SchemaRegistryClient:
    """Anonymous (reads only), or as the registry's administrator, who may register schemas and set rules."""
    config: dict[str, Any] = {"url": settings.registry_url, "timeout": settings.registry_timeout}
    if admin:
        config["basic.auth.user.info"] = ":".join(registry_admin(settings))
    return SchemaRegistryClient(config)


def registry_admin(settings: Settings) -> tuple[str, str]:
    """The administrator's user name and password: from the settings, else from the local stack's secrets."""
    user = settings.registry_admin_username
    if settings.registry_admin_password is not None:
        return user, settings.registry_admin_password.get_secret_value()
    password = LocalSecrets(settings.secrets_dir).get("registry", user)
    if password is None:
        raise SchemaError(
            "registering schemas needs the registry's administrator: set SATUBUS_REGISTRY_ADMIN_USERNAME and "
            "SATUBUS_REGISTRY_ADMIN_PASSWORD (on the local stack, `satubus stack up` keeps it in "
            f"{settings.secrets_dir})"
        )
    return user, password


def require_registry(settings: Settings) -> None:
    """Fail with what to do when the registry does not answer, instead of a client library's traceback."""
    try:
        with urllib.request.urlopen(f"{settings.registry_url}/subjects", timeout=settings.registry_timeout):
            pass
    except urllib.error.HTTPError as exc:
        raise SchemaError(
            f"the schema registry at {settings.registry_url} answers HTTP {exc.code}: check SATUBUS_REGISTRY_URL "
            "(it ends in /apis/ccompat/v7 for Apicurio)"
        ) from exc
    except OSError as exc:
        raise SchemaError(
            f"the schema registry at {settings.registry_url} does not answer ({exc}): start the local stack with "
            "`satubus stack up`, or set SATUBUS_REGISTRY_URL"
        ) from exc


@dataclass
class SubjectReport:
    subject: str
    status: Status
    details: list[str] = field(default_factory=list)
    schema_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.status not in ("incompatible", "invalid", "refused")

    def __str__(self) -> str:
        head = f"{self.subject}: {self.status}" + (f" (schema id {self.schema_id})" if self.schema_id else "")
        return "\n".join([head, *(f"    {line}" for line in self.details)])


def registered_versions(client: SchemaRegistryClient, subject: str) -> list[dict[str, Any]]:
    """Every version the registry holds for ``subject``, oldest first; empty for a new subject."""
    try:
        versions = client.get_versions(subject)
    except SchemaRegistryError as exc:
        if exc.error_code == SUBJECT_NOT_FOUND or exc.http_status_code == 404:
            return []
        raise
    schemas = []
    for version in sorted(versions):
        text = client.get_version(subject, version).schema.schema_str
        schemas.append(json.loads(text or "null"))
    return schemas


def check_contract(client: SchemaRegistryClient, contract: TopicContract) -> SubjectReport:
    schema = contract.value_schema()
    try:
        parse_schema(schema)
    except (SchemaParseException, ValueError, TypeError, KeyError) as exc:
        return SubjectReport(contract.subject, "invalid", [f"not a valid Avro schema: {exc}"])
    missing = undocumented(schema)
    if missing:
        return SubjectReport(contract.subject, "invalid", [f"no doc: {path}" for path in missing])
    history = registered_versions(client, contract.subject)
    if not history:
        return SubjectReport(contract.subject, "new")
    if same(history[-1], schema):
        return SubjectReport(contract.subject, "unchanged")
    try:
        registry_accepts = client.test_compatibility_all_versions(contract.subject, Schema(json.dumps(schema), "AVRO"))
    except SchemaRegistryError as exc:
        return SubjectReport(
            contract.subject, "invalid", [f"registry: {exc.error_message} (HTTP {exc.http_status_code})"]
        )
    reasons = incompatibilities(contract.compatibility, schema, history)
    changes = field_changes(history[-1], schema)
    if reasons or not registry_accepts:
        verdict = f"the registry {'accepts' if registry_accepts else 'refuses'} it; {contract.compatibility} checker:"
        reasons = reasons or ["finds no reason (the registry gives none; the subject's level may differ)"]
        return SubjectReport(contract.subject, "incompatible", [verdict, *reasons, *changes])
    return SubjectReport(contract.subject, "compatible", changes)


def register_contract(client: SchemaRegistryClient, contract: TopicContract) -> SubjectReport:
    """Set the subject's compatibility level, then register its schema (a no-op when already registered)."""
    schema = contract.value_schema()
    client.set_config(contract.subject, _config(contract.compatibility))
    try:
        schema_id = client.register_schema(contract.subject, Schema(json.dumps(schema), "AVRO"))
    except SchemaRegistryError as exc:
        history = registered_versions(client, contract.subject)
        reasons = incompatibilities(contract.compatibility, schema, history)
        return SubjectReport(
            contract.subject,
            "refused",
            [
                f"registry: {exc.error_message} (HTTP {exc.http_status_code})",
                *reasons,
                *field_changes(history[-1], schema),
            ]
            if history
            else [f"registry: {exc.error_message} (HTTP {exc.http_status_code})"],
        )
    return SubjectReport(contract.subject, "registered", schema_id=schema_id)


def diff_contract(client: SchemaRegistryClient, contract: TopicContract) -> SubjectReport:
    history = registered_versions(client, contract.subject)
    if not history:
        return SubjectReport(contract.subject, "new", ["not in the registry yet"])
    changes = field_changes(history[-1], contract.value_schema())
    if not changes and not same(history[-1], contract.value_schema()):
        changes = ["nested types, docs or defaults changed"]
    return SubjectReport(contract.subject, "unchanged" if not changes else "compatible", changes)


def register_contracts(client: SchemaRegistryClient, contracts: Iterable[TopicContract]) -> dict[str, int]:
    """Register every contract that has a schema; raises ``SchemaError`` listing each subject the registry
    refused."""
    reports = [register_contract(client, c) for c in contracts if c.schema is not None]
    refused = [r for r in reports if not r.ok]
    if refused:
        raise SchemaError("the registry refused:\n" + "\n".join(str(r) for r in refused))
    return {r.subject: r.schema_id for r in reports if r.schema_id is not None}


def _config(level: str) -> ServerConfig:
    return ServerConfig(compatibility=ConfigCompatibilityLevel(level))
