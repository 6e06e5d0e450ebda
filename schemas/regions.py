"""Kemendagri region reference for DKI Jakarta, loaded from ``reference/regions-31.csv``."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NewType

RegionCode = NewType("RegionCode", str)
"""A dotted Kemendagri code: 31.71 (kota), 31.71.06 (kecamatan), 31.71.06.1001 (kelurahan)."""

REFERENCE_FILE = Path(__file__).parent / "reference" / "regions-31.csv"
BPS_CROSSWALK_FILE = Path(__file__).parent / "reference" / "bps-crosswalk-31.csv"

_NAME_PREFIXES = re.compile(r"^(kelurahan\s+|kel\.\s*|kel\s+|desa\s+)", re.IGNORECASE)
_NOT_ALPHANUMERIC = re.compile(r"[\W_]+")


@dataclass(frozen=True, slots=True)
class ReferenceRegion:
    code: RegionCode
    level: str
    name: str
    parent_code: RegionCode


class Regions:
    """Lookups over the region reference: by code (dotted or not) and by kelurahan name variant."""

    def __init__(self, regions: list[ReferenceRegion], bps_crosswalk: dict[str, RegionCode] | None = None) -> None:
        self._by_code = {r.code: r for r in regions}
        self._by_bps = bps_crosswalk or {}
        self._to_bps = {code: bps for bps, code in self._by_bps.items()}
        self._kelurahan_by_name = {name_key(r.name): r for r in regions if r.level in ("kelurahan", "desa")}

    def __len__(self) -> int:
        return len(self._by_code)

    def get(self, code: str) -> ReferenceRegion | None:
        return self._by_code.get(RegionCode(dotted(code)))

    def kelurahan(self, code: str) -> ReferenceRegion | None:
        region = self.get(code)
        return region if region is not None and region.level in ("kelurahan", "desa") else None

    def kelurahan_named(self, name: str) -> ReferenceRegion | None:
        return self._kelurahan_by_name.get(name_key(name))

    def bps_code(self, code: str) -> str | None:
        """The BPS statistical code of a Kemendagri region, when the crosswalk has one."""
        return self._to_bps.get(RegionCode(dotted(code)))

    def from_bps(self, bps_code: str) -> ReferenceRegion | None:
        """The region a BPS statistical code (e.g. 3173020001, Menteng) stands for."""
        code = self._by_bps.get(bps_code.strip())
        return self._by_code.get(code) if code else None

    def of_level(self, *levels: str) -> list[ReferenceRegion]:
        return [r for r in self._by_code.values() if r.level in levels]


def dotted(code: str) -> str:
    """'3171061001' -> '31.71.06.1001'; an already dotted code is returned unchanged."""
    digits = code.strip()
    if "." in digits or not digits.isdigit() or len(digits) not in (2, 4, 6, 10):
        return digits  # not an undotted Kemendagri code: left as is, so it matches nothing
    parts = [digits[0:2], digits[2:4], digits[4:6], digits[6:10]]
    return ".".join(p for p in parts if p)


def name_key(name: str) -> str:
    """The comparison key of a region name: 'Kel. KRAMAT-PELA ' and 'Kramatpela' -> 'kramatpela'. Without spaces
    and punctuation the 267 kelurahan names of DKI Jakarta stay distinct (a unit test checks it)."""
    return _NOT_ALPHANUMERIC.sub("", _NAME_PREFIXES.sub("", name.strip())).casefold()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


@lru_cache(maxsize=1)
def load_regions() -> Regions:
    regions = [
        ReferenceRegion(RegionCode(r["code"]), r["level"], r["name"], RegionCode(r["parent_code"]))
        for r in _rows(REFERENCE_FILE)
    ]
    crosswalk = {r["bps_code"]: RegionCode(r["kemendagri_code"]) for r in _rows(BPS_CROSSWALK_FILE)}
    return Regions(regions, crosswalk)
