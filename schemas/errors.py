"""Errors about contracts: schemas, the registry and the wire format.

A ``DecodeError`` keeps the raw bytes and where they came from, so the caller can dead-letter them.
"""

from __future__ import annotations

from dataclasses import dataclass

from satubus.errors import DataError, SatuBusError


@dataclass(frozen=True, slots=True)
class Origin:
    topic: str
    partition: int
    offset: int


class SchemaError(SatuBusError):
    """A schema file is invalid or the registry refused or lacks a schema."""


class SchemaNotRegistered(SchemaError):
    """Producing with a schema the registry does not hold for the subject (automatic registration is off)."""


class DecodeError(DataError):
    """Bytes that are not a valid Confluent-framed Avro value."""

    def __init__(self, message: str, raw: bytes, origin: Origin | None = None) -> None:
        super().__init__(message)
        self.raw = raw
        self.origin = origin


class NotWireFormat(DecodeError):
    """Too short, or the magic byte is not 0."""


class UnknownSchemaId(DecodeError):
    """The schema id in the frame is not in the registry."""


class ForeignSchemaId(DecodeError):
    """The schema id is in the registry, but not under the subject of the topic the message came from: a value is
    decoded only with a schema its topic's contract holds."""


class LimitExceeded(DecodeError):
    """The message is larger, or claims more items, than any message of a contract may: refused before decoding it,
    so that it cannot stall its reader (satubus/schemas/avro_limits.py)."""


class MalformedBody(DecodeError):
    """The Avro body does not decode with the writer's schema (truncated or corrupt)."""
