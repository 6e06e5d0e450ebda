"""Live aggregates per kelurahan, joined like any entity: each person and incident *contributes* to the region it
lies in, every agency's service requests are parts of it (their mapping says ``entity: region``), and the region
joiner (streams/joins.py state, keyed by kelurahan code) sums them.

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
from typing import Any

from pydantic import BaseModel

from satubus.schemas.models import Incident, Person, Region
from satubus.schemas.regions import Regions
from satubus.streams.joins import Join, JoinState

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


def compose_region(code: str, state: JoinState, *, regions: Regions) -> Region | None:
    people = [s.data for s in state.live("person") if s.data is not None]
    incidents = [s.data for s in state.live("incident") if s.data is not None]
    requests = [s.data for s in state.live("service_request") if s.data is not None]
    place = regions.kelurahan(code)
    if place is None or not (people or incidents or requests):
        return None
    stream_time = state.latest.occurred_at
    recent = [i for i in incidents if stream_time - WINDOW < dt.datetime.fromisoformat(i["started_at"]) <= stream_time]
    return Region(
        kelurahan_code=code,
        name=place.name,
        kecamatan_code=place.parent_code,
        kota_code=place.parent_code.rsplit(".", 1)[0],
        population=sum(p["population"] for p in people),
        deceased=sum(p["deceased"] for p in people),
        aid_recipients=sum(p["aid_recipients"] for p in people),
        students=sum(p["students"] for p in people),
        incidents_24h=len(recent),
        open_service_requests=sum(1 for r in requests if r["status"] == "OPEN"),
        version=state.version,
        updated_at=stream_time,
    )


def region_join(regions: Regions) -> Join:
    """The region joiner: sums, and raises no findings of its own."""
    return Join("region", lambda code, state: compose_region(code, state, regions=regions), lambda state: {})
