"""Live aggregates per kelurahan, joined like any entity: each person and incident *contributes* to the region it
lies in, every agency's service requests are parts of it (their mapping says ``entity: region``), and the region
joiner sums them (below: the sums are kept incrementally, so that an update costs the same in any region).

A contribution is a part of the region (``canonical.region``; part ``person`` or ``incident``, part key the
contributor's id) carrying the contributor's current counts, versioned by the contributor's own version. A
redelivered or older contribution is dropped and a contributor that moves away sends a removal to the region it
left, so the sums stay exact under at-least-once delivery and in any arrival order. Pure.

Event time: ``incidents_24h`` counts incidents that started within 24 h before the region's stream time (the latest
event time among its contributions). Windows are never closed: a late event is applied whenever it arrives, so the
grace period for late events equals the window — an incident reported up to 24 h after it started still counts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel

from satubus.schemas.models import Incident, Person, Region
from satubus.schemas.regions import Regions
from satubus.streams import state_json
from satubus.streams.joins import PartChange

WINDOW = dt.timedelta(hours=24)


COUNTED = ("person", "incident")  # the entities whose records count in the region they lie in


def contribution(record: BaseModel | None) -> tuple[str, dict[str, Any]] | None:
    """The kelurahan a unified record lies in and what it counts there; None when it counts nowhere (deleted)."""
    if isinstance(record, Person):
        return record.kelurahan_code, person_counts(record)
    if isinstance(record, Incident):
        return record.kelurahan_code, incident_counts(record)
    return None


def person_counts(person: Person) -> dict[str, Any]:
    return {
        "population": int(not person.is_deceased),
        "deceased": int(person.is_deceased),
        "aid_recipients": int(not person.is_deceased and any(a.status == "PAID" for a in person.aid)),
        "students": int(any(e.status == "ACTIVE" for e in person.schooling)),
    }


def incident_counts(incident: Incident) -> dict[str, Any]:
    return {"started_at": incident.started_at.isoformat()}


# --- the region's state, kept incrementally: one record per contributor, and the sums -----------------------------
#
# A kelurahan of Jakarta holds up to ~50,000 residents. Keeping every contributor inside the region's own state would
# make each update cost as much as the region is large; instead the region's record holds only the sums (and the
# start times of its incidents, for the 24-hour window), and each contributor has a small record of its own under
# ``contributor_key``, with the version and counts it last contributed. An update costs the same in any region.

SUMMED = ("population", "deceased", "aid_recipients", "students", "open_service_requests")


def contributor_key(code: str, part: str, part_key: str) -> str:
    return f"{code}|{part}:{part_key}"


@dataclass(frozen=True, slots=True)
class Contributor:
    """What one contributor (person, incident, service request) last gave its region."""

    event_id: str
    version: int
    counts: dict[str, int]  # its share of the sums
    started_at: str | None = None  # an incident's start, ISO 8601
    live: bool = True  # False: it left (or was deleted); its version is kept to refuse older changes

    def encode(self) -> bytes:
        return state_json.dumps([self.event_id, self.version, self.counts, self.started_at, self.live])

    @classmethod
    def decode(cls, raw: bytes | None) -> Contributor | None:
        if raw is None:
            return None
        event_id, version, counts, started_at, live = orjson.loads(raw)
        return cls(event_id, version, counts, started_at, live)

    @classmethod
    def of(cls, change: PartChange) -> Contributor:
        data = change.data
        if data is None:
            return cls(change.event_id, change.version, {}, live=False)
        if change.part == "person":
            return cls(change.event_id, change.version, {k: int(data[k]) for k in SUMMED if k in data})
        if change.part == "incident":
            return cls(change.event_id, change.version, {}, started_at=str(data["started_at"]))
        return cls(change.event_id, change.version, {"open_service_requests": int(data.get("status") == "OPEN")})


@dataclass
class RegionState:
    sums: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SUMMED, 0))
    incidents: dict[str, str] = field(default_factory=dict)  # incident id -> its start, ISO 8601
    live: int = 0  # contributors that count here now
    version: int = 0  # the region's revision: one more with each accepted change (never a sum of versions)
    stream_time: dt.datetime | None = None  # the latest event time among its contributions; never goes back
    published: bool = False

    def apply(self, change: PartChange, before: Contributor | None) -> Contributor | None:
        """Apply a contribution over what its contributor gave before; None when it repeats or predates it."""
        if before is not None and (change.event_id == before.event_id or change.version <= before.version):
            return None
        now = Contributor.of(change)
        for name, n in (before.counts if before else {}).items():
            self.sums[name] -= n
        for name, n in now.counts.items():
            self.sums[name] += n
        self.live += int(now.live) - int(before.live if before else False)
        self.version += 1
        self.incidents.pop(change.part_key, None)
        if now.started_at is not None:
            self.incidents[change.part_key] = now.started_at
        if self.stream_time is None or change.occurred_at > self.stream_time:
            self.stream_time = change.occurred_at
        return now

    def encode(self) -> bytes:
        at = None if self.stream_time is None else self.stream_time.isoformat()
        return state_json.dumps([self.sums, self.incidents, self.live, self.version, at, self.published])

    @classmethod
    def decode(cls, raw: bytes | None) -> RegionState:
        if raw is None:
            return cls()
        sums, incidents, live, version, at, published = orjson.loads(raw)
        return cls(sums, incidents, live, version, None if at is None else dt.datetime.fromisoformat(at), published)


def compose_region(code: str, state: RegionState, *, regions: Regions) -> Region | None:
    """The region's record, or None when nothing counts there any more (a tombstone)."""
    place = regions.kelurahan(code)
    if place is None or state.live == 0 or state.stream_time is None:
        return None
    stream_time = state.stream_time
    recent = [
        started
        for started in state.incidents.values()
        if stream_time - WINDOW < dt.datetime.fromisoformat(started) <= stream_time
    ]
    return Region(
        kelurahan_code=code,
        name=place.name,
        kecamatan_code=place.parent_code,
        kota_code=place.parent_code.rsplit(".", 1)[0],
        **{name: state.sums[name] for name in SUMMED},
        incidents_24h=len(recent),
        version=state.version,
        updated_at=stream_time,
    )
