"""The catalogue of the 52 agencies (``reference/agencies.csv``) and the topic contracts it implies.

An agency publishes the datasets its row lists and every dataset whose schema is in its folder of the mappings
directory (``settings.mappings_dir``, by default the package's ``schemas/agencies/``; ``satubus dataset apply`` puts a
new one there): a dataset is onboarded without editing the catalogue file. The callers name that directory
(``root``): this package never reads the settings. ``load_catalogue`` reads it once per directory, for a process that
reads its configuration at start; a long-running reader takes ``configuration.current_catalogue``, which follows
the directory as it changes.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, NewType

from satubus.schemas.envelope import AGENCIES_DIR

AgencyCode = NewType("AgencyCode", str)
Kind = Literal["sekretariat", "inspektorat", "dinas", "satpol", "badan", "kota", "kabupaten", "biro"]

CATALOGUE_FILE = Path(__file__).parent / "reference" / "agencies.csv"
AGENCY_COUNT = 52


@dataclass(frozen=True, slots=True)
class Agency:
    code: AgencyCode
    name: str
    kind: Kind
    aliases: tuple[str, ...]
    datasets: tuple[str, ...]
    integrated: bool


@lru_cache(maxsize=8)
def load_catalogue(root: Path = AGENCIES_DIR) -> tuple[Agency, ...]:
    """The catalogue with the datasets whose schema is under ``root``, read at the first call for ``root`` and kept
    (``cache_clear`` to read it again)."""
    return read_catalogue(root)


def read_catalogue(root: Path = AGENCIES_DIR) -> tuple[Agency, ...]:
    """The catalogue as the files are now: ``reference/agencies.csv`` and the agencies' folders under ``root``."""
    with CATALOGUE_FILE.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    agencies = tuple(
        Agency(
            code=AgencyCode(row["code"]),
            name=row["name"],
            kind=row["kind"],  # type: ignore[arg-type]  # checked below
            aliases=tuple(a for a in row["aliases"].split(";") if a),
            datasets=_with_own_schemas(row["code"], tuple(d for d in row["datasets"].split(";") if d), root),
            integrated={"yes": True, "no": False}[row["integrated"]],
        )
        for row in rows
    )
    kinds = set(Kind.__args__)  # type: ignore[attr-defined]
    for agency in agencies:
        if agency.kind not in kinds:
            raise ValueError(f"{CATALOGUE_FILE}: agency {agency.code} has unknown kind {agency.kind!r}")
    if len({a.code for a in agencies}) != len(agencies):
        raise ValueError(f"{CATALOGUE_FILE}: agency codes are not unique")
    return agencies


def _with_own_schemas(code: str, listed: tuple[str, ...], root: Path) -> tuple[str, ...]:
    """``listed`` and, after them, the datasets with a schema in the agency's own folder under ``root`` (sorted)."""
    own = sorted(path.stem for path in (root / code).glob("*.avsc"))
    return (*listed, *(dataset for dataset in own if dataset not in listed))


def agency(code: str, root: Path = AGENCIES_DIR) -> Agency:
    for candidate in load_catalogue(root):
        if candidate.code == code:
            return candidate
    raise KeyError(f"no agency {code!r} in the catalogue ({CATALOGUE_FILE})")
