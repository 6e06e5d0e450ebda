import datetime as dt

from satubus.consumers.activity import per_minute
from satubus.consumers.scoreboard import Activity, Block, Rules, assess, scoreboard
from satubus.schemas.catalogue import load_catalogue

NOW = dt.datetime(2026, 11, 29, 10, 30, tzinfo=dt.UTC)
RULES = Rules()
DINSOS = next(a for a in load_catalogue() if a.code == "dinsos")


def test_a_recent_valid_event_and_few_invalid_ones_make_an_agency_integrated() -> None:
    status = assess(DINSOS, Activity(NOW - dt.timedelta(minutes=3), 500, 10_000, 200), NOW, RULES)
    assert (status.status, status.events_per_minute, status.invalid_ratio) == ("integrated", 100.0, 0.02)


def test_no_valid_event_within_the_sla_makes_it_stale_and_says_since_when() -> None:
    status = assess(DINSOS, Activity(NOW - dt.timedelta(hours=3), 0, 10, 0), NOW, RULES)
    assert status.status == "stale"
    assert status.reason == "last valid event 3 h ago, more than 60 min"


def test_too_many_invalid_events_make_it_stale_even_when_fresh() -> None:
    status = assess(DINSOS, Activity(NOW, 100, 100, 31), NOW, RULES)
    assert status.status == "stale"
    assert status.reason == "31% of events invalid in the last 24 h, over the allowed 10%"


def test_an_agency_never_heard_from_is_silent() -> None:
    status = assess(DINSOS, None, NOW, RULES)
    assert (status.status, status.last_valid_at, status.events_per_minute, status.invalid_ratio) == (
        "silent",
        None,
        0,
        None,
    )


def test_only_invalid_events_is_still_silent() -> None:
    assert assess(DINSOS, Activity(None, 50, 50, 50), NOW, RULES).status == "silent"


def test_the_scoreboard_lists_every_catalogue_agency_integrated_first() -> None:
    catalogue = load_catalogue()
    board = scoreboard(catalogue, {"dukcapil": Activity(NOW, 1, 1, 0)}, NOW, RULES)
    assert len(board) == len(catalogue) == 52
    assert [s.status for s in board[:2]] == ["integrated", "silent"]
    assert board[0].code == "dukcapil"


def test_batches_add_up_per_agency_dataset_and_minute() -> None:
    def batch(second: int, events: int, invalid: int, dataset: str = "penerima_bansos") -> dict[str, object]:
        at = dt.datetime(2026, 11, 29, 10, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=second)
        return {
            "agency": "dinsos",
            "dataset": dataset,
            "processed_at": at,
            "events_in": events,
            "accepted": events - invalid,
            "invalid": invalid,
            "dropped": 0,
        }

    rows = per_minute([batch(5, 10, 1), batch(20, 4, 4), batch(50, 3, 0), batch(61, 2, 2), batch(7, 1, 0, "layanan")])
    minute = dt.datetime(2026, 11, 29, 10, 0, tzinfo=dt.UTC)
    assert sorted(rows) == sorted(
        [
            ("dinsos", "penerima_bansos", minute, 17, 12, 5, 0, minute.replace(second=50)),
            ("dinsos", "penerima_bansos", minute.replace(minute=1), 2, 0, 2, 0, None),  # nothing valid
            ("dinsos", "layanan", minute, 1, 1, 0, 0, minute.replace(second=7)),
        ]
    )


def test_a_batch_of_only_redeliveries_is_no_valid_activity() -> None:
    """Redeliveries and stale versions (dropped) are not activity: an agency whose last accepted event is older than
    the SLA is stale, however many duplicates it keeps sending."""
    accepted_at = NOW - dt.timedelta(hours=2)

    def batch(at: dt.datetime, accepted: int, invalid: int, dropped: int) -> dict[str, object]:
        counts = {"accepted": accepted, "invalid": invalid, "dropped": dropped}
        return {
            "agency": "dinsos",
            "dataset": "penerima_bansos",
            "processed_at": at,
            **counts,
            "events_in": sum(counts.values()),
        }

    rows = per_minute([batch(accepted_at, 5, 0, 0), batch(NOW, 0, 0, 40), batch(NOW, 0, 1, 9)])
    last_valid = {minute: row[-1] for (_, _, minute, *row) in rows}
    assert last_valid == {accepted_at.replace(second=0, microsecond=0): accepted_at, NOW: None}
    activity = Activity(max(v for v in last_valid.values() if v is not None), 50, 55, 1)
    assert assess(DINSOS, activity, NOW, RULES).status == "stale"


def test_a_blocked_agency_is_blocked_whatever_it_sent_and_says_who_and_why() -> None:
    block = Block(NOW - dt.timedelta(hours=1), "pusdatin", "forged deaths")
    status = assess(DINSOS, Activity(NOW, 500, 10_000, 0), NOW, RULES, block)
    assert status.status == "blocked"
    assert status.reason == "blocked by pusdatin at 2026-11-29 09:30 UTC: forged deaths"
    board = scoreboard(load_catalogue(), {"dinsos": Activity(NOW, 1, 1, 0)}, NOW, RULES, {"dinsos": block})
    assert board[-1].code == "dinsos"  # listed last, after the silent ones
