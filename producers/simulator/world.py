"""The simulated city as canonical facts: residents, parcels, schools, aid, visits, incidents, service requests.

Everything is drawn from one seed. Agencies then write these facts in their own vocabularies (render.py); the
ground truth is computed from the facts (truth.py), never by the pipeline's own normalizer.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from satubus.schemas.catalogue import load_catalogue
from satubus.schemas.regions import ReferenceRegion, Regions

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
    kelurahan: ReferenceRegion
    deceased_on: dt.date | None


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


@dataclass(frozen=True, slots=True)
class Disbursement:
    """Social aid paid (or not) to a resident (Dinsos)."""

    id: str
    recipient: Resident
    programme: str  # PKH, BPNT, KLJ, KPDJ, KAJ
    period: str  # YYYY-MM
    amount: int
    paid_on: dt.date | None  # None: on hold


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A child enrolled at a school (Disdik). ``student`` is None for a child Dukcapil does not know."""

    nisn: str
    student: Resident | None
    nik: str | None
    name: str
    birth_date: dt.date
    sex: str
    school_id: str
    school_name: str
    level: str
    grade: int
    kjp: bool
    school_kelurahan: ReferenceRegion


@dataclass(frozen=True, slots=True)
class Visit:
    """A visit at a puskesmas (Dinkes)."""

    id: str
    patient: Resident
    at: dt.datetime  # UTC
    facility: str
    service: str
    vaccine: str | None


@dataclass(frozen=True, slots=True)
class Parcel:
    """A land parcel with its tax, zoning and permits (Bapenda, Citata, DPMPTSP)."""

    nop: str  # 18 digits
    kelurahan: ReferenceRegion
    address: str
    owner: str
    land_m2: int
    building_m2: int
    land_value_m2: int
    building_value_m2: int
    tax_year: int
    payment: str  # PAID, PARTLY_PAID, UNPAID
    zone: str
    subzone: str
    max_coverage: float
    max_far: float
    max_storeys: int
    forbidden: tuple[str, ...]
    permits: tuple[Permit, ...] = ()

    @property
    def tax_due(self) -> int:
        value = self.land_m2 * self.land_value_m2 + self.building_m2 * self.building_value_m2
        return max(value - 60_000_000, 0) * 2 // 1000  # 0.2 % above the non-taxable threshold


@dataclass(frozen=True, slots=True)
class Permit:
    application: str
    number: str | None
    function: str  # canonical: RESIDENTIAL, BUSINESS, ...
    floor_m2: float
    storeys: int
    status: str  # SUBMITTED, UNDER_REVIEW, ISSUED, REFUSED
    submitted_on: dt.date
    issued_on: dt.date | None


@dataclass(frozen=True, slots=True)
class Incident:
    """A disaster incident in one kelurahan (BPBD), with its status over time (one entry per version)."""

    id: str
    kind: str  # canonical: FLOOD, WATERLOGGING, FIRE, WINDSTORM, LANDSLIDE
    kelurahan: ReferenceRegion
    started_at: dt.datetime
    statuses: tuple[str, ...]  # ONGOING, RECEDING, OVER
    affected_rw: tuple[str, ...]
    water_level_cm: int | None
    displaced: int
    fatalities: int
    injured: int


@dataclass(frozen=True, slots=True)
class ServiceRequest:
    """A service request or complaint filed with an agency."""

    agency: str
    ticket: str
    channel: str
    category: int  # the agency's category number; its code list names it
    text: str
    kelurahan: ReferenceRegion
    filed_at: dt.datetime
    closed_at: dt.datetime | None


@dataclass
class World:
    residents: list[Resident]
    disbursements: list[Disbursement] = field(default_factory=list)
    enrolments: list[Enrolment] = field(default_factory=list)
    visits: list[Visit] = field(default_factory=list)
    parcels: list[Parcel] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    requests: list[ServiceRequest] = field(default_factory=list)


PROGRAMMES = {"PKH": 750_000, "BPNT": 200_000, "KLJ": 300_000, "KPDJ": 300_000, "KAJ": 300_000}
ZONES = {  # zone: (subzones, max coverage %, max floor area ratio, storeys, functions it forbids)
    "R": (("R.1", "R.2", "R.3", "R.4"), 60.0, 1.2, 4, ("INDUSTRIAL", "BUSINESS")),
    "K": (("K.1", "K.2", "K.3"), 70.0, 3.5, 16, ("INDUSTRIAL",)),
    "C": (("C.1",), 60.0, 2.4, 8, ("INDUSTRIAL",)),
    "H": (("H.2", "H.3"), 10.0, 0.1, 1, ("RESIDENTIAL", "BUSINESS", "INDUSTRIAL", "MIXED")),
    "I": (("I.1",), 60.0, 1.8, 4, ("RESIDENTIAL",)),
}
FUNCTIONS = ("RESIDENTIAL", "BUSINESS", "RELIGIOUS", "SOCIAL_CULTURAL", "MIXED", "INDUSTRIAL")
INCIDENT_KINDS = ("FLOOD", "WATERLOGGING", "FIRE", "WINDSTORM", "LANDSLIDE")
CHANNELS = ("JAKI", "CRM", "LAPOR", "LOKET", "TELEPON")


