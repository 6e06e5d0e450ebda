"""Simulated agencies. Today: Dukcapil's resident registry, deterministic for a seed.

The simulator draws each resident as canonical facts first, then writes them the way Dukcapil does (upper-case
names, undotted kelurahan codes, RT/RW without leading zeros). The ground truth - the unified ``person`` rows the
pipeline must produce - is computed from the facts, not by the normalizer, so it is an independent oracle.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from schemas.models import Person
from schemas.pseudonym import household_id, person_id
from schemas.regions import Region, Regions

FIRST_NAMES_MALE = (
    "Agus",
    "Ahmad",
    "Andi",
    "Bambang",
    "Budi",
    "Dedi",
    "Eko",
    "Fajar",
    "Hendra",
    "Irfan",
    "Joko",
    "Kurniawan",
    "Muhammad",
    "Rizki",
    "Slamet",
    "Teguh",
    "Wahyu",
    "Yusuf",
    "Dimas",
    "Arif",
)
FIRST_NAMES_FEMALE = (
    "Ani",
    "Dewi",
    "Fitri",
    "Indah",
    "Lestari",
    "Maya",
    "Nur",
    "Putri",
    "Rina",
    "Sari",
    "Siti",
    "Sri",
    "Wulan",
    "Yuni",
    "Ayu",
    "Dian",
    "Kartika",
    "Ratna",
    "Rahma",
    "Intan",
)
FAMILY_NAMES = (
    "Saputra",
    "Hidayat",
    "Santoso",
    "Wijaya",
    "Pratama",
    "Nugroho",
    "Siregar",
    "Lubis",
    "Simanjuntak",
    "Setiawan",
    "Rahmawati",
    "Kusuma",
    "Hasibuan",
    "Purba",
    "Wibowo",
    "Halim",
    "Gunawan",
    "Sinaga",
)
STREETS = (
    "Jl. Kenari",
    "Jl. Cikini Raya",
    "Jl. Salemba Tengah",
    "Jl. Kramat Sentiong",
    "Jl. Pramuka",
    "Jl. Rawamangun Muka",
    "Jl. Tebet Barat",
    "Jl. Kemang Raya",
    "Jl. Duri Kepa",
    "Jl. Pluit Karang",
    "Gg. Masjid",
    "Gg. Haji Saan",
    "Jl. Pemuda",
    "Jl. Kayu Putih",
    "Jl. Cempaka Putih Tengah",
)
DECEASED_SHARE = 0.03


@dataclass(frozen=True, slots=True)
class Resident:
    """One resident as canonical facts."""

    nik: str
    family_card: str
    name: str
    birth_date: dt.date
    sex: str
    street: str
    rt: int
    rw: int
    kelurahan: Region
    deceased_on: dt.date | None


@dataclass(frozen=True, slots=True)
class ResidentEvent:
    resident: Resident
    event_id: uuid.UUID
    occurred_at: dt.datetime
    version: int


def generate_residents(count: int, *, seed: int, regions: Regions, today: dt.date) -> list[Resident]:
    rng = random.Random(seed)
    kelurahan = sorted(regions.of_level("kelurahan", "desa"), key=lambda r: r.code)
    serials: dict[str, int] = {}
    residents = []
    for _ in range(count):
        place = rng.choice(kelurahan)
        sex = rng.choice(("MALE", "FEMALE"))
        birth_date = today - dt.timedelta(days=rng.randint(0, 90 * 365))
        day = birth_date.day + (40 if sex == "FEMALE" else 0)
        prefix = f"{place.parent_code.replace('.', '')}{day:02d}{birth_date:%m%y}"
        serials[prefix] = serials.get(prefix, 0) + 1
        given = rng.choice(FIRST_NAMES_MALE if sex == "MALE" else FIRST_NAMES_FEMALE)
        deceased = rng.random() < DECEASED_SHARE
        residents.append(
            Resident(
                nik=f"{prefix}{serials[prefix]:04d}",
                family_card=f"{place.parent_code.replace('.', '')}{rng.randint(0, 10**10 - 1):010d}",
                name=f"{given} {rng.choice(FAMILY_NAMES)}",
                birth_date=birth_date,
                sex=sex,
                street=f"{rng.choice(STREETS)} No. {rng.randint(1, 200)}",
                rt=rng.randint(1, 15),
                rw=rng.randint(1, 12),
                kelurahan=place,
                deceased_on=birth_date + (today - birth_date) * rng.random() if deceased else None,
            )
        )
    return residents


def resident_events(
    residents: list[Resident], *, seed: int, clock: Callable[[], dt.datetime]
) -> Iterator[ResidentEvent]:
    """One creation event per resident, stamped by ``clock`` when it is drawn (event time = publish time)."""
    rng = random.Random(seed ^ 0x5A7B)
    for resident in residents:
        yield ResidentEvent(resident, uuid.UUID(int=rng.getrandbits(128), version=4), clock(), 1)


def dukcapil_record(resident: Resident) -> dict[str, Any]:
    """The resident in Dukcapil's own vocabulary (schemas/agencies/dukcapil/penduduk.avsc)."""
    return {
        "nik": resident.nik,
        "no_kk": resident.family_card,
        "nama_lgkp": resident.name.upper(),
        "tgl_lhr": f"{resident.birth_date:%d-%m-%Y}",
        "jenis_klmin": "LAKI-LAKI" if resident.sex == "MALE" else "PEREMPUAN",
        "alamat": resident.street,
        "no_rt": str(resident.rt),
        "no_rw": str(resident.rw),
        "kode_kel": resident.kelurahan.code.replace(".", ""),
        "nama_kel": resident.kelurahan.name.upper(),
        "stat_hidup": "MATI" if resident.deceased_on else "HIDUP",
        "tgl_mati": f"{resident.deceased_on:%d-%m-%Y}" if resident.deceased_on else None,
    }


