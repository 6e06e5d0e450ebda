"""``satubus catalogue export``: the catalogue's open datasets, for an open-data portal.

Every dataset of every catalogue agency has Satu Data Indonesia metadata (``schemas/metadata.py``); this writes the
datasets classified ``publik`` in one of two formats:

- ``ckan``: ``{"organizations": [...], "packages": [...]}``, each item the body of CKAN's action API
  ``organization_create`` (one organization per producing agency, named by its catalogue code) and
  ``package_create`` (name ``<agency>-<dataset>``, the Satu Data fields as extras, CKAN's licence id, and resources
  for the live API, the unified topic and the dataset's Avro schema);
- ``dcat``: a DCAT-AP catalogue in JSON-LD (a ``dcat:Catalog`` published by the walidata, a ``dcat:Dataset`` per
  dataset with its publisher, contact point, periodicity and access rights from the EU vocabularies, licence,
  keywords, spatial coverage and distributions).

Terbatas and rahasia datasets never leave: the writers drop them whatever they are given, and the command says on
stderr how many it left out and why. The output is sorted and carries no time: the same metadata gives the same bytes,
so it can be diffed and kept under version control.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from satubus.schemas.envelope import AGENCIES_DIR
from satubus.schemas.metadata import COMMON, DatasetMetadata, MetadataError, catalogue_metadata
from satubus.schemas.topics import agency_topic, unified_topic, value_subject
from satubus.settings import Settings

# Where the datasets are published by default: the province's open-data portal. Dataset pages and IRIs are
# <catalogue url>/dataset/<name>, organizations <catalogue url>/organization/<code>, as CKAN (and its DCAT
# extension) makes them.
CATALOGUE_URL: Final = "https://data.jakarta.go.id"

# CKAN's own licence ids (ckan/model/license.py) and the licences' IRIs, by SPDX id.
CKAN_LICENCES: Final = {"CC-BY-4.0": "cc-by", "CC-BY-SA-4.0": "cc-by-sa", "CC0-1.0": "cc-zero", "ODbL-1.0": "odc-odbl"}
LICENCE_IRIS: Final = {
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "ODbL-1.0": "https://opendatacommons.org/licenses/odbl/1-0/",
}
# The EU Publications Office's frequency vocabulary, which DCAT-AP prescribes for dct:accrualPeriodicity.
FREQUENCY: Final = "http://publications.europa.eu/resource/authority/frequency/"
FREQUENCIES: Final = {
    "real-time": "CONT",
    "harian": "DAILY",
    "mingguan": "WEEKLY",
    "bulanan": "MONTHLY",
    "triwulanan": "QUARTERLY",
    "semesteran": "ANNUAL_2",
    "tahunan": "ANNUAL",
    "tidak-tentu": "IRREG",
}
PUBLIC_ACCESS: Final = "http://publications.europa.eu/resource/authority/access-right/PUBLIC"
INDONESIAN: Final = "http://publications.europa.eu/resource/authority/language/IND"
CONTEXT: Final = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}

# What one record of each unified entity is, in Bahasa Indonesia.
ENTITY_NAMES: Final = {"incident": "kejadian", "region": "kelurahan", "parcel": "persil", "person": "orang"}
# The live API's read of each unified entity (consumers/api.py): its path, and the scope its key needs, if any.
API_READS: Final = {
    "incident": ("/v1/incidents/{incident_id}", None),
    "region": ("/v1/regions/{kelurahan_code}", None),
    "parcel": ("/v1/parcels/{nop}", "read:person"),
    "person": ("/v1/persons/{person_id}", "read:person"),
}


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the exported datasets and their resources are."""

    catalogue_url: str  # the portal the datasets are published in
    api_url: str  # the live API, as its users reach it
    registry_url: str  # the schema registry's Confluent-compatible API (anonymous reads)
    kafka_bootstrap: str
    namespace: str = ""

    def topic(self, name: str) -> str:
        return f"{self.namespace}.{name}" if self.namespace else name

    def dataset_page(self, dataset: DatasetMetadata) -> str:
        return f"{self.catalogue_url.rstrip('/')}/dataset/{package_name(dataset)}"

    def organization_page(self, code: str) -> str:
        return f"{self.catalogue_url.rstrip('/')}/organization/{code}"


