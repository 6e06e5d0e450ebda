"""The Confluent wire format over fastavro: magic byte 0, 4-byte big-endian schema id, Avro body.

Producers never register schemas here: an encoder looks its schema up in the registry and fails with
``SchemaNotRegistered`` when the registry does not already hold it.

A value is decoded only with a schema its topic's contract holds: the schema id in its frame must be registered
under the subject the caller names (the topic's, ``<topic>-value``), else it is ``ForeignSchemaId`` (or
``UnknownSchemaId`` when no subject holds it). The registry is asked once per (schema id, subject) pair; an accepted
pair is kept for the life of the serde, a refused one for ``REFUSAL_SECONDS``: a schema registered meanwhile is
accepted after that, and a stream of messages naming ids their topic does not hold costs the registry one request
per pair and period, not one per message. Values are also held to the limits of schemas/avro_limits.py
(``LimitExceeded``), which keep a hostile message from stalling or crashing its reader.
"""

from __future__ import annotations

import io
import json
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.common._httpx_compat import httpx  # httpx2 or httpx, as the client uses
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro.validation import ValidationError, validate

from satubus.errors import DataError, RegistryUnavailable
from satubus.schemas.avro_limits import MAX_MESSAGE_BYTES, OverLimit, scan, scan_needed
from satubus.schemas.errors import (
    DecodeError,
    ForeignSchemaId,
    LimitExceeded,
    MalformedBody,
    NotWireFormat,
    Origin,
    SchemaError,
    SchemaNotRegistered,
    UnknownSchemaId,
)
from satubus.schemas.masking import mask_text
from satubus.schemas.personal_data import mask_record

T = TypeVar("T")

MAGIC = 0
_HEADER = struct.Struct(">bI")
REFUSAL_SECONDS = 60.0  # how long a (schema id, subject) pair the registry refused stays refused without asking
REFUSALS_KEPT = 10_000  # refused pairs remembered at most; the oldest is forgotten first


class RecordInvalid(SchemaError, DataError):
    """The record does not fit the schema; the message names the field."""


class Encoder:
    """Writes records of one registered schema."""

    def __init__(self, schema_id: int, schema: dict[str, Any]) -> None:
        self.schema_id = schema_id
        self._parsed = fastavro.parse_schema(schema)
        self._header = _HEADER.pack(MAGIC, schema_id)

    def encode(self, record: dict[str, Any]) -> bytes:
        out = io.BytesIO()
        out.write(self._header)
        try:
            fastavro.schemaless_writer(out, self._parsed, record)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise RecordInvalid(_explain(self._parsed, record, exc)) from exc
        return out.getvalue()


@dataclass(frozen=True, slots=True)
class _Writer:
    parsed: Any
    scan: bool  # its values are scanned for the limits before fastavro reads them (schemas/avro_limits.py)


