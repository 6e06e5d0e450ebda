"""A worker drops the events of partitions it no longer owns, and resumes a partition whose events wait but are not
read. faust's consumer is stood in for by the few attributes these read."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from faust.types import TP

from satubus.streams.ownership import InOrder, StuckPartitions, owned

A, B = TP("agency.x.v1", 0), TP("agency.x.v1", 1)


@dataclass(frozen=True)
class Message:
    tp: TP
    offset: int
    generation_id: int


def event(tp: TP, offset: int, generation: int = 7) -> Any:
    return SimpleNamespace(message=Message(tp, offset, generation))


@dataclass
class Consumer:
    assigned: set[TP]
    committed: dict[TP, int] = field(default_factory=dict)
    positions: dict[TP, int] = field(default_factory=dict)
    ends: dict[TP, int] = field(default_factory=dict)
    unacked: set[Any] = field(default_factory=set)
    flow_active: bool = True
    seeks: list[dict[TP, int]] = field(default_factory=list)
    _paused_partitions: set[TP] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._committed_offset = self.committed

    def assignment(self) -> set[TP]:
        return self.assigned

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return {tp: 0 for tp in tps}

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in tps if tp in self.ends}

    async def position(self, tp: TP) -> int | None:
        return self.positions.get(tp)

    def resume_partitions(self, tps: set[TP]) -> None:
        self._paused_partitions -= tps

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.seeks.append(dict(partitions))


def app(consumer: Consumer, *, rebalancing: bool = False, stopping: bool = False) -> Any:
    return SimpleNamespace(
        consumer=consumer,
        consumer_generation_id=7,
        rebalancing=rebalancing,
        in_recovery=False,
        should_stop=stopping,
    )


def test_events_of_partitions_no_longer_assigned_or_of_an_older_generation_are_dropped_and_forgotten() -> None:
    consumer = Consumer(assigned={A})
    kept, moved, older = event(A, 1), event(B, 1), event(A, 2, generation=6)
    consumer.unacked |= {kept.message, moved.message, older.message}
    assert owned(app(consumer), [kept, moved, older]) == [kept]
    assert consumer.unacked == {kept.message}  # revocation does not wait for the dropped ones


def test_a_stopping_worker_owns_no_event_any_more() -> None:
    consumer = Consumer(assigned={A})
    taken = event(A, 1)
    consumer.unacked.add(taken.message)
    assert owned(app(consumer, stopping=True), [taken]) == []
    assert consumer.unacked == set()


def looks(watch: StuckPartitions, times: int) -> None:
    for _ in range(times):
        asyncio.run(watch.look())


def test_a_partition_whose_committed_offset_stays_behind_waiting_events_is_resumed_and_sought_back() -> None:
    consumer = Consumer(assigned={A, B}, committed={A: 10, B: 5}, ends={A: 40, B: 5}, _paused_partitions={A})
    watch = StuckPartitions(app(consumer), topics={"agency.x.v1"}, every=10)
    looks(watch, 1)
    assert consumer.seeks == []  # one look cannot tell stuck from slow
    looks(watch, 1)
    assert consumer.seeks == [{A: 10}]  # B has nothing waiting after its committed offset
    assert consumer._paused_partitions == set()


def test_a_partition_never_committed_gets_its_first_offset_as_head_and_is_read_from_there() -> None:
    consumer = Consumer(assigned={A}, ends={A: 3})
    asyncio.run(StuckPartitions(app(consumer), topics={"agency.x.v1"}, every=10).learn_heads())
    assert consumer._committed_offset == {A: 0}  # so that the commit guard can tell whether the head was processed
    looks(StuckPartitions(app(consumer), topics={"agency.x.v1"}, every=10), 2)
    assert consumer.seeks == [{A: 0}]


def test_a_partition_that_makes_progress_is_left_alone() -> None:
    consumer = Consumer(assigned={A}, committed={A: 10}, ends={A: 40})
    watch = StuckPartitions(app(consumer), topics={"agency.x.v1"}, every=10)
    looks(watch, 1)
    consumer.committed[A] = 25
    looks(watch, 1)
    assert consumer.seeks == []


def test_nothing_is_sought_during_a_rebalance_or_while_an_agent_waits_for_the_registry_or_the_broker() -> None:
    consumer = Consumer(assigned={A}, committed={A: 10}, ends={A: 40})
    watch = StuckPartitions(app(consumer, rebalancing=True), topics={"agency.x.v1"}, every=10)
    looks(watch, 3)
    waiting = StuckPartitions(app(consumer), topics={"agency.x.v1"}, every=10)
    waiting.paused.add("normalize")
    looks(waiting, 3)
    other_topic = StuckPartitions(app(consumer), topics={"canonical.person.v2"}, every=10)
    looks(other_topic, 3)
    assert consumer.seeks == []


def test_events_after_a_gap_wait_while_their_partition_is_read_again_from_the_missing_one() -> None:
    consumer = Consumer(assigned={A, B}, committed={A: 10, B: 3})
    in_order = InOrder(app(consumer))
    fetched = TopicPartition(A.topic, A.partition)  # what aiokafka's messages hold: not faust's TP, which it requires
    first = [event(A, 10), event(A, 11), event(fetched, 14), event(A, 15), event(B, 3)]  # A's 12, 13 dropped by faust
    consumer.unacked |= {e.message for e in first}
    kept = asyncio.run(in_order.admit(first))
    assert [(e.message.tp, e.message.offset) for e in kept] == [(A, 10), (A, 11), (B, 3)]
    assert consumer.seeks == [{A: 12}] and all(type(tp) is TP for tp in consumer.seeks[0])
    assert {e.message.offset for e in first if e.message in consumer.unacked} == {10, 11, 3}  # 14, 15 not acked
    # What was fetched before the seek still comes (no second seek); then 12 on, read again, in order.
    kept = asyncio.run(in_order.admit([event(A, 16), event(A, 12), event(A, 13), event(A, 14), event(B, 4)]))
    assert [(e.message.tp, e.message.offset) for e in kept] == [(A, 12), (A, 13), (A, 14), (B, 4)]
    assert consumer.seeks == [{A: 12}]
    # 15 comes next; 13, processed already and fetched again, is passed over.
    assert [e.message.offset for e in asyncio.run(in_order.admit([event(A, 13), event(A, 15)]))] == [15]


def test_an_event_fetched_again_is_passed_over_and_a_new_generation_starts_from_the_committed_offset() -> None:
    consumer = Consumer(assigned={A}, committed={A: 5})
    in_order = InOrder(app(consumer))
    assert [e.message.offset for e in asyncio.run(in_order.admit([event(A, 5), event(A, 6)]))] == [5, 6]
    assert asyncio.run(in_order.admit([event(A, 6)])) == []  # read twice: once is processed
    consumer._committed_offset[A] = 6  # a rebalance: the new generation reads from the committed offset
    assert [e.message.offset for e in asyncio.run(in_order.admit([event(A, 6, generation=8)]))] == [6]


def test_a_partition_with_nothing_committed_is_read_in_order_from_its_first_offset() -> None:
    consumer = Consumer(assigned={A})  # earliest_offsets: 0
    in_order = InOrder(app(consumer))
    assert asyncio.run(in_order.admit([event(A, 2)])) == []
    assert consumer.seeks == [{A: 0}]
    assert [e.message.offset for e in asyncio.run(in_order.admit([event(A, 0), event(A, 1)]))] == [0, 1]


def test_the_expected_offset_follows_the_committed_one_when_faust_learns_it_late() -> None:
    """faust may know a partition's committed offset only after its first events came: the worker sought back to
    the first offset, and faust's own seek to the committed one won. What is before the committed offset is done."""
    consumer = Consumer(assigned={A})  # nothing known committed yet: earliest_offsets says 0
    in_order = InOrder(app(consumer))
    assert asyncio.run(in_order.admit([event(A, 5)])) == [] and consumer.seeks == [{A: 0}]
    consumer._committed_offset[A] = 5
    assert [e.message.offset for e in asyncio.run(in_order.admit([event(A, 5), event(A, 6)]))] == [5, 6]


