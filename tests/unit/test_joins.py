"""The joiners' state transitions, without Kafka."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import orjson

from satubus.schemas.envelope import unified_schema
from satubus.schemas.regions import load_regions
from satubus.serde import Encoder
from satubus.streams.joins import (
    JOINS,
    LEGACY_VERSION_CEILING,
    JoinState,
    PartChange,
    compose_person,
    merge,
    track_findings,
)
from satubus.streams.regions import Contributor, RegionState, compose_region

T0 = dt.datetime(2026, 11, 28, 8, 0, tzinfo=dt.UTC)
PID = "a" * 64
NOP = "317106000100100010"

IDENTITY = {
    "person_id": PID,
    "household_id": "b" * 64,
    "full_name": "Siti Rahmawati",
    "birth_date": "1950-08-15",
    "sex": "FEMALE",
    "address": "Jl. Kenari II No. 5 RT 003/RW 011",
    "kelurahan_code": "31.71.06.1001",
    "kecamatan_code": "31.71.06",
    "kota_code": "31.71",
    "is_deceased": False,
    "deceased_on": None,
}
AID = {
    "person_id": PID,
    "disbursement_id": "KLJ-2026-10-000001",
    "programme": "KLJ",
    "period": "2026-10",
    "amount": 300000,
    "status": "PAID",
    "paid_on": "2026-10-05",
    "kelurahan_code": "31.71.06.1001",
}
VISIT = {
    "person_id": PID,
    "visit_id": "KJ-1",
    "visited_at": "2026-11-01T03:00:00Z",
    "facility": "P317106",
    "service": "OUTPATIENT",
    "vaccine": None,
    "kelurahan_code": "31.71.06.1001",
}


def part(
    name: str, data: dict[str, Any] | None, version: int = 1, minutes: int = 0, entity: str = "person", key: str = PID
) -> PartChange:
    return PartChange(
        entity,
        key,
        name,
        f"{name}-record",
        {"identity": "dukcapil", "aid": "dinsos", "health": "dinkes", "zoning": "citata", "permit": "dpmptsp"}[name],
        "dataset",
        f"event-{name}-{version}-{minutes}",
        version,
        T0 + dt.timedelta(minutes=minutes),
        data,
    )


def fold(changes: list[PartChange], entity: str = "person") -> tuple[JoinState, Any, set[str]]:
    state = JoinState()
    open_findings: set[str] = set()
    for change in changes:
        if merge(state, change) == "new":
            for found in track_findings(state, JOINS[entity].findings(state), now=change.occurred_at):
                (open_findings.add if found.status == "OPEN" else open_findings.discard)(found.kind)
    state = JoinState.decode(state.encode())  # what a restarted worker reads back from the changelog
    return state, JOINS[entity].compose(changes[0].entity_key, state), open_findings


def test_the_joined_person_is_the_same_whatever_order_the_agencies_events_arrive_in() -> None:
    changes = [
        part("identity", IDENTITY, version=1, minutes=0),
        part("identity", IDENTITY | {"address": "Jl. Baru 1 RT 001/RW 001"}, version=2, minutes=5),
        part("aid", AID, version=1, minutes=1),
        part("health", VISIT, version=1, minutes=2),
    ]
    results = [fold(list(order))[1] for order in itertools.permutations(changes)]
    person = results[0]
    assert all(r.model_dump(exclude={"version"}) == person.model_dump(exclude={"version"}) for r in results)
    # The version counts the changes each order accepted: identity version 1 after version 2 is stale.
    assert {result.version for result in results} == {3, 4}
    assert person.address == "Jl. Baru 1 RT 001/RW 001"
    assert person.updated_at == T0 + dt.timedelta(minutes=5)
    assert [a.disbursement_id for a in person.aid] == ["KLJ-2026-10-000001"]
    assert person.health_visits == 1


def test_repeated_and_older_parts_are_dropped() -> None:
    state = JoinState()
    assert merge(state, part("identity", IDENTITY, version=2)) == "new"
    assert merge(state, part("identity", IDENTITY, version=2)) == "duplicate"
    assert merge(state, part("identity", IDENTITY, version=1, minutes=9)) == "stale"
    assert state.version == 1  # one accepted change


def test_without_a_civil_registry_record_there_is_no_person_but_a_finding() -> None:
    _, person, found = fold([part("aid", AID)])
    assert person is None and found == {"NO_CIVIL_REGISTRY_RECORD"}
    _, person, found = fold([part("aid", AID), part("identity", IDENTITY, minutes=1)])
    assert person is not None and found == set()  # resolved once Dukcapil's record arrives


def test_a_deleted_identity_leaves_no_person() -> None:
    state, person, found = fold([part("identity", IDENTITY), part("identity", None, version=2, minutes=1)])
    assert person is None and state.version == 2 and found == set()


def test_aid_paid_after_death_is_a_finding_until_the_death_is_corrected() -> None:
    dead = IDENTITY | {"is_deceased": True, "deceased_on": "2026-09-30"}
    _, _, found = fold([part("identity", dead), part("aid", AID, minutes=1)])
    assert found == {"AID_TO_DECEASED"}
    corrected = dead | {"deceased_on": "2026-10-30"}
    _, _, found = fold([part("identity", dead), part("aid", AID, minutes=1), part("identity", corrected, 2, 2)])
    assert found == set()


def test_an_issued_permit_for_a_forbidden_function_is_a_finding() -> None:
    zoning = {
        "nop": NOP,
        "kelurahan_code": "31.71.06.1001",
        "zone_code": "R",
        "subzone_code": "R.2",
        "max_coverage_pct": 60.0,
        "max_floor_area_ratio": 1.2,
        "max_storeys": 3,
        "forbidden_functions": ["INDUSTRIAL"],
        "effective_from": "2022-07-01",
    }
    permit = {
        "nop": NOP,
        "application_id": "PBG-1",
        "permit_number": "PBG-1-X",
        "function": "INDUSTRIAL",
        "floor_area_m2": 120.0,
        "storeys": 2,
        "status": "ISSUED",
        "issued_on": "2026-01-02",
    }
    changes = [part("zoning", zoning, entity="parcel", key=NOP), part("permit", permit, entity="parcel", key=NOP)]
    _, parcel, found = fold(changes, "parcel")
    assert found == {"PERMIT_FORBIDDEN_BY_ZONING"}
    assert parcel.zoning.zone_code == "R" and parcel.permits[0].application_id == "PBG-1" and parcel.tax is None
    refused = part("permit", permit | {"status": "REFUSED"}, version=2, minutes=1, entity="parcel", key=NOP)
    assert fold([*changes, refused], "parcel")[2] == set()


def test_a_region_sums_its_contributors_and_counts_incidents_of_the_last_24_hours_of_event_time() -> None:
    regions = load_regions()
    code = "31.71.06.1001"

    def contribution(kind: str, who: str, data: dict[str, Any] | None, version: int, minutes: int) -> PartChange:
        at = T0 + dt.timedelta(minutes=minutes)
        return PartChange("region", code, kind, who, "x", kind, f"{who}@{version}", version, at, data)

    alive = {"population": 1, "deceased": 0, "aid_recipients": 1, "students": 0}
    state, contributors = RegionState(), dict[str, Contributor]()
    applied = []
    for change in [
        contribution("person", "p1", alive, 3, 0),
        contribution("person", "p2", alive | {"aid_recipients": 0}, 1, 1),
        contribution("person", "p1", alive, 3, 0),  # redelivered: counted once
        contribution("incident", "i1", {"started_at": (T0 - dt.timedelta(hours=30)).isoformat()}, 1, 2),
        contribution("incident", "i2", {"started_at": (T0 - dt.timedelta(hours=2)).isoformat()}, 1, 3),
        contribution("person", "p2", None, 2, 4),  # moved away
        contribution("person", "p2", alive, 1, 5),  # an older change, late: it must not bring p2 back
    ]:
        now = state.apply(change, contributors.get(change.part_key))
        applied.append(now is not None)
        if now is not None:
            contributors[change.part_key] = now
    assert applied == [True, True, False, True, True, True, False]
    state = RegionState.decode(state.encode())  # what the table keeps
    region = compose_region(code, state, regions=regions)
    assert region is not None
    assert (region.population, region.aid_recipients, region.incidents_24h) == (1, 1, 1)
    assert region.version == applied.count(True) and region.name == regions.kelurahan(code).name  # type: ignore[union-attr]


def test_versions_near_2_63_neither_overflow_the_joined_version_nor_freeze_the_key() -> None:
    """The joined version was the sum of the parts' versions: two parts near 2^63 made it overflow an Avro long,
    and the key's unified record could never be sent again. It is the key's revision now."""
    top = 2**63 - 1
    state, person, _ = fold([part("identity", IDENTITY, version=top - 1), part("aid", AID, version=top, minutes=1)])
    assert person is not None and person.version == 2
    assert merge(state, part("identity", IDENTITY | {"address": "Jl. Baru 1"}, version=top, minutes=2)) == "new"
    assert merge(state, part("aid", AID, version=top, minutes=3)) == "stale"  # nothing is newer than the top
    changed = compose_person(PID, state)
    assert changed is not None and (changed.version, changed.address) == (3, "Jl. Baru 1")
    Encoder(1, unified_schema("person")).encode(changed.model_dump())  # fits an Avro long: the record can be sent


def test_a_state_kept_before_the_revision_goes_on_from_the_version_it_published() -> None:
    state, _, _ = fold([part("identity", IDENTITY, version=5), part("aid", AID, version=3, minutes=1)])
    legacy = orjson.loads(state.encode())
    del legacy["version"]  # as the sum-of-versions code kept it

    kept = JoinState.decode(orjson.dumps(legacy))
    assert kept.version == 5 + 3  # the joined version it last published: the next one is newer
    assert merge(kept, part("aid", AID, version=4, minutes=2)) == "new" and kept.version == 9

    for slot in legacy["slots"].values():
        slot[3] = 2**63 - 1  # hostile versions, accepted before they were bounded
    assert JoinState.decode(orjson.dumps(legacy)).version == LEGACY_VERSION_CEILING
