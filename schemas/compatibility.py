"""Schema checks that need no registry: documentation, and why one schema cannot read another's data.

Compatibility levels follow the Confluent names. BACKWARD: the new schema reads data written with the old one
(consumers upgrade first). FORWARD: the old schema reads data written with the new one (downstream readers lag).
FULL: both. ``_TRANSITIVE``: against every registered version, not only the latest.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import avro.schema
import fastavro
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

Level = Literal["BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"]


def undocumented(schema: Any, path: str = "") -> list[str]:
    """Paths of every record, field and enum in ``schema`` that has no ``doc``."""
    missing: list[str] = []
    if isinstance(schema, list):
        for branch in schema:
            missing += undocumented(branch, path)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind == "record":
            here = f"{path}/{schema['name']}" if path else schema["name"]
            if not schema.get("doc"):
                missing.append(here)
            for field in schema["fields"]:
                if not field.get("doc"):
                    missing.append(f"{here}.{field['name']}")
                missing += undocumented(field["type"], f"{here}.{field['name']}")
        elif kind == "enum":
            if not schema.get("doc"):
                missing.append(f"{path}:{schema['name']}")
        elif kind == "array":
            missing += undocumented(schema["items"], path)
        elif kind == "map":
            missing += undocumented(schema["values"], path)
        elif isinstance(kind, dict | list):
            missing += undocumented(kind, path)
    return missing


def unreadable(reader: dict[str, Any], writer: dict[str, Any]) -> list[str]:
    """Why data written with ``writer`` cannot be read with ``reader``; empty when it can."""
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(_parse(reader), _parse(writer))
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    kinds = ", ".join(sorted(i.value for i in result.incompatibilities))
    return [f"{kinds} at {', '.join(sorted(result.locations))}: {'; '.join(sorted(result.messages))}"]


def incompatibilities(level: Level, new: dict[str, Any], registered: list[dict[str, Any]]) -> list[str]:
    """Every reason ``new`` breaks ``level`` against the registered versions (oldest first)."""
    if not registered:
        return []
    against = registered if level.endswith("_TRANSITIVE") else registered[-1:]
    first = len(registered) - len(against) + 1
    reasons = []
    for number, old in enumerate(against, start=first):
        if level.startswith(("BACKWARD", "FULL")):
            reasons += [f"new schema cannot read data of version {number}: {r}" for r in unreadable(new, old)]
        if level.startswith(("FORWARD", "FULL")):
            reasons += [f"readers on version {number} cannot read new data: {r}" for r in unreadable(old, new)]
    return reasons


def normalized(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with full names and nothing the registry may rewrite: registries return schemas compacted, so
    compare these, never the JSON text."""
    parsed = fastavro.parse_schema(schema, _write_hint=False)
    assert isinstance(parsed, dict)  # a record schema parses to a record
    return parsed


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return normalized(a) == normalized(b)


def field_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Top-level field differences between two record schemas, for people."""
    before = {f["name"]: f for f in normalized(old).get("fields", [])}
    after = {f["name"]: f for f in normalized(new).get("fields", [])}
    changes = []
    for name in after.keys() - before.keys():
        default = "with default " + json.dumps(after[name]["default"]) if "default" in after[name] else "NO default"
        changes.append(f"+ {name}: {_type(after[name]['type'])} ({default})")
    for name in before.keys() - after.keys():
        changes.append(f"- {name}: {_type(before[name]['type'])}")
    for name in before.keys() & after.keys():
        if _type(before[name]["type"]) != _type(after[name]["type"]):
            changes.append(f"~ {name}: {_type(before[name]['type'])} -> {_type(after[name]['type'])}")
        elif before[name] != after[name]:
            changes.append(f"~ {name}: doc or default changed")
    return sorted(changes, key=lambda c: c[2:])


def _type(schema: Any) -> str:
    """A short name of a type: named types by name, unions as a|b, the rest as compact JSON."""
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "|".join(_type(branch) for branch in schema)
    if isinstance(schema, dict) and "name" in schema:
        return str(schema["name"])
    if isinstance(schema, dict) and schema.get("type") in ("array", "map"):
        inner = schema.get("items", schema.get("values"))
        return f"{schema['type']}<{_type(inner)}>"
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


def _parse(schema: dict[str, Any]) -> avro.schema.Schema:
    return avro.schema.parse(json.dumps(schema))
