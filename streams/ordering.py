"""Effectively-once per key: drop an event seen before (same event_id) or older than what was already applied, and
an event already dead-lettered (read again after a restart: its first letter accounts for it).

An older event that stands *before* the applied one in its topic (a lower offset) was not sent late by the agency:
the bus read it late (faust-streaming drops events fetched while a worker starts, and they are read again after
later ones; streams/ownership.py). It is ``superseded``: valid in the agency's order, and its record is already
replaced by the newer one, so it is counted as accepted and sends nothing.

Pure state transitions; the stream processor keeps one ``KeyState`` per agency record key in a faust Table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import orjson

from satubus.streams import state_json

RECENT_IDS = 16  # event ids remembered per key: enough to recognise a redelivery among recent changes

Verdict = Literal["new", "duplicate", "stale", "superseded"]


@dataclass(frozen=True, slots=True)
class KeyState:
    version: int
    recent: tuple[str, ...]
    routed_to: str | None = None  # for a part of a joined entity: the entity key its latest version went to
    rejected: tuple[str, ...] = ()  # recent event ids that were dead-lettered
    at: int | None = None  # the topic offset of the event whose version was applied (unknown in older state)

    def encode(self) -> bytes:
        state = {"v": self.version, "ids": self.recent, "to": self.routed_to, "rej": self.rejected, "at": self.at}
        return state_json.dumps(state)

    @classmethod
    def decode(cls, data: bytes | None) -> KeyState | None:
        if data is None:
            return None
        state = orjson.loads(data)
        return cls(int(state["v"]), tuple(state["ids"]), state.get("to"), tuple(state.get("rej", ())), state.get("at"))


def admit(state: KeyState | None, event_id: str, version: int, offset: int | None = None) -> Verdict:
    if state is None:
        return "new"
    if event_id in state.recent:
        return "duplicate"
    if version <= state.version:
        read_late = offset is not None and state.at is not None and offset < state.at
        return "superseded" if read_late else "stale"
    return "new"


def remember(
    state: KeyState | None, event_id: str, version: int, routed_to: str | None = None, offset: int | None = None
) -> KeyState:
    recent = (*(state.recent if state else ()), event_id)[-RECENT_IDS:]
    return KeyState(version, recent, routed_to, state.rejected if state else (), offset)


def dead_lettered_before(state: KeyState | None, event_id: str) -> bool:
    return state is not None and event_id in state.rejected


def remember_rejected(state: KeyState | None, event_id: str) -> KeyState:
    """The key's applied version is unchanged: a rejected event applied nothing."""
    if state is None:
        return KeyState(0, (), None, (event_id,))
    rejected = (*state.rejected, event_id)[-RECENT_IDS:]
    return KeyState(state.version, state.recent, state.routed_to, rejected, state.at)
