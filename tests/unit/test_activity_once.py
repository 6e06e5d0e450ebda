"""Each offset of an agency topic counts once on the scoreboard, however often its batch ran."""

import datetime as dt

from satubus.consumers.activity import count_once
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

    counted, advanced = count_once([crashed, again], {})

    assert counts(counted) == (80, 50, 30, 0)
    assert advanced == {WHERE: 180}


def test_offsets_counted_by_an_earlier_transaction_are_left_out() -> None:
    counted, advanced = count_once([batch({n: "accepted" for n in range(5, 15)})], {WHERE: 10})
    assert counts(counted) == (5, 5, 0, 0)
    assert advanced == {WHERE: 15}

    counted, advanced = count_once([batch({n: "accepted" for n in range(3, 8)})], {WHERE: 10})
    assert counted == [] and advanced == {}


def test_partitions_are_counted_apart_and_records_of_counts_only_as_they_are() -> None:
    of_counts = {"agency": "dukcapil", "dataset": "penduduk", "processed_at": NOW, "events_in": 4, "accepted": 4}
    of_counts |= {"invalid": 0, "dropped": 0}
    records = [batch({7: "accepted"}, partition=0), batch({7: "accepted"}, partition=1), of_counts]

    counted, advanced = count_once(records, {WHERE: 7})

    assert counts(counted) == (6, 6, 0, 0)
    assert advanced == {WHERE: 8, ("dukcapil", "penduduk", 1): 8}
