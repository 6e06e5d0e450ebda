"""Joins as explicit state: the parts one entity key gathered from several agencies, folded into one unified record.

Pure: the stream processor keeps one ``JoinState`` per entity key in a faust Table (whose changelog rebuilds it
after a restart) and, for each part read from ``canonical.<entity>``, calls ``merge`` then ``compose`` and
``findings``. A part is one agency record (a disbursement, an enrolment, a permit...); a newer version replaces it,
an older or repeated one is dropped, a deletion empties it but keeps its version. The joined ``version`` is the
key's revision: one more with every accepted change, whatever the order in which agencies' events arrive, so the
materializer's version guard works on joined records too. It is kept in the state, never summed from the parts'
versions, so no version a source sends can make it overflow an Avro long; it counts the changes the state took
(a state rebuilt from its changelog has it; one rebuilt by reading the parts again would count only those read).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel

from satubus.schemas.models import (
    AidPayment,
    BuildingPermit,
    FindingKind,
    Parcel,
    ParcelTax,
    ParcelZoning,
    Person,
    PersonIdentity,
    SchoolEnrolment,
)
from satubus.streams import state_json
from satubus.streams.ordering import Verdict

# The part of canonical.person that erases the person (satubus erase): the joiner forgets their state and sends
# tombstones for what it published about them. Sent by the bus itself, as this agency.
ERASURE_PART = "erasure"
ERASURE_AGENCY = "bus"

# A state kept before the revision starts from the sum of its parts' versions, the joined version it last published,
# unless hostile versions pushed that sum near 2^63: it then starts here, with room for 2^32 more changes.
LEGACY_VERSION_CEILING = 2**63 - 1 - 2**32


@dataclass(frozen=True, slots=True)
class PartChange:
    """One message of ``canonical.<entity>`` (schemas/canonical/part.avsc), ``data`` decoded from its JSON."""

    entity: str
    entity_key: str
    part: str
    part_key: str
    agency: str
    dataset: str
    event_id: str
    version: int
    occurred_at: dt.datetime
    data: dict[str, Any] | None

    def to_avro(self) -> dict[str, Any]:
        fields = {n: getattr(self, n) for n in self.__slots__ if n != "data"}
        data = None if self.data is None else orjson.dumps(self.data, option=orjson.OPT_SORT_KEYS).decode()
        return fields | {"data": data}

    @classmethod
    def from_avro(cls, record: dict[str, Any]) -> PartChange:
        data = record["data"]
        return cls(**(record | {"data": None if data is None else orjson.loads(data)}))


@dataclass(frozen=True, slots=True)
class Slot:
    part: str
    agency: str
    event_id: str
    version: int
    occurred_at: dt.datetime
    data: dict[str, Any] | None  # None: deleted at the source


@dataclass(frozen=True, slots=True)
class OpenFinding:
    detected_at: dt.datetime
    evidence: dict[str, str]
    agencies: tuple[str, ...]


@dataclass
class JoinState:
    slots: dict[str, Slot] = field(default_factory=dict)  # "<part>:<part_key>" -> the latest version of that record
    open_findings: dict[FindingKind, OpenFinding] = field(default_factory=dict)  # kind -> when and why it was raised
    published: bool = False  # a unified record of this key was sent (so an empty state sends a tombstone)
    region: str | None = None  # the kelurahan this entity last contributed to (streams/regions.py)
    version: int = 0  # the joined version: the key's revision, one more with every accepted change

    @property
    def latest(self) -> Slot:
        return max(self.slots.values(), key=lambda s: (s.occurred_at, s.event_id))

    def live(self, part: str) -> list[Slot]:
        """The part's records that exist now, in a stable order (by record key)."""
        return [s for k, s in sorted(self.slots.items()) if s.part == part and s.data is not None]

    def encode(self) -> bytes:
        return state_json.dumps(
            {
                "slots": {
                    k: [s.part, s.agency, s.event_id, s.version, s.occurred_at.isoformat(), s.data]
                    for k, s in self.slots.items()
                },
                "findings": {
                    kind: [f.detected_at.isoformat(), f.evidence, list(f.agencies)]
                    for kind, f in self.open_findings.items()
                },
                "published": self.published,
                "region": self.region,
                "version": self.version,
            },
            sort_keys=True,
        )

    @classmethod
    def decode(cls, raw: bytes | None) -> JoinState:
        if raw is None:
            return cls()
        state = orjson.loads(raw)
        slots = {
            k: Slot(part, agency, event_id, version, dt.datetime.fromisoformat(at), data)
            for k, (part, agency, event_id, version, at, data) in state["slots"].items()
        }
        findings = {
            kind: OpenFinding(dt.datetime.fromisoformat(at), evidence, tuple(agencies))
            for kind, (at, evidence, agencies) in state["findings"].items()
        }
        version = state.get("version")
        if version is None:  # kept before the revision was: its joined version was the sum of its parts' versions
            version = min(sum(slot.version for slot in slots.values()), LEGACY_VERSION_CEILING)
        return cls(slots, findings, state["published"], state["region"], version)


def merge(state: JoinState, change: PartChange) -> Verdict:
    """Apply ``change`` to ``state`` unless it repeats or predates what the state holds for that record."""
    slot_key = f"{change.part}:{change.part_key}"
    held = state.slots.get(slot_key)
    if held is not None:
        if change.event_id == held.event_id:
            return "duplicate"
        if change.version <= held.version:
            return "stale"
    state.slots[slot_key] = Slot(
        change.part, change.agency, change.event_id, change.version, change.occurred_at, change.data
    )
    state.version += 1
    return "new"


def _lineage(state: JoinState) -> dict[str, Any]:
    latest = state.latest
    return {"version": state.version, "updated_at": latest.occurred_at, "source_event_id": latest.event_id}


