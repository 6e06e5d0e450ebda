"""The ground truth of a simulation: what the bus must make of the events that were published.

Computed from the facts behind the clean events, never by the pipeline's normalizer, so tests and benchmarks can
compare the pipeline's output against it exactly: the unified people, parcels and incidents, the findings, every
dead letter with its reason, and per-topic counts that reconcile (in = unified + dead letters + dropped).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from satubus.producers.simulator.script import REGION_FIELDS, Planned
from satubus.producers.simulator.world import Disbursement, Enrolment, Incident, Parcel, Permit, Visit
from satubus.schemas.models import AidPayment, BuildingPermit, ParcelTax, ParcelZoning, Person, SchoolEnrolment
from satubus.schemas.models import Incident as IncidentModel
from satubus.schemas.models import Parcel as ParcelModel
from satubus.schemas.models import Region as RegionModel
from satubus.schemas.pseudonym import household_id, person_id
from satubus.schemas.regions import load_regions
from satubus.schemas.topics import agency_topic


@dataclass(frozen=True, slots=True)
class Published:
    planned: Planned
    occurred_at: dt.datetime

    @property
    def topic(self) -> str:
        """The contract topic: the truth names topics whatever the bus's namespace (``Settings.topic`` of it is the
        Kafka topic the event went to)."""
        return agency_topic(self.planned.agency, self.planned.dataset)

    def envelope(self) -> dict[str, Any]:
        """The event as the stream processor sees it once decoded (the fields its mappings read)."""
        p = self.planned
        return {
            "event_id": p.event_id,
            "op": p.op,
            "occurred_at": self.occurred_at,
            "key": p.key,
            "version": p.version,
            "after": p.record,
        }


@dataclass
class Truth:
    persons: dict[str, Person] = field(default_factory=dict)
    parcels: dict[str, ParcelModel] = field(default_factory=dict)
    incidents: dict[str, IncidentModel] = field(default_factory=dict)
    regions: dict[str, RegionModel] = field(default_factory=dict)
    findings: set[tuple[str, str]] = field(default_factory=set)  # (kind, subject id)
    dead_letters: list[dict[str, str]] = field(default_factory=list)
    counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def write(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, models in (
            ("persons", self.persons),
            ("parcels", self.parcels),
            ("incidents", self.incidents),
            ("regions", self.regions),
        ):
            with (directory / f"{name}.jsonl").open("w", encoding="utf-8") as out:
                for model in models.values():
                    out.write(json.dumps(model.model_dump(mode="json"), sort_keys=True) + "\n")
        with (directory / "findings.jsonl").open("w", encoding="utf-8") as out:
            for kind, subject in sorted(self.findings):
                out.write(json.dumps({"kind": kind, "subject_id": subject}) + "\n")
        with (directory / "dead_letters.jsonl").open("w", encoding="utf-8") as out:
            for letter in self.dead_letters:
                out.write(json.dumps(letter, sort_keys=True) + "\n")
        (directory / "counts.json").write_text(json.dumps(self.counts, indent=2, sort_keys=True) + "\n")


def compute(published: list[Published], pseudonym_key: bytes) -> Truth:
    truth = Truth()
    latest: dict[tuple[str, str, str], Published] = {}
    for event in published:
        planned = event.planned
        outcome = planned.expect.split(":", 1)
        if outcome[0] == "unified" and planned.dataset == "peserta_didik" and planned.fact.nik is None:
            outcome = ["unlinked"]  # an enrolment without NIK joins no person
        truth.counts[event.topic]["in"] += 1
        truth.counts[event.topic][outcome[0]] += 1
        if outcome[0] == "dlq":
            truth.dead_letters.append(
                {"topic": event.topic, "event_id": str(planned.event_id), "stage": "normalize", "reason": outcome[1]}
            )
            if outcome[1] == "unknown_region":
                assert planned.record is not None
                written = str(planned.record[REGION_FIELDS.get((planned.agency, planned.dataset), ("kelurahan",))[0]])
                truth.findings.add(("UNKNOWN_REGION_CODE", f"{planned.agency}.{planned.dataset}:{written[:40]}"))
        elif outcome[0] == "unified":
            latest[(planned.agency, planned.dataset, planned.key)] = event

    registered: set[str] = set()
    linked: dict[str, list[Published]] = defaultdict(list)  # NIK -> the latest events of the person's parts
    for (_, dataset, _), event in sorted(latest.items(), key=lambda item: item[0]):
        fact = event.planned.fact
        if dataset == "penduduk":
            registered.add(fact.nik)
            linked[fact.nik].append(event)
        elif dataset in ("penerima_bansos", "kunjungan"):
            linked[(fact.recipient if dataset == "penerima_bansos" else fact.patient).nik].append(event)
        elif dataset == "peserta_didik" and fact.nik is not None:
            linked[fact.nik].append(event)
        elif dataset == "kejadian":
            truth.incidents[f"bpbd:{fact.id}"] = _incident(fact, event)
    for nik in registered:
        person = _person(linked[nik], pseudonym_key)
        truth.persons[person.person_id] = person
    parcel_events = [e for (_, d, _), e in latest.items() if d in ("objek_pajak", "zonasi", "pbg")]
    truth.parcels = _parcels(parcel_events)
    truth.findings |= _findings(latest, registered, pseudonym_key)
    requests = [e for (_, d, _), e in latest.items() if d == "layanan"]
    truth.regions = _regions(truth.persons, truth.incidents, requests)
    return truth


def _regions(
    persons: dict[str, Person], incidents: dict[str, IncidentModel], requests: list[Published]
) -> dict[str, RegionModel]:
    """Per kelurahan: the people Dukcapil registers there, the incidents and the agencies' service requests there,
    summed the region joiner's way (stream time: their latest event time). The version is a lower bound: the
    region's revision counts the contributions it accepted, one per change of an incident or a request, but one per
    batch of a person's changes in the person joiner, which the truth cannot know."""
    filed: dict[str, list[Published]] = defaultdict(list)
    for event in requests:
        filed[event.planned.fact.kelurahan.code].append(event)
    people: dict[str, list[Person]] = defaultdict(list)
    for person in persons.values():
        people[person.kelurahan_code].append(person)
    events: dict[str, list[IncidentModel]] = defaultdict(list)
    for incident in incidents.values():
        events[incident.kelurahan_code].append(incident)
    reference = load_regions()
    regions = {}
    for code in sorted(set(people) | set(events) | set(filed)):
        place = reference.kelurahan(code)
        assert place is not None
        here, there, asked = people[code], events[code], filed[code]
        contributors: list[Person | IncidentModel] = [*here, *there]
        stream_time = max([x.updated_at for x in contributors] + [e.occurred_at for e in asked])
        alive = [p for p in here if not p.is_deceased]
        regions[code] = RegionModel(
            kelurahan_code=code,
            name=place.name,
            kecamatan_code=place.parent_code,
            kota_code=place.parent_code.rsplit(".", 1)[0],
            population=len(alive),
            deceased=len(here) - len(alive),
            aid_recipients=sum(1 for p in alive if any(a.status == "PAID" for a in p.aid)),
            students=sum(1 for p in here if any(e.status == "ACTIVE" for e in p.schooling)),
            incidents_24h=sum(1 for i in there if stream_time - dt.timedelta(hours=24) < i.started_at <= stream_time),
            open_service_requests=sum(1 for e in asked if e.planned.fact.closed_at is None),
            version=len(here) + sum(i.version for i in there) + sum(e.planned.version for e in asked),
            updated_at=stream_time,
        )
    return regions


