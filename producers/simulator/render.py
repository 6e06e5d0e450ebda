"""Facts written the way each agency writes them: its field names, its codes, its quirks.

One function per dataset, each returning a record of ``schemas/agencies/<agency>/<dataset>.avsc``.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from satubus.producers.simulator.world import (
    Disbursement,
    Enrolment,
    Incident,
    Parcel,
    Permit,
    Resident,
    ServiceRequest,
    Visit,
)
from satubus.schemas.code_lists import code_lists_of
from satubus.schemas.regions import ReferenceRegion, Regions

WIB = dt.timezone(dt.timedelta(hours=7))
BPBD_KINDS = {
    "FLOOD": "BANJIR",
    "WATERLOGGING": "GENANGAN",
    "FIRE": "KEBAKARAN",
    "WINDSTORM": "ANGIN KENCANG",
    "LANDSLIDE": "TANAH LONGSOR",
}
BPBD_STATUS = {"ONGOING": "BERLANGSUNG", "RECEDING": "SURUT", "OVER": "SELESAI"}
DPMPTSP_FUNCTIONS = {
    "RESIDENTIAL": "HUNIAN",
    "BUSINESS": "USAHA",
    "RELIGIOUS": "KEAGAMAAN",
    "SOCIAL_CULTURAL": "SOSBUD",
    "SPECIAL": "KHUSUS",
    "MIXED": "CAMPURAN",
    "INDUSTRIAL": "INDUSTRI",
}
DPMPTSP_STATUS = {"SUBMITTED": "DIAJUKAN", "UNDER_REVIEW": "VERIFIKASI", "ISSUED": "TERBIT", "REFUSED": "DITOLAK"}
BAPENDA_PAYMENT = {"PAID": "LUNAS", "PARTLY_PAID": "KURANG BAYAR", "UNPAID": "BELUM BAYAR"}


def kelurahan_as_written(place: ReferenceRegion, rng: random.Random) -> str:
    """How a clerk types a kelurahan name: 'Kel. Menteng', 'MENTENG' or 'Menteng'."""
    return rng.choice((f"Kel. {place.name}", place.name.upper(), place.name))


def penduduk(r: Resident) -> dict[str, Any]:
    return {
        "nik": r.nik,
        "no_kk": r.family_card,
        "nama_lgkp": r.name.upper(),
        "tgl_lhr": f"{r.birth_date:%d-%m-%Y}",
        "jenis_klmin": "LAKI-LAKI" if r.sex == "MALE" else "PEREMPUAN",
        "alamat": r.street,
        "no_rt": str(r.rt),
        "no_rw": str(r.rw),
        "kode_kel": r.kelurahan.code.replace(".", ""),
        "nama_kel": r.kelurahan.name.upper(),
        "stat_hidup": "MATI" if r.deceased_on else "HIDUP",
        "tgl_mati": f"{r.deceased_on:%d-%m-%Y}" if r.deceased_on else None,
    }


def penerima_bansos(d: Disbursement, rng: random.Random) -> dict[str, Any]:
    nik = d.recipient.nik
    written = rng.choice((nik, f"{nik[:4]} {nik[4:8]} {nik[8:12]} {nik[12:]}", f"{nik[:6]}.{nik[6:12]}.{nik[12:]}"))
    return {
        "id_penyaluran": d.id,
        "nik": written,
        "nama_penerima": d.recipient.name.upper(),
        "program": d.programme,
        "periode": d.period,
        "nominal": d.amount,
        "status_salur": "SALUR" if d.paid_on else "TUNDA",
        "tgl_salur": f"{d.paid_on:%Y/%m/%d}" if d.paid_on else None,
        "kelurahan": kelurahan_as_written(d.recipient.kelurahan, rng),
        "alamat": d.recipient.street,
    }


def peserta_didik(e: Enrolment, regions: Regions) -> dict[str, Any]:
    return {
        "nisn": e.nisn,
        "nik": e.nik,
        "nama": e.name,
        "tanggal_lahir": e.birth_date,
        "jk": "L" if e.sex == "MALE" else "P",
        "npsn": e.school_id,
        "nama_sekolah": e.school_name,
        "bentuk_pendidikan": e.level,
        "tingkat": e.grade,
        "status": "AKTIF",
        "penerima_kjp": e.kjp,
        "kode_wilayah": bps_code(e.school_kelurahan, regions),
        "tahun_ajaran": "2026/2027",
    }


def bps_code(place: ReferenceRegion, regions: Regions) -> str:
    """Disdik reports BPS statistical codes, not Kemendagri ones."""
    code = regions.bps_code(place.code)
    assert code is not None, f"no BPS code for {place.code}"
    return code


def kunjungan(v: Visit) -> dict[str, Any]:
    return {
        "id_kunjungan": v.id,
        "nik_pasien": v.patient.nik,
        "waktu_kunjungan": f"{v.at.astimezone(WIB):%Y-%m-%d %H:%M}",
        "kode_faskes": v.facility,
        "jenis_layanan": v.service,
        "kode_vaksin": v.vaccine,
        "diagnosa_icd10": None if v.vaccine else "J06.9",
        "kode_kel_domisili": v.patient.kelurahan.code.replace(".", ""),
    }


def objek_pajak(p: Parcel, rng: random.Random) -> dict[str, Any]:
    n = p.nop
    return {
        "nop": f"{n[0:2]}.{n[2:4]}.{n[4:7]}.{n[7:10]}.{n[10:13]}-{n[13:17]}.{n[17]}",
        "tahun_pajak": p.tax_year,
        "nama_wp": p.owner.upper(),
        "nik_wp": None,
        "alamat_op": p.address,
        "kelurahan_op": kelurahan_as_written(p.kelurahan, rng),
        "luas_bumi": p.land_m2,
        "luas_bng": p.building_m2,
        "njop_bumi": p.land_value_m2,
        "njop_bng": p.building_value_m2,
        "pbb_terutang": p.tax_due,
        "status_bayar": BAPENDA_PAYMENT[p.payment],
        "tgl_bayar": dt.date(p.tax_year, 3, 31) if p.payment != "UNPAID" else None,
    }


def zonasi(p: Parcel) -> dict[str, Any]:
    return {
        "nop": p.nop,
        "kode_zona": p.zone,
        "kode_subzona": p.subzone,
        "kdb_maks": p.max_coverage,
        "klb_maks": p.max_far,
        "ketinggian_maks": p.max_storeys,
        "kegiatan_dilarang": [DPMPTSP_FUNCTIONS[f] for f in p.forbidden],
        "kode_kelurahan": p.kelurahan.code,
        "berlaku_sejak": dt.date(2022, 7, 1),
    }


def pbg(p: Parcel, permit: Permit, rng: random.Random) -> dict[str, Any]:
    n = p.nop
    return {
        "no_permohonan": permit.application,
        "no_pbg": permit.number,
        "nop": rng.choice((n, f"{n[0:2]}.{n[2:4]}.{n[4:7]}.{n[7:10]}.{n[10:13]}-{n[13:17]}.{n[17]}")),
        "nama_pemohon": p.owner,
        "nik_pemohon": None,
        "fungsi_bangunan": DPMPTSP_FUNCTIONS[permit.function],
        "luas_bangunan": permit.floor_m2,
        "jumlah_lantai": permit.storeys,
        "status": DPMPTSP_STATUS[permit.status],
        "tgl_pengajuan": permit.submitted_on,
        "tgl_terbit": permit.issued_on,
    }


def kejadian(i: Incident, status: str, rng: random.Random) -> dict[str, Any]:
    return {
        "id_kejadian": i.id,
        "jenis": BPBD_KINDS[i.kind],
        "waktu_kejadian": i.started_at,
        "kelurahan": kelurahan_as_written(i.kelurahan, rng),
        "kecamatan": None,
        "rw_terdampak": [str(int(rw)) for rw in i.affected_rw],
        "tinggi_air_cm": i.water_level_cm,
        "pengungsi": i.displaced,
        "meninggal": i.fatalities,
        "luka": i.injured,
        "status": BPBD_STATUS[status],
        "lintang": None,
        "bujur": None,
    }


def layanan(s: ServiceRequest, rng: random.Random) -> dict[str, Any]:
    closed = s.closed_at is not None
    codes = code_lists_of(s.agency, "layanan")["status"]  # the agency's own codes
    opened, closed_as = (next(code for code, meaning in codes.items() if meaning == m) for m in ("OPEN", "CLOSED"))
    place = s.kelurahan
    return {
        "no_tiket": s.ticket,
        "kanal": s.channel,
        "kategori": f"{s.agency.upper()}-{s.category:02d}",
        "uraian": s.text,
        "kelurahan": rng.choice((place.code, place.code.replace(".", ""), place.name)),
        "status": closed_as if closed else opened,
        "waktu_lapor": s.filed_at,
        "waktu_selesai": s.closed_at,
        "nik_pelapor": None,
    }
