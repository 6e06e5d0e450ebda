"""Declarative normalization: ``schemas/agencies/<agency>/<dataset>.mapping.yaml`` says how an agency's record becomes
a canonical one. This module loads and checks such a file and applies it; it is pure (no Kafka). Rather than
interpret the file for every event, a mapping is compiled once, at its first event, into plain functions, one per
canonical field, that do only the steps its spec has.

Each canonical field has one spec. A value is taken (``from`` an agency field, a list of fields tried in order, an
envelope field ``$version``/``$occurred_at``/``$event_id``/``$key``, ``parent_of`` another canonical field, a
``template`` or a constant ``value``), then, in this order: trimmed (white space collapsed), ``digits`` (keep digits
only), ``case``, ``nik`` (must be a valid NIK), ``pattern``, ``codes`` (a code list of the file), ``date`` or
``datetime`` (with ``timezone`` for local times), ``not_future``, ``region`` (kelurahan code, name or variant, or BPS
code where ``region_by`` says so → Kemendagri code), ``pseudonym`` (keyed HMAC) and ``prefix``. ``pad`` zero-pads
digit strings. Lists go through the steps element by element. A failure rejects the record with the agency's field and a
short reason code: missing_value, invalid_nik, invalid_format, unknown_code, invalid_date, future_date, unknown_region,
nik_mismatch, future_event, invalid_version, invalid_value.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
import string
from collections.abc import Callable, Sequence
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError

from satubus.schemas.catalogue import load_catalogue
from satubus.schemas.code_lists import code_lists_of
from satubus.schemas.dataset_records import RESERVED, DatasetRecord
from satubus.schemas.envelope import AGENCIES_DIR, agency_record_schema, envelope_schema
from satubus.schemas.mapping_spec import (
    RECORD,
    Check,
    FieldSpec,
    MappingError,
    MappingFile,
    NikCheck,
    mapping_path,
    read_mapping_file,
)
from satubus.schemas.models import UNIFIED_MODELS
from satubus.schemas.nik import InvalidNik, NikInfo, parse_nik
from satubus.schemas.parts import PART_MODELS
from satubus.schemas.pseudonym import pseudonymize
from satubus.schemas.regions import ReferenceRegion, Regions
from satubus.streams.errors import Rejected

CLOCK_SKEW = dt.timedelta(minutes=5)
# Versions count a record's changes at the source, from 1; below 2^53, every JSON reader (JavaScript's too) holds
# one exactly, far from the 2^63 where an Avro long overflows.
MAX_VERSION = 2**53 - 1
COMMON = "common"  # schemas/agencies/common/: datasets every agency publishes in the same shape
ENVELOPE_FIELDS = ("$version", "$occurred_at", "$event_id", "$key")
_PLACEHOLDER = re.compile(r"{(\w+)")
_NON_DIGIT = re.compile(r"\D")


@dataclass(frozen=True)
class Deletion:
    """The source deleted the record: a tombstone for this key, or for a part the part's removal (its entity key
    is then unknown here: the stream processor remembers where the record went)."""

    entity: str
    key: str | None


@dataclass(frozen=True)
class DatasetMapping:
    agency: str
    dataset: str
    spec: MappingFile
    envelope: dict[str, Any]  # the event schema this mapping reads; older events are resolved to it
    record: DatasetRecord | None = None  # where the dataset is a record of its own (entity: record)

    @property
    def entity(self) -> str:
        """What the mapping makes: a canonical entity, or ``<agency>.<dataset>`` for a record of its own."""
        return self.spec.entity if self.record is None else self.record.name

    @cached_property
    def model(self) -> type[BaseModel]:
        return target_model(self.spec) if self.record is None else self.record.model

    @cached_property
    def _compiled(self) -> _CompiledMapping:
        return _compile(self.spec)

    @cached_property
    def _zone(self) -> ZoneInfo:
        """The agency's time zone: a date it writes is in the future once it is past today there."""
        return ZoneInfo(self.spec.timezone)

    def apply(
        self, event: MappingType[str, Any], *, regions: Regions, pseudonym_key: bytes, now: dt.datetime
    ) -> BaseModel | Deletion:
        version = event["version"]
        if not 1 <= version <= MAX_VERSION:
            raise Rejected(
                "version",
                "invalid_version",
                f"version {version} is outside 1..{MAX_VERSION}: it counts a record's changes, from 1",
            )
        occurred_at: dt.datetime = event["occurred_at"]
        latest = now + CLOCK_SKEW
        if occurred_at > latest:
            raise Rejected("occurred_at", "future_event", f"event time {occurred_at.isoformat()} is in the future")
        compiled = self._compiled
        run = _Run(regions, pseudonym_key, now.astimezone(self._zone).date(), latest)
        if event["op"] == "d" or event["after"] is None:
            if self.spec.part is not None:
                return Deletion(self.entity, None)
            return Deletion(self.entity, compiled.key(event["key"], run))
        out: dict[str, Any] = {}
        for name, field in compiled.fields:
            out[name] = field(event, out, run)
        for check in compiled.checks:
            check(event["after"], out, run)
        if self.record is not None:
            out["version"] = version
            out["updated_at"] = occurred_at
        try:
            return self.model.model_validate(out)
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(map(str, first["loc"]))
            raise Rejected(where, "invalid_value", first["msg"]) from None