@dataclass(frozen=True, slots=True)
class Resource:
    name: str
    url: str
    format: str
    description: str


def package_name(dataset: DatasetMetadata) -> str:
    """The CKAN name of a dataset: lower-case letters, digits and ``-``, unique per agency and dataset."""
    return f"{dataset.agency.code}-{dataset.dataset}".replace("_", "-").lower()


def split(datasets: Iterable[DatasetMetadata]) -> tuple[list[DatasetMetadata], list[DatasetMetadata]]:
    """(the publik datasets, sorted by name; the others)."""
    ordered = sorted(datasets, key=package_name)
    return [d for d in ordered if d.public], [d for d in ordered if not d.public]


def unified_entity(dataset: DatasetMetadata, root: Path = AGENCIES_DIR) -> str | None:
    """The unified entity the dataset's mapping feeds (its own mapping, else the common one), or None when the bus
    does not normalize it yet."""
    for folder in (dataset.agency.code, COMMON):
        path = root / folder / f"{dataset.dataset}.mapping.yaml"
        if path.exists():
            entity = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("entity")
            return str(entity) if entity else None
    return None


def resources(dataset: DatasetMetadata, endpoints: Endpoints, root: Path = AGENCIES_DIR) -> list[Resource]:
    """The live API's read and the unified topic the dataset feeds, and the dataset's own Avro schema."""
    found = []
    entity = unified_entity(dataset, root)
    if entity is not None:
        record = ENTITY_NAMES.get(entity, entity)
        topic = endpoints.topic(unified_topic(entity))
        if entity in API_READS:
            path, scope = API_READS[entity]
            access = "tanpa kunci API" if scope is None else f"dengan kunci API ber-scope {scope}"
            found.append(
                Resource(
                    name=f"API langsung: {record}",
                    url=f"{endpoints.api_url.rstrip('/')}/docs",
                    format="JSON",
                    description=(
                        f"GET {path}: satu {record} dari tampilan terpadu, dibaca {access}. OpenAPI di alamat ini."
                    ),
                )
            )
        found.append(
            Resource(
                name=f"Topik Kafka {topic}",
                url=f"kafka://{endpoints.kafka_bootstrap}/{topic}",
                format="Avro",
                description=(
                    f"Setiap {record} terpadu (topik compacted, berkunci id), Avro dalam format Confluent; skema di "
                    f"registry, subjek {value_subject(topic)}. Dibaca dengan kredensial aplikasi hilir."
                ),
            )
        )
    subject = value_subject(endpoints.topic(agency_topic(dataset.agency.code, dataset.dataset)))
    found.append(
        Resource(
            name=f"Skema Avro {subject}",
            url=f"{endpoints.registry_url.rstrip('/')}/subjects/{subject}/versions/latest",
            format="JSON",
            description="Skema Avro catatan dataset ini beserta envelope perubahannya (registry, baca tanpa login).",
        )
    )
    return found


def ckan_document(
    datasets: Iterable[DatasetMetadata], endpoints: Endpoints, root: Path = AGENCIES_DIR
) -> dict[str, Any]:
    """The bodies of CKAN's ``organization_create`` and ``package_create`` for the publik datasets."""
    public, _ = split(datasets)
    producers = {d.produsen_data.code: d.produsen_data for d in public}
    organizations = [{"name": code, "title": producers[code].name} for code in sorted(producers)]
    return {"organizations": organizations, "packages": [_package(d, endpoints, root) for d in public]}


