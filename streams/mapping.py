"""Declarative normalization: ``schemas/agencies/<agency>/<dataset>.mapping.yaml`` says how an agency's record becomes
a canonical one. This module loads and checks such a file and applies it; it is pure (no Kafka).

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
import re
import string
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from satubus.errors import SatuBusError
from satubus.schemas.catalogue import load_catalogue
from satubus.schemas.code_lists import code_lists_of
from satubus.schemas.envelope import AGENCIES_DIR, agency_record_schema, envelope_schema
from satubus.schemas.models import UNIFIED_MODELS
from satubus.schemas.nik import InvalidNik, parse_nik
from satubus.schemas.parts import PART_MODELS
from satubus.schemas.pseudonym import pseudonymize
from satubus.schemas.regions import ReferenceRegion, Regions
from satubus.streams.errors import Rejected

CLOCK_SKEW = dt.timedelta(minutes=5)
COMMON = "common"  # schemas/agencies/common/: datasets every agency publishes in the same shape
ENVELOPE_FIELDS = ("$version", "$occurred_at", "$event_id", "$key")
_PLACEHOLDER = re.compile(r"{(\w+)")


class MappingError(SatuBusError):
    """A mapping file that cannot be used; the message names the file and every problem."""


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str | list[str] | None = Field(None, alias="from")
    value: Any = None
    template: str | None = None
    parent_of: str | None = None
    level: Literal["kecamatan", "kota"] | None = None
    optional: bool = False
    when: str | None = None
    digits: bool = False
    case: Literal["upper", "lower", "title"] | None = None
    nik: bool = False
    pattern: str | None = None
    codes: str | None = None
    date: str | None = None
    datetime: str | None = None
    timezone: str = "UTC"
    not_future: bool = False
    region: Literal["kelurahan"] | None = None
    region_by: list[Literal["code", "name", "bps"]] = ["code", "name"]  # how the agency writes places, tried in order
    pseudonym: Literal["nik", "kk"] | None = None
    pad: int | None = None  # left-pad digit strings with zeros to this width ("3" -> "003")
    prefix: str | None = None  # put before the final value (e.g. "bpbd:" to make ids unique across agencies)

    @model_validator(mode="after")
    def one_source(self) -> FieldSpec:
        given = [n for n in ("source", "template", "parent_of") if getattr(self, n) is not None]
        if len(given) + (self.value is not None) != 1:
            raise ValueError("give exactly one of from, value, template, parent_of")
        if self.parent_of is not None and self.level is None:
            raise ValueError("parent_of needs level: kecamatan or kota")
        return self

    @property
    def sources(self) -> list[str]:
        return [self.source] if isinstance(self.source, str) else list(self.source or [])


class NikCheck(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    nik: str
    birth_date: str
    sex: str


class Check(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    nik_matches: NikCheck


class MappingFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    entity: Literal["person", "parcel", "region", "incident", "finding"]
    part: str | None = None  # a part of a joined entity (schemas/parts.py) rather than the whole entity
    key: str
    code_lists: dict[str, dict[str, Any]] = {}
    fields: dict[str, FieldSpec]
    checks: list[Check] = []
    # The agency field with the clear NIK of the record's person (the civil registry's identity only): it goes to
    # restricted.person_nik.v1, keyed by person_id, and nowhere else.
    restricted_nik: str | None = None


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

    @cached_property
    def model(self) -> type[BaseModel]:
        return target_model(self.spec)

    def apply(
        self, event: MappingType[str, Any], *, regions: Regions, pseudonym_key: bytes, now: dt.datetime
    ) -> BaseModel | Deletion:
        if event["version"] < 1:
            raise Rejected(
                "version", "invalid_version", f"version {event['version']} is below 1: it counts changes from 1"
            )
        occurred_at: dt.datetime = event["occurred_at"]
        if occurred_at > now + CLOCK_SKEW:
            raise Rejected("occurred_at", "future_event", f"event time {occurred_at.isoformat()} is in the future")
        context = _Context(self, event, regions, pseudonym_key, now)
        if event["op"] == "d" or event["after"] is None:
            if self.spec.part is not None:
                return Deletion(self.spec.entity, None)
            key_spec = self.spec.fields[self.spec.key]
            return Deletion(self.spec.entity, context.transform("key", key_spec, event["key"]))
        out: dict[str, Any] = {}
        for name, field in self.spec.fields.items():
            if field.when is not None and not out.get(field.when):
                out[name] = None
                continue
            out[name] = context.field(name, field, out)
        for check in self.spec.checks:
            _check_nik(check.nik_matches, event["after"], out, now.date())
        try:
            return self.model.model_validate(out)
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(map(str, first["loc"]))
            raise Rejected(where, "invalid_value", first["msg"]) from None


@dataclass
class _Context:
    mapping: DatasetMapping
    event: MappingType[str, Any]
    regions: Regions
    key: bytes
    now: dt.datetime

    def field(self, name: str, spec: FieldSpec, out: dict[str, Any]) -> Any:
        if spec.value is not None:
            return spec.value
        if spec.parent_of is not None:
            code = out[spec.parent_of]
            return None if code is None else ".".join(code.split(".")[: 3 if spec.level == "kecamatan" else 2])
        if spec.template is not None:
            record = self.event["after"]
            values = {}
            for placeholder in _PLACEHOLDER.findall(spec.template):
                raw = record.get(placeholder)
                if raw is None or (isinstance(raw, str) and not raw.strip()):
                    raise Rejected(placeholder, "missing_value", f"{placeholder} is empty")
                values[placeholder] = " ".join(raw.split()) if isinstance(raw, str) else raw
            return spec.template.format(**values)
        candidates = [self._read(source) for source in spec.sources]
        present = [c for c in candidates if c is not None and not (isinstance(c, str) and not c.strip())]
        if not present:
            if spec.optional:
                return None
            raise Rejected(spec.sources[0], "missing_value", f"{' or '.join(spec.sources)} is empty")
        label = spec.sources[0]  # errors name the agency's field: that is what the agency must fix
        if spec.region is not None:
            return self._region(label, spec, present)
        return self.transform(label, spec, present[0])

    def _read(self, source: str) -> Any:
        if source.startswith("$"):
            value = self.event[source[1:]]
            return str(value) if source == "$event_id" else value
        return self.event["after"].get(source)

    def transform(self, name: str, spec: FieldSpec, value: Any) -> Any:
        """``value`` through the spec's steps (each element of a list alike); ``name`` labels errors."""
        if isinstance(value, list):
            return [self.transform(name, spec, item) for item in value]
        if isinstance(value, str):
            value = " ".join(value.split())
            if spec.digits:
                value = re.sub(r"\D", "", value)
            if spec.case == "upper":
                value = value.upper()
            elif spec.case == "lower":
                value = value.lower()
            elif spec.case == "title":
                value = string.capwords(value)
            if spec.pad is not None and value.isdigit():
                value = value.zfill(spec.pad)
        if spec.nik:
            try:
                parse_nik(value, today=self.now.date())
            except InvalidNik as exc:
                raise Rejected(name, "invalid_nik", str(exc)) from None
        if spec.pattern is not None and not re.fullmatch(spec.pattern, str(value)):
            raise Rejected(name, "invalid_format", f"does not match {spec.pattern}")
        if spec.codes is not None:
            codes = self.mapping.spec.code_lists[spec.codes]
            code = str(value).lower() if isinstance(value, bool) else str(value)  # YAML keys: true -> "true"
            if code not in codes:
                raise Rejected(name, "unknown_code", f"{code[:40]!r} is not in code list {spec.codes}")
            value = codes[code]
        if spec.date is not None:
            value = _parse_date(name, value, spec.date)
        if spec.datetime is not None:
            value = _parse_datetime(name, value, spec.datetime, spec.timezone)
        if spec.not_future and value is not None:
            instant = value if isinstance(value, dt.datetime) else None
            if (instant and instant > self.now + CLOCK_SKEW) or (instant is None and value > self.now.date()):
                raise Rejected(name, "future_date", "lies in the future")
        if spec.pseudonym is not None:
            value = pseudonymize(self.key, spec.pseudonym, str(value))
        if spec.prefix is not None:
            value = f"{spec.prefix}{value}"
        return value

    def _region(self, name: str, spec: FieldSpec, values: list[Any]) -> str:
        """A BPS code is read as one only where the mapping says the agency writes BPS codes: the same digits
        name different places in the two systems."""
        lookups = {"code": self.regions.kelurahan, "name": self.regions.kelurahan_named, "bps": self._bps_kelurahan}
        for value in values:
            text = " ".join(str(value).split())
            for method in spec.region_by:
                region = lookups[method](text)
                if region is not None:
                    return region.code
        shown = " / ".join(repr(str(v)[:40]) for v in values)
        raise Rejected(name, "unknown_region", f"{shown} is not a kelurahan of DKI Jakarta", str(values[0])[:40])

    def _bps_kelurahan(self, code: str) -> ReferenceRegion | None:
        region = self.regions.from_bps(code)
        return region if region is not None and region.level in ("kelurahan", "desa") else None


