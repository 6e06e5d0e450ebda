"""``satubus catalogue export`` (satubus/catalogue_export.py): only publik datasets leave, in the shapes CKAN's
``package_create`` and DCAT-AP expect, the same bytes for the same metadata; what is left out is said on stderr."""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from satubus import catalogue_export
from satubus.catalogue_export import (
    API_READS,
    CKAN_LICENCES,
    CONTEXT,
    FREQUENCIES,
    LICENCE_IRIS,
    Endpoints,
    ckan_document,
    dcat_document,
    left_out_summary,
    package_name,
)
from satubus.cli import Lazy, build_parser
from satubus.schemas.catalogue import load_catalogue
from satubus.schemas.metadata import (
    NOT_OPEN,
    OPEN_LICENCES,
    PERIODICITIES,
    DatasetMetadata,
    MetadataError,
    catalogue_metadata,
)
from satubus.settings import Settings

ENDPOINTS = Endpoints(
    catalogue_url="https://portal.example.go.id",
    api_url="https://api.example.go.id/",
    registry_url="https://registry.example.go.id/apis/ccompat/v7",
    kafka_bootstrap="kafka.example.go.id:9093",
)
# CKAN's defaults (ckan/model/license.py) and its validators (ckan/logic/validators.py): name_validator, tag_*.
CKAN_DEFAULT_LICENCES = {"notspecified", "odc-pddl", "odc-odbl", "odc-by", "cc-zero", "cc-by", "cc-by-sa", "gfdl"}
CKAN_NAME = re.compile(r"^[a-z0-9_-]{2,100}$")
CKAN_TAG = re.compile(r"^[\w .-]{2,100}$")
DCAT_AP_DATASET = {"dct:title", "dct:description", "dct:publisher", "dcat:contactPoint", "dct:accrualPeriodicity"}
DCAT_AP_DATASET |= {"dct:license", "dcat:keyword", "dct:spatial", "dcat:distribution", "dct:accessRights"}


@pytest.fixture(scope="module")
def datasets() -> list[DatasetMetadata]:
    return list(catalogue_metadata())


def _dataset(datasets: list[DatasetMetadata], agency: str, dataset: str) -> DatasetMetadata:
    return next(d for d in datasets if (d.agency.code, d.dataset) == (agency, dataset))


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def test_only_publik_datasets_are_exported(datasets: list[DatasetMetadata]) -> None:
    public = sorted(package_name(d) for d in datasets if d.public)
    assert public == ["bpbd-kejadian", "citata-zonasi"]
    ckan = ckan_document(datasets, ENDPOINTS)
    dcat = dcat_document(datasets, ENDPOINTS)
    assert [p["name"] for p in ckan["packages"]] == public
    assert [d["dct:identifier"] for d in dcat["dcat:dataset"]] == public
    text = json.dumps([ckan, dcat], ensure_ascii=False)
    for dataset in datasets:
        if not dataset.public:
            assert f'"{package_name(dataset)}"' not in text
            assert dataset.title not in text
    classifications = {e["value"] for p in ckan["packages"] for e in p["extras"] if e["key"] == "classification"}
    assert classifications == {"publik"}


def test_a_dataset_no_longer_publik_is_no_longer_exported(datasets: list[DatasetMetadata]) -> None:
    incidents = _dataset(datasets, "bpbd", "kejadian")
    closed = [replace(d, classification="terbatas", licence=NOT_OPEN) if d is incidents else d for d in datasets]
    assert [p["name"] for p in ckan_document(closed, ENDPOINTS)["packages"]] == ["citata-zonasi"]
    assert [d["dct:identifier"] for d in dcat_document(closed, ENDPOINTS)["dcat:dataset"]] == ["citata-zonasi"]
    assert [o["name"] for o in ckan_document(closed, ENDPOINTS)["organizations"]] == ["citata"]


def test_ckan_packages_are_what_package_create_takes(datasets: list[DatasetMetadata]) -> None:
    document = ckan_document(datasets, ENDPOINTS)
    organizations = {o["name"]: o["title"] for o in document["organizations"]}
    assert organizations == {
        "bpbd": "Badan Penanggulangan Bencana Daerah",
        "citata": _dataset(datasets, "citata", "zonasi").agency.name,
    }
    names = [p["name"] for p in document["packages"]]
    assert len(set(names)) == len(names)
    for package in document["packages"]:
        assert CKAN_NAME.match(package["name"]), package["name"]
        assert package["owner_org"] in organizations and package["private"] is False
        assert package["title"] and package["notes"]
        assert package["license_id"] in CKAN_DEFAULT_LICENCES
        assert package["maintainer"] and "@" in package["maintainer_email"]
        assert package["tags"] and all(CKAN_TAG.match(t["name"]) for t in package["tags"]), package["tags"]
        keys = [e["key"] for e in package["extras"]]
        assert keys == sorted(set(keys))
        assert all(isinstance(e["value"], str) and e["value"] for e in package["extras"])
        assert {"produsen_data", "walidata", "periodicity", "classification", "reference_codes"} <= set(keys)
        assert "spatial" not in keys  # ckanext-spatial reads that key as GeoJSON
        for resource in package["resources"]:
            assert set(resource) == {"name", "url", "format", "description"}
            assert resource["url"].startswith(("https://", "kafka://")), resource["url"]
            assert "{" not in resource["url"]


