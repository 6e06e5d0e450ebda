"""Satu Data Indonesia metadata of every agency dataset: ``agencies/<agency>/<dataset>.metadata.yaml``.

Perpres 39/2019 (Satu Data Indonesia) asks every dataset to come with metadata, so that whoever finds it knows what it
is, who produces it, how often it changes, who may use it and under which codes. Every dataset with a schema
(``<dataset>.avsc``) has a metadata file beside it. A dataset of ``agencies/common/`` has one there too; it applies to
each catalogue agency publishing the dataset, whose code and name replace ``{agency}`` and ``{agency_name}`` in its
texts. The fields:

- ``title``, ``description``: in Bahasa Indonesia; the description says what a record is and whether the dataset
  holds personal data;
- ``produsen_data``: the catalogue code of the agency producing the data. Default: the agency of the folder; a common
  dataset's is the agency publishing it, so its file leaves the field out;
- ``walidata``: the catalogue code of the walidata, the unit that checks and publishes the province's data: for DKI
  Jakarta the Dinas Komunikasi, Informatika dan Statistik (``diskominfotik``);
- ``periodicity``: how often the dataset is updated, one of ``PERIODICITIES``;
- ``classification``: ``publik`` (open data), ``terbatas`` (shared between agencies for a stated purpose) or
  ``rahasia`` (the population register, and specific personal data of UU 27/2022 Pasal 4: health, children). A
  dataset whose schema has fields of personal data (NIK, names, addresses, dates of birth, health; see
  ``personal_data.py``) is at least ``terbatas``; only ``publik`` datasets leave the bus's catalogue;
- ``licence``: for a ``publik`` dataset an open licence (SPDX id, one of ``OPEN_LICENCES``); for the others
  ``tidak-terbuka``: not open data, shared only under a data-sharing arrangement (berbagi pakai data);
- ``reference_codes``: the code lists the dataset uses, each with its ``name``, its ``source`` (the regulation or the
  agency that keeps it) and the schema ``fields`` that hold its codes;
- ``contact``: ``name`` and ``email`` of whoever answers questions about the dataset;
- ``keywords``: for search; letters, digits, spaces, ``-``, ``_`` and ``.`` only (what CKAN accepts as a tag);
- ``spatial``: the area covered, as Kemendagri codes: ``"31"`` (the province) or a code of ``reference/regions-31.csv``;
- ``temporal``: optional, the period covered (``start`` and ``end`` dates; no ``end`` while it goes on).

``load_metadata`` reads and checks one dataset's file, ``catalogue_metadata`` every dataset of every catalogue agency.
A problem is a ``MetadataError`` naming the file and the field.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from satubus.schemas.catalogue import CATALOGUE_FILE, Agency, load_catalogue
from satubus.schemas.envelope import AGENCIES_DIR, agency_record_schema
from satubus.schemas.errors import SchemaError
from satubus.schemas.personal_data import masker_of
from satubus.schemas.regions import REFERENCE_FILE, ReferenceRegion, load_regions

COMMON: Final = "common"
SUFFIX: Final = ".metadata.yaml"
PROVINCE_CODE: Final = "31"
PROVINCE_NAME: Final = "Provinsi DKI Jakarta"
EXAMPLE: Final = "schemas/agencies/bpbd/kejadian.metadata.yaml"

Periodicity = Literal[
    "real-time", "harian", "mingguan", "bulanan", "triwulanan", "semesteran", "tahunan", "tidak-tentu"
]
Classification = Literal["publik", "terbatas", "rahasia"]
NOT_OPEN: Final = "tidak-terbuka"
Licence = Literal["CC-BY-4.0", "CC-BY-SA-4.0", "CC0-1.0", "ODbL-1.0", "tidak-terbuka"]

PERIODICITIES: tuple[str, ...] = get_args(Periodicity)
CLASSIFICATIONS: tuple[str, ...] = get_args(Classification)
OPEN_LICENCES: tuple[str, ...] = tuple(licence for licence in get_args(Licence) if licence != NOT_OPEN)

PLACEHOLDERS: Final = ("agency", "agency_name")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Keyword = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=100, pattern=r"^[\w .-]+$")]
Email = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")]


class MetadataError(SchemaError):
    """A dataset's metadata file is missing or wrong; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Contact(_Strict):
    name: Text
    email: Email


class ReferenceCode(_Strict):
    name: Text
    source: Text
    fields: tuple[Text, ...] = Field(min_length=1)


