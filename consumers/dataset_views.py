"""The datasets that are records of their own, as the API serves them: their tables and who may read them.

A dataset is read like the other person-level records (``read:person``, a purpose, audited) when its records carry
a pseudonym (they link to a person) or its Satu Data metadata does not classify it ``publik``; a dataset without
metadata is treated as not public. Its aggregates per kelurahan hold no person: they are public when the dataset is
``publik``, and need ``read:person`` otherwise. The list is read from the mappings again when a dataset is asked for
that it does not know: a dataset applied while the API runs is served without a restart.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satubus.consumers.dataset_tables import aggregate_view
from satubus.consumers.tables import TableSpec, record_table
from satubus.schemas.dataset_records import DatasetRecord, dataset_records
from satubus.schemas.metadata import MetadataError, load_metadata


@dataclass(frozen=True)
class DatasetView:
    record: DatasetRecord
    table: TableSpec
    classification: str  # publik, terbatas or rahasia; "unknown" without metadata

    @property
    def personal(self) -> bool:
        return self.record.pseudonymous or self.classification != "publik"

    def describe(self) -> dict[str, Any]:
        return {
            "agency": self.record.agency,
            "dataset": self.record.dataset,
            "topic": self.table.contract.name,
            "key": self.record.key,
            "classification": self.classification,
            "personal": self.personal,
            "doc": self.record.schema.get("doc", ""),
            "fields": [
                {"name": f["name"], "type": f["type"], "doc": f.get("doc", "")} for f in self.record.schema["fields"]
            ],
            "aggregates": [
                {
                    "name": name,
                    "per": aggregate.per,
                    "time": aggregate.time,
                    "sum": list(aggregate.sum),
                    "path": f"/v1/datasets/{self.record.agency}/{self.record.dataset}/aggregates/{name}",
                }
                for name, aggregate in self.record.spec.aggregates.items()
            ],
        }

    def aggregate_view(self, name: str) -> str | None:
        """The view of the aggregate ``name``; None when the mapping declares none of that name."""
        return aggregate_view(self.record, name) if name in self.record.spec.aggregates else None


class DatasetViews:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._views: dict[str, DatasetView] = {}
        self.refresh()

    def refresh(self) -> None:
        self._views = {record.name: self._view(record) for record in dataset_records(self.root)}

    def _view(self, record: DatasetRecord) -> DatasetView:
        classification: str
        try:
            classification = load_metadata(record.agency, record.dataset, self.root).classification
        except (MetadataError, OSError):
            classification = "unknown"
        return DatasetView(record, record_table(record), classification)

    def get(self, agency: str, dataset: str) -> DatasetView | None:
        name = f"{agency}.{dataset}"
        if name not in self._views:
            self.refresh()
        return self._views.get(name)

    def all(self) -> list[DatasetView]:
        self.refresh()
        return sorted(self._views.values(), key=lambda view: view.record.name)


async def aggregate_rows(
    conn: Any,
    view: str,
    *,
    kelurahan_code: str | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> tuple[int, list[dict[str, Any]]]:
    """The rows of an aggregate's view (``view``: its name, from ``DatasetView.aggregate_view``), newest period
    first, and how many there are in all."""
    rows = await conn.fetch(
        f"SELECT *, count(*) OVER () AS total FROM {view} "
        "WHERE ($1::text IS NULL OR kelurahan_code = $1) AND ($2::date IS NULL OR period >= $2) "
        "AND ($3::date IS NULL OR period <= $3) ORDER BY period DESC, kelurahan_code LIMIT $4 OFFSET $5",
        kelurahan_code,
        since,
        until,
        limit,
        offset,
    )
    return (rows[0]["total"] if rows else 0), [{k: v for k, v in row.items() if k != "total"} for row in rows]
