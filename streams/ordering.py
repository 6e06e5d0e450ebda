"""Effectively-once per key: drop an event seen before (same event_id) or older than what was already applied, and
an event already dead-lettered (read again after a restart: its first letter accounts for it).

Pure state transitions; the stream processor keeps one ``KeyState`` per agency record key in a faust Table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import orjson

from satubus.streams import state_json

RECENT_IDS = 16  # event ids remembered per key: enough to recognise a redelivery among recent changes

Verdict = Literal["new", "duplicate", "stale"]


@dataclass(frozen=True, slots=True)
class KeyState:
    version: int
    recent: tuple[str, ...]
    routed_to: str | None = None  # for a part of a joined entity: the entity key its latest version went to
    rejected: tuple[str, ...] = ()  # recent event ids that were dead-lettered

    def encode(self) -> bytes:
        state = {"v": self.version, "ids": self.recent, "to": self.routed_to, "rej": self.rejected}
        return state_json.dumps(state)

    @classmethod
    def decode(cls, data: bytes | None) -> KeyState | None:
        if data is None:
            return None
        state = orjson.loads(data)
        return cls(int(state["v"]), tuple(state["ids"]), state.get("to"), tuple(state.get("rej", ())))


def admit(state: KeyState | None, event_id: str, version: int) -> Verdict:
    if state is None:
        return "new"
    if event_id in state.recent:
        return "duplicate"
    if version <= state.version:
        return "stale"
    return "new"


def remember(state: KeyState | None, event_id: str, version: int, routed_to: str | None = None) -> KeyState:
    recent = (*(state.recent if state else ()), event_id)[-RECENT_IDS:]
    return KeyState(version, recent, routed_to, state.rejected if state else ())


def dead_lettered_before(state: KeyState | None, event_id: str) -> bool:
    return state is not None and event_id in state.rejected


def remember_rejected(state: KeyState | None, event_id: str) -> KeyState:
    """The key's applied version is unchanged: a rejected event applied nothing."""
    if state is None:
        return KeyState(0, (), None, (event_id,))
    return KeyState(state.version, state.recent, state.routed_to, (*state.rejected, event_id)[-RECENT_IDS:])
