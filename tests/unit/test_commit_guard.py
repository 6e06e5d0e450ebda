"""The commit guard: faust must not commit past an offset that was never processed."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from intervaltree import IntervalTree

from satubus.streams.commit_guard import _faust_add_gap, _faust_new_offset, _new_offset, _no_gap

TP = ("agency.dukcapil.penduduk.v1", 0)


def consumer(committed: int | None, acked: list[int]) -> Any:
    return SimpleNamespace(
        _acked=defaultdict(list, {TP: list(acked)}),
        _acked_index=defaultdict(set, {TP: set(acked)}),
        _committed_offset=defaultdict(lambda: None, {TP: committed}),
        _gap=defaultdict(IntervalTree),
    )


def test_faust_alone_commits_past_a_single_unprocessed_offset() -> None:
    assert _faust_new_offset(consumer(10, [11, 12, 13]), TP) == 14  # offset 10 would be lost


def test_the_guard_withholds_the_commit_until_the_head_offset_is_processed() -> None:
    assert _new_offset(consumer(10, [11, 12, 13]), TP) is None
    assert _new_offset(consumer(10, [10, 11, 12, 13]), TP) == 14
    assert _new_offset(consumer(None, [3, 4]), TP) is None  # no commit yet: the head is unknown until it is set


def test_an_offset_skipped_by_the_stream_is_not_taken_for_compacted_away() -> None:
    """faust records the offsets between two messages read as a gap (compacted away) and commits over it."""
    faust_alone, guarded = consumer(11, [12, 13]), consumer(11, [12, 13])
    asyncio.run(_faust_add_gap(faust_alone, TP, 11, 12))  # offset 12 read after offset 10: 11 was dropped
    assert _faust_new_offset(faust_alone, TP) > 11  # committed past 11: lost
    asyncio.run(_faust_add_gap(guarded, TP, 11, 12))
    assert _new_offset(guarded, TP) is None  # even with the gap recorded
    asyncio.run(_no_gap(guarded, TP, 11, 12))  # and the guard's consumer records none