# The compiled form of a mapping: a function per canonical field, built from the steps its spec has (in the order
# the module docstring gives). A field function gets the event, the fields mapped so far and the apply call's _Run.


@dataclass(slots=True)
class _Run:
    """What one ``apply`` call brings to the compiled fields."""

    regions: Regions
    key: bytes  # the pseudonym key
    today: dt.date
    latest: dt.datetime  # now + CLOCK_SKEW: a later instant lies in the future
    last_nik: tuple[str, NikInfo] | None = None

    def parse_nik(self, nik: str) -> NikInfo:
        """``parse_nik`` as of today. A record's NIK is read by its field and again by a check: it is parsed once."""
        if self.last_nik is None or self.last_nik[0] != nik:
            self.last_nik = (nik, parse_nik(nik, today=self.today))
        return self.last_nik[1]


_Field = Callable[[MappingType[str, Any], dict[str, Any], _Run], Any]  # (event, fields so far, run) -> value
_Transform = Callable[[Any, _Run], Any]  # a taken value through the spec's steps
_Reader = Callable[[MappingType[str, Any]], Any]  # one source of a value from the event
_Lookup = Callable[[Regions, str], ReferenceRegion | None]


@dataclass(frozen=True)
class _CompiledMapping:
    fields: tuple[tuple[str, _Field], ...]  # canonical name, how to map it
    key: _Transform  # the key field's steps, for the key of a deletion
    checks: tuple[_Check, ...]


_Check = Callable[[MappingType[str, Any], dict[str, Any], _Run], None]  # (agency record, fields, run): or Rejected


def _compile(spec: MappingFile) -> _CompiledMapping:
    # A field without a time zone of its own reads local times in the mapping's (the agency's).
    specs = {
        name: field if field.timezone else field.model_copy(update={"timezone": spec.timezone})
        for name, field in spec.fields.items()
    }
    fields = tuple((name, _compile_field(field, spec.code_lists)) for name, field in specs.items())
    checks = tuple(_compile_check(check, spec) for check in spec.checks)
    return _CompiledMapping(fields, _compile_transform("key", specs[spec.key], spec.code_lists), checks)


def _compile_check(check: Check, spec: MappingFile) -> _Check:
    if check.nik_matches is not None:
        nik_check = check.nik_matches
        return lambda record, out, run: _check_nik(nik_check, record, out, run)
    left, op, right = check.comparison
    holds = _COMPARE[op]
    label = (spec.fields[left].sources or [left])[0]  # the agency's field, which is what the agency must fix
    rule = check.rule

    def check_rule(record: MappingType[str, Any], out: dict[str, Any], run: _Run) -> None:
        a, b = out.get(left), out.get(right)
        if a is None or b is None:
            return
        try:
            held = holds(a, b)
        except TypeError:
            raise Rejected(label, "failed_rule", f"rule {rule}: {left} and {right} cannot be compared") from None
        if not held:
            shown = f" ({_shown(a)} {op} {_shown(b)} is false)" if _plain(a) and _plain(b) else ""
            raise Rejected(label, "failed_rule", f"rule {rule} does not hold{shown}")

    return check_rule


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def _plain(value: Any) -> bool:
    """A number, date or time: shown in a rejection (a text might be personal data)."""
    return isinstance(value, int | float | dt.date) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _compile_field(spec: FieldSpec, code_lists: dict[str, dict[str, Any]]) -> _Field:
    field = _compile_value(spec, code_lists)
    return field if spec.when is None else _only_when(spec.when, field)


