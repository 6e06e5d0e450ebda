"""``satubus upload``: publish a spreadsheet (CSV or XLSX) of one agency dataset, row by row.

Columns map to schema fields by name (case, spaces and dashes ignored) or through ``--map "Column=field"``. Each
row is published as a snapshot event (op ``r``) keyed by ``--key``, or reported with its row number, field and
reason in the error report. Every row ends up in exactly one of the two: the summary says how many of each.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import re
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from satubus.producers.publisher import AgencyPublisher
from satubus.registry import registry_client
from satubus.schemas.envelope import agency_record_schema
from satubus.schemas.nik import mask_nik
from satubus.schemas.record_models import FieldError, RecordRejected, validate_json
from satubus.serde import AvroSerde
from satubus.settings import Settings

_TRUE = {"true", "ya", "y", "yes", "1"}
_FALSE = {"false", "tidak", "t", "no", "n", "0"}


@dataclass(frozen=True, slots=True)
class Column:
    field: str
    types: tuple[str, ...]  # the Avro types the field accepts, e.g. ("null", "long") or ("date",)


def field_key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip()).casefold()


def columns_of(schema: dict[str, Any]) -> dict[str, Column]:
    """Schema fields by normalised name, with the simple types a spreadsheet cell can hold."""

    def kinds(avro: Any) -> tuple[str, ...]:
        if isinstance(avro, list):
            return tuple(k for branch in avro for k in kinds(branch))
        if isinstance(avro, dict):
            return (avro.get("logicalType") or avro["type"],)
        return (avro,)

    return {field_key(f["name"]): Column(f["name"], kinds(f["type"])) for f in schema["fields"]}


def header_problems(header: list[str], columns: dict[str, Column], mapping: dict[str, str]) -> list[str]:
    """What makes a sheet ambiguous before any row is read: a column twice, two columns for one field, a ``--map``
    naming a column the sheet lacks or a field the dataset lacks."""
    named = [h for h in header if h]  # empty header cells: unused columns
    problems = [f"column {name!r} appears more than once" for name in sorted({h for h in named if named.count(h) > 1})]
    for source, target in mapping.items():
        if source not in header:
            problems.append(f"--map {source}={target}: the file has no column {source!r}")
        if field_key(target) not in columns:
            problems.append(f"--map {source}={target}: {target!r} is not a field; fields: {', '.join(sorted(columns))}")
    owners: dict[str, list[str]] = {}
    for name in dict.fromkeys(named):
        column = columns.get(field_key(mapping.get(name, name)))
        if column is not None:
            owners.setdefault(column.field, []).append(name)
    problems += [
        f"columns {' and '.join(map(repr, names))} both fill field {f}" for f, names in owners.items() if len(names) > 1
    ]
    return problems


def read_header(path: Path) -> list[str]:
    if path.suffix.lower() == ".xlsx":
        from openpyxl import load_workbook

        workbook = load_workbook(path, read_only=True, data_only=True)
        try:
            first = next(workbook.active.iter_rows(values_only=True), ())
            return [str(h).strip() if h is not None else "" for h in first]
        finally:
            workbook.close()
    with path.open(newline="", encoding="utf-8-sig") as f:
        return next(csv.reader(f), [])


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(spreadsheet row number, {header: cell}) for every non-empty data row; the header is row 1."""
    if path.suffix.lower() == ".xlsx":
        from openpyxl import load_workbook

        workbook = load_workbook(path, read_only=True, data_only=True)
        try:
            rows = workbook.active.iter_rows(values_only=True)
            header = [str(h).strip() if h is not None else "" for h in next(rows)]
            for number, values in enumerate(rows, start=2):
                if any(v not in (None, "") for v in values):
                    yield number, dict(zip(header, values, strict=False))
        finally:
            workbook.close()
    else:
        with path.open(newline="", encoding="utf-8-sig") as f:
            for number, row in enumerate(csv.DictReader(f), start=2):
                if any((v or "").strip() for v in row.values() if isinstance(v, str)):
                    yield number, row


def to_record(row: dict[str, Any], columns: dict[str, Column], mapping: dict[str, str]) -> dict[str, Any]:
    """The cells of a row as a JSON-ready record; raises ``RecordRejected`` naming each cell that cannot fit."""
    record: dict[str, Any] = {}
    errors: list[FieldError] = []
    for header, cell in row.items():
        if header is None:
            errors.append(FieldError("<row>", "more cells than header columns"))
            continue
        column = columns.get(field_key(mapping.get(header, header)))
        if column is None:
            continue  # a column the dataset does not have: ignored, like a spreadsheet's notes column
        try:
            value = _cell(cell, column.types)
        except ValueError as exc:
            errors.append(FieldError(column.field, str(exc)))
            continue
        if value is not None or "null" in column.types:
            record[column.field] = value
    if errors:
        raise RecordRejected("row", errors)
    return record