def _parse_date(name: str, value: Any, fmt: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.datetime.strptime(str(value), fmt).date()
    except ValueError:
        raise Rejected(name, "invalid_date", f"{str(value)[:40]!r} is not a date like {fmt}") from None


def _parse_datetime(name: str, value: Any, fmt: str, zone: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        try:
            parsed = dt.datetime.strptime(str(value), fmt)
        except ValueError:
            raise Rejected(name, "invalid_date", f"{str(value)[:40]!r} is not a time like {fmt}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(zone))
    return parsed.astimezone(dt.UTC)


def _check_nik(check: NikCheck, record: MappingType[str, Any], out: dict[str, Any], today: dt.date) -> None:
    nik = re.sub(r"\D", "", str(record.get(check.nik) or ""))
    try:
        info = parse_nik(nik, today=today)
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
    path = root / agency / f"{dataset}.mapping.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        spec = MappingFile.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise MappingError(f"{path}: cannot read: {exc}") from exc
    except ValidationError as exc:
        problems = [
            f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False)
        ]
        raise MappingError(f"{path}:\n  " + "\n  ".join(problems)) from None
    record_schema = agency_record_schema(agency, dataset, root)
    problems = _problems(spec, record_schema, f"{agency}/{dataset}")
    if problems:
        raise MappingError(f"{path}:\n  " + "\n  ".join(problems))
    return DatasetMapping(agency, dataset, spec, envelope_schema(record_schema))


def target_model(spec: MappingFile) -> type[BaseModel]:
    return UNIFIED_MODELS[spec.entity] if spec.part is None else PART_MODELS[(spec.entity, spec.part)]


def _problems(spec: MappingFile, schema: dict[str, Any], dataset: str) -> list[str]:
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
    if spec.key not in spec.fields:
        problems.append(f"key: {spec.key} is not one of the mapped fields")
    if spec.restricted_nik is not None:
        if (spec.entity, spec.part) != ("person", "identity"):
            problems.append("restricted_nik: only the identity part of a person can name its NIK")
        if spec.restricted_nik not in source_fields:
            problems.append(f"restricted_nik: {spec.restricted_nik} is not a field of {dataset}")
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
        if field.timezone != "UTC":
            try:
                ZoneInfo(field.timezone)
            except Exception:
                problems.append(f"fields.{name}.timezone: unknown time zone {field.timezone}")
        if field.pattern is not None:
            try:
                re.compile(field.pattern)
            except re.error as exc:
                problems.append(f"fields.{name}.pattern: {exc}")
        earlier.add(name)
    for check in spec.checks:
        for ref in (check.nik_matches.birth_date, check.nik_matches.sex):
            if ref not in spec.fields:
                problems.append(f"checks.nik_matches: {ref} is not mapped")
        if check.nik_matches.nik not in source_fields:
            problems.append(f"checks.nik_matches.nik: {check.nik_matches.nik} is not a field of {dataset}")
    return problems


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
        for agency in load_catalogue()
        if common.dataset in agency.datasets and (agency.code, common.dataset) not in mapped
    ]
    return own + shared