def age(resident: Resident, today: dt.date) -> int:
    born = resident.birth_date
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def generate_world(residents: int, *, seed: int, regions: Regions, now: dt.datetime) -> World:
    """The whole simulated city; ``residents`` sets the scale of everything else."""
    today = now.date()
    world = World(generate_residents(residents, seed=seed, regions=regions, today=today))
    rng = random.Random(seed * 7919 + 1)
    kelurahan = sorted(regions.of_level("kelurahan", "desa"), key=lambda r: r.code)
    _aid(world, rng, today)
    _schools(world, rng, today, kelurahan)
    _visits(world, rng, now)
    _parcels(world, rng, today, kelurahan, count=max(residents // 4, 20))
    _incidents(world, rng, now, kelurahan, count=max(residents // 500, 20))
    _requests(world, rng, now, kelurahan, count=max(residents // 20, 40))
    return world


def _aid(world: World, rng: random.Random, today: dt.date) -> None:
    periods = [f"{(today.replace(day=1) - dt.timedelta(days=31 * back)):%Y-%m}" for back in (2, 1, 0)]
    adults = [r for r in world.residents if age(r, today) >= 18]
    deceased = [r for r in adults if r.deceased_on is not None]
    recipients = rng.sample(adults, k=len(adults) * 12 // 100)
    # A known share of aid keeps being paid after death: the finding the bus must raise.
    recipients += [r for r in rng.sample(deceased, k=len(deceased) // 3) if r not in recipients]
    for n, person in enumerate(recipients):
        programme = "KLJ" if age(person, today) >= 60 else rng.choice(("PKH", "BPNT", "KPDJ"))
        for period in periods:
            year, month = map(int, period.split("-"))
            paid = dt.date(year, month, min(20, 28))
            world.disbursements.append(
                Disbursement(
                    f"{programme}-{period}-{n:06d}",
                    person,
                    programme,
                    period,
                    PROGRAMMES[programme],
                    paid if rng.random() > 0.05 and paid <= today else None,
                )
            )


def _schools(world: World, rng: random.Random, today: dt.date, kelurahan: list[ReferenceRegion]) -> None:
    schools = {k.code: (f"{20100000 + i:08d}", f"SDN {k.name} 0{1 + i % 3}") for i, k in enumerate(kelurahan)}
    children = [r for r in world.residents if 6 <= age(r, today) <= 17 and r.deceased_on is None]
    nisn = 100_000
    for child in children:
        nisn += rng.randint(1, 9)
        years = age(child, today)
        level = "SD" if years < 12 else "SMP" if years < 15 else rng.choice(("SMA", "SMK"))
        school_id, school_name = schools[child.kelurahan.code]
        world.enrolments.append(
            Enrolment(
                f"{nisn:010d}",
                child,
                child.nik if rng.random() < 0.9 else None,
                child.name,
                child.birth_date,
                child.sex,
                school_id,
                school_name,
                level,
                min(years - 5, 12),
                rng.random() < 0.2,
                child.kelurahan,
            )
        )
    for _ in range(max(len(children) // 100, 3)):  # children the civil registry does not know
        nisn += rng.randint(1, 9)
        place = rng.choice(kelurahan)
        born = today - dt.timedelta(days=rng.randint(7 * 365, 12 * 365))
        nik = f"{place.parent_code.replace('.', '')}{born.day:02d}{born:%m%y}{rng.randint(9000, 9999):04d}"
        world.enrolments.append(
            Enrolment(
                f"{nisn:010d}",
                None,
                nik,
                "Anak Tanpa Catatan",
                born,
                "MALE",
                schools[place.code][0],
                schools[place.code][1],
                "SD",
                2,
                False,
                place,
            )
        )


def _visits(world: World, rng: random.Random, now: dt.datetime) -> None:
    living = [r for r in world.residents if r.deceased_on is None]
    for n, patient in enumerate(rng.sample(living, k=len(living) // 10)):
        child = age(patient, now.date()) < 2
        world.visits.append(
            Visit(
                f"KJ-{n:07d}",
                patient,
                (now - dt.timedelta(minutes=rng.randint(10, 60 * 24 * 30))).replace(second=0, microsecond=0),
                f"P{patient.kelurahan.parent_code.replace('.', '')}01",
                "IMUNISASI" if child else rng.choice(("RAJAL", "KIA", "GIZI")),
                rng.choice(("HB0", "BCG", "POLIO1", "DPT-HB-HIB1", "MR1")) if child else None,
            )
        )


def _parcels(world: World, rng: random.Random, today: dt.date, kelurahan: list[ReferenceRegion], count: int) -> None:
    serial: dict[str, int] = {}
    for _ in range(count):
        place = rng.choice(kelurahan)
        serial[place.code] = serial.get(place.code, 0) + 1
        _, kota, kecamatan, village = place.code.split(".")
        nop = f"31{kota}0{kecamatan}{village[1:]}{rng.randint(1, 30):03d}{serial[place.code]:04d}0"
        zone = rng.choices(list(ZONES), weights=(60, 20, 10, 5, 5))[0]
        subzones, coverage, far, storeys, forbidden = ZONES[zone]
        land = rng.randint(60, 600)
        permits = []
        if rng.random() < 0.15:
            function = rng.choice(FUNCTIONS) if rng.random() < 0.3 else "RESIDENTIAL" if zone == "R" else "BUSINESS"
            submitted = today - dt.timedelta(days=rng.randint(10, 400))
            status = rng.choice(("SUBMITTED", "UNDER_REVIEW", "ISSUED", "ISSUED", "REFUSED"))
            # Issued 5 to 60 days after submission, and never after today: a permit cannot be issued in the future.
            issued = min(submitted + dt.timedelta(days=rng.randint(5, 60)), today) if status == "ISSUED" else None
            number = f"PBG-{place.parent_code.replace('.', '')}-{len(world.parcels):05d}" if issued else None
            permits.append(
                Permit(
                    f"PBG-APP-{len(world.parcels):06d}",
                    number,
                    function,
                    float(land),
                    rng.randint(1, 3),
                    status,
                    submitted,
                    issued,
                )
            )
        world.parcels.append(
            Parcel(
                nop,
                place,
                f"{rng.choice(STREETS)} No. {rng.randint(1, 300)}",
                f"{rng.choice(FIRST_NAMES_MALE + FIRST_NAMES_FEMALE)} {rng.choice(FAMILY_NAMES)}",
                land,
                rng.randint(0, land * 2),
                rng.choice((4, 8, 15, 30)) * 1_000_000,
                rng.choice((2, 4, 6)) * 1_000_000,
                today.year,
                rng.choices(("PAID", "PARTLY_PAID", "UNPAID"), weights=(70, 10, 20))[0],
                zone,
                rng.choice(subzones),
                coverage,
                far,
                storeys,
                forbidden,
                tuple(permits),
            )
        )


def _incidents(
    world: World, rng: random.Random, now: dt.datetime, kelurahan: list[ReferenceRegion], count: int
) -> None:
    for n in range(count):
        kind = rng.choice(INCIDENT_KINDS)
        statuses = (
            ("ONGOING", "RECEDING", "OVER")[: rng.randint(1, 3)]
            if kind in ("FLOOD", "WATERLOGGING")
            else (("ONGOING", "OVER")[: rng.randint(1, 2)])
        )
        world.incidents.append(
            Incident(
                f"BPBD-{now:%Y%m}-{n:05d}",
                kind,
                rng.choice(kelurahan),
                (now - dt.timedelta(minutes=rng.randint(5, 60 * 48))).replace(second=0, microsecond=0),
                statuses,
                tuple(f"{rw:03d}" for rw in sorted(rng.sample(range(1, 13), k=rng.randint(1, 3)))),
                rng.randint(20, 150) if kind in ("FLOOD", "WATERLOGGING") else None,
                rng.randint(0, 300),
                0 if rng.random() < 0.97 else 1,
                rng.randint(0, 5),
            )
        )


def _requests(world: World, rng: random.Random, now: dt.datetime, kelurahan: list[ReferenceRegion], count: int) -> None:
    agencies = [a.code for a in load_catalogue() if a.integrated and "layanan" in a.datasets]
    for n in range(max(count, 2 * len(agencies))):  # every integrated agency files some
        agency = agencies[n % len(agencies)] if n < 2 * len(agencies) else rng.choice(agencies)
        filed = (now - dt.timedelta(minutes=rng.randint(1, 60 * 24 * 14))).replace(microsecond=0)
        closed = filed + dt.timedelta(hours=rng.randint(1, 72)) if rng.random() < 0.6 else None
        world.requests.append(
            ServiceRequest(
                agency,
                f"T{n:07d}",
                rng.choice(CHANNELS),
                rng.randint(1, 5),
                "Mohon tindak lanjut laporan warga.",
                rng.choice(kelurahan),
                filed,
                closed if closed and closed < now else None,
            )
        )