class SilentConsumer(Consumer):
    """A consumer thread busy elsewhere (in faust's revocation, which waits for the agents): its calls do not end."""

    silent: bool = True
    calls: int = 0

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        await self._answer()
        return await super().earliest_offsets(*tps)

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        await self._answer()
        await super().seek_wait(partitions)

    async def _answer(self) -> None:
        self.calls += 1
        if self.silent:
            await asyncio.Event().wait()  # never


def test_an_agent_gives_up_on_a_silent_consumer_thread_once_per_batch_and_asks_again_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("satubus.streams.ownership.CONSUMER_CALL_SECONDS", 0.05)
    consumer = SilentConsumer(assigned={A, B}, committed={B: 3})
    in_order = InOrder(app(consumer))
    taken = [event(A, 0), event(A, 1), event(B, 4)]
    consumer.unacked |= {e.message for e in taken}
    assert asyncio.run(in_order.admit(taken)) == []  # A: where to start is not known; B: 3 is missing
    assert consumer.calls == 1  # one wait for the whole batch: not for each partition, nor for B's seek
    assert consumer.seeks == [] and consumer.unacked == set()  # a revocation need not wait for them
    consumer.silent = False  # the thread answers again: both are read in order
    assert [e.message.offset for e in asyncio.run(in_order.admit([event(A, 0), event(B, 4)]))] == [0]
    assert consumer.seeks == [{B: 3}]  # the seek that could not be made then is made at B's next event