def test_ckan_package_of_the_incidents(datasets: list[DatasetMetadata]) -> None:
    package = next(p for p in ckan_document(datasets, ENDPOINTS)["packages"] if p["name"] == "bpbd-kejadian")
    extras = {e["key"]: e["value"] for e in package["extras"]}
    assert extras["produsen_data"] == "Badan Penanggulangan Bencana Daerah"
    assert extras["walidata"] == "Dinas Komunikasi, Informatika dan Statistik"
    assert (extras["periodicity"], extras["classification"], extras["licence"]) == ("real-time", "publik", "CC-BY-4.0")
    assert extras["frequency"].endswith("/frequency/CONT")
    assert "Kepmendagri 300.2.2-2138/2025" in extras["reference_codes"]
    assert extras["spatial_text"] == "31 Provinsi DKI Jakarta"
    assert package["license_id"] == "cc-by"
    assert [t["name"] for t in package["tags"]] == sorted(_dataset(datasets, "bpbd", "kejadian").keywords)
    urls = [r["url"] for r in package["resources"]]
    assert urls == [
        "https://api.example.go.id/docs",
        "kafka://kafka.example.go.id:9093/unified.incident.v1",
        "https://registry.example.go.id/apis/ccompat/v7/subjects/agency.bpbd.kejadian.v1-value/versions/latest",
    ]
    assert "GET /v1/incidents/{incident_id}" in package["resources"][0]["description"]
    assert "tanpa kunci API" in package["resources"][0]["description"]


def test_the_topics_follow_the_namespace(datasets: list[DatasetMetadata]) -> None:
    endpoints = replace(ENDPOINTS, namespace="test")
    package = next(p for p in ckan_document(datasets, endpoints)["packages"] if p["name"] == "bpbd-kejadian")
    urls = [r["url"] for r in package["resources"]]
    assert "kafka://kafka.example.go.id:9093/test.unified.incident.v1" in urls
    assert any("/subjects/test.agency.bpbd.kejadian.v1-value/" in url for url in urls)


def test_dcat_is_a_dcat_ap_catalogue(datasets: list[DatasetMetadata]) -> None:
    document = dcat_document(datasets, ENDPOINTS)
    assert document["@type"] == "dcat:Catalog" and document["@id"] == "https://portal.example.go.id"
    assert document["dct:publisher"]["@type"] == "foaf:Agent"
    assert document["dct:publisher"]["foaf:name"]["@value"] == "Dinas Komunikasi, Informatika dan Statistik"
    assert document["dct:title"]["@value"] and document["dct:description"]["@value"]
    for dataset in document["dcat:dataset"]:
        assert dataset["@type"] == "dcat:Dataset"
        assert not DCAT_AP_DATASET - set(dataset), DCAT_AP_DATASET - set(dataset)
        assert dataset["@id"] == f"https://portal.example.go.id/dataset/{dataset['dct:identifier']}"
        assert dataset["dct:accessRights"]["@id"].endswith("/access-right/PUBLIC")
        assert dataset["dct:license"]["@id"] in LICENCE_IRIS.values()
        assert dataset["dct:publisher"]["@type"] == "foaf:Agent" and dataset["dct:publisher"]["foaf:name"]["@value"]
        contact = dataset["dcat:contactPoint"]
        assert contact["vcard:fn"] and contact["vcard:hasEmail"]["@id"].startswith("mailto:")
        assert all(k["@language"] == "id" and k["@value"] for k in dataset["dcat:keyword"])
        assert [s["@type"] for s in dataset["dct:spatial"]] == ["dct:Location"]
        for distribution in dataset["dcat:distribution"]:
            assert distribution["@type"] == "dcat:Distribution" and distribution["dcat:accessURL"]["@id"]
    periodicity = {d["dct:identifier"]: d["dct:accrualPeriodicity"]["@id"] for d in document["dcat:dataset"]}
    assert periodicity == {
        "bpbd-kejadian": "http://publications.europa.eu/resource/authority/frequency/CONT",
        "citata-zonasi": "http://publications.europa.eu/resource/authority/frequency/IRREG",
    }


