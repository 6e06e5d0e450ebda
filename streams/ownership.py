"""Which of a batch's events a worker still owns, and a watch for partitions whose events never reached their agent.

A batch is taken before it is processed: a rebalance in between can hand some of its partitions to another worker,
which reads their uncommitted events again. A worker must not publish outcomes for a partition it no longer owns
(the new owner's tables would not hold them), so such events are dropped here, neither processed nor acknowledged.

faust-streaming drops events that were fetched under an older group generation or while tables recovered (#596), and
does not fetch them again: the partition's committed offset stops at the first of them (streams/commit_guard.py
keeps faust from committing past it) until the worker restarts. ``StuckPartitions`` finds such a partition, one
whose committed offset has not moved between two looks while the consumer has fetched beyond it, and seeks it back
to that offset; the per-key guards drop whatever is read twice.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from faust.types import TP

log = logging.getLogger(__name__)


def owned(app: Any, events: list[Any]) -> list[Any]:
    """The events of partitions still assigned to this worker, in this group generation. The others are forgotten:
    faust's revocation waits for every event taken and not acknowledged, and their new owner reads them again."""
    assigned, generation = app.consumer.assignment(), app.consumer_generation_id
    kept = []
    for event in events:
        message = event.message
        if message.tp in assigned and message.generation_id == generation:
            kept.append(event)
        else:
            app.consumer.unacked.discard(message)
    if len(kept) < len(events):
        log.info("dropped %d events of partitions this worker no longer owns", len(events) - len(kept))
    return kept


class StuckPartitions:
    """Seeks back each partition whose events were fetched but never reached its agent (see the module's doc)."""

    def __init__(self, app: Any, topics: Collection[str]) -> None:
        self.app = app
        self.topics = set(topics)
        self.paused: set[str] = set()  # agents waiting for the registry or the broker: no progress meanwhile
        self._last_look: dict[TP, int] = {}  # partition -> its committed offset at the previous look

    async def look(self) -> None:
        app, consumer = self.app, self.app.consumer
        if app.rebalancing or app.in_recovery or not consumer.flow_active or self.paused:
            self._last_look.clear()
            return
        looked: dict[TP, int] = {}
        for tp in consumer.assignment():
            committed = consumer._committed_offset.get(tp)
            if tp.topic not in self.topics or committed is None or (consumer.highwater(tp) or 0) <= committed:
                continue  # not ours to watch, or nothing to read
            position = await consumer.position(tp)
            if position is None or position <= committed:
                continue  # nothing fetched beyond what is committed
            if self._last_look.get(tp) == committed:
                log.warning(
                    "%s[%d]: the events from offset %d were fetched but never processed (faust-streaming #596): "
                    "reading them again",
                    tp.topic,
                    tp.partition,
                    committed,
                )
                try:
                    await consumer.seek_wait({tp: committed})
                except Exception as error:  # the next look tries again
                    log.warning("%s[%d]: could not seek back (%s)", tp.topic, tp.partition, error)
            else:
                looked[tp] = committed
        self._last_look = looked
