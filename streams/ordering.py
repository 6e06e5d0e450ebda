"""Effectively-once per key: drop an event seen before (same event_id) or older than what was already applied.

Pure state transitions; the stream processor keeps one ``KeyState`` per agency record key in a faust Table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

RECENT_IDS = 16  # event ids remembered per key: enough to recognise a redelivery among recent changes

Verdict = Literal["new", "duplicate", "stale"]


@dataclass(frozen=True, slots=True)
class KeyState:
    version: int
    recent: tuple[str, ...]
    routed_to: str | None = None  # for a part of a joined entity: the entity key its latest version went to

    def encode(self) -> bytes:
        return json.dumps({"v": self.version, "ids": self.recent, "to": self.routed_to}, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes | None) -> KeyState | None:
        if data is None:
            return None
        state = json.loads(data)
        return cls(int(state["v"]), tuple(state["ids"]), state.get("to"))


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
    return KeyState(version, recent, routed_to)
