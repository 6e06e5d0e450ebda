"""The project's serde as a faust codec, so faust itself writes the Confluent wire format.

Input topics are read raw and decoded inside the agents instead, because a value that fails to decode must be
dead-lettered with its offset, which a codec cannot do.
"""

from __future__ import annotations

from typing import Any

import faust

from satubus.serde import AvroSerde


class AvroCodec(faust.Codec):
    def __init__(
        self,
        children: tuple[faust.Codec, ...] | None = None,
        *,
        serde: AvroSerde,
        subject: str,
        schema: dict[str, Any],
    ) -> None:
        super().__init__(children, serde=serde, subject=subject, schema=schema)
        self._encoder = serde.encoder(subject, schema)
        self._serde = serde
        self._subject = subject

    def _dumps(self, record: dict[str, Any] | None) -> bytes | None:  # type: ignore[override]  # tombstones
        return None if record is None else self._encoder.encode(record)  # None: a tombstone

    def _loads(self, data: bytes) -> dict[str, Any]:
        return self._serde.decode(data, self._subject)