def _only_when(when: str, field: _Field) -> _Field:
    """``field`` where the canonical field ``when`` (mapped before) is truthy, None otherwise."""

    def conditional(event: MappingType[str, Any], out: dict[str, Any], run: _Run) -> Any:
        return field(event, out, run) if out.get(when) else None

    return conditional


def _compile_value(spec: FieldSpec, code_lists: dict[str, dict[str, Any]]) -> _Field:
    if spec.value is not None:
        return _constant(spec.value)
    if spec.parent_of is not None:
        return _parent(spec.parent_of, 3 if spec.level == "kecamatan" else 2)
    if spec.template is not None:
        return _template(spec.template)
    return _from_sources(spec, code_lists)


def _constant(value: Any) -> _Field:
    def constant(event: MappingType[str, Any], out: dict[str, Any], run: _Run) -> Any:
        return value

    return constant


def _parent(child: str, parts: int) -> _Field:
    """The kecamatan (3 parts) or kota (2 parts) of an already mapped kelurahan code."""

    def parent(event: MappingType[str, Any], out: dict[str, Any], run: _Run) -> Any:
        code = out[child]
        return None if code is None else ".".join(code.split(".")[:parts])

    return parent


def _template(template: str) -> _Field:
    placeholders = _PLACEHOLDER.findall(template)

    def fill(event: MappingType[str, Any], out: dict[str, Any], run: _Run) -> Any:
        record = event["after"]
        values = {}
        for placeholder in placeholders:
            raw = record.get(placeholder)
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                raise Rejected(placeholder, "missing_value", f"{placeholder} is empty")
            values[placeholder] = " ".join(raw.split()) if isinstance(raw, str) else raw
        return template.format(**values)

    return fill


def _from_sources(spec: FieldSpec, code_lists: dict[str, dict[str, Any]]) -> _Field:
    """The first present value of the spec's sources through its steps, or the present values to the region
    lookup. Every source is read. Errors name the first source, the agency's field: that is what the agency must
    fix."""
    sources = spec.sources
    label = sources[0]
    missing = f"{' or '.join(sources)} is empty"
    to_region = None if spec.region is None else _region_finder(label, spec.region_by)
    if len(sources) == 1 and not label.startswith("$"):
        finish_one = _compile_transform(label, spec, code_lists) if to_region is None else _for_one(to_region)
        return _from_agency_field(label, spec.optional, missing, finish_one)
    finish = _first_through(_compile_transform(label, spec, code_lists)) if to_region is None else to_region
    readers = tuple(_reader(source) for source in sources)
    optional = spec.optional

    def take(event: MappingType[str, Any], out: dict[str, Any], run: _Run) -> Any:
        present = []
        for value in [read(event) for read in readers]:
            if not _is_blank(value):
                present.append(value)
        if not present:
            if optional:
                return None
            raise Rejected(label, "missing_value", missing)
        return finish(present, run)

    return take


def _from_agency_field(source: str, optional: bool, missing: str, finish: _Transform) -> _Field:
    """``_from_sources`` for its common case, a single field of the agency's record."""

    def take(event: MappingType[str, Any], out: dict[str, Any], run: _Run) -> Any:
        value = event["after"].get(source)
        if value is None or (isinstance(value, str) and not value.strip()):
            if optional:
                return None
            raise Rejected(source, "missing_value", missing)
        return finish(value, run)

    return take


def _first_through(transform: _Transform) -> Callable[[list[Any], _Run], Any]:
    """The first of the present values through ``transform``."""
    return lambda present, run: transform(present[0], run)