def _package(dataset: DatasetMetadata, endpoints: Endpoints, root: Path) -> dict[str, Any]:
    extras = {
        "produsen_data": dataset.produsen_data.name,
        "walidata": dataset.walidata.name,
        "periodicity": dataset.periodicity,
        "frequency": FREQUENCY + FREQUENCIES[dataset.periodicity],
        "classification": dataset.classification,
        "licence": dataset.licence,
        "reference_codes": "; ".join(f"{r.name} ({r.source}): {', '.join(r.fields)}" for r in dataset.reference_codes),
        "spatial_text": "; ".join(f"{p.code} {p.name}" for p in dataset.spatial),
    }
    if dataset.temporal is not None:
        extras["temporal_start"] = dataset.temporal.start.isoformat()
        if dataset.temporal.end is not None:
            extras["temporal_end"] = dataset.temporal.end.isoformat()
    return {
        "name": package_name(dataset),
        "title": dataset.title,
        "notes": dataset.description,
        "owner_org": dataset.produsen_data.code,
        "private": False,
        "license_id": CKAN_LICENCES[dataset.licence],
        "maintainer": dataset.contact.name,
        "maintainer_email": dataset.contact.email,
        "tags": [{"name": keyword} for keyword in sorted(dataset.keywords)],
        "extras": [{"key": key, "value": value} for key, value in sorted(extras.items()) if value],
        "resources": [
            {"name": r.name, "url": r.url, "format": r.format, "description": r.description}
            for r in resources(dataset, endpoints, root)
        ],
    }


def dcat_document(
    datasets: Iterable[DatasetMetadata], endpoints: Endpoints, root: Path = AGENCIES_DIR
) -> dict[str, Any]:
    """A DCAT-AP catalogue (JSON-LD) of the publik datasets, published by their walidata."""
    everything = list(datasets)
    public, _ = split(everything)
    walidata = {d.walidata.code: d.walidata for d in everything}
    if len(walidata) > 1:
        sources = sorted({str(d.source) for d in everything})
        raise MetadataError(
            f"the datasets name {len(walidata)} walidata ({', '.join(sorted(walidata))}), a catalogue has one: "
            f"check walidata in {', '.join(sources)}"
        )
    catalogue: dict[str, Any] = {
        "@context": CONTEXT,
        "@id": endpoints.catalogue_url,
        "@type": "dcat:Catalog",
        "dct:title": _indonesian("Satu Data Jakarta: dataset publik Pemerintah Provinsi DKI Jakarta"),
        "dct:description": _indonesian(
            "Dataset terbuka yang dialirkan perangkat daerah Pemerintah Provinsi DKI Jakarta melalui Satu Data Bus, "
            "dengan metadata Satu Data Indonesia (Perpres 39/2019)."
        ),
        "dct:language": {"@id": INDONESIAN},
        "foaf:homepage": {"@id": endpoints.catalogue_url},
        "dcat:dataset": [_dataset(d, endpoints, root) for d in public],
    }
    for agency in walidata.values():
        catalogue["dct:publisher"] = _agent(agency.code, agency.name, endpoints)
    return catalogue