class Temporal(_Strict):
    start: dt.date
    end: dt.date | None = None

    @model_validator(mode="after")
    def _in_order(self) -> Temporal:
        if self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class MetadataFile(_Strict):
    """One ``<dataset>.metadata.yaml``, as written (placeholders already replaced)."""

    title: Text
    description: Text
    produsen_data: str | None = None
    walidata: Text
    periodicity: Periodicity
    classification: Classification
    licence: Licence  # after classification: its check reads it
    reference_codes: tuple[ReferenceCode, ...]
    contact: Contact
    keywords: tuple[Keyword, ...] = Field(min_length=1)
    spatial: tuple[str, ...] = ()
    temporal: Temporal | None = None

    @field_validator("licence")
    @classmethod
    def _licence_fits_classification(cls, licence: str, info: ValidationInfo) -> str:
        classification = info.data.get("classification")
        if classification == "publik" and licence == NOT_OPEN:
            raise ValueError(f"a publik dataset is open data: give an open licence, one of {', '.join(OPEN_LICENCES)}")
        if classification in ("terbatas", "rahasia") and licence != NOT_OPEN:
            raise ValueError(f"a {classification} dataset is not open data: write {NOT_OPEN}, not {licence}")
        return licence

    @field_validator("keywords")
    @classmethod
    def _distinct(cls, keywords: tuple[str, ...]) -> tuple[str, ...]:
        seen: set[str] = set()
        for keyword in keywords:
            if keyword.casefold() in seen:
                raise ValueError(f"{keyword!r} is given twice")
            seen.add(keyword.casefold())
        return keywords


@dataclass(frozen=True, slots=True)
class Place:
    """An area of ``spatial``: its Kemendagri code and name."""

    code: str
    name: str


@dataclass(frozen=True, slots=True)
class DatasetMetadata:
    """The metadata of one dataset as one agency publishes it (a common dataset's, resolved for that agency)."""

    agency: Agency  # the publishing agency: the topic is agency.<agency.code>.<dataset>.v1
    dataset: str
    source: Path  # the metadata file
    title: str
    description: str
    produsen_data: Agency
    walidata: Agency
    periodicity: Periodicity
    classification: Classification
    licence: Licence
    reference_codes: tuple[ReferenceCode, ...]
    contact: Contact
    keywords: tuple[str, ...]
    spatial: tuple[Place, ...]
    temporal: Temporal | None

    @property
    def public(self) -> bool:
        return self.classification == "publik"

    @property
    def common(self) -> bool:
        """Whether the dataset is one of ``agencies/common/``, published by many agencies in one shape."""
        return self.source.parent.name == COMMON


def metadata_path(agency: str, dataset: str, root: Path = AGENCIES_DIR) -> Path:
    """Where the agency's metadata of ``dataset`` is: beside the schema it publishes under (its own, else common)."""
    folder = agency if (root / agency / f"{dataset}.avsc").exists() else COMMON
    return root / folder / f"{dataset}{SUFFIX}"


def load_metadata(agency: str, dataset: str, root: Path = AGENCIES_DIR) -> DatasetMetadata:
    """The metadata of ``dataset`` as the catalogue agency ``agency`` publishes it, read from ``<root>/<agency>/`` or,
    for a common dataset, ``<root>/common/``, and checked against the catalogue, the region reference and the
    dataset's schema."""
    if agency == COMMON:
        raise MetadataError(
            f"{root / COMMON / (dataset + SUFFIX)}: a common dataset's metadata is loaded for an agency that "
            f"publishes it: load_metadata(<agency code>, {dataset!r})"
        )
    agencies: dict[str, Agency] = {a.code: a for a in load_catalogue(root)}
    if agency not in agencies:
        raise MetadataError(f"{agency!r} is not an agency of the catalogue ({CATALOGUE_FILE})")
    publisher = agencies[agency]
    path = metadata_path(agency, dataset, root)
    schema_path = path.with_name(f"{dataset}.avsc")
    if not schema_path.exists():
        raise MetadataError(
            f"{agency}/{dataset}: no schema, neither {root / agency / (dataset + '.avsc')} nor {schema_path}"
        )
    if not path.exists():
        raise MetadataError(
            f"{path}: missing. Every dataset with a schema ({schema_path.name}) needs its Satu Data Indonesia "
            "metadata beside it: a YAML file with title and description (in Bahasa Indonesia), walidata "
            f"(diskominfotik), periodicity ({', '.join(PERIODICITIES)}), classification "
            f"({', '.join(CLASSIFICATIONS)}), licence (an open one for publik, else {NOT_OPEN}), reference_codes "
            "(name, source, fields), contact (name, email), keywords, and spatial and temporal where they apply. "
            f"See schemas/metadata.py and {EXAMPLE}."
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MetadataError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(raw, dict):
        raise MetadataError(f"{path}: expected a mapping of fields (title, description, ...), not {type(raw).__name__}")
    problems: list[str] = []
    filled = _fill(raw, {"agency": publisher.code, "agency_name": publisher.name}, "", problems)
    if problems:
        raise MetadataError(f"{path}:\n  " + "\n  ".join(problems))
    try:
        spec = MetadataFile.model_validate(filled)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(map(str, e['loc'])) or '(file)'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False)
        ]
        raise MetadataError(f"{path}:\n  " + "\n  ".join(problems)) from None
    record_schema = agency_record_schema(agency, dataset, root)
    common = path.parent.name == COMMON
    problems = _problems(spec, record_schema, common, agencies, f"{path.parent.name}/{schema_path.name}")
    if problems:
        raise MetadataError(f"{path}:\n  " + "\n  ".join(problems))
    regions = load_regions()
    return DatasetMetadata(
        agency=publisher,
        dataset=dataset,
        source=path,
        title=spec.title,
        description=spec.description,
        produsen_data=publisher if spec.produsen_data is None else agencies[spec.produsen_data],
        walidata=agencies[spec.walidata],
        periodicity=spec.periodicity,
        classification=spec.classification,
        licence=spec.licence,
        reference_codes=spec.reference_codes,
        contact=spec.contact,
        keywords=spec.keywords,
        spatial=tuple(_place(code, regions.get(code)) for code in spec.spatial),
        temporal=spec.temporal,
    )


