"""A registry that does not answer is an infrastructure error (retriable), never an error of the record."""

from __future__ import annotations

import socket
import struct

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from satubus.errors import DataError, RegistryUnavailable
from satubus.serde import AvroSerde


def _unanswered_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/apis/ccompat/v7"


def test_decoding_while_the_registry_is_down_is_retriable_not_a_data_error() -> None:
    framed = b"\x00" + struct.pack(">I", 42) + b"\x02"
    with (
        AvroSerde(SchemaRegistryClient({"url": _unanswered_url(), "timeout": 2})) as serde,
        pytest.raises(RegistryUnavailable) as caught,
    ):
        serde.decode(framed, "agency.bpbd.kejadian.v1-value")
    assert caught.value.retriable
    assert not isinstance(caught.value, DataError)


def test_encoding_while_the_registry_is_down_is_retriable() -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}
    with (
        AvroSerde(SchemaRegistryClient({"url": _unanswered_url(), "timeout": 2})) as serde,
        pytest.raises(RegistryUnavailable),
    ):
        serde.encoder("r-value", schema)
