"""Reading an agency's spreadsheet without trusting it, and writing reports that people open in a spreadsheet.

A file larger than ``upload_max_file_bytes`` is refused before it is opened. An .xlsx is a zip of XML parts: it is
refused when its parts unpack to more than ten times that (a zip bomb is kilobytes that unpack to gigabytes), and it
is parsed by openpyxl in read-only mode through defusedxml, which refuses entity declarations and external
references (the "billion laughs", XXE). Its cells are read only as far as the header goes, whatever size the sheet
claims. A sheet with a row beyond its first ``upload_max_rows`` data rows is refused whole, before anything is
published; a cell longer than ``upload_max_cell_chars`` rejects its row (``cell_problems``).

What upload writes back, the report of rejected rows, is opened in spreadsheets: a cell that starts like a formula
(=, +, -, @, a tab or a carriage return) is written after a single quote, as OWASP's guidance on CSV injection says,
so that it shows as text and never runs.

A CSV may be separated by commas, semicolons (what Excel writes where the decimal separator is a comma, as in
Indonesia), tabs or bars: the separator is the one its header line uses most, outside quotes (a comma where it has
none). The report is always separated by commas.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satubus.errors import ConfigurationError, DataError
from satubus.settings import Settings

MAX_COLUMNS = 1_000  # of a header; a dataset has a few dozen fields, and notes columns beside them
EXCEL_DATA_ROWS = 1_048_575  # Excel's rows, less the header: no sheet has more, whatever the setting says
UNPACKED_PER_PACKED = 10  # an .xlsx may unpack to this many times the file limit
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
DELIMITERS = ",;\t|"  # a CSV's separators; of two its header has as many of, the first
_QUOTED = re.compile(r'"[^"]*"')


class SheetRefused(DataError):
    """The whole file is refused, before anything is published; the message names the limit and what to do."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_file_bytes: int
    max_rows: int
    max_cell_chars: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        rows = min(settings.upload_max_rows, EXCEL_DATA_ROWS)
        return cls(settings.upload_max_file_bytes, rows, settings.upload_max_cell_chars)

    @property
    def max_unpacked_bytes(self) -> int:
        return UNPACKED_PER_PACKED * self.max_file_bytes


def read_header(path: Path, limits: Limits) -> list[str]:
    """The names in the first row, as far as its last non-empty cell."""
    for _, header in _sheet(path, limits):
        return header
    return []


def read_rows(path: Path, limits: Limits) -> Iterator[tuple[int, dict[str, Any]]]:
    """(spreadsheet row number, {header: cell}) for every non-empty data row; the header is row 1. A CSV row with
    more cells than the header has the extra ones under ``None``, as ``csv.DictReader`` does. An .xlsx cell holds
    what it shows: a number, a text, a ``datetime`` (naive, as the spreadsheet has it), a ``date`` for a cell
    formatted as a date alone, a ``time`` for a time of day alone."""
    rows = _sheet(path, limits)
    header = next(rows, (1, []))[1]
    for number, cells in rows:
        if any(cell not in (None, "") and not (isinstance(cell, str) and not cell.strip()) for cell in cells):
            row: dict[Any, Any] = dict.fromkeys(header)
            row.update(zip(header, cells, strict=False))
            if len(cells) > len(header):
                row[None] = list(cells[len(header) :])
            yield number, row


def cell_problems(row: dict[Any, Any], limits: Limits) -> dict[Any, str]:
    """The cells of ``row`` longer than the limit, by header, each with why."""
    return {
        header: f"{len(cell)} characters, more than {limits.max_cell_chars} (SATUBUS_UPLOAD_MAX_CELL_CHARS)"
        for header, cell in row.items()
        if isinstance(cell, str) and len(cell) > limits.max_cell_chars
    }


def neutralised(cell: object) -> object:
    """A cell a spreadsheet would take for a formula, made text by a leading single quote (CSV injection)."""
    return "'" + cell if isinstance(cell, str) and cell.startswith(FORMULA_START) else cell


