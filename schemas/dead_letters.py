"""The dead-letter contract: what a record sent to ``bus.dlq`` says about why and where it failed.

Headers carry the same facts as Kafka Connect's ``__connect.errors.*`` headers; the value is the original bytes,
untouched, so ``satubus dlq replay`` can re-drive it. The message and the preview are for people and have personal
data masked (satubus/schemas/masking.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from satubus.schemas.masking import mask_payload_start, mask_text

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
    event_id: str = ""  # the event's own id, once it decoded: how the agency finds the event it sent

    def headers(self, raw: bytes | None) -> list[tuple[str, bytes]]:
        facts = {
            "stage": self.stage,
            "reason": self.reason,
            "class": type(self.error).__name__,
            "message": mask_text(str(self.error)),
            "topic": self.topic,
            "partition": str(self.partition),
            "offset": str(self.offset),
            "agency": self.agency,
            "event_id": self.event_id,
            "preview": preview(raw),
        }
        return [(HEADER_PREFIX + name, value.encode()) for name, value in facts.items()]


def facts_of(headers: Any) -> dict[str, str]:
    """The facts a letter's headers carry, by name without the prefix (stage, reason, ..., agency, event_id)."""
    facts = {}
    for name, value in headers or []:
        if name.startswith(HEADER_PREFIX) and value is not None:
            facts[name.removeprefix(HEADER_PREFIX)] = (
                value.decode(errors="replace") if isinstance(value, bytes) else value
            )
    return facts


def preview(raw: bytes | None) -> str:
    """The shape of the first bytes of a payload, without its personal data: 'S*** R********.3171************'.

    The bytes are not decoded (they may not decode), so which text is a name cannot be told: every byte that is
    not printable ASCII shows as '.', every word keeps its first letter, every number of 8 digits or more its
    first 4 (NIK and KK numbers however written, phone numbers), dates keep their year (``mask_payload``).
    Lengths, punctuation, short numbers and the order of the parts are left for an operator to read.
    """
    if raw is None:
        return "<null>"
    # Cut after masking (mask_payload_start knows how far to look), so a NIK that straddles the cut is masked too.
    return mask_payload_start(raw.decode("ascii", errors="replace"), PREVIEW_CHARS)
