"""The stream processor's side of ``satubus erase``: an erasure part makes the joiners forget the person and tombstone
what was published; an erasure on ``bus.erasure`` makes the normalizer forget which agency records went to them."""

from __future__ import annotations

import datetime as dt

from satubus.erasure import erasure_part
from satubus.schemas.topics import ERASURES
from satubus.streams.ordering import KeyState
from satubus.streams.processor import Input, Outcome
from tests.samples import NIK
from tests.unit.test_processor import (
    BANSOS,
    IDENTITY,
    MENTENG,
    NIK_2,
    PARTS,
    PAYMENT,
    PENDUDUK,
    PID,
    PID_2,
    T0,
    Bus,
    aid,
    change,
    part,
    resident,
    sent,
    value,
)


def test_an_erasure_tombstones_the_person_the_nik_and_the_findings_and_forgets_the_state() -> None:
    bus = Bus()
    joined = bus.join(bus.input(PARTS, change("identity", IDENTITY)), bus.input(PARTS, change("aid", PAYMENT)))
    (contribution,) = sent(joined, "canonical.region.v2")
    bus.join(bus.input("canonical.region.v2", value(contribution)), entity="region")
    assert bus.state[PID] is not None and any(
        PID in key for key, v in bus.state.items() if v is not None and key != PID
    )

    erasure = erasure_part(PID, T0 + dt.timedelta(hours=1)).to_avro()
    result = bus.join(bus.input(PARTS, erasure, offset=3))

    assert result.outcomes == [Outcome("person", "accepted")]
    (person,) = sent(result, "unified.person.v1")
    (nik,) = sent(result, "restricted.person_nik.v1")
    assert (person.key, person.value, nik.key, nik.value) == (PID.encode(), None, PID.encode(), None)
    findings = sent(result, "unified.finding.v1")
    assert f"AID_TO_DECEASED:{PID}".encode() in {f.key for f in findings}
    assert all(f.value is None for f in findings)
    assert bus.state[PID] is None  # a tombstone in the joiner's changelog

    (withdrawal,) = sent(result, "canonical.region.v2")
    assert (part(withdrawal).entity_key, part(withdrawal).data) == (MENTENG, None)
    regions = bus.join(bus.input("canonical.region.v2", value(withdrawal)), entity="region")
    (region,) = sent(regions, "unified.region.v1")
    assert region.value is None  # she was its only resident
    assert not [key for key, v in bus.state.items() if PID in key and v is not None]  # no contributor left


def test_parts_after_an_erasure_in_one_batch_start_a_new_person_and_those_before_are_dropped() -> None:
    bus = Bus()
    erasure = erasure_part(PID, T0 + dt.timedelta(minutes=5)).to_avro()
    result = bus.join(
        bus.input(PARTS, change("aid", PAYMENT), offset=1),
        bus.input(PARTS, erasure, offset=2),
        bus.input(PARTS, change("identity", IDENTITY, minutes=10), offset=3),
    )
    assert [o.status for o in result.outcomes] == ["dropped", "accepted", "accepted"]
    people = sent(result, "unified.person.v1")
    assert [p.value is None for p in people] == [True, False]
    assert value(people[-1])["aid"] == []


def erasure(person: str, *, partition: int = 0, offset: int = 9) -> Input:
    """What ``satubus erase`` sends to each partition of ``bus.erasure``."""
    return Input(ERASURES.name, partition, offset, None, person.encode())


def test_an_erasure_makes_the_normalizer_forget_which_records_went_to_the_person() -> None:
    bus = Bus()
    bus.normalize(bus.input(PENDUDUK, resident(n=1, version=1)), bus.input(BANSOS, aid(n=2)))
    bus.normalize(bus.input(PENDUDUK, resident("someone-else", n=3, nik=NIK_2)))
    assert sum(PID.encode() in v for v in bus.state.values()) == 2

    result = bus.normalize(erasure(PID))

    assert result.outcomes == [Outcome(ERASURES.name, "accepted")]
    assert result.outputs == []  # the joiner, told by its own erasure part, tombstones what was published
    assert not [key for key, v in bus.state.items() if PID.encode() in v]
    assert sum(PID_2.encode() in v for v in bus.state.values()) == 1  # the other resident keeps hers
    # The records' versions and event ids stay: a redelivery of what was erased is still dropped.
    again = bus.normalize(bus.input(PENDUDUK, resident(n=1, version=1), offset=5))
    assert again.outcomes == [Outcome("dukcapil.penduduk", "dropped", "duplicate")]
    assert sent(again, PARTS) == []


def test_after_an_erasure_a_deletion_at_the_source_sends_no_removal_and_a_new_version_routes_again() -> None:
    bus = Bus()
    bus.normalize(bus.input(PENDUDUK, resident(n=1, version=1)), bus.input(BANSOS, aid(n=2)))
    bus.normalize(erasure(PID))

    deleted = bus.normalize(bus.input(PENDUDUK, resident(n=3, version=2, deleted=True)))
    assert deleted.outcomes == [Outcome("dukcapil.penduduk", "dropped", "unlinked")]
    assert sent(deleted, PARTS) == []

    resent = bus.normalize(bus.input(BANSOS, aid(n=4, version=2)))  # the agency sends the person again
    (back,) = sent(resent, PARTS)
    assert back.key == PID.encode()


def test_an_erasure_sees_the_routes_written_earlier_in_its_batch_and_only_its_partition() -> None:
    bus = Bus()
    result = bus.normalize(
        bus.input(PENDUDUK, resident(n=1, version=1)),
        erasure(PID),
        bus.input(BANSOS, aid(n=2), partition=1),
        erasure(PID, partition=2),
    )
    assert [o.status for o in result.outcomes] == ["accepted", "accepted", "accepted", "accepted"]
    routed = {key: KeyState.decode(write.value) for key, write in result.state.items()}
    assert [state.routed_to for state in routed.values() if state] == [None, PID]


def test_an_erasure_that_is_not_a_person_id_is_dead_lettered() -> None:
    bus = Bus()
    bus.normalize(bus.input(PENDUDUK, resident(n=1, version=1)))

    result = bus.normalize(erasure(NIK), erasure(PID.upper()))

    assert [(o.status, o.reason) for o in result.outcomes] == [("invalid", "invalid_erasure")] * 2
    letters = sent(result, "bus.dlq")
    assert len(letters) == 2 and NIK.encode() not in b"".join(v for _, v in letters[0].headers)
    assert any(PID.encode() in v for v in bus.state.values())