def _for_one(finish: Callable[[list[Any], _Run], Any]) -> _Transform:
    """``finish``, which takes the present values, for the one value of a single source."""
    return lambda value, run: finish([value], run)


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _reader(source: str) -> _Reader:
    if source == "$event_id":
        return lambda event: str(event["event_id"])
    if source.startswith("$"):
        envelope_field = source[1:]
        return lambda event: event[envelope_field]
    return lambda event: event["after"].get(source)


def _compile_transform(name: str, spec: FieldSpec, code_lists: dict[str, dict[str, Any]]) -> _Transform:
    """The spec's steps for one value (each element of a list alike); ``name`` labels errors."""
    text_steps = _text_steps(spec)
    value_steps = _value_steps(name, spec, code_lists)
    if not text_steps and not value_steps:
        return _trimmed

    def transform(value: Any, run: _Run) -> Any:
        if isinstance(value, str):
            value = " ".join(value.split())
            for text_step in text_steps:
                value = text_step(value)
        elif isinstance(value, list):
            return [transform(item, run) for item in value]
        for step in value_steps:
            value = step(value, run)
        return value

    return transform


def _trimmed(value: Any, run: _Run) -> Any:
    """A value through a spec without steps: text has its white space collapsed, and that is all."""
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, list):
        return [_trimmed(item, run) for item in value]
    return value


def _text_steps(spec: FieldSpec) -> tuple[Callable[[str], str], ...]:
    """What the spec does to a text after collapsing its white space: digits, case, pad."""
    steps: list[Callable[[str], str]] = []
    if spec.digits:
        steps.append(_only_digits)
    if spec.case is not None:
        steps.append(_CASES[spec.case])
    if spec.pad is not None:
        steps.append(_zero_pad(spec.pad))
    return tuple(steps)


def _only_digits(text: str) -> str:
    """``text`` without what is not a digit (``\\d``: a Unicode decimal digit, as for ``str.isdecimal``)."""
    return text if text.isdecimal() else _NON_DIGIT.sub("", text)


_CASES: dict[str, Callable[[str], str]] = {"upper": str.upper, "lower": str.lower, "title": string.capwords}


def _zero_pad(width: int) -> Callable[[str], str]:
    def pad(text: str) -> str:
        return text.zfill(width) if text.isdigit() else text

    return pad


def _value_steps(name: str, spec: FieldSpec, code_lists: dict[str, dict[str, Any]]) -> tuple[_Transform, ...]:
    """The spec's steps after the text ones: nik, pattern, codes, date, datetime, value rules, not_future,
    pseudonym, prefix."""
    steps: list[_Transform] = []
    if spec.nik:
        steps.append(_nik_check(name))
    if spec.pattern is not None:
        steps.append(_pattern_check(name, spec.pattern))
    if spec.codes is not None:
        steps.append(_code_lookup(name, spec.codes, code_lists[spec.codes]))
    if spec.date is not None:
        steps.append(_date_parser(name, spec.date))
    if spec.datetime is not None:
        steps.append(_datetime_parser(name, spec.datetime, spec.timezone or "UTC"))
    steps += _rule_steps(name, spec)
    if spec.not_future:
        steps.append(_not_future_check(name))
    if spec.pseudonym is not None:
        steps.append(_pseudonymizer(spec.pseudonym))
    if spec.prefix is not None:
        steps.append(_prefixer(spec.prefix))
    return tuple(steps)


def _rule_steps(name: str, spec: FieldSpec) -> list[_Transform]:
    """The value rules of the spec: one_of, min_length and max_length, min and max."""
    steps: list[_Transform] = []
    if spec.one_of is not None:
        steps.append(_one_of_check(name, spec.one_of))
    if spec.min_length is not None or spec.max_length is not None:
        steps.append(_length_check(name, spec.min_length, spec.max_length))
    if spec.min is not None or spec.max is not None:
        steps.append(_range_check(name, spec.min, spec.max))
    return steps


