"""The joiners' side of ``satubus erase``: an erasure part forgets the person and tombstones what was published."""

from __future__ import annotations

import datetime as dt

from satubus.erasure import erasure_part
from satubus.streams.processor import Outcome
from tests.unit.test_processor import IDENTITY, MENTENG, PARTS, PAYMENT, PID, T0, Bus, change, part, sent, value


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