def write_report(path: Path, header: Sequence[str], lines: Iterable[Sequence[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows([neutralised(cell) for cell in line] for line in lines)


def _sheet(path: Path, limits: Limits) -> Iterator[tuple[int, list[Any]]]:
    """(row number, cells) of every row, the header (row 1) trimmed after its last name; ``SheetRefused`` for a
    file over a limit or one that cannot be read safely."""
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise SheetRefused(
            f"{path.name} is {size:,} bytes, more than {limits.max_file_bytes:,} (SATUBUS_UPLOAD_MAX_FILE_BYTES): "
            "split it into smaller files"
        )
    rows = _xlsx(path, limits) if path.suffix.lower() == ".xlsx" else _csv(path)
    for number, cells in rows:
        if number == 1:
            while cells and cells[-1] in (None, ""):
                cells = cells[:-1]
            if len(cells) > MAX_COLUMNS:
                raise SheetRefused(f"{path.name} has more than {MAX_COLUMNS} columns: remove the ones not needed")
            cells = [str(name).strip() if name is not None else "" for name in cells]
        elif number > limits.max_rows + 1:
            raise SheetRefused(
                f"{path.name} has a row {number}, beyond its first {limits.max_rows:,} data rows "
                "(SATUBUS_UPLOAD_MAX_ROWS): split it into files of at most that many rows, or delete the rows "
                "left empty at its end"
            )
        yield number, cells


def delimiter_of(header: str) -> str:
    """The separator a CSV's header line uses most, outside quotes; a comma where it has none of them."""
    unquoted = _QUOTED.sub("", header)
    return max(DELIMITERS, key=unquoted.count)  # max keeps the first of equals: a comma before the others


def _csv(path: Path) -> Iterator[tuple[int, list[Any]]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        try:
            header = f.readline()
            reader = csv.reader(itertools.chain([header], f), delimiter=delimiter_of(header))
            yield from enumerate(reader, start=1)
        except UnicodeDecodeError as exc:
            raise SheetRefused(f"{path.name} is not UTF-8 ({exc.reason}): save it as CSV UTF-8") from None
        except csv.Error as exc:  # e.g. a cell over the csv module's 131,072 characters, a NUL byte
            raise SheetRefused(f"{path.name}, line {reader.line_num}: {exc}") from None


def _xlsx(path: Path, limits: Limits) -> Iterator[tuple[int, list[Any]]]:
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise SheetRefused(
            f"{path.name} is not an Excel workbook ({exc}): save it again as .xlsx or CSV UTF-8"
        ) from None
    # zipfile stops reading a part at its declared size (and fails its checksum if the data goes on): declared sizes
    # are what can be unpacked.
    if unpacked > limits.max_unpacked_bytes:
        raise SheetRefused(
            f"{path.name} unpacks to {unpacked:,} bytes, more than {limits.max_unpacked_bytes:,} "
            f"({UNPACKED_PER_PACKED} times SATUBUS_UPLOAD_MAX_FILE_BYTES): it is not an ordinary spreadsheet"
        )
    from openpyxl import DEFUSEDXML, load_workbook  # imported when needed: it takes a while

    if not DEFUSEDXML:
        raise ConfigurationError(
            "reading .xlsx files needs defusedxml (a dependency of satubus) and OPENPYXL_DEFUSEDXML not set to False"
        )
    try:
        with path.open("rb") as file:  # openpyxl leaves a file it opened open when it fails
            workbook = load_workbook(file, read_only=True, data_only=True)
            try:
                sheet = workbook.active
                # Its rows and columns as they are, not as many as it claims: a few bytes may claim 16,384 columns,
                # which openpyxl would pad every row to, or fewer rows than it has, which it would drop.
                sheet.reset_dimensions()
                header = list(next(sheet.iter_rows(max_row=1, max_col=MAX_COLUMNS + 1, values_only=True), ()))
                yield 1, header
                width = max((n + 1 for n, name in enumerate(header) if name not in (None, "")), default=1)
                for number, cells in enumerate(sheet.iter_rows(min_row=2, max_col=width), start=2):
                    yield number, [_value(cell) for cell in cells]
            finally:
                workbook.close()
    except Exception as exc:  # openpyxl and defusedxml raise many types on hostile or broken files
        cause = exc.__cause__ or exc.__context__ or exc  # openpyxl wraps the parser's error in its own
        raise SheetRefused(f"{path.name} cannot be read safely as a workbook: {cause!r}") from None


def _value(cell: Any) -> Any:
    """The cell's value; a date, not a datetime, for a cell formatted as a date alone that holds no time of day
    (openpyxl reads every date as a datetime)."""
    value = cell.value
    if isinstance(value, dt.datetime) and value.time() == dt.time() and _date_only(cell.number_format):
        return value.date()
    return value


def _date_only(number_format: str) -> bool:
    """A number format that shows a day or a year and no hours or seconds ("m" is a month or a minute)."""
    shown = _QUOTED.sub("", number_format.split(";")[0]).lower()
    shown = re.sub(r"\[[^]]*\]|\\.", "", shown)  # [$-421] locales, [red] colours, escaped characters
    return bool(re.search(r"[dy]", shown)) and not re.search(r"[hs]", shown)
