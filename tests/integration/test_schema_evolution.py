"""The registry workflow against the real registry: what it accepts, what it refuses, and why."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from satubus.registry import check_contract, diff_contract, register_contract, registry_client
from satubus.schemas.compatibility import Level
from satubus.schemas.topics import TopicContract, TopicName
from satubus.serde import AvroSerde
from satubus.settings import Settings
from tests.integration.conftest import process_env

V1: dict[str, Any] = {
    "type": "record",
    "name": "Evolving",
    "namespace": "test.evolution",
    "doc": "A record whose schema evolves in the test.",
    "fields": [
        {"name": "id", "type": "string", "doc": "Key."},
        {"name": "amount", "type": "long", "doc": "A required number."},
    ],
}
OPTIONAL = {"name": "note", "type": ["null", "string"], "default": None, "doc": "Added later, optional."}


def contract(schema: dict[str, Any], level: Level, topic: str) -> TopicContract:
    return TopicContract(TopicName(topic), partial(dict, schema), compatibility=level)


@pytest.fixture
def registry(bus: Settings) -> Iterator[SchemaRegistryClient]:
    with registry_client(bus, admin=True) as client:
        yield client


@pytest.fixture
def topic(registry: SchemaRegistryClient) -> Iterator[str]:
    name = f"test.evolution.{uuid.uuid4().hex[:12]}"
    yield name
    with contextlib.suppress(SchemaRegistryError):  # never registered
        registry.delete_subject(f"{name}-value")
        registry.delete_subject(f"{name}-value", permanent=True)


def test_an_optional_field_is_accepted_and_old_readers_read_new_data(
    registry: SchemaRegistryClient, topic: str
) -> None:
    assert register_contract(registry, contract(V1, "FULL_TRANSITIVE", topic)).status == "registered"
    v2 = V1 | {"fields": [*V1["fields"], OPTIONAL]}
    report = check_contract(registry, contract(v2, "FULL_TRANSITIVE", topic))
    assert (report.status, report.details) == ("compatible", ["+ note: null|string (with default null)"])
    assert register_contract(registry, contract(v2, "FULL_TRANSITIVE", topic)).status == "registered"

    serde = AvroSerde(registry)  # the fixture closes the client
    data = serde.encode(f"{topic}-value", v2, {"id": "x", "amount": 5, "note": "new field"})
    assert serde.decode(data, f"{topic}-value", reader=V1) == {"id": "x", "amount": 5}  # an old reader
    assert serde.decode(data, f"{topic}-value") == {"id": "x", "amount": 5, "note": "new field"}


def test_removing_a_required_field_is_refused_with_the_reason(registry: SchemaRegistryClient, topic: str) -> None:
    register_contract(registry, contract(V1, "FULL_TRANSITIVE", topic))
    without_amount = V1 | {"fields": V1["fields"][:1]}
    checked = check_contract(registry, contract(without_amount, "FULL_TRANSITIVE", topic))
    assert checked.status == "incompatible"
    assert checked.details[0] == "the registry refuses it; FULL_TRANSITIVE checker:"
    assert any("readers on version 1 cannot read new data" in d and "amount" in d for d in checked.details)
    refused = register_contract(registry, contract(without_amount, "FULL_TRANSITIVE", topic))
    assert refused.status == "refused" and not refused.ok
    assert "Incompatible" in refused.details[0] and "amount" in refused.details[0]  # the registry's own words
    assert "- amount: long" in refused.details


def test_changing_a_type_is_refused_with_both_types_named(registry: SchemaRegistryClient, topic: str) -> None:
    register_contract(registry, contract(V1, "BACKWARD", topic))
    changed = V1 | {"fields": [V1["fields"][0], V1["fields"][1] | {"type": "string"}]}
    refused = register_contract(registry, contract(changed, "BACKWARD", topic))
    assert refused.status == "refused"
    assert any("reader type: string not compatible with writer type: long" in d for d in refused.details)
    assert "~ amount: long -> string" in refused.details


def test_a_required_field_without_default_breaks_backward(registry: SchemaRegistryClient, topic: str) -> None:
    register_contract(registry, contract(V1, "BACKWARD", topic))
    required = V1 | {"fields": [*V1["fields"], {"name": "region", "type": "string", "doc": "No default."}]}
    refused = register_contract(registry, contract(required, "BACKWARD", topic))
    assert refused.status == "refused"
    assert any("reader_field_missing_default_value" in d for d in refused.details)


def test_a_schema_that_is_not_avro_is_invalid_before_the_registry_is_asked(
    registry: SchemaRegistryClient, topic: str
) -> None:
    typo = V1 | {"fields": [V1["fields"][0], V1["fields"][1] | {"type": "lnog"}]}
    checked = check_contract(registry, contract(typo, "BACKWARD", topic))
    assert checked.status == "invalid" and not checked.ok
    assert checked.details[0].startswith("not a valid Avro schema:") and "lnog" in checked.details[0]


def test_diff_lists_field_changes_against_the_registry(registry: SchemaRegistryClient, topic: str) -> None:
    assert diff_contract(registry, contract(V1, "BACKWARD", topic)).status == "new"
    register_contract(registry, contract(V1, "BACKWARD", topic))
    assert diff_contract(registry, contract(V1, "BACKWARD", topic)).status == "unchanged"
    v2 = V1 | {"fields": [*V1["fields"], OPTIONAL]}
    assert diff_contract(registry, contract(v2, "BACKWARD", topic)).details == [
        "+ note: null|string (with default null)"
    ]


def test_the_command_checks_every_contract_and_exits_zero_when_all_are_registered(bus: Settings) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("satubus")), "schemas", "check"],
        capture_output=True,
        text=True,
        timeout=300,
        env=process_env(bus),  # the suite's namespace, whose subjects the suite registered
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("unchanged")
