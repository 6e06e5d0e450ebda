"""The dead-letter contract: what a record sent to ``bus.dlq`` says about why and where it failed.

Headers carry the same facts as Kafka Connect's ``__connect.errors.*`` headers; the value is the original bytes,
untouched, so ``satubus dlq replay`` can re-drive it. The preview is for people and has NIKs masked.
"""

from __future__ import annotations

from dataclasses import dataclass

from satubus.schemas.nik import mask_nik

PREVIEW_CHARS = 256
HEADER_PREFIX = "satubus.error."
# Set by ``satubus dlq replay`` on a letter sent back to its topic: normalize it again, do not drop it as seen.
REPLAY_HEADER = "satubus.replay.of"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    stage: str  # decode | normalize | materialize
    reason: str  # a short, bounded code, usable as a metric label
    error: Exception
    topic: str
    partition: int
    offset: int
    agency: str

    def headers(self, raw: bytes | None) -> list[tuple[str, bytes]]:
        facts = {
            "stage": self.stage,
            "reason": self.reason,
            "class": type(self.error).__name__,
            "message": mask_nik(str(self.error)),
            "topic": self.topic,
            "partition": str(self.partition),
            "offset": str(self.offset),
            "agency": self.agency,
            "preview": preview(raw),
        }
        return [(HEADER_PREFIX + name, value.encode()) for name, value in facts.items()]


def preview(raw: bytes | None) -> str:
    """A printable, NIK-masked look at the first bytes of a payload."""
    if raw is None:
        return "<null>"
    # Mask before cutting, so a NIK that straddles the cut is not left half visible.
    text = raw.decode("utf-8", errors="replace")
    printable = "".join(ch if ch.isprintable() else "." for ch in text)
    return mask_nik(printable)[:PREVIEW_CHARS]
