"""Sample records shared by the tests."""

import datetime as dt
import hashlib
from typing import Any

NIK = "3171065508950002"  # a woman born 15-08-1995, NIK first issued in Menteng (31.71.06)

# A resident as Dukcapil writes her (schemas/agencies/dukcapil/penduduk.avsc), untidy spaces included.
DUKCAPIL_RESIDENT = {
    "nik": NIK,
    "no_kk": "3171060101200003",
    "nama_lgkp": "SITI  RAHMAWATI ",
    "tgl_lhr": "15-08-1995",
    "jenis_klmin": "PEREMPUAN",
    "alamat": "Jl. Kenari II No. 5",
    "no_rt": "3",
    "no_rw": "11",
    "kode_kel": "3171061001",
    "nama_kel": "MENTENG",
    "stat_hidup": "HIDUP",
    "tgl_mati": None,
}


def unified_person(n: int) -> dict[str, Any]:
    """A unified person record (schemas/unified/person.avsc), the n-th of a made-up series."""
    digest = hashlib.sha256(str(n).encode()).hexdigest()
    return {
        "person_id": digest,
        "household_id": hashlib.sha256(str(n // 4).encode()).hexdigest(),
        "full_name": f"Warga {n}",
        "birth_date": dt.date(1960, 1, 1) + dt.timedelta(days=n % 20_000),
        "sex": "FEMALE" if n % 2 else "MALE",
        "address": f"Jl. Kenari II No. {n % 300} RT 003/RW 011",
        "kelurahan_code": "31.71.06.1001",
        "kecamatan_code": "31.71.06",
        "kota_code": "31.71",
        "is_deceased": False,
        "deceased_on": None,
        "version": 1,
        "updated_at": dt.datetime.now(dt.UTC).replace(microsecond=0),
        "source_event_id": f"sample-{n}",
        "aid": [],
        "schooling": [],
        "health_visits": 0,
        "last_health_visit_at": None,
        "immunisations": [],
    }