def _person(events: list[Published], key: bytes) -> Person:
    """Person-360: the identity joined with the aid, schooling and health records of the same NIK."""
    by_dataset: dict[str, list[Any]] = defaultdict(list)
    for event in events:
        by_dataset[event.planned.dataset].append(event.planned.fact)
    (r,) = by_dataset["penduduk"]
    latest = max(events, key=lambda e: (e.occurred_at, str(e.planned.event_id)))
    visits: list[Visit] = by_dataset["kunjungan"]
    return Person(
        person_id=person_id(key, r.nik),
        household_id=household_id(key, r.family_card),
        full_name=r.name,
        birth_date=r.birth_date,
        sex=r.sex,
        address=f"{r.street} RT {r.rt:03d}/RW {r.rw:03d}",
        kelurahan_code=r.kelurahan.code,
        kecamatan_code=r.kelurahan.parent_code,
        kota_code=r.kelurahan.parent_code.rsplit(".", 1)[0],
        is_deceased=r.deceased_on is not None,
        deceased_on=r.deceased_on,
        # The joiner's version counts the part changes it accepted: every version of each record, in order.
        version=sum(e.planned.version for e in events),
        updated_at=latest.occurred_at,
        source_event_id=str(latest.planned.event_id),
        aid=sorted((_aid(d) for d in by_dataset["penerima_bansos"]), key=lambda a: a.disbursement_id),
        schooling=sorted((_enrolment(e) for e in by_dataset["peserta_didik"]), key=lambda e: e.nisn),
        health_visits=len(visits),
        last_health_visit_at=max((v.at for v in visits), default=None),
        immunisations=sorted({v.vaccine for v in visits if v.vaccine}),
    )