class AvroSerde:
    """Encodes and decodes the wire format; schema lookups are cached for the life of the object (refusals for
    ``REFUSAL_SECONDS``)."""

    def __init__(self, registry: SchemaRegistryClient, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._registry = registry
        self._clock = clock
        self._writers: dict[int, _Writer] = {}
        self._accepted: dict[tuple[int, str], _Writer] = {}  # (schema id, subject) -> its writer
        # (schema id, subject) -> until when it stays refused, and the error to raise meanwhile.
        self._refused: dict[tuple[int, str], tuple[float, type[DecodeError], str]] = {}
        # Parsed reader schemas by the identity of the caller's schema dict (kept here so the id stays theirs).
        self._reader_schemas: dict[int, tuple[dict[str, Any], Any]] = {}
        # (writer schema id, reader id) -> the reader to resolve to, or None when it is the writer's own schema:
        # resolution costs about half the decoding time and changes nothing then.
        self._resolutions: dict[tuple[int, int], Any] = {}
        self._encoders: dict[tuple[str, str], Encoder] = {}

    def close(self) -> None:
        self._registry.close()

    def __enter__(self) -> AvroSerde:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def encoder(self, subject: str, schema: dict[str, Any]) -> Encoder:
        cache_key = (subject, json.dumps(schema, sort_keys=True))
        encoder = self._encoders.get(cache_key)
        if encoder is None:
            try:
                registered = _ask(lambda: self._registry.lookup_schema(subject, Schema(json.dumps(schema), "AVRO")))
            except SchemaRegistryError as exc:
                if exc.http_status_code == 404:
                    raise SchemaNotRegistered(
                        f"subject {subject!r} holds no such schema and producers do not register schemas; "
                        f"register it first with `satubus schemas register` ({exc.error_message})"
                    ) from exc
                raise SchemaError(f"registry lookup for {subject!r} failed: {exc.error_message}") from exc
            if registered.schema_id is None:
                raise SchemaError(f"the registry returned no schema id for {subject!r}")
            encoder = self._encoders[cache_key] = Encoder(registered.schema_id, schema)
        return encoder

    def encode(self, subject: str, schema: dict[str, Any], record: dict[str, Any]) -> bytes:
        return self.encoder(subject, schema).encode(record)

    def decode(
        self, data: bytes, subject: str, origin: Origin | None = None, *, reader: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The record in ``data``, a value of the topic whose value subject is ``subject``; with ``reader``, resolved
        to that schema (Avro schema resolution)."""
        if len(data) > MAX_MESSAGE_BYTES:
            raise LimitExceeded(
                f"{len(data)} bytes is more than {MAX_MESSAGE_BYTES}, the largest value a topic takes", data, origin
            )
        if len(data) < _HEADER.size:
            raise NotWireFormat(f"{len(data)} bytes is shorter than the 5-byte wire-format header", data, origin)
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise NotWireFormat(f"magic byte is {magic}, not {MAGIC}: not Confluent wire format", data, origin)
        writer = self._accepted.get((schema_id, subject)) or self._accept(schema_id, subject, data, origin)
        if writer.scan:
            _within_limits(writer, schema_id, data, origin)
        body = io.BytesIO(data)
        body.seek(_HEADER.size)
        try:
            record = fastavro.schemaless_reader(body, writer.parsed, self._resolution(schema_id, writer.parsed, reader))
        except Exception as exc:  # fastavro raises many types on corrupt input
            raise MalformedBody(f"Avro body does not decode with schema {schema_id}: {exc!r}", data, origin) from exc
        if body.tell() != len(data):
            raise MalformedBody(
                f"{len(data) - body.tell()} bytes left after the record of schema {schema_id}", data, origin
            )
        if not isinstance(record, dict):
            raise MalformedBody(f"schema {schema_id} is not a record schema", data, origin)
        return record

    def _resolution(self, schema_id: int, writer: Any, reader: dict[str, Any] | None) -> Any:
        if reader is None:
            return None
        key = (schema_id, id(reader))
        if key not in self._resolutions:
            parsed = self._reader(reader)
            self._resolutions[key] = None if parsed == writer else parsed
        return self._resolutions[key]

    def _reader(self, schema: dict[str, Any] | None) -> Any:
        if schema is None:
            return None
        cached = self._reader_schemas.get(id(schema))
        if cached is None:
            cached = self._reader_schemas[id(schema)] = (schema, fastavro.parse_schema(schema))
        return cached[1]

    def _accept(self, schema_id: int, subject: str, data: bytes, origin: Origin | None) -> _Writer:
        """The writer of ``schema_id`` once the registry says ``subject`` holds it; a refusal is remembered."""
        pair = (schema_id, subject)
        now = self._clock()
        refused = self._refused.get(pair)
        if refused is not None and now < refused[0]:
            _, error, message = refused
            raise error(message, data, origin)
        try:
            holders = _ask(lambda: self._registry.get_schema_versions(schema_id))
        except SchemaRegistryError as exc:
            if exc.http_status_code != 404:
                raise RegistryUnavailable(f"schema id {schema_id}: {exc.error_message}") from exc
            holders = []
        if subject not in {holder.subject for holder in holders}:
            if holders:
                error, message = ForeignSchemaId, f"schema id {schema_id} is not registered under {subject}"
            else:
                error, message = UnknownSchemaId, f"schema id {schema_id} is not in the registry"
            self._refused.pop(pair, None)  # re-inserted last: the oldest refusal is forgotten first
            self._refused[pair] = (now + REFUSAL_SECONDS, error, message)
            if len(self._refused) > REFUSALS_KEPT:
                del self._refused[next(iter(self._refused))]
            raise error(message, data, origin)
        writer = self._accepted[pair] = self._writer(schema_id, data, origin)
        self._refused.pop(pair, None)
        return writer

    def _writer(self, schema_id: int, data: bytes, origin: Origin | None) -> _Writer:
        writer = self._writers.get(schema_id)
        if writer is None:
            try:
                schema = _ask(lambda: self._registry.get_schema(schema_id))
            except SchemaRegistryError as exc:
                if exc.http_status_code == 404:
                    raise UnknownSchemaId(f"schema id {schema_id} is not in the registry", data, origin) from exc
                raise RegistryUnavailable(f"schema id {schema_id}: {exc.error_message}") from exc
            if schema.schema_str is None:
                raise UnknownSchemaId(f"schema id {schema_id} has no schema text in the registry", data, origin)
            parsed = fastavro.parse_schema(json.loads(schema.schema_str))
            writer = self._writers[schema_id] = _Writer(parsed, scan_needed(parsed))
        return writer


def _within_limits(writer: _Writer, schema_id: int, data: bytes, origin: Origin | None) -> None:
    """Scan a value of a schema that could make fastavro stall or crash (schemas/avro_limits.py)."""
    try:
        scan(writer.parsed, data, _HEADER.size)
    except OverLimit as exc:
        raise LimitExceeded(f"a value of schema {schema_id}: {exc}", data, origin) from None
    except Exception as exc:  # the body does not follow the schema
        raise MalformedBody(f"Avro body does not decode with schema {schema_id}: {exc!r}", data, origin) from exc


def _ask(request: Callable[[], T]) -> T:
    """A registry request; a registry that does not answer, or answers with a server error, is
    ``RegistryUnavailable`` (retriable): the record is not at fault."""
    try:
        return request()
    except SchemaRegistryError as exc:
        if exc.http_status_code >= 500 or exc.http_status_code < 0:
            raise RegistryUnavailable(f"the schema registry failed: {exc.error_message}") from exc
        raise
    except (httpx.HTTPError, OSError) as exc:
        raise RegistryUnavailable(f"the schema registry does not answer: {exc!r}") from exc


def _explain(parsed: Any, record: dict[str, Any], exc: Exception) -> str:
    """fastavro's writer errors rarely name the field; its validator does. Personal data in values is masked."""
    try:
        validate(record, parsed, raise_errors=True)
    except ValidationError as verr:
        problems = "; ".join(_masked_problem(error) for error in verr.errors)
        return mask_text(f"record does not match schema {parsed.get('name')}: {problems}")
    return mask_text(f"record does not match schema {parsed.get('name')}: {exc}")


def _masked_problem(error: Any) -> str:
    """A validator error with its value masked as its field is: the value of a union can be a whole record."""
    if error.datum is None:
        return str(error)
    field = str(error.field).rsplit(".", 1)[-1]
    shown = mask_record({field: error.datum})[field]
    return f"{error.field} is <{shown}> of type {type(error.datum).__name__} expected {error.schema}"
