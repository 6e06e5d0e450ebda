"""A stream table's changelog key: faust's JSON, byte for byte; a key the bus did not write is read as a marker,
counted and logged masked, never an error (an error stalls the table's recovery for good)."""

import logging

import pytest
from faust.serializers import codecs

from satubus.streams.changelog_keys import KEYS_UNREADABLE, ChangelogKey, is_readable

NIK = "3171064508500003"


@pytest.mark.parametrize("key", ["dukcapil.penduduk:" + "ab" * 32, "a" * 64, "kelurahan é"])
def test_keys_are_written_and_read_as_faust_writes_them(key: str) -> None:
    codec, faust_json = ChangelogKey(), codecs.json()
    assert codec.dumps(key) == faust_json.dumps(key)
    assert codec.loads(faust_json.dumps(key)) == key and is_readable(key)


@pytest.mark.parametrize("raw", [b"roll", f"nik {NIK}".encode(), b"5", b'{"a": 1}', b"\xff\xfe"])
def test_a_key_that_is_not_a_json_string_is_a_marker_counted_and_logged_masked(
    raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    before = KEYS_UNREADABLE._value.get()
    with caplog.at_level(logging.ERROR):
        key = ChangelogKey().loads(raw)
    assert not is_readable(key)
    assert KEYS_UNREADABLE._value.get() == before + 1
    assert "not written by the bus" in caplog.text and NIK not in caplog.text