def _one_of_check(name: str, allowed: list[Any]) -> _Transform:
    choices = frozenset(allowed)
    listed = ", ".join(map(str, allowed))

    def check_one_of(value: Any, run: _Run) -> Any:
        if value not in choices:
            raise Rejected(name, "not_allowed", f"rule one_of: {str(value)[:40]!r} is not one of {listed}")
        return value

    return check_one_of


def _length_check(name: str, shortest: int | None, longest: int | None) -> _Transform:
    def check_length(value: Any, run: _Run) -> Any:
        length = len(str(value))
        if shortest is not None and length < shortest:
            raise Rejected(name, "invalid_length", f"rule min_length: {length} characters, fewer than {shortest}")
        if longest is not None and length > longest:
            raise Rejected(name, "invalid_length", f"rule max_length: {length} characters, more than {longest}")
        return value

    return check_length


def _range_check(name: str, lowest: float | None, highest: float | None) -> _Transform:
    def check_range(value: Any, run: _Run) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            try:
                number = float(str(value).replace(",", "."))
            except ValueError:
                raise Rejected(name, "invalid_value", f"rule min/max: {str(value)[:40]!r} is not a number") from None
        else:
            number = value
        if lowest is not None and number < lowest:
            raise Rejected(name, "out_of_range", f"rule min: {number:g} is below {lowest:g}")
        if highest is not None and number > highest:
            raise Rejected(name, "out_of_range", f"rule max: {number:g} is above {highest:g}")
        return value

    return check_range


def _nik_check(name: str) -> _Transform:
    def check_nik(value: Any, run: _Run) -> Any:
        try:
            run.parse_nik(value)
        except InvalidNik as exc:
            raise Rejected(name, "invalid_nik", str(exc)) from None
        return value

    return check_nik


def _pattern_check(name: str, pattern: str) -> _Transform:
    compiled = re.compile(pattern)

    def check_pattern(value: Any, run: _Run) -> Any:
        if not compiled.fullmatch(str(value)):
            raise Rejected(name, "invalid_format", f"does not match {pattern}")
        return value

    return check_pattern


def _code_lookup(name: str, list_name: str, codes: dict[str, Any]) -> _Transform:
    def look_up(value: Any, run: _Run) -> Any:
        code = str(value).lower() if isinstance(value, bool) else str(value)  # YAML keys: true -> "true"
        if code not in codes:
            raise Rejected(name, "unknown_code", f"{code[:40]!r} is not in code list {list_name}")
        return codes[code]

    return look_up


def _date_parser(name: str, fmt: str) -> _Transform:
    parse = _time_parser(fmt)

    def to_date(value: Any, run: _Run) -> Any:
        if isinstance(value, dt.date):
            return value
        try:
            return parse(str(value)).date()
        except ValueError:
            raise Rejected(name, "invalid_date", f"{str(value)[:40]!r} is not a date like {_example(fmt)}") from None

    return to_date


def _datetime_parser(name: str, fmt: str, zone: str) -> _Transform:
    parse = _time_parser(fmt)

    def to_datetime(value: Any, run: _Run) -> Any:
        if isinstance(value, dt.datetime):
            parsed = value
        else:
            try:
                parsed = parse(str(value))
            except ValueError:
                raise Rejected(
                    name, "invalid_date", f"{str(value)[:40]!r} is not a time like {_example(fmt)}"
                ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=ZoneInfo(zone))
        return parsed.astimezone(dt.UTC)

    return to_datetime


def _example(fmt: str) -> str:
    """How a time in ``fmt`` is written, shown with the format: '30-11-2026 (%d-%m-%Y)'."""
    return f"{_EXAMPLE_TIME.strftime(fmt)} ({fmt})"


_EXAMPLE_TIME = dt.datetime(2026, 11, 30, 14, 5, 9)


def _not_future_check(name: str) -> _Transform:
    def check_not_future(value: Any, run: _Run) -> Any:
        if value is not None:
            instant = value if isinstance(value, dt.datetime) else None
            if (instant and instant > run.latest) or (instant is None and value > run.today):
                raise Rejected(name, "future_date", "lies in the future")
        return value

    return check_not_future