def catalogue_metadata(root: Path = AGENCIES_DIR) -> Iterator[DatasetMetadata]:
    """The metadata of every dataset of every catalogue agency, in the catalogue's order; a common dataset once for
    each agency that publishes it."""
    for entry in load_catalogue(root):
        for dataset in entry.datasets:
            yield load_metadata(entry.code, dataset, root)


def personal_fields(record_schema: dict[str, Any]) -> list[str]:
    """The fields of an agency's record schema that hold personal data: by their name (personal_data.py), or by
    their doc saying so."""
    return [
        field["name"]
        for field in record_schema["fields"]
        if masker_of(field["name"]) is not None or "personal data" in str(field.get("doc", "")).lower()
    ]


def _problems(
    spec: MetadataFile, record_schema: dict[str, Any], common: bool, agencies: dict[str, Agency], schema: str
) -> list[str]:
    problems = []
    if spec.produsen_data is not None:
        if common:
            problems.append(
                "produsen_data: a common dataset is produced by each agency that publishes it; leave produsen_data out"
            )
        elif spec.produsen_data not in agencies:
            problems.append(f"produsen_data: {spec.produsen_data!r} is not an agency code of the catalogue")
    if spec.walidata not in agencies:
        problems.append(f"walidata: {spec.walidata!r} is not an agency code of the catalogue")
    fields = {field["name"] for field in record_schema["fields"]}
    for n, reference in enumerate(spec.reference_codes):
        problems += [
            f"reference_codes.{n}.fields: {name} is not a field of {schema}"
            for name in reference.fields
            if name not in fields
        ]
    personal = personal_fields(record_schema)
    if spec.classification == "publik" and personal:
        problems.append(
            f"classification: publik, but {', '.join(personal)} of {schema} hold personal data (UU 27/2022): "
            "the dataset is terbatas at least"
        )
    regions = load_regions()
    problems += [
        f"spatial.{n}: {code!r} is not a Kemendagri code of DKI Jakarta: {PROVINCE_CODE}, or a code of {REFERENCE_FILE}"
        for n, code in enumerate(spec.spatial)
        if code != PROVINCE_CODE and regions.get(code) is None
    ]
    return problems


def _place(code: str, region: ReferenceRegion | None) -> Place:
    return Place(code, PROVINCE_NAME) if region is None else Place(region.code, region.name)


def _fill(value: Any, names: dict[str, str], where: str, problems: list[str]) -> Any:
    """``value`` (parsed YAML) with ``{agency}`` and ``{agency_name}`` replaced in every text; anything else between
    braces is a problem, named by where it is."""
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            if match.group(1) in names:
                return names[match.group(1)]
            known = ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
            problems.append(f"{where or '(file)'}: unknown placeholder {match.group(0)} (known: {known})")
            return match.group(0)

        return _PLACEHOLDER.sub(replace, value)
    if isinstance(value, list):
        return [_fill(item, names, f"{where}.{n}", problems) for n, item in enumerate(value)]
    if isinstance(value, dict):
        return {
            key: _fill(item, names, f"{where}.{key}" if where else str(key), problems) for key, item in value.items()
        }
    return value
