"""The JSON of the values kept in the stream tables."""

from __future__ import annotations

from typing import Any

import orjson


def dumps(value: Any, *, sort_keys: bool = False) -> bytes:
    """``value`` as JSON, in a bytes object of its own length. orjson's output keeps the buffer it was written
    into (4 KiB or more, whatever the length): a batch holds thousands of these, and they made a worker's peak."""
    written = orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    return bytes(memoryview(written))
