"""Each agency's own code lists for a dataset every agency publishes in one shape (``agencies/common/``).

``common/<dataset>.codes.csv`` holds rows ``agency,field,code,meaning``; agency ``*`` is the list of every agency
that declares none of its own.
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

from schemas.errors import SchemaError

COMMON_DIR = Path(__file__).parent / "agencies" / "common"
DEFAULT = "*"

CodeLists = dict[str, dict[str, str]]  # field -> {agency's code: meaning on the bus}


@cache
def agency_code_lists(dataset: str, common_dir: Path = COMMON_DIR) -> dict[str, CodeLists]:
    """{agency: {field: {code: meaning}}} from ``<common_dir>/<dataset>.codes.csv``; empty when there is none."""
    path = common_dir / f"{dataset}.codes.csv"
    if not path.exists():
        return {}
    lists: dict[str, CodeLists] = {}
    with path.open(encoding="utf-8") as f:
        for number, row in enumerate(csv.DictReader(line for line in f if not line.startswith("#")), start=2):
            if not all(row.get(column) for column in ("agency", "field", "code", "meaning")):
                raise SchemaError(f"{path}: row {number} needs agency, field, code and meaning")
            lists.setdefault(row["agency"], {}).setdefault(row["field"], {})[row["code"]] = row["meaning"]
    if DEFAULT not in lists:
        raise SchemaError(f"{path}: no default list (agency {DEFAULT})")
    return lists


def code_lists_of(agency: str, dataset: str, common_dir: Path = COMMON_DIR) -> CodeLists:
    """The agency's own lists for ``dataset``, or the default ones."""
    lists = agency_code_lists(dataset, common_dir)
    return lists.get(agency) or lists.get(DEFAULT, {})