def _dataset(dataset: DatasetMetadata, endpoints: Endpoints, root: Path) -> dict[str, Any]:
    iri = endpoints.dataset_page(dataset)
    licence = {"@id": LICENCE_IRIS[dataset.licence]}
    node: dict[str, Any] = {
        "@id": iri,
        "@type": "dcat:Dataset",
        "dct:identifier": package_name(dataset),
        "dct:title": _indonesian(dataset.title),
        "dct:description": _indonesian(dataset.description),
        "dct:publisher": _agent(dataset.produsen_data.code, dataset.produsen_data.name, endpoints),
        "dcat:contactPoint": {
            "@type": "vcard:Organization",
            "vcard:fn": dataset.contact.name,
            "vcard:hasEmail": {"@id": f"mailto:{dataset.contact.email}"},
        },
        "dct:accrualPeriodicity": {"@id": FREQUENCY + FREQUENCIES[dataset.periodicity]},
        "dct:accessRights": {"@id": PUBLIC_ACCESS},
        "dct:license": licence,
        "dct:language": {"@id": INDONESIAN},
        "dcat:keyword": [_indonesian(keyword) for keyword in sorted(dataset.keywords)],
        "dcat:landingPage": {"@id": iri},
        "dct:spatial": [
            {"@type": "dct:Location", "dct:identifier": p.code, "skos:prefLabel": _indonesian(p.name)}
            for p in dataset.spatial
        ],
        "dct:conformsTo": [
            {"@type": "dct:Standard", "dct:title": _indonesian(r.name), "dct:description": _indonesian(r.source)}
            for r in sorted(dataset.reference_codes, key=lambda r: r.name)
        ],
        "dcat:distribution": [
            {
                "@id": f"{iri}#{n}",
                "@type": "dcat:Distribution",
                "dct:title": _indonesian(r.name),
                "dct:description": _indonesian(r.description),
                "dcat:accessURL": {"@id": r.url},
                "dct:format": r.format,
                "dct:license": licence,
            }
            for n, r in enumerate(resources(dataset, endpoints, root), start=1)
        ],
    }
    if dataset.temporal is not None:
        period: dict[str, Any] = {"@type": "dct:PeriodOfTime", "dcat:startDate": _date(dataset.temporal.start)}
        if dataset.temporal.end is not None:
            period["dcat:endDate"] = _date(dataset.temporal.end)
        node["dct:temporal"] = period
    return node


def _agent(code: str, name: str, endpoints: Endpoints) -> dict[str, Any]:
    return {
        "@id": endpoints.organization_page(code),
        "@type": "foaf:Agent",
        "dct:identifier": code,
        "foaf:name": _indonesian(name),
    }


def _indonesian(text: str) -> dict[str, str]:
    return {"@language": "id", "@value": text}


def _date(day: dt.date) -> dict[str, str]:
    return {"@type": "xsd:date", "@value": day.isoformat()}


def left_out_summary(datasets: Sequence[DatasetMetadata]) -> str:
    """Which datasets were not exported and why, in one line: counts by classification, common datasets counted."""
    if not datasets:
        return "left out no dataset: every one is publik"
    by_class = Counter(d.classification for d in datasets)
    parts = []
    for classification in sorted(by_class):
        own = sorted(
            f"{d.agency.code}/{d.dataset}" for d in datasets if d.classification == classification and not d.common
        )
        shared = Counter(d.dataset for d in datasets if d.classification == classification and d.common)
        names = own + [f"{name} of {n} agencies" for name, n in sorted(shared.items())]
        parts.append(f"{by_class[classification]} {classification} ({', '.join(names)})")
    return f"left out {len(datasets)} dataset(s) that are not publik, as only publik data is open: " + "; ".join(parts)


WRITERS: Final = {"ckan": ckan_document, "dcat": dcat_document}


def main(args: argparse.Namespace, settings: Settings) -> int:
    """``satubus catalogue export --format ckan|dcat [--output FILE]``: the document on stdout or into FILE; what was
    exported and what was left out on stderr."""
    datasets = list(catalogue_metadata())
    endpoints = Endpoints(
        catalogue_url=args.catalogue_url or CATALOGUE_URL,
        api_url=args.api_url or f"http://{settings.api_host}:{settings.api_port}",
        registry_url=settings.registry_url,
        kafka_bootstrap=settings.kafka_bootstrap,
        namespace=settings.namespace,
    )
    document = WRITERS[args.format](datasets, endpoints)
    text = json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    public, others = split(datasets)
    where = "" if args.output is None else f" into {args.output}"
    print(f"exported {len(public)} publik dataset(s) of {len(datasets)} as {args.format}{where}", file=sys.stderr)
    print(left_out_summary(others), file=sys.stderr)
    return 0
