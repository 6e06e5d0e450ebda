"""The schema registry: a client for the Confluent-compatible API and the registration of our contracts."""

from __future__ import annotations

import json
import logging

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from satubus.settings import Settings
from schemas.errors import SchemaError
from schemas.topics import all_contracts

log = logging.getLogger(__name__)


def registry_client(settings: Settings) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": settings.registry_url})


def register_contracts(client: SchemaRegistryClient) -> dict[str, int]:
    """Register the schema of every topic contract under its subject; returns subject -> schema id.

    Registering a schema the subject already holds is a no-op that returns the same id.
    """
    ids: dict[str, int] = {}
    for contract in all_contracts():
        if contract.schema is None:
            continue
        schema = Schema(json.dumps(contract.schema()), "AVRO")
        try:
            ids[contract.subject] = client.register_schema(contract.subject, schema)
        except SchemaRegistryError as exc:
            raise SchemaError(
                f"the registry refused the schema of {contract.subject!r}: {exc.error_message} "
                f"(HTTP {exc.http_status_code}, code {exc.error_code})"
            ) from exc
        log.debug("subject %s -> schema id %d", contract.subject, ids[contract.subject])
    return ids
