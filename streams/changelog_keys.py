"""The keys of the stream tables' changelogs: JSON strings, as faust writes them.

A record in a changelog whose key is not one (written by something other than the bus) must not stop a worker:
faust's recovery raises for its key, never records its offset, and so waits for the end of the changelog forever,
never ready. Read through this codec, such a key becomes an ``UNREADABLE`` marker that no state is ever looked up
by; it is logged and counted (``satubus_changelog_keys_unreadable_total``), and the record stays in the topic.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.serializers import codecs
from prometheus_client import Counter

from satubus.metrics import NAMESPACE, REGISTRY
from satubus.schemas.masking import mask_payload

log = logging.getLogger(__name__)

CODEC = "satubus-changelog-key"
UNREADABLE = "\x00unreadable:"  # no key of the bus starts with a NUL

KEYS_UNREADABLE = Counter(
    "changelog_keys_unreadable",
    "Records read from a stream table's changelog whose key is not a JSON string: not the bus's, left alone",
    namespace=NAMESPACE,
    registry=REGISTRY,
)


class ChangelogKey(codecs.Codec):
    """faust's own JSON codec, byte for byte, but a key it cannot read is not an error."""

    _json = codecs.json()

    def _dumps(self, key: Any) -> bytes:
        return self._json.dumps(key)

    def _loads(self, raw: bytes) -> str:
        try:
            key = self._json.loads(raw)
        except Exception:  # whatever faust's JSON library raises for bytes that are not JSON
            key = None
        if isinstance(key, str):
            return key
        KEYS_UNREADABLE.inc()
        log.error(
            "a stream table's changelog holds a record whose key is not a JSON string (%s): it was not written by the "
            "bus and is left alone",
            mask_payload(raw.decode(errors="replace")[:80]),
        )
        return UNREADABLE + raw.hex()


class Table(faust.Table[str, bytes]):
    """faust's Table, with str keys written and read through ``ChangelogKey`` (the app's ``Table`` setting)."""

    def _serializer_from_type(self, typ: Any) -> Any:
        return CODEC if typ is str else super()._serializer_from_type(typ)


def install() -> None:
    codecs.register(CODEC, ChangelogKey())


def is_readable(key: str) -> bool:
    return not key.startswith(UNREADABLE)
