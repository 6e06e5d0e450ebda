"""pydantic models of the canonical entities; they mirror ``schemas/unified/*.avsc`` field for field."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class _Canonical(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_avro(self) -> dict[str, Any]:
        return self.model_dump()


class PersonIdentity(_Canonical):
    """Who a person is, as Dukcapil registers them: the identity part of the unified person."""

    person_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    household_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    full_name: str = Field(min_length=1)
    birth_date: dt.date
    sex: Literal["MALE", "FEMALE"]
    address: str
    kelurahan_code: str = Field(pattern=r"^\d{2}\.\d{2}\.\d{2}\.\d{4}$")
    kecamatan_code: str = Field(pattern=r"^\d{2}\.\d{2}\.\d{2}$")
    kota_code: str = Field(pattern=r"^\d{2}\.\d{2}$")
    is_deceased: bool
    deceased_on: dt.date | None = None


class AidPayment(_Canonical):
    disbursement_id: str
    programme: str
    period: str = Field(pattern=r"^\d{4}-\d{2}$")
    amount: int = Field(ge=0)
    status: Literal["PAID", "ON_HOLD", "FAILED", "RETURNED"]
    paid_on: dt.date | None = None


class SchoolEnrolment(_Canonical):
    nisn: str = Field(pattern=r"^\d{10}$")
    school_npsn: str
    school_name: str
    level: Literal["SD", "SMP", "SMA", "SMK", "SLB"]
    grade: int = Field(ge=1, le=12)
    status: Literal["ACTIVE", "GRADUATED", "MOVED", "DROPPED_OUT"]
    kjp_recipient: bool
    school_kelurahan_code: str = Field(pattern=r"^\d{2}\.\d{2}\.\d{2}\.\d{4}$")


class Person(PersonIdentity):
    """See schemas/unified/person.avsc for the meaning of each field: the identity from Dukcapil joined with
    Dinsos aid, Disdik schooling and Dinkes health visits (person-360)."""

    version: int = Field(ge=0)
    updated_at: AwareDatetime
    source_event_id: str
    aid: list[AidPayment] = Field(default_factory=list)
    schooling: list[SchoolEnrolment] = Field(default_factory=list)
    health_visits: int = Field(default=0, ge=0)
    last_health_visit_at: AwareDatetime | None = None
    immunisations: list[str] = Field(default_factory=list)


class ParcelTax(_Canonical):
    tax_year: int
    land_area_m2: int = Field(ge=0)
    building_area_m2: int = Field(ge=0)
    assessed_value: int = Field(ge=0)
    tax_due: int = Field(ge=0)
    payment_status: Literal["PAID", "PARTLY_PAID", "UNPAID"]


class ParcelZoning(_Canonical):
    zone_code: str
    subzone_code: str | None = None
    max_coverage_pct: float = Field(ge=0, le=100)
    max_floor_area_ratio: float = Field(ge=0)
    max_storeys: int = Field(ge=0)
    forbidden_functions: list[str] = Field(default_factory=list)


class BuildingPermit(_Canonical):
    application_id: str
    permit_number: str | None = None
    function: Literal["RESIDENTIAL", "BUSINESS", "RELIGIOUS", "SOCIAL_CULTURAL", "SPECIAL", "MIXED", "INDUSTRIAL"]
    floor_area_m2: float = Field(ge=0)
    storeys: int = Field(ge=0)
    status: Literal["SUBMITTED", "UNDER_REVIEW", "ISSUED", "REFUSED"]
    issued_on: dt.date | None = None


class Parcel(_Canonical):
    """See schemas/unified/parcel.avsc."""

    nop: str = Field(pattern=r"^\d{18}$")
    kelurahan_code: str | None = Field(default=None, pattern=r"^\d{2}\.\d{2}\.\d{2}\.\d{4}$")
    address: str | None = None
    tax: ParcelTax | None = None
    zoning: ParcelZoning | None = None
    permits: list[BuildingPermit] = Field(default_factory=list)
    version: int = Field(ge=0)
    updated_at: AwareDatetime


class Region(_Canonical):
    """See schemas/unified/region.avsc."""

    kelurahan_code: str = Field(pattern=r"^\d{2}\.\d{2}\.\d{2}\.\d{4}$")
    name: str
    kecamatan_code: str = Field(pattern=r"^\d{2}\.\d{2}\.\d{2}$")
    kota_code: str = Field(pattern=r"^\d{2}\.\d{2}$")
    population: int = Field(ge=0)
    deceased: int = Field(ge=0)
    aid_recipients: int = Field(ge=0)
    students: int = Field(ge=0)
    incidents_24h: int = Field(ge=0)
    open_service_requests: int = Field(ge=0)
    version: int = Field(ge=0)
    updated_at: AwareDatetime


class Incident(_Canonical):
    """See schemas/unified/incident.avsc."""

    incident_id: str
    agency: str
    kind: Literal["FLOOD", "WATERLOGGING", "FIRE", "WINDSTORM", "LANDSLIDE", "EARTHQUAKE", "OTHER"]
    kelurahan_code: str = Field(pattern=r"^\d{2}\.\d{2}\.\d{2}\.\d{4}$")
    started_at: AwareDatetime
    status: Literal["ONGOING", "RECEDING", "OVER"]
    affected_rw: list[str] = Field(default_factory=list)
    water_level_cm: int | None = None
    displaced: int = Field(ge=0)
    fatalities: int = Field(ge=0)
    injured: int = Field(ge=0)
    latitude: float | None = None
    longitude: float | None = None
    version: int = Field(ge=0)
    updated_at: AwareDatetime


# The one list of finding kinds (the FindingKind enum of schemas/unified/finding.avsc; a test compares them).
FindingKind = Literal[
    "AID_TO_DECEASED",
    "NO_CIVIL_REGISTRY_RECORD",
    "PERMIT_FORBIDDEN_BY_ZONING",
    "UNKNOWN_REGION_CODE",
    "NIK_REGION_UNKNOWN",
]


class Finding(_Canonical):
    """See schemas/unified/finding.avsc."""

    finding_id: str
    kind: FindingKind
    severity: Literal["INFO", "WARNING", "CRITICAL"]
    subject_type: str
    subject_id: str
    agencies: list[str]
    description: str
    evidence: dict[str, str] = Field(default_factory=dict)
    status: Literal["OPEN", "RESOLVED"]
    detected_at: AwareDatetime
    version: int = Field(ge=0)
    updated_at: AwareDatetime


UNIFIED_MODELS: dict[str, type[BaseModel]] = {
    "person": Person,
    "parcel": Parcel,
    "region": Region,
    "incident": Incident,
    "finding": Finding,
}
