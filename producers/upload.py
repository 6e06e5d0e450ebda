"""``satubus upload``: publish a spreadsheet (CSV or XLSX) of one agency dataset, row by row.

Columns map to schema fields by name (case, spaces and dashes ignored) or through ``--map "Column=field"``. Each
row is published as a snapshot event (op ``r``) keyed by ``--key``, or reported with its row number, field and
reason in the error report. Every row ends up in exactly one of the two: the summary says how many of each. The file
is read within the limits of producers/sheets.py (size, rows, cell length; a safe .xlsx parse); a file over them
publishes nothing.

A spreadsheet's dates and times have no offset: they are the agency's local times, in the time zone of the
dataset's mapping (Asia/Jakarta unless it says otherwise). A text field gets them written as the mapping reads that
field (its ``date`` or ``datetime`` format), else in ISO 8601 without an offset; a timestamp field gets the instant.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from satubus.producers.mapping_check import MappingCheck
from satubus.producers.publisher import AgencyPublisher, Change, Outcome
from satubus.producers.sheets import Limits, SheetRefused, cell_problems, read_header, read_rows, write_report
from satubus.registry import registry_client
from satubus.schemas.envelope import AGENCIES_DIR, agency_record_schema
from satubus.schemas.mapping_spec import DEFAULT_TIMEZONE, FieldSpec, MappingFile
from satubus.schemas.nik import mask_nik
from satubus.schemas.record_models import FieldError, RecordRejected, validate_json
from satubus.serde import AvroSerde
from satubus.settings import Settings

CHUNK = 1000  # rows per publish_batch: the progress bar moves after each one's acknowledgements
# An upload's versions: its second, then the row number. A later upload of a key wins (from the next second on), and
# so does a later row of the same key within a file; every row number fits (sheets.EXCEL_DATA_ROWS), and the versions
# stay below 2^53 (streams/mapping.py) until the year 2242.
ROW_SLOTS = 2**20
Report = list[tuple[int, str, str]]  # (spreadsheet row number, field, reason) of each rejected row

_TRUE = {"true", "ya", "y", "yes", "1"}
_FALSE = {"false", "tidak", "t", "no", "n", "0"}


@dataclass(frozen=True, slots=True)
class Column:
    field: str
    types: tuple[str, ...]  # the Avro types the field accepts, e.g. ("null", "long") or ("date",)
    zone: str = DEFAULT_TIMEZONE  # of the spreadsheet's times, which have no offset: the agency's
    time_format: str | None = None  # where the mapping reads the field's text as a date or time, its format


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


def as_mapped(columns: dict[str, Column], spec: MappingFile | None) -> dict[str, Column]:
    """The columns with what the dataset's mapping (``spec``, if it has one) says of their times: the agency's time
    zone, and the format a text field's date or time is read with."""
    if spec is None:
        return columns
    reads: dict[str, FieldSpec] = {}  # agency field: the first mapped field that reads it as a date or time
    for mapped in spec.fields.values():
        if mapped.date is not None or mapped.datetime is not None:
            for source in mapped.sources:
                reads.setdefault(source, mapped)

    def timed(column: Column) -> Column:
        read = reads.get(column.field)
        if read is None:
            return replace(column, zone=spec.timezone)
        return replace(column, zone=read.timezone or spec.timezone, time_format=read.date or read.datetime)

    return {key: timed(column) for key, column in columns.items()}


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


def to_record(
    row: dict[str, Any], columns: dict[str, Column], mapping: dict[str, str], limits: Limits | None = None
) -> dict[str, Any]:
    """The cells of a row as a JSON-ready record; raises ``RecordRejected`` naming each cell that cannot fit (with
    ``limits``, a cell too long too, in any column)."""
    record: dict[str, Any] = {}
    too_long = {} if limits is None else cell_problems(row, limits)
    errors: list[FieldError] = []
    for header, cell in row.items():
        if header is None:
            errors.append(FieldError("<row>", "more cells than header columns"))
            continue
        column = columns.get(field_key(mapping.get(header, header)))
        if header in too_long:
            errors.append(FieldError(column.field if column else header, too_long[header]))
            continue
        if column is None:
            continue  # a column the dataset does not have: ignored, like a spreadsheet's notes column
        try:
            value = _cell(cell, column)
        except ValueError as exc:
            errors.append(FieldError(column.field, str(exc)))
            continue
        if value is not None or "null" in column.types:
            record[column.field] = value
    if errors:
        raise RecordRejected("row", errors)
    return record


def row_change(
    row: dict[str, Any],
    columns: dict[str, Column],
    mapping: dict[str, str],
    key: Column,
    model: type[BaseModel],
    *,
    version: int,
    limits: Limits | None = None,
) -> Change:
    """The row as a snapshot change, its record as JSON for the publisher to validate (once, when it publishes it);
    ``RecordRejected`` for a cell that cannot fit, or an empty key (the record's own errors first when it has any:
    they name the key field too)."""
    record = to_record(row, columns, mapping, limits)
    value = record.get(key.field)
    if value in (None, ""):
        validate_json(model, json.dumps(record), "row")  # never sent: the publisher will not validate it again
        raise RecordRejected("row", [FieldError(key.field, "the key is empty")])
    return Change(str(value), json.dumps(record), version, op="r")


