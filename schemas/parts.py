"""What one agency dataset contributes to a joined entity (a *part*), as its mapping produces it.

A mapping with ``part: <name>`` yields one of these models; the normalizer sends it to ``canonical.<entity>`` keyed
by the entity key, and the joiner (streams/joins.py) folds the parts of one key into the unified record.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

from satubus.schemas.models import AidPayment, BuildingPermit, ParcelZoning, PersonIdentity, SchoolEnrolment, _Canonical

KELURAHAN = r"^\d{2}\.\d{2}\.\d{2}\.\d{4}$"
NOP = r"^\d{18}$"


class AidPart(AidPayment):
    person_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    kelurahan_code: str = Field(pattern=KELURAHAN)


class EnrolmentPart(SchoolEnrolment):
    person_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")  # None: the school did not record a NIK


class VisitPart(_Canonical):
    person_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    visit_id: str
    visited_at: AwareDatetime
    facility: str
    service: Literal["IMMUNISATION", "OUTPATIENT", "MATERNAL_CHILD", "NUTRITION"]
    vaccine: str | None = None
    kelurahan_code: str = Field(pattern=KELURAHAN)


class TaxPart(_Canonical):
    nop: str = Field(pattern=NOP)
    kelurahan_code: str = Field(pattern=KELURAHAN)
    address: str
    tax_year: int
    land_area_m2: int = Field(ge=0)
    building_area_m2: int = Field(ge=0)
    land_value_per_m2: int = Field(ge=0)
    building_value_per_m2: int = Field(ge=0)
    tax_due: int = Field(ge=0)
    payment_status: Literal["PAID", "PARTLY_PAID", "UNPAID"]


class ZoningPart(ParcelZoning):
    nop: str = Field(pattern=NOP)
    kelurahan_code: str = Field(pattern=KELURAHAN)
    effective_from: dt.date


class PermitPart(BuildingPermit):
    nop: str = Field(pattern=NOP)


class ServiceRequestPart(_Canonical):
    """A service request or complaint, as the region it concerns counts it (no free text: it may name people)."""

    kelurahan_code: str = Field(pattern=KELURAHAN)
    ticket: str
    channel: str
    category: str
    status: Literal["OPEN", "CLOSED"]
    filed_at: AwareDatetime
    closed_at: AwareDatetime | None = None


PART_MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("person", "identity"): PersonIdentity,
    ("person", "aid"): AidPart,
    ("person", "schooling"): EnrolmentPart,
    ("person", "health"): VisitPart,
    ("parcel", "tax"): TaxPart,
    ("parcel", "zoning"): ZoningPart,
    ("parcel", "permit"): PermitPart,
    ("region", "service_request"): ServiceRequestPart,
}