def _pseudonymizer(domain: str) -> _Transform:
    def to_pseudonym(value: Any, run: _Run) -> Any:
        return pseudonymize(run.key, domain, str(value))

    return to_pseudonym


def _prefixer(prefix: str) -> _Transform:
    def add_prefix(value: Any, run: _Run) -> Any:
        return f"{prefix}{value}"

    return add_prefix


def _region_finder(name: str, region_by: Sequence[str]) -> Callable[[list[Any], _Run], str]:
    """The Kemendagri code of the first of the values that a lookup of ``region_by`` (in order) knows."""
    lookups = tuple(_REGION_LOOKUPS[method] for method in region_by)

    def find(values: list[Any], run: _Run) -> str:
        for value in values:
            code = _kelurahan_code(run.regions, lookups, " ".join(str(value).split()))
            if code is not None:
                return code
        shown = " / ".join(repr(str(v)[:40]) for v in values)
        raise Rejected(name, "unknown_region", f"{shown} is not a kelurahan of DKI Jakarta", str(values[0])[:40])

    return find


@lru_cache(maxsize=8192)
def _kelurahan_code(regions: Regions, lookups: tuple[_Lookup, ...], text: str) -> str | None:
    """The code of the kelurahan that the first of ``lookups`` to know ``text`` gives. Remembered: the same few
    hundred places come again and again, and a region reference does not change."""
    for lookup in lookups:
        region = lookup(regions, text)
        if region is not None:
            return region.code
    return None


def _kelurahan_by_code(regions: Regions, code: str) -> ReferenceRegion | None:
    return regions.kelurahan(code)


def _kelurahan_by_name(regions: Regions, name: str) -> ReferenceRegion | None:
    return regions.kelurahan_named(name)


def _kelurahan_by_bps(regions: Regions, code: str) -> ReferenceRegion | None:
    """A BPS code is read as one only where the mapping says the agency writes BPS codes: the same digits name
    different places in the two systems."""
    region = regions.from_bps(code)
    return region if region is not None and region.level in ("kelurahan", "desa") else None


_REGION_LOOKUPS: dict[str, _Lookup] = {"code": _kelurahan_by_code, "name": _kelurahan_by_name, "bps": _kelurahan_by_bps}

_FIXED_WIDTH = {"Y": 4, "m": 2, "d": 2, "H": 2, "M": 2, "S": 2}  # digits of a directive on the fast path
_DIRECTIVE = re.compile(r"%(.)")


def _time_parser(fmt: str) -> Callable[[str], dt.datetime]:
    """``datetime.strptime(text, fmt)``, raising ValueError where it does, but several times faster for the
    common case: where ``fmt`` has %Y, %m and %d (and perhaps %H, %M, %S) and plain separators, a text that writes
    every field in full width ('05-09-1987' for '%d-%m-%Y') and is a valid time is read directly. Anything else
    (a one-digit day, a 31st of February) goes to strptime, so results and errors stay strptime's."""
    fixed = _fixed_width_pattern(fmt)
    if fixed is None:
        return lambda text: dt.datetime.strptime(text, fmt)

    def parse(text: str) -> dt.datetime:
        found = fixed.fullmatch(text)
        if found is not None:
            parts = found.groupdict()
            try:
                return dt.datetime(
                    int(parts["Y"]),
                    int(parts["m"]),
                    int(parts["d"]),
                    int(parts.get("H", 0)),
                    int(parts.get("M", 0)),
                    int(parts.get("S", 0)),
                )
            except ValueError:
                pass  # no such time: strptime says so in its words
        return dt.datetime.strptime(text, fmt)

    return parse


def _fixed_width_pattern(fmt: str) -> re.Pattern[str] | None:
    """A pattern that matches only texts strptime reads the same way, with a group named after each directive; None
    where ``fmt`` is not of the fast path's kind. A space in ``fmt`` matches one space (strptime takes any run of
    white space): a narrower fast path, not a different one."""
    directives = _DIRECTIVE.findall(fmt)
    separators = _DIRECTIVE.split(fmt)[::2]
    plain = all("%" not in s and all(c == " " or not c.isspace() for c in s) for s in separators)
    if (
        not plain
        or len(set(directives)) != len(directives)
        or not {"Y", "m", "d"} <= set(directives) <= set(_FIXED_WIDTH)
    ):
        return None
    groups = [f"(?P<{d}>[0-9]{{{_FIXED_WIDTH[d]}}})" for d in directives]
    return re.compile("".join(re.escape(s) + g for s, g in zip(separators, [*groups, ""], strict=True)))