def report_outcomes(numbers: list[int], outcomes: list[Outcome], rejected: Report) -> int:
    """Add the rows the publisher did not publish to ``rejected``; returns how many it published."""
    for number, outcome in zip(numbers, outcomes, strict=True):
        if outcome.status == "rejected":
            rejected.extend((number, e.field, e.reason) for e in outcome.errors)
        elif outcome.status == "failed":
            rejected.extend(
                (number, e.field, f"not published ({e.reason}); is Kafka up? Upload the row again")
                for e in outcome.errors
            )
    return sum(outcome.status == "published" for outcome in outcomes)


def _cell(cell: Any, column: Column) -> Any:
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        return None
    if isinstance(cell, dt.time):
        raise ValueError(
            f"{cell.isoformat()} is a time of day without a date (an Excel time cell): write the date and the time "
            "in one cell, or format the column as text"
        )
    text = cell.strip() if isinstance(cell, str) else cell
    types = column.types
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
                return text.date().isoformat()  # the agency's local date
            if isinstance(text, dt.date):
                return text.isoformat()
            return str(text)  # ISO text is checked by the schema model
        elif kind == "timestamp-millis":
            if isinstance(text, dt.datetime):
                local = text if text.tzinfo else text.replace(tzinfo=ZoneInfo(column.zone))
                return local.isoformat()
            if isinstance(text, dt.date):
                raise ValueError(
                    f"{text.isoformat()} is a date without a time of day: give the time too (format the cell as a "
                    "date and time)"
                )
            return str(text)
        elif kind == "string":
            if isinstance(text, dt.date):  # a datetime too: a local time, written without an offset
                return text.strftime(column.time_format) if column.time_format else text.isoformat()
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
    root = settings.mappings_dir or AGENCIES_DIR
    columns = columns_of(agency_record_schema(args.agency, args.dataset, root))
    key_field = columns.get(field_key(mapping.get(args.key, args.key)))
    if key_field is None:
        print(f"satubus upload: --key {args.key!r} is not a field of {args.agency}.{args.dataset}", file=sys.stderr)
        return 2
    limits = Limits.of(settings)
    try:
        header = read_header(args.file, limits)
        problems = [f"{args.file.name}: {p}" for p in header_problems(header, columns, mapping)]
        rows = [] if problems else list(read_rows(args.file, limits))
    except SheetRefused as exc:  # its message names the file
        problems = [str(exc)]
    if problems:
        for problem in problems:
            print(f"satubus upload: {problem}", file=sys.stderr)
        print("nothing was published; fix the file or the --map options and upload again", file=sys.stderr)
        return 2
    check = MappingCheck.of(args.agency, args.dataset, root)
    columns = as_mapped(columns, check.mapping.spec if check else None)
    report_path = args.report or args.file.with_name(args.file.name + ".errors.csv")
    version = int(time.time()) * ROW_SLOTS
    rejected: Report = []
    progress = Progress(len(rows), args.file.name)
    published, read, interrupted = 0, 0, False  # read: rows published or in the report
    with AvroSerde(registry_client(settings)) as serde:
        publisher = AgencyPublisher(
            settings,
            serde,
            agency=args.agency,
            dataset=args.dataset,
            system="upload",
            delivery_timeout=args.timeout,  # by the end of the wait, the broker answered or failed each row
            check=check,
            root=root,
        )
        model = publisher.model
        for start in range(0, len(rows), CHUNK):
            chunk, reported = rows[start : start + CHUNK], len(rejected)
            numbers: list[int] = []  # of the rows handed to the publisher, in order
            changes: list[Change] = []
            try:
                for number, row in chunk:
                    try:
                        change = row_change(
                            row, columns, mapping, key_field, model, version=version + number, limits=limits
                        )
                        changes.append(change)
                    except RecordRejected as exc:
                        rejected.extend((number, e.field, e.reason) for e in exc.errors)
                        continue
                    numbers.append(number)
            except KeyboardInterrupt:  # nothing of this chunk was sent
                del rejected[reported:]
                interrupted = True
                break
            try:
                outcomes = publisher.publish_batch(changes, timeout=args.timeout + 5)
            except KeyboardInterrupt:  # sent, perhaps published: their answers are lost
                publisher.wait(args.timeout + 5)
                reason = "interrupted before the broker answered; it may be published: upload the row again"
                rejected.extend((number, "<broker>", reason) for number in numbers)
                read, interrupted = start + len(chunk), True
                break
            acknowledged = report_outcomes(numbers, outcomes, rejected)
            published += acknowledged
            read = start + len(chunk)
            progress.update(read, len({n for n, _, _ in rejected}))
            if not acknowledged and any(o.status == "failed" for o in outcomes):  # the broker is down: stop
                reason = "not sent: the broker acknowledged none of the rows before; is Kafka up? Upload the row again"
                rejected.extend((number, "<broker>", reason) for number, _ in rows[read:])
                read = len(rows)
                break
    rejected.sort(key=lambda r: r[0])
    progress.update(read, len({n for n, _, _ in rejected}), force=True)
    print(f"{published} rows published to {publisher.topic}, {len({n for n, _, _ in rejected})} rejected")
    if interrupted:
        print(f"interrupted: the {len(rows) - read} rows after row {rows[read - 1][0] if read else 1} were not sent")
    if rejected:
        write_report(report_path, ("row", "field", "reason"), rejected)
        print(f"rejected rows, with the field and the reason: {report_path}")
    return 130 if interrupted else 1 if rejected else 0
