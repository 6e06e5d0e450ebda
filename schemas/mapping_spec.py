"""The format of a mapping file, ``schemas/agencies/<agency>/<dataset>.mapping.yaml``: what an agency's record
becomes on the bus. streams/mapping.py applies it; the topic contracts read it to know the datasets that become
records of their own (``entity: record``). The vocabulary of a field is in streams/mapping.py's docstring.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from satubus.errors import SatuBusError

ENTITIES = ("person", "parcel", "region", "incident", "finding")
RECORD = "record"  # the agency's dataset as a record of its own: unified.<agency>.<dataset>.v1
DEFAULT_TIMEZONE = "Asia/Jakarta"  # of a time written without an offset, unless the mapping says otherwise

# A rule between two mapped fields: "arrived_at >= departed_at".
COMPARISON = re.compile(r"^\s*(\w+)\s*(<=|>=|<|>|==|!=)\s*(\w+)\s*$")
AGGREGATE_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")  # part of a view name: datasets.<agency>__<dataset>__<name>


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
    timezone: str | None = None  # of a local time; the mapping's timezone when not given
    not_future: bool = False
    region: Literal["kelurahan"] | None = None
    region_by: list[Literal["code", "name", "bps"]] = ["code", "name"]  # how the agency writes places, tried in order
    pseudonym: Literal["nik", "kk"] | None = None
    pad: int | None = None  # left-pad digit strings with zeros to this width ("3" -> "003")
    prefix: str | None = None  # put before the final value (e.g. "bpbd:" to make ids unique across agencies)
    # Value rules: a value outside them rejects the record, naming the field and the rule.
    min: float | None = None
    max: float | None = None
    one_of: list[Any] | None = None
    min_length: int | None = None
    max_length: int | None = None
    doc: str | None = None  # what the field means, for a record's schema (entity: record)

    @model_validator(mode="after")
    def one_source(self) -> FieldSpec:
        given = [n for n in ("source", "template", "parent_of") if getattr(self, n) is not None]
        if len(given) + (self.value is not None) != 1:
            raise ValueError("give exactly one of from, value, template, parent_of")
        if self.parent_of is not None and self.level is None:
            raise ValueError("parent_of needs level: kecamatan or kota")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
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
    """A rule over a whole record: the NIK agrees with the birth date and sex, or a comparison of two mapped fields
    (``rule: arrived_at >= departed_at``; it holds where either is empty)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nik_matches: NikCheck | None = None
    rule: str | None = None

    @model_validator(mode="after")
    def one_check(self) -> Check:
        if (self.nik_matches is None) == (self.rule is None):
            raise ValueError("give exactly one of nik_matches, rule")
        if self.rule is not None and not COMPARISON.match(self.rule):
            raise ValueError(f"rule {self.rule!r} is not '<field> <op> <field>' with op one of <, <=, >, >=, ==, !=")
        return self

    @property
    def comparison(self) -> tuple[str, str, str]:
        """The rule's left field, operator and right field."""
        found = COMPARISON.match(self.rule or "")
        if found is None:
            raise ValueError("not a rule")
        left, op, right = found.groups()
        return left, op, right


class Aggregate(BaseModel):
    """Counts (and sums of numeric fields) of a dataset's records per kelurahan and per day or month of one of its
    times, read in the mapping's time zone (``entity: record`` only; consumers/dataset_tables.py keeps it as a view
    of the dataset's table, so it is always what the records say, corrections and deletions included)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time: str  # a date or time field of the record
    per: Literal["day", "month"] = "day"
    sum: tuple[str, ...] = ()  # numeric fields of the record


class MappingFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    entity: Literal["person", "parcel", "region", "incident", "finding", "record"]
    part: str | None = None  # a part of a joined entity (schemas/parts.py) rather than the whole entity
    key: str
    timezone: str = DEFAULT_TIMEZONE  # the agency's: times it writes without an offset are local times there
    doc: str | None = None  # what a record of the dataset is (entity: record)
    code_lists: dict[str, dict[str, Any]] = {}
    fields: dict[str, FieldSpec]
    checks: list[Check] = []
    # The agency field with the clear NIK of the record's person (the civil registry's identity only): it goes to
    # restricted.person_nik.v1, keyed by person_id, and nowhere else.
    restricted_nik: str | None = None
    aggregates: dict[str, Aggregate] = {}  # by name: records per kelurahan and per day or month

    @model_validator(mode="after")
    def aggregates_of_records(self) -> MappingFile:
        if self.aggregates and self.entity != RECORD:
            raise ValueError("aggregates are kept for a dataset that is a record of its own (entity: record)")
        if self.aggregates and "kelurahan_code" not in self.fields:
            raise ValueError("aggregates are per kelurahan: the record needs a kelurahan_code field")
        for name, aggregate in self.aggregates.items():
            if not AGGREGATE_NAME.fullmatch(name):
                raise ValueError(f"aggregate {name!r}: a name is lower-case letters, digits and _")
            for field in (aggregate.time, *aggregate.sum):
                if field not in self.fields:
                    raise ValueError(f"aggregate {name}: the record has no field {field!r}")
        return self


def mapping_path(agency: str, dataset: str, root: Path) -> Path:
    return root / agency / f"{dataset}.mapping.yaml"


def read_mapping_file(path: Path) -> MappingFile:
    """The mapping file at ``path``, its format checked (not yet against the schemas it joins)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return MappingFile.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise MappingError(f"{path}: cannot read: {exc}") from exc
    except ValidationError as exc:
        problems = [
            f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False)
        ]
        raise MappingError(f"{path}:\n  " + "\n  ".join(problems)) from None