def _fields(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    return {name: data[name] for name in model.model_fields if name in data}


def compose_person(person_id: str, state: JoinState) -> Person | None:
    """The person-360 record, or None while Dukcapil has no (live) record of this person: the unified person is
    anchored on the civil registry; parts without it raise a finding instead."""
    identity = state.live("identity")
    if not identity:
        return None
    assert identity[0].data is not None
    visits = [s.data for s in state.live("health") if s.data is not None]
    return Person(
        **_fields(PersonIdentity, identity[0].data),
        **_lineage(state),
        aid=sorted(
            (AidPayment(**_fields(AidPayment, s.data)) for s in state.live("aid") if s.data is not None),
            key=lambda a: a.disbursement_id,
        ),
        schooling=sorted(
            (SchoolEnrolment(**_fields(SchoolEnrolment, s.data)) for s in state.live("schooling") if s.data),
            key=lambda e: e.nisn,
        ),
        health_visits=len(visits),
        last_health_visit_at=max((v["visited_at"] for v in visits), default=None),
        immunisations=sorted({v["vaccine"] for v in visits if v.get("vaccine")}),
    )


def compose_parcel(nop: str, state: JoinState) -> Parcel | None:
    """The parcel-360 record, or None when no agency holds a live record of the parcel (a tombstone)."""
    tax = next((s.data for s in state.live("tax")), None)
    zoning = next((s.data for s in state.live("zoning")), None)
    permits = [s.data for s in state.live("permit") if s.data is not None]
    if tax is None and zoning is None and not permits:
        return None
    located = tax or zoning or {}
    return Parcel(
        nop=nop,
        kelurahan_code=located.get("kelurahan_code"),
        address=tax["address"] if tax else None,
        tax=None if tax is None else _parcel_tax(tax),
        zoning=None if zoning is None else ParcelZoning(**_fields(ParcelZoning, zoning)),
        permits=sorted((BuildingPermit(**_fields(BuildingPermit, p)) for p in permits), key=lambda p: p.application_id),
        version=state.version,
        updated_at=state.latest.occurred_at,
    )


def _parcel_tax(tax: dict[str, Any]) -> ParcelTax:
    assessed = tax["land_area_m2"] * tax["land_value_per_m2"] + tax["building_area_m2"] * tax["building_value_per_m2"]
    return ParcelTax(**_fields(ParcelTax, tax), assessed_value=assessed)


# --- findings: cross-agency inconsistencies of one entity, each (kind -> evidence, agencies) or absent ----------

Detected = dict[FindingKind, tuple[dict[str, str], tuple[str, ...]]]


def person_findings(state: JoinState) -> Detected:
    found: Detected = {}
    identity = state.live("identity")
    claims = state.live("aid") + state.live("schooling")
    if not identity and claims:
        agencies = tuple(sorted({s.agency for s in claims}))
        found["NO_CIVIL_REGISTRY_RECORD"] = ({"known_to": ", ".join(agencies)}, agencies)
    if identity and identity[0].data and identity[0].data.get("deceased_on"):
        died = identity[0].data["deceased_on"]
        after_death = [s for s in state.live("aid") if s.data and (s.data.get("paid_on") or "") > died]
        if after_death:
            first = min(after_death, key=lambda s: s.data["paid_on"] if s.data else "")
            assert first.data is not None
            evidence = {
                "deceased_on": died,
                "disbursement_id": first.data["disbursement_id"],
                "paid_on": first.data["paid_on"],
                "payments_after_death": str(len(after_death)),
            }
            found["AID_TO_DECEASED"] = (evidence, ("dinsos", "dukcapil"))
    return found


def parcel_findings(state: JoinState) -> Detected:
    found: Detected = {}
    zoning = next((s.data for s in state.live("zoning")), None)
    if zoning is None:
        return found
    forbidden = set(zoning.get("forbidden_functions") or ())
    permits = [p.data for p in state.live("permit") if p.data is not None]
    clashes = [p for p in permits if p["status"] == "ISSUED" and p["function"] in forbidden]
    if clashes:
        first = min(clashes, key=lambda p: p["application_id"])
        evidence = {
            "application_id": first["application_id"],
            "function": first["function"],
            "zone_code": zoning["zone_code"],
            "forbidden": ", ".join(sorted(forbidden)),
        }
        found["PERMIT_FORBIDDEN_BY_ZONING"] = (evidence, ("citata", "dpmptsp"))
    return found


@dataclass(frozen=True, slots=True)
class FindingChange:
    kind: FindingKind
    status: str  # OPEN or RESOLVED
    detected_at: dt.datetime
    evidence: dict[str, str]
    agencies: tuple[str, ...]


def track_findings(state: JoinState, detected: Detected, now: dt.datetime) -> list[FindingChange]:
    """Update the state's open findings from what ``detected`` says holds now; return what opened or resolved."""
    changes: list[FindingChange] = []
    for kind, (evidence, agencies) in sorted(detected.items()):
        if kind not in state.open_findings:
            state.open_findings[kind] = OpenFinding(now, evidence, agencies)
            changes.append(FindingChange(kind, "OPEN", now, evidence, agencies))
    for kind in sorted(set(state.open_findings) - set(detected)):
        was = state.open_findings.pop(kind)
        changes.append(FindingChange(kind, "RESOLVED", was.detected_at, was.evidence, was.agencies))
    return changes


@dataclass(frozen=True, slots=True)
class Join:
    """How one entity is joined: its record builder and its finding rules."""

    entity: str
    compose: Callable[[str, JoinState], BaseModel | None]
    findings: Callable[[JoinState], Detected]


JOINS = {
    "person": Join("person", compose_person, person_findings),
    "parcel": Join("parcel", compose_parcel, parcel_findings),
}