def expected_person(event: ResidentEvent, pseudonym_key: bytes) -> Person:
    """The unified record the pipeline must produce for this event."""
    r = event.resident
    return Person(
        person_id=person_id(pseudonym_key, r.nik),
        household_id=household_id(pseudonym_key, r.family_card),
        full_name=r.name,
        birth_date=r.birth_date,
        sex=r.sex,  # type: ignore[arg-type]
        address=f"{r.street} RT {r.rt:03d}/RW {r.rw:03d}",
        kelurahan_code=r.kelurahan.code,
        kecamatan_code=r.kelurahan.parent_code,
        kota_code=r.kelurahan.parent_code.rsplit(".", 1)[0],
        is_deceased=r.deceased_on is not None,
        deceased_on=r.deceased_on,
        version=event.version,
        updated_at=event.occurred_at,
        source_event_id=str(event.event_id),
    )


def write_truth(path: Path, people: list[Person]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for person in people:
            out.write(json.dumps(person.model_dump(mode="json"), sort_keys=True) + "\n")


class Pacer:
    """Open-loop pacing at ``rate`` events/s (0: as fast as possible) with a progress line every second."""

    def __init__(self, total: int, rate: float, label: str, out: TextIO = sys.stderr) -> None:
        self.total, self.rate, self.label, self.out = total, rate, label, out
        self.started = self._last_report = time.monotonic()
        self.done = 0

    def tick(self, report: Callable[[], int]) -> None:
        self.done += 1
        now = time.monotonic()
        if self.rate > 0:
            due = self.started + self.done / self.rate
            if due > now:
                time.sleep(due - now)
        if now - self._last_report >= 1.0:
            self._last_report = now
            self._report(report(), end="")

    def finish(self, acknowledged: int) -> None:
        self._report(acknowledged, end="\n")

    def _report(self, acknowledged: int, end: str) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        print(
            f"\r{self.label}: {self.done}/{self.total} sent, {acknowledged} acknowledged, "
            f"{self.done / elapsed:,.0f} events/s",
            end=end,
            file=self.out,
            flush=True,
        )
