"""A worker drops the events of partitions it no longer owns, and seeks back a partition whose fetched events never
reached its agent. faust's consumer is stood in for by the few attributes these read."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from satubus.streams.ownership import StuckPartitions, owned

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
    highwaters: dict[TP, int] = field(default_factory=dict)
    unacked: set[Any] = field(default_factory=set)
    flow_active: bool = True
    seeks: list[dict[TP, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._committed_offset = self.committed

    def assignment(self) -> set[TP]:
        return self.assigned

    def highwater(self, tp: TP) -> int | None:
        return self.highwaters.get(tp)

    async def position(self, tp: TP) -> int | None:
        return self.positions.get(tp)

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.seeks.append(dict(partitions))


def app(consumer: Consumer, *, rebalancing: bool = False) -> Any:
    return SimpleNamespace(consumer=consumer, consumer_generation_id=7, rebalancing=rebalancing, in_recovery=False)


def test_events_of_partitions_no_longer_assigned_or_of_an_older_generation_are_dropped_and_forgotten() -> None:
    consumer = Consumer(assigned={A})
    kept, moved, older = event(A, 1), event(B, 1), event(A, 2, generation=6)
    consumer.unacked |= {kept.message, moved.message, older.message}
    assert owned(app(consumer), [kept, moved, older]) == [kept]
    assert consumer.unacked == {kept.message}  # revocation does not wait for the dropped ones


def looks(watch: StuckPartitions, times: int) -> None:
    for _ in range(times):
        asyncio.run(watch.look())


def test_a_partition_whose_committed_offset_stays_behind_what_was_fetched_is_sought_back_on_the_second_look() -> None:
    consumer = Consumer(assigned={A, B}, committed={A: 10, B: 5}, positions={A: 40, B: 5}, highwaters={A: 40, B: 9})
    watch = StuckPartitions(app(consumer), topics={"agency.x.v1"})
    looks(watch, 1)
    assert consumer.seeks == []  # one look cannot tell stuck from slow
    looks(watch, 1)
    assert consumer.seeks == [{A: 10}]  # B fetched nothing beyond its committed offset: it only waits


def test_a_partition_that_makes_progress_is_left_alone() -> None:
    consumer = Consumer(assigned={A}, committed={A: 10}, positions={A: 40}, highwaters={A: 40})
    watch = StuckPartitions(app(consumer), topics={"agency.x.v1"})
    looks(watch, 1)
    consumer.committed[A] = 25
    looks(watch, 1)
    assert consumer.seeks == []


def test_nothing_is_sought_during_a_rebalance_or_while_an_agent_waits_for_the_registry_or_the_broker() -> None:
    consumer = Consumer(assigned={A}, committed={A: 10}, positions={A: 40}, highwaters={A: 40})
    watch = StuckPartitions(app(consumer, rebalancing=True), topics={"agency.x.v1"})
    looks(watch, 3)
    waiting = StuckPartitions(app(consumer), topics={"agency.x.v1"})
    waiting.paused.add("normalize")
    looks(waiting, 3)
    other_topic = StuckPartitions(app(consumer), topics={"canonical.person.v2"})
    looks(other_topic, 3)
    assert consumer.seeks == []