def _check_nik(check: NikCheck, record: MappingType[str, Any], out: dict[str, Any], run: _Run) -> None:
    nik = _only_digits(str(record.get(check.nik) or ""))
    try:
        info = run.parse_nik(nik)
    except InvalidNik as exc:
        raise Rejected(check.nik, "invalid_nik", str(exc)) from None
    born: dt.date = out[check.birth_date]
    if (info.birth_date.day, info.birth_date.month, info.birth_date.year % 100) != (
        born.day,
        born.month,
        born.year % 100,
    ):
        raise Rejected("nik", "nik_mismatch", f"birth date encoded in the NIK differs from {check.birth_date}")
    if info.sex != out[check.sex]:
        raise Rejected("nik", "nik_mismatch", f"sex encoded in the NIK differs from {check.sex}")


def load_mapping(agency: str, dataset: str, root: Path = AGENCIES_DIR) -> DatasetMapping:
    """Load ``<root>/<agency>/<dataset>.mapping.yaml`` and check it against the agency's schema beside it and
    the canonical model."""
    path = mapping_path(agency, dataset, root)
    spec = read_mapping_file(path)
    try:
        record_schema = agency_record_schema(agency, dataset, root)
    except (OSError, ValueError) as exc:
        raise MappingError(f"{path}: cannot read the dataset's Avro schema: {exc}") from exc
    problems = _problems(spec, record_schema, f"{agency}/{dataset}")
    if problems:
        raise MappingError(f"{path}:\n  " + "\n  ".join(problems))
    record = DatasetRecord(agency, dataset, spec, record_schema) if spec.entity == RECORD else None
    return DatasetMapping(agency, dataset, spec, envelope_schema(record_schema), record)


def target_model(spec: MappingFile) -> type[BaseModel]:
    return UNIFIED_MODELS[spec.entity] if spec.part is None else PART_MODELS[(spec.entity, spec.part)]


def _problems(spec: MappingFile, schema: dict[str, Any], dataset: str) -> list[str]:
    if spec.entity == RECORD:
        return _record_problems(spec, dataset) + _field_problems(spec, schema, dataset)
    if spec.part is not None and (spec.entity, spec.part) not in PART_MODELS:
        known = ", ".join(part for entity, part in PART_MODELS if entity == spec.entity) or "none"
        return [f"part: {spec.entity} has no part {spec.part} (known: {known})"]
    model = target_model(spec)
    target = spec.entity if spec.part is None else f"{spec.entity} part {spec.part}"
    source_fields = {f["name"] for f in schema["fields"]}
    problems = [
        f"fields.{name}: not a field of canonical {target}" for name in spec.fields if name not in model.model_fields
    ]
    required = {n for n, f in model.model_fields.items() if f.is_required()}
    problems += [f"fields: canonical field {name} is not mapped" for name in sorted(required - set(spec.fields))]
    if spec.restricted_nik is not None:
        if (spec.entity, spec.part) != ("person", "identity"):
            problems.append("restricted_nik: only the identity part of a person can name its NIK")
        if spec.restricted_nik not in source_fields:
            problems.append(f"restricted_nik: {spec.restricted_nik} is not a field of {dataset}")
    return problems + _field_problems(spec, schema, dataset)


def _record_problems(spec: MappingFile, dataset: str) -> list[str]:
    """What a dataset that is a record of its own may not do: hold a clear NIK, or name the fields every record
    has."""
    problems = [f"part: {dataset} is a record of its own (entity: record), not a part" for _ in [spec.part] if _]
    if spec.restricted_nik is not None:
        problems.append("restricted_nik: only the identity part of a person can name its NIK")
    problems += [
        f"fields.{name}: every record has {name}; give the field another name"
        for name in RESERVED
        if name in spec.fields
    ]
    problems += [
        f"fields.{name}: a NIK is personal data: add 'pseudonym: nik' so that only its pseudonym is published"
        for name, field in spec.fields.items()
        if field.nik and field.pseudonym is None
    ]
    return problems