def test_dcat_uses_only_declared_prefixes_and_valid_iris(datasets: list[DatasetMetadata]) -> None:
    document = dcat_document(datasets, ENDPOINTS)
    for key, value in _walk(document):
        if not key.startswith("@"):
            assert key.split(":")[0] in CONTEXT, key
        if key == "@type":
            assert value.split(":")[0] in CONTEXT, value
        if key == "@id":
            assert re.match(r"^(https?|mailto|kafka):[^\s{}<>\"]+$", value), value


def test_dcat_refuses_a_catalogue_of_two_walidata(datasets: list[DatasetMetadata]) -> None:
    other = _dataset(datasets, "dinsos", "layanan")
    mixed = [replace(d, walidata=other.agency) if d is other else d for d in datasets]
    with pytest.raises(MetadataError, match=r"2 walidata \(dinsos, diskominfotik\)"):
        dcat_document(mixed, ENDPOINTS)


@pytest.mark.parametrize("writer", [ckan_document, dcat_document])
def test_the_output_does_not_depend_on_the_order_of_the_datasets(writer: Any, datasets: list[DatasetMetadata]) -> None:
    shuffled = list(datasets)
    random.Random(7).shuffle(shuffled)
    assert shuffled != datasets
    assert writer(shuffled, ENDPOINTS) == writer(datasets, ENDPOINTS)
    assert json.dumps(writer(shuffled, ENDPOINTS)) == json.dumps(writer(datasets, ENDPOINTS)), "lists in one order"


def test_every_periodicity_and_licence_has_its_iri_and_ckan_id() -> None:
    assert set(FREQUENCIES) == set(PERIODICITIES)
    assert set(CKAN_LICENCES) == set(LICENCE_IRIS) == set(OPEN_LICENCES)


def test_the_api_reads_are_the_live_apis() -> None:
    source = (Path(__file__).parents[2] / "consumers" / "api.py").read_text(encoding="utf-8")
    for path, _ in API_READS.values():
        assert f'"{path}"' in source, path


def test_left_out_says_how_many_and_why(datasets: list[DatasetMetadata]) -> None:
    others = [d for d in datasets if not d.public]
    publishers = sum("layanan" in a.datasets for a in load_catalogue())
    summary = left_out_summary(others)
    assert summary.startswith(f"left out {len(others)} dataset(s) that are not publik")
    assert "3 rahasia (dinkes/kunjungan, disdik/peserta_didik, dukcapil/penduduk)" in summary
    assert f"{len(others) - 3} terbatas (" in summary and f"layanan of {publishers} agencies" in summary
    assert left_out_summary([]) == "left out no dataset: every one is publik"


def _settings() -> Settings:
    return Settings(pseudonym_key=SecretStr("k"))


def test_the_command_writes_the_file_and_says_what_it_left_out(
    datasets: list[DatasetMetadata], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "ckan.json"
    args = build_parser().parse_args(["catalogue", "export", "--format", "ckan", "--output", str(output)])
    handler = args.handler
    assert isinstance(handler, Lazy) and (handler.module, handler.function) == ("satubus.catalogue_export", "main")
    assert catalogue_export.main(args, _settings()) == 0
    written = output.read_text(encoding="utf-8")
    assert [p["name"] for p in json.loads(written)["packages"]] == ["bpbd-kejadian", "citata-zonasi"]
    out, err = capsys.readouterr()
    assert out == ""
    assert f"exported 2 publik dataset(s) of {len(datasets)} as ckan into {output}" in err
    assert f"left out {len(datasets) - 2} dataset(s) that are not publik" in err
    assert catalogue_export.main(args, _settings()) == 0
    assert output.read_text(encoding="utf-8") == written, "the same metadata, the same bytes"


def test_the_command_writes_dcat_to_stdout_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(
        ["catalogue", "export", "--format", "dcat", "--catalogue-url", "https://data.example", "--api-url", "https://a"]
    )
    assert args.output is None
    assert catalogue_export.main(args, _settings()) == 0
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert document["@id"] == "https://data.example"
    assert "https://a/docs" in out
    assert "left out" in err and "left out" not in out


def test_the_format_is_required() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["catalogue", "export"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["catalogue", "export", "--format", "csv"])
    assert isinstance(build_parser().parse_args(["catalogue", "export", "--format", "ckan"]), argparse.Namespace)