def _cell(cell: Any, types: tuple[str, ...]) -> Any:
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        return None
    text = cell.strip() if isinstance(cell, str) else cell
    for kind in types:
        if kind in ("int", "long"):
            if isinstance(text, float) and text.is_integer():
                return int(text)
            if isinstance(text, int) or (isinstance(text, str) and re.fullmatch(r"-?\d+", text)):
                return int(text)
        elif kind in ("double", "float"):
            if isinstance(text, int | float):
                return float(text)
            if isinstance(text, str) and re.fullmatch(r"-?\d+([.,]\d+)?", text):
                return float(text.replace(",", "."))
        elif kind == "boolean":
            if isinstance(text, bool):
                return text
            if str(text).casefold() in _TRUE | _FALSE:
                return str(text).casefold() in _TRUE
        elif kind == "date":
            if isinstance(text, dt.datetime):
                return text.date().isoformat()
            if isinstance(text, dt.date):
                return text.isoformat()
            return str(text)  # ISO text is checked by the schema model
        elif kind == "timestamp-millis":
            if isinstance(text, dt.datetime):
                return text.isoformat()
            return str(text)
        elif kind == "string":
            if isinstance(text, dt.datetime | dt.date):
                return text.isoformat()
            if isinstance(text, float) and text.is_integer():
                return str(int(text))  # spreadsheets turn codes like 3171061001 into numbers
            return str(text)
    wanted = "/".join(t for t in types if t != "null")
    raise ValueError(f"{mask_nik(str(cell))[:40]!r} is not a valid {wanted}")


class Progress:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label, self._drawn = total, label, 0.0

    def update(self, done: int, rejected: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn = now
        width = 30
        filled = width * done // max(self.total, 1)
        print(
            f"\r{self.label} [{'=' * filled}{' ' * (width - filled)}] {done}/{self.total} rows, {rejected} rejected",
            end="\n" if force else "",
            file=sys.stderr,
            flush=True,
        )


def main(args: argparse.Namespace, settings: Settings) -> int:
    mapping = dict(item.split("=", 1) for item in args.map)
    columns = columns_of(agency_record_schema(args.agency, args.dataset))
    key_field = columns.get(field_key(mapping.get(args.key, args.key)))
    if key_field is None:
        print(f"satubus upload: --key {args.key!r} is not a field of {args.agency}.{args.dataset}", file=sys.stderr)
        return 2
    if problems := header_problems(read_header(args.file), columns, mapping):
        for problem in problems:
            print(f"satubus upload: {args.file.name}: {problem}", file=sys.stderr)
        print("nothing was published; fix the header or the --map options and upload again", file=sys.stderr)
        return 2
    rows = list(read_rows(args.file))
    report_path = args.report or args.file.with_name(args.file.name + ".errors.csv")
    # A later upload of a key wins, and so does a later row of the same key within this file.
    version = time.time_ns() // 1_000_000 * 1_000_000
    rejected: list[tuple[int, str, str]] = []
    sent: dict[uuid.UUID, int] = {}  # event id -> row number
    answers: dict[uuid.UUID, KafkaError | None] = {}  # the broker's answer per event id (None: acknowledged)
    progress = Progress(len(rows), args.file.name)
    read, interrupted = 0, False
    with AvroSerde(registry_client(settings)) as serde:
        publisher = AgencyPublisher(
            settings,
            serde,
            agency=args.agency,
            dataset=args.dataset,
            system="upload",
            delivery_timeout=args.timeout,
        )
        try:
            for read, (number, row) in enumerate(rows, start=1):
                event_id = uuid.uuid4()
                try:
                    record = validate_json(publisher.model, json.dumps(to_record(row, columns, mapping)), "row")
                    key = record.get(key_field.field)
                    if key in (None, ""):
                        raise RecordRejected("row", [FieldError(key_field.field, "the key is empty")])
                    sent[event_id] = number  # before publish: the broker may answer within the call
                    publisher.publish(
                        str(key),
                        record,
                        version=version + number,
                        op="r",
                        event_id=event_id,
                        on_delivery=answers.__setitem__,
                    )
                except RecordRejected as exc:
                    sent.pop(event_id, None)
                    rejected.extend((number, e.field, e.reason) for e in exc.errors)
                except KafkaException as exc:  # the client refused this row (e.g. too large); go on
                    sent.pop(event_id, None)
                    rejected.append((number, "<broker>", f"not sent: {exc.args[0].str()}"))
                progress.update(read, len({n for n, _, _ in rejected}))
        except KeyboardInterrupt:
            interrupted = True
        finally:
            publisher.wait(args.timeout + 5)  # by then the broker answered or delivery_timeout failed each event
    for event_id, number in sent.items():
        error = answers.get(event_id, "no answer")
        if error is not None:
            reason = error if isinstance(error, str) else error.str()
            rejected.append((number, "<broker>", f"not published ({reason}); is Kafka up? Upload the row again"))
    rejected.sort(key=lambda r: r[0])
    published = sum(answers.get(event_id, "") is None for event_id in sent)
    progress.update(read, len({n for n, _, _ in rejected}), force=True)
    print(f"{published} rows published to {publisher.topic}, {len({n for n, _, _ in rejected})} rejected")
    if interrupted:
        print(f"interrupted: the {len(rows) - read} rows after row {rows[read - 1][0] if read else 1} were not sent")
    if rejected:
        with report_path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(("row", "field", "reason"))
            writer.writerows(rejected)
        print(f"rejected rows, with the field and the reason: {report_path}")
    return 130 if interrupted else 1 if rejected else 0
