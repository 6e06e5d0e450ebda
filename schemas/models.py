"""pydantic models of the canonical entities; they mirror ``schemas/unified/*.avsc`` field for field."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Person(BaseModel):
    """See schemas/unified/person.avsc for the meaning of each field."""

    model_config = ConfigDict(frozen=True, extra="forbid")

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
    version: int = Field(ge=0)
    updated_at: AwareDatetime
    source_event_id: str

    def to_avro(self) -> dict[str, Any]:
        return self.model_dump()
