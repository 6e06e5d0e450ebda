"""Which of a batch's events a worker still owns, and a watch over the partitions it reads.

A batch is taken before it is processed: a rebalance in between can hand some of its partitions to another worker,
which reads their uncommitted events again. A worker must not publish outcomes for a partition it no longer owns
(the new owner's tables would not hold them), so such events are dropped here, neither processed nor acknowledged.

faust-streaming drops events that were fetched under an older group generation or while tables recovered (#596), and
does not fetch them again; after some rebalances a partition is not fetched at all. ``InOrder`` seeks a partition
back as soon as an event arrives after a gap, and holds its later events until the missing one is read. Either way
its committed offset stops meanwhile (streams/commit_guard.py keeps faust from committing past an event it dropped).
As a backstop (a partition not fetched at all), ``StuckPartitions`` finds one whose committed offset has not moved
between two looks while events wait after it, resumes it and seeks it back to that offset. It also learns the head
offset of each partition with nothing committed yet, which the commit guard needs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, TypeVar

from faust.types import TP

log = logging.getLogger(__name__)

T = TypeVar("T")

# The longest an agent waits here for faust's consumer thread (a partition's first offset, a seek). While partitions
# are revoked, that thread waits for the agents to finish their batches: an agent waiting for it in turn would hold
# the rebalance until the group gave up on this worker (its rebalance timeout, 60 s).
CONSUMER_CALL_SECONDS = 5.0


def owned(app: Any, events: list[Any]) -> list[Any]:
    """The events of partitions still assigned to this worker, in this group generation; none once the worker is
    stopping (faust closes the tables' stores before it stops the agents). The others are forgotten: faust's
    revocation and shutdown wait for every event taken and not acknowledged, and their owner reads them again."""
    assigned, generation = app.consumer.assignment(), app.consumer_generation_id
    kept = []
    for event in events:
        message = event.message
        if not app.should_stop and message.tp in assigned and message.generation_id == generation:
            kept.append(event)
        else:
            app.consumer.unacked.discard(message)
    if len(kept) < len(events):
        log.info("dropped %d events of partitions this worker no longer owns", len(events) - len(kept))
    return kept


@dataclass
class _Reading:
    generation: int
    expected: int  # the offset of the partition's next event to process
    rewound: bool = False  # sought back to ``expected``: later events are passed over until it comes


class InOrder:
    """Each partition's events are processed in their topic's order, each once per group generation.

    faust-streaming drops events it fetched while a worker started or rebalanced (#596), and goes on with later ones:
    processed then, and the dropped ones read again afterwards, a partition's events would apply out of order (a
    redelivery before its original, an older version after a newer one). So an event after a gap is not processed:
    its partition is sought back to the first offset missing, and the events fetched meanwhile are passed over until
    that one comes. An event before the expected offset was processed already (fetched again by a seek) and is
    passed over too. Passed-over events are not acknowledged: nothing is committed past them.

    Within a generation, a partition's first expected offset is its committed offset, or its first one when nothing
    is committed (where the consumer starts reading). The expected offset never stays below the committed one: the
    commit guard commits nothing that was not processed, so what is before it is done (faust may learn a partition's
    committed offset only after its first events arrive, and then fetches from there).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._reading: dict[TP, _Reading] = {}
        self._thread_silent = False  # a call to faust's consumer thread was given up on in this batch

    async def admit(self, events: list[Any]) -> list[Any]:
        """The events to process now, in order; seeks back each partition with a gap."""
        consumer = self.app.consumer
        self._thread_silent = False
        kept, rewind, unknown = [], {}, set()
        for event in events:
            message = event.message
            tp = TP(message.tp.topic, message.tp.partition)  # faust's own: a message may hold aiokafka's
            reading = self._reading.get(tp)
            if reading is None or reading.generation != message.generation_id:
                reading = None if tp in unknown else await self._start_reading(tp, message.generation_id)
                if reading is None:  # where to start is not known now: passed over, read again later
                    unknown.add(tp)
                    consumer.unacked.discard(message)
                    continue
            committed = consumer._committed_offset.get(tp)
            if committed is not None and committed > reading.expected:  # processed, by whichever worker committed
                reading.expected, reading.rewound = committed, False
            if message.offset == reading.expected:
                kept.append(event)
                reading.expected, reading.rewound = message.offset + 1, False
                continue
            consumer.unacked.discard(message)
            if message.offset > reading.expected and not reading.rewound:
                rewind[tp] = reading.expected
        if rewind:
            await self._seek_back(rewind)
        return kept

    async def _start_reading(self, tp: TP, generation: int) -> _Reading | None:
        """A partition's first event in a generation: it is read from its committed offset on. None when nothing is
        committed and its first offset cannot be asked for now (its events are read again: the next generation
        starts from the committed offsets, and StuckPartitions seeks a partition whose events wait)."""
        expected = self.app.consumer._committed_offset.get(tp)
        if expected is None:  # nothing committed (faust also keeps a committed 0 as None)
            try:
                expected = (await self._consumer_call(lambda: self.app.consumer.earliest_offsets(tp)))[tp]
            except Exception as error:
                log.info("%s[%d]: first offset not known now (%s): its events are read again", *tp, error)
                return None
        reading = self._reading[tp] = _Reading(generation, expected)
        return reading

    async def _seek_back(self, rewind: dict[TP, int]) -> None:
        """Each partition is read again from the offset it misses; its later events are passed over until that one
        comes. A partition that could not be sought is tried again at its next event."""
        log.info("events missing before those fetched (faust-streaming #596): reading again from %s", rewind)
        consumer = self.app.consumer
        consumer.resume_partitions(set(rewind))
        try:
            await self._consumer_call(lambda: consumer.seek_wait(rewind))
        except Exception as error:  # e.g. no longer assigned; StuckPartitions seeks again if need be
            log.warning("could not seek back %s (%s)", rewind, error)
            return
        for tp in rewind:
            self._reading[tp].rewound = True

    async def _consumer_call(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` through faust's consumer thread, waited for CONSUMER_CALL_SECONDS at most (TimeoutError), and
        once per batch: after one is given up on, the batch's other calls are not made. A call given up on finishes
        unawaited."""
        if self._thread_silent:
            raise TimeoutError("faust's consumer thread did not answer")
        try:
            return await asyncio.wait_for(asyncio.shield(call()), CONSUMER_CALL_SECONDS)
        except TimeoutError:
            self._thread_silent = True
            raise TimeoutError(f"faust's consumer thread did not answer in {CONSUMER_CALL_SECONDS:g} s") from None


class StuckPartitions:
    """Resumes and seeks back each partition whose events wait but are not read, and learns the head offsets of
    partitions with nothing committed yet (see the module's doc)."""

    def __init__(self, app: Any, topics: Collection[str], every: float) -> None:
        self.app = app
        self.every = every  # seconds between looks
        self.topics = set(topics)
        self.paused: set[str] = set()  # agents waiting for the registry or the broker: no progress meanwhile
        self._last_look: dict[TP, int] = {}  # partition -> its committed offset at the previous look

    def _quiet(self) -> bool:
        """No look while partitions move or recover, or while an agent waits for the registry or the broker."""
        app = self.app
        return bool(app.rebalancing or app.in_recovery or not app.consumer.flow_active or self.paused)

    def _watched(self) -> list[TP]:
        return [tp for tp in self.app.consumer.assignment() if tp.topic in self.topics]

    async def learn_heads(self) -> None:
        """Where nothing is committed yet, reading starts at the partition's first offset: that is its head, which the
        commit guard waits for before it lets faust commit (see commit_guard.py). Often (every second), so that
        commits are not held back for long."""
        if self._quiet():
            return
        consumer = self.app.consumer
        unknown = [tp for tp in self._watched() if consumer._committed_offset.get(tp) is None]
        if unknown:
            for tp, first in (await consumer.earliest_offsets(*unknown)).items():
                if consumer._committed_offset.get(tp) is None:  # (a commit may have come meanwhile)
                    consumer._committed_offset[tp] = first

    async def look(self) -> None:
        consumer = self.app.consumer
        if self._quiet():
            self._last_look.clear()
            return
        watched = self._watched()
        ends = await consumer.highwaters(*watched) if watched else {}
        looked: dict[TP, int] = {}
        for tp in watched:
            committed = consumer._committed_offset.get(tp)
            if committed is None:
                continue
            if ends.get(tp, 0) <= committed:
                continue  # nothing to read
            if self._last_look.get(tp) != committed:
                looked[tp] = committed
                continue
            log.warning(
                "%s[%d]: no event read from offset %d on in %.0f s although %d wait (faust-streaming #596; paused: "
                "%s, fetched up to: %s): resuming it there",
                tp.topic,
                tp.partition,
                committed,
                self.every,
                ends[tp] - committed,
                tp in consumer._paused_partitions,
                await consumer.position(tp),
            )
            consumer.resume_partitions({tp})
            try:
                await consumer.seek_wait({tp: committed})
            except Exception as error:  # the next looks try again
                log.warning("%s[%d]: could not seek back (%s)", tp.topic, tp.partition, error)
        self._last_look = looked
