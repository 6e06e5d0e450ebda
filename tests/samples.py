"""Sample records shared by the tests."""

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
