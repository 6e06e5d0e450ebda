"""Each agency's own code lists for a dataset every agency publishes in one shape (``agencies/common/``).

``common/<dataset>.codes.csv`` holds rows ``agency,field,code,meaning``; agency ``*`` is the list of every agency
that declares none of its own.
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

from satubus.schemas.catalogue import load_catalogue
from satubus.schemas.errors import SchemaError

COMMON_DIR = Path(__file__).parent / "agencies" / "common"
DEFAULT = "*"

CodeLists = dict[str, dict[str, str]]  # field -> {agency's code: meaning on the bus}


@cache
def agency_code_lists(dataset: str, common_dir: Path = COMMON_DIR) -> dict[str, CodeLists]:
    """{agency: {field: {code: meaning}}} from ``<common_dir>/<dataset>.codes.csv``; empty when there is none. Every
    agency must be in the catalogue, and its lists must give every meaning the default lists give, and no other."""
    path = common_dir / f"{dataset}.codes.csv"
    if not path.exists():
        return {}
    lists: dict[str, CodeLists] = {}
    with path.open(encoding="utf-8") as f:
        lines = [(n, line) for n, line in enumerate(f, start=1) if not line.startswith("#")]
    rows = csv.DictReader(line for _, line in lines)
    for (number, _), row in zip(lines[1:], rows, strict=True):
        if not all(row.get(column) for column in ("agency", "field", "code", "meaning")):
            raise SchemaError(f"{path}:{number}: a row needs agency, field, code and meaning")
        lists.setdefault(row["agency"], {}).setdefault(row["field"], {})[row["code"]] = row["meaning"]
    if DEFAULT not in lists:
        raise SchemaError(f"{path}: no default lists (agency {DEFAULT})")
    known = {a.code for a in load_catalogue()} | {DEFAULT}
    meanings = {name: set(codes.values()) for name, codes in lists[DEFAULT].items()}
    for agency, own in lists.items():
        if agency not in known:
            raise SchemaError(f"{path}: {agency!r} is not an agency of the catalogue")
        for name, codes in own.items():
            if set(codes.values()) != meanings.get(name):
                raise SchemaError(
                    f"{path}: {agency}'s {name} codes mean {sorted(set(codes.values()))}; "
                    f"they must mean exactly {sorted(meanings.get(name, ()))}"
                )
    return lists


def code_lists_of(agency: str, dataset: str, common_dir: Path = COMMON_DIR) -> CodeLists:
    """The agency's own lists for ``dataset``, or the default ones."""
    lists = agency_code_lists(dataset, common_dir)
    return lists.get(agency) or lists.get(DEFAULT, {})