def _field_problems(spec: MappingFile, schema: dict[str, Any], dataset: str) -> list[str]:
    """What the mapped fields, its key and its checks name that does not exist."""
    source_fields = {f["name"] for f in schema["fields"]}
    problems = []
    if spec.key not in spec.fields:
        problems.append(f"key: {spec.key} is not one of the mapped fields")
    earlier: set[str] = set()
    for name, field in spec.fields.items():
        for source in field.sources:
            if source not in source_fields and source not in ENVELOPE_FIELDS:
                problems.append(f"fields.{name}.from: {source} is not a field of {dataset}")
        if field.template is not None:
            problems += [
                f"fields.{name}.template: {p} is not a field of {dataset}"
                for p in _PLACEHOLDER.findall(field.template)
                if p not in source_fields
            ]
        for ref in (field.parent_of, field.when):
            if ref is not None and ref not in earlier:
                problems.append(f"fields.{name}: {ref} must be mapped before {name}")
        if field.codes is not None and field.codes not in spec.code_lists:
            problems.append(f"fields.{name}.codes: no code list {field.codes}")
        if field.timezone is not None and not _is_zone(field.timezone):
            problems.append(f"fields.{name}.timezone: unknown time zone {field.timezone}")
        if field.pattern is not None:
            try:
                re.compile(field.pattern)
            except re.error as exc:
                problems.append(f"fields.{name}.pattern: {exc}")
        earlier.add(name)
    if spec.timezone != "UTC" and not _is_zone(spec.timezone):
        problems.append(f"timezone: unknown time zone {spec.timezone}")
    for check in spec.checks:
        if check.nik_matches is not None:
            for ref in (check.nik_matches.birth_date, check.nik_matches.sex):
                if ref not in spec.fields:
                    problems.append(f"checks.nik_matches: {ref} is not mapped")
            if check.nik_matches.nik not in source_fields:
                problems.append(f"checks.nik_matches.nik: {check.nik_matches.nik} is not a field of {dataset}")
        else:
            problems += [
                f"checks.rule: {ref} is not mapped ({check.rule})" for ref in _sides(check) if ref not in spec.fields
            ]
    return problems


def _sides(check: Check) -> tuple[str, str]:
    left, _, right = check.comparison
    return left, right


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except Exception:
        return False
    return True


def _with_code_lists(spec: MappingFile, agency: str, dataset: str, root: Path) -> MappingFile:
    """A common mapping with the agency's own code lists (``common/<dataset>.codes.csv``) in place of its own."""
    own = code_lists_of(agency, dataset, root / COMMON)
    unknown = sorted(set(own) - set(spec.code_lists))
    if unknown:
        raise MappingError(f"{root / COMMON / dataset}.codes.csv: no code list {', '.join(unknown)} in the mapping")
    return spec.model_copy(update={"code_lists": spec.code_lists | own})


def discover_mappings(root: Path = AGENCIES_DIR) -> list[DatasetMapping]:
    """Every mapping file under ``root`` (schemas/agencies/), loaded and checked. A mapping in ``common/`` applies
    to every catalogue agency that publishes the dataset and has no mapping of its own for it."""
    own = [
        load_mapping(path.parent.name, path.name.removesuffix(".mapping.yaml"), root)
        for path in sorted(root.glob("*/*.mapping.yaml"))
        if path.parent.name != COMMON
    ]
    mapped = {(m.agency, m.dataset) for m in own}
    shared = [
        replace(common, agency=agency.code, spec=_with_code_lists(common.spec, agency.code, common.dataset, root))
        for path in sorted((root / COMMON).glob("*.mapping.yaml"))
        for common in [load_mapping(COMMON, path.name.removesuffix(".mapping.yaml"), root)]
        for agency in load_catalogue(root)
        if common.dataset in agency.datasets and (agency.code, common.dataset) not in mapped
    ]
    return own + shared
