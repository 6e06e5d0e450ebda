"""Each offset of an agency topic counts once on the scoreboard, however often its batch ran."""

import datetime as dt

from satubus.consumers.activity import HOLES_KEPT, Counted, count_once
from satubus.schemas import activity

NOW = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
WHERE = ("dukcapil", "penduduk", 0)


def batch(statuses: dict[int, activity.Status], partition: int = 0) -> dict[str, object]:
    return activity.record("dukcapil", "penduduk", partition, statuses, NOW)


def counts(records: list[dict[str, object]]) -> tuple[int, int, int, int]:
    names = ("events_in", "accepted", "invalid", "dropped")
    return tuple(sum(int(r[n]) for r in records) for n in names)  # type: ignore[return-value, call-overload]


def test_a_record_holds_a_letter_per_offset_and_marks_the_offsets_it_did_not_hold() -> None:
    record = batch({10: "accepted", 11: "invalid", 13: "dropped"})
    assert (record["partition"], record["first_offset"], record["outcomes"]) == (0, 10, "ai-d")
    assert (record["events_in"], record["accepted"], record["invalid"], record["dropped"]) == (3, 1, 1, 1)
    assert activity.last_offset(record) == 13


def test_a_batch_run_again_with_more_events_counts_only_the_new_ones() -> None:
    crashed = batch({100 + n: "accepted" for n in range(50)})
    again = batch({100 + n: "dropped" if n < 50 else "invalid" for n in range(80)})  # its state had been recorded

    counted, advanced = count_once([crashed, again], {WHERE: Counted(100)})

    assert counts(counted) == (80, 50, 30, 0)
    assert advanced == {WHERE: Counted(180)}


def test_offsets_counted_by_an_earlier_transaction_are_left_out() -> None:
    counted, advanced = count_once([batch({n: "accepted" for n in range(5, 15)})], {WHERE: Counted(10)})
    assert counts(counted) == (5, 5, 0, 0)
    assert advanced == {WHERE: Counted(15)}

    counted, advanced = count_once([batch({n: "accepted" for n in range(3, 8)})], {WHERE: Counted(10)})
    assert counted == [] and advanced == {}


def test_partitions_are_counted_apart_and_records_of_counts_only_as_they_are() -> None:
    of_counts = {"agency": "dukcapil", "dataset": "penduduk", "processed_at": NOW, "events_in": 4, "accepted": 4}
    of_counts |= {"invalid": 0, "dropped": 0}
    records = [batch({7: "accepted"}, partition=0), batch({7: "accepted"}, partition=1), of_counts]

    counted, advanced = count_once(records, {WHERE: Counted(7)})

    assert counts(counted) == (6, 6, 0, 0)
    assert advanced == {WHERE: Counted(8), ("dukcapil", "penduduk", 1): Counted(8, set(range(7)))}


def test_an_event_a_batch_skipped_is_counted_when_it_is_read_again_after_later_ones() -> None:
    """A worker that starts may drop an event it fetched (faust-streaming #596) and process the ones after it; the
    event is read again later, below the offsets already counted."""
    skipped = batch({10: "accepted", 12: "invalid"})
    counted, state = count_once([skipped], {WHERE: Counted(10)})
    assert counts(counted) == (2, 1, 1, 0) and state == {WHERE: Counted(13, {11})}

    again = batch({11: "accepted"})
    counted, state = count_once([again], state)
    assert counts(counted) == (1, 1, 0, 0) and state == {WHERE: Counted(13)}

    counted, state = count_once([again], {WHERE: Counted(13)})  # and only once
    assert counted == [] and state == {}


def test_holes_too_far_back_are_forgotten() -> None:
    _, state = count_once([batch({0: "accepted", 2: "accepted"})], {})
    assert state == {WHERE: Counted(3, {1})}
    _, state = count_once([batch(dict.fromkeys(range(3, HOLES_KEPT + 1), "accepted"))], state)
    assert state == {WHERE: Counted(HOLES_KEPT + 1, {1})}
    _, state = count_once([batch({HOLES_KEPT + 1: "accepted"})], state)
    assert state == {WHERE: Counted(HOLES_KEPT + 2)}


def test_an_event_skipped_between_two_batches_is_counted_when_it_is_read_again() -> None:
    _, state = count_once([batch({5: "accepted", 6: "accepted"})], {WHERE: Counted(5)})
    counted, state = count_once([batch({8: "accepted"})], state)  # 7 was fetched and dropped by a starting worker
    assert counts(counted) == (1, 1, 0, 0) and state == {WHERE: Counted(9, {7})}
    counted, state = count_once([batch({7: "accepted", 8: "dropped"})], state)
    assert counts(counted) == (1, 1, 0, 0) and state == {WHERE: Counted(9)}


def test_events_before_a_partitions_first_counted_batch_are_counted_when_read() -> None:
    counted, state = count_once([batch({2: "accepted"})], {})  # 0 and 1 were fetched and dropped at the start
    assert counts(counted) == (1, 1, 0, 0) and state == {WHERE: Counted(3, {0, 1})}
    counted, state = count_once([batch({0: "invalid", 1: "accepted", 2: "dropped"})], state)
    assert counts(counted) == (2, 1, 1, 0) and state == {WHERE: Counted(3)}