def _aid(d: Disbursement) -> AidPayment:
    return AidPayment(
        disbursement_id=d.id,
        programme=d.programme,
        period=d.period,
        amount=d.amount,
        status="PAID" if d.paid_on else "ON_HOLD",
        paid_on=d.paid_on,
    )


def _enrolment(e: Enrolment) -> SchoolEnrolment:
    return SchoolEnrolment(
        nisn=e.nisn,
        school_npsn=e.school_id,
        school_name=e.school_name,
        level=e.level,  # type: ignore[arg-type]
        grade=e.grade,
        status="ACTIVE",
        kjp_recipient=e.kjp,
        school_kelurahan_code=e.school_kelurahan.code,
    )


def _incident(i: Incident, event: Published) -> IncidentModel:
    return IncidentModel(
        incident_id=f"bpbd:{i.id}",
        agency="bpbd",
        kind=i.kind,  # type: ignore[arg-type]
        kelurahan_code=i.kelurahan.code,
        started_at=i.started_at,
        status=i.statuses[event.planned.version - 1],  # type: ignore[arg-type]
        affected_rw=list(i.affected_rw),
        water_level_cm=i.water_level_cm,
        displaced=i.displaced,
        fatalities=i.fatalities,
        injured=i.injured,
        version=event.planned.version,
        updated_at=event.occurred_at,
    )


def _parcels(events: list[Published]) -> dict[str, ParcelModel]:
    parts: dict[str, dict[str, Any]] = defaultdict(lambda: {"permits": [], "version": 0})
    for event in sorted(events, key=lambda e: e.occurred_at):
        fact = event.planned.fact
        parcel: Parcel = fact[0] if isinstance(fact, tuple) else fact
        state = parts[parcel.nop]
        state["nop"] = parcel.nop
        state["version"] += event.planned.version  # the joiner's version: every version of each record, accepted
        state["updated_at"] = event.occurred_at
        if event.planned.dataset == "objek_pajak":
            state["kelurahan_code"], state["address"] = parcel.kelurahan.code, parcel.address
            state["tax"] = ParcelTax(
                tax_year=parcel.tax_year,
                land_area_m2=parcel.land_m2,
                building_area_m2=parcel.building_m2,
                assessed_value=parcel.land_m2 * parcel.land_value_m2 + parcel.building_m2 * parcel.building_value_m2,
                tax_due=parcel.tax_due,
                payment_status=parcel.payment,  # type: ignore[arg-type]
            )
        elif event.planned.dataset == "zonasi":
            state["kelurahan_code"] = parcel.kelurahan.code
            state["zoning"] = ParcelZoning(
                zone_code=parcel.zone,
                subzone_code=parcel.subzone,
                max_coverage_pct=parcel.max_coverage,
                max_floor_area_ratio=parcel.max_far,
                max_storeys=parcel.max_storeys,
                forbidden_functions=list(parcel.forbidden),
            )
        else:
            permit: Permit = fact[1]
            state["permits"].append(
                BuildingPermit(
                    application_id=permit.application,
                    permit_number=permit.number,
                    function=permit.function,  # type: ignore[arg-type]
                    floor_area_m2=permit.floor_m2,
                    storeys=permit.storeys,
                    status=permit.status,  # type: ignore[arg-type]
                    issued_on=permit.issued_on,
                )
            )
    return {
        nop: ParcelModel(**(state | {"permits": sorted(state["permits"], key=lambda p: p.application_id)}))
        for nop, state in parts.items()
    }


def _findings(latest: dict[tuple[str, str, str], Published], registered: set[str], key: bytes) -> set[tuple[str, str]]:
    findings: set[tuple[str, str]] = set()
    zoning = {k[2] for k in latest if k[1] == "zonasi"}
    for (_, dataset, _), event in latest.items():
        fact = event.planned.fact
        if dataset == "penerima_bansos":
            aid: Disbursement = fact
            nik = aid.recipient.nik
            if nik not in registered:
                findings.add(("NO_CIVIL_REGISTRY_RECORD", person_id(key, nik)))
            elif aid.paid_on and aid.recipient.deceased_on and aid.paid_on > aid.recipient.deceased_on:
                findings.add(("AID_TO_DECEASED", person_id(key, nik)))
        elif dataset == "peserta_didik":
            enrolment: Enrolment = fact
            if enrolment.nik and enrolment.nik not in registered:
                findings.add(("NO_CIVIL_REGISTRY_RECORD", person_id(key, enrolment.nik)))
        elif dataset == "pbg":
            parcel, permit = fact
            if permit.status == "ISSUED" and permit.function in parcel.forbidden and parcel.nop in zoning:
                findings.add(("PERMIT_FORBIDDEN_BY_ZONING", parcel.nop))
    return findings
