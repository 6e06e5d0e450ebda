"""Never commit past an offset that was not processed (a fix for faust-streaming issue #606, still open upstream).

faust commits the run of consecutive acked offsets that starts at the committed offset. If only the offset at the
head of that run is missing (``min(acked) == committed + 1``), faust takes it for a compaction gap and commits past
it. The topics our agents read are neither compacted nor transactional, so a missing head offset is a message that
was never processed. Typically it was fetched during faust's start-up recovery and dropped by the stream because it
carried an older consumer generation (faust-streaming issue #596). Committing past it loses it for good. Withholding
the commit means it is read again (streams/ownership.py seeks its partition back; a restart does too), and the
per-key guards drop whatever was already applied.

Where the group has committed nothing yet for a partition, faust knows no head offset and would commit whatever
run of offsets it acknowledged first, after a dropped message as well: the guard withholds such commits until
streams/ownership.py has set the head to the partition's first offset (where the consumer starts reading).

For the same reason faust's gaps are not recorded: when a message arrives more than one offset after the last one
read, faust takes the offsets between for compacted away and commits past them once later offsets are acknowledged.
In our agents' topics those offsets were fetched and dropped, not compacted.
"""

from __future__ import annotations

from typing import Any

from faust.transport import consumer

_faust_new_offset = consumer.Consumer._new_offset
_faust_add_gap = consumer.Consumer._add_gap


def _new_offset(self: Any, tp: Any) -> int | None:
    acked, committed = self._acked[tp], self._committed_offset[tp]
    if acked and (committed is None or min(acked) > committed):
        return None  # the head offset is unprocessed, or unknown until streams/ownership.py learns it
    result: int | None = _faust_new_offset(self, tp)
    return result


async def _no_gap(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
    """Offsets ``offset_from`` to ``offset_to`` (excluded) of ``tp`` were skipped by the stream, not compacted."""


def install() -> None:
    consumer.Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    consumer.Consumer._add_gap = _no_gap  # type: ignore[method-assign]
