"""Never commit past an offset that was not processed (a fix for faust-streaming issue #606, still open upstream).

faust commits the run of consecutive acked offsets that starts at the committed offset. If only the offset at the
head of that run is missing (``min(acked) == committed + 1``), faust takes it for a compaction gap and commits past
it. The topics our agents read are neither compacted nor transactional, so a missing head offset is a message that
was never processed. Typically it was fetched during faust's start-up recovery and dropped by the stream because it
carried an older consumer generation (faust-streaming issue #596). Committing past it loses it for good. Withholding
the commit means a restart reads it again, and the per-key guards drop whatever was already applied.
"""

from __future__ import annotations

from typing import Any

from faust.transport import consumer

_faust_new_offset = consumer.Consumer._new_offset


def _new_offset(self: Any, tp: Any) -> int | None:
    acked, committed = self._acked[tp], self._committed_offset[tp]
    if acked and committed is not None and not self._gap[tp] and min(acked) > committed:
        return None  # the head offset is unprocessed
    result: int | None = _faust_new_offset(self, tp)
    return result


def install() -> None:
    consumer.Consumer._new_offset = _new_offset  # type: ignore[method-assign]
