"""Satu Data Indonesia metadata (schemas/metadata.py): every dataset of the catalogue has a valid metadata file, a
common dataset's is resolved for each agency publishing it, and a wrong or missing file is refused with a message
naming the file and the field."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from satubus.schemas.catalogue import load_catalogue
from satubus.schemas.envelope import AGENCIES_DIR, agency_record_schema
from satubus.schemas.metadata import (
    NOT_OPEN,
    OPEN_LICENCES,
    SUFFIX,
    MetadataError,
    catalogue_metadata,
    load_metadata,
    personal_fields,
)


def test_every_dataset_of_the_catalogue_has_valid_metadata() -> None:
    loaded = list(catalogue_metadata())
    assert [(m.agency.code, m.dataset) for m in loaded] == [(a.code, d) for a in load_catalogue() for d in a.datasets]
    for metadata in loaded:
        assert metadata.title and metadata.description and metadata.keywords, metadata.source
        assert metadata.contact.email.endswith("@jakarta.go.id"), metadata.source
        assert [p.code for p in metadata.spatial] == ["31"], metadata.source


def test_every_schema_has_metadata_beside_it_and_every_metadata_file_a_schema() -> None:
    schemas = {path.with_name(path.stem + SUFFIX) for path in AGENCIES_DIR.glob("*/*.avsc")}
    assert schemas == set(AGENCIES_DIR.glob(f"*/*{SUFFIX}"))


def test_the_walidata_of_every_dataset_is_diskominfotik() -> None:
    walidata = {(m.walidata.code, m.walidata.name) for m in catalogue_metadata()}
    assert walidata == {("diskominfotik", "Dinas Komunikasi, Informatika dan Statistik")}


def test_a_common_dataset_is_produced_by_each_agency_that_publishes_it() -> None:
    layanan = [m for m in catalogue_metadata() if m.dataset == "layanan"]
    assert [m.agency.code for m in layanan] == [a.code for a in load_catalogue() if "layanan" in a.datasets]
    for metadata in layanan:
        assert metadata.common and metadata.produsen_data == metadata.agency
        assert metadata.title.endswith(f" - {metadata.agency.name}")
        assert metadata.contact.email == f"{metadata.agency.code}@jakarta.go.id"
        texts = [metadata.title, metadata.description, metadata.contact.name, metadata.contact.email]
        texts += [r.name for r in metadata.reference_codes] + [r.source for r in metadata.reference_codes]
        assert not [t for t in texts if "{" in t or "}" in t], metadata.agency.code
    assert len({m.title for m in layanan}) == len(layanan)
    own = load_metadata("bpbd", "kejadian")
    assert (own.produsen_data.code, own.common) == ("bpbd", False)


def test_datasets_holding_personal_data_are_never_publik() -> None:
    for metadata in catalogue_metadata():
        personal = personal_fields(agency_record_schema(metadata.agency.code, metadata.dataset))
        assert not (personal and metadata.public), f"{metadata.source}: {personal}"
    classification = {(m.agency.code, m.dataset): m.classification for m in catalogue_metadata()}
    assert classification["dukcapil", "penduduk"] == "rahasia"
    assert classification["dinkes", "kunjungan"] == "rahasia"
    assert classification["dinsos", "penerima_bansos"] in ("terbatas", "rahasia")
    assert classification["bapenda", "objek_pajak"] == "terbatas"
    assert classification["citata", "zonasi"] == classification["bpbd", "kejadian"] == "publik"


def test_only_publik_datasets_carry_an_open_licence() -> None:
    for metadata in catalogue_metadata():
        assert (metadata.licence in OPEN_LICENCES) == metadata.public, metadata.source
        assert metadata.public or metadata.licence == NOT_OPEN, metadata.source


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A copy of two datasets' schemas and metadata: BPBD's own incidents, and the common service requests."""
    for folder, dataset in (("bpbd", "kejadian"), ("common", "layanan")):
        (tmp_path / folder).mkdir(exist_ok=True)
        for suffix in (".avsc", SUFFIX):
            shutil.copy(AGENCIES_DIR / folder / f"{dataset}{suffix}", tmp_path / folder / f"{dataset}{suffix}")
    return tmp_path


def _edit(path: Path, changes: dict[str, Any]) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def _refused(root: Path, agency: str = "bpbd", dataset: str = "kejadian") -> str:
    with pytest.raises(MetadataError) as refused:
        load_metadata(agency, dataset, root)
    return str(refused.value)


def test_the_copied_files_load(root: Path) -> None:
    assert load_metadata("bpbd", "kejadian", root).public
    assert load_metadata("dinsos", "layanan", root).produsen_data.code == "dinsos"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"classification": "rahasiaa"}, "classification: Input should be 'publik', 'terbatas' or 'rahasia'"),
        ({"tittle": "Kejadian Bencana"}, "tittle: Extra inputs are not permitted"),
        ({"title": None}, "title: Field required"),
        ({"title": "  "}, "title: String should have at least 1 character"),
        ({"periodicity": "kadang-kadang"}, "periodicity: Input should be 'real-time', 'harian'"),
        ({"licence": NOT_OPEN}, "licence: a publik dataset is open data: give an open licence, one of CC-BY-4.0"),
        ({"classification": "terbatas"}, "licence: a terbatas dataset is not open data: write tidak-terbuka"),
        ({"licence": "MIT"}, "licence: Input should be"),
        ({"walidata": "kominfo"}, "walidata: 'kominfo' is not an agency code of the catalogue"),
        ({"produsen_data": "bpdb"}, "produsen_data: 'bpdb' is not an agency code of the catalogue"),
        (
            {"reference_codes": [{"name": "Jenis", "source": "BPBD", "fields": ["jenis_bencana"]}]},
            "reference_codes.0.fields: jenis_bencana is not a field of bpbd/kejadian.avsc",
        ),
        ({"reference_codes": [{"name": "Jenis", "source": "BPBD"}]}, "reference_codes.0.fields: Field required"),
        ({"contact": {"name": "Pusdatin", "email": "pusdatin at bpbd"}}, "contact.email: String should match"),
        ({"contact": {"name": "Pusdatin"}}, "contact.email: Field required"),
        ({"keywords": ["banjir", "Banjir"]}, "keywords: 'Banjir' is given twice"),
        ({"keywords": ["banjir/rob"]}, "keywords.0: String should match pattern"),
        ({"keywords": []}, "keywords: Tuple should have at least 1 item"),
        ({"spatial": ["31", "31.79"]}, "spatial.1: '31.79' is not a Kemendagri code of DKI Jakarta"),
        (
            {"temporal": {"start": dt.date(2026, 1, 1), "end": dt.date(2025, 1, 1)}},
            "temporal: end 2025-01-01 is before",
        ),
        ({"temporal": {"from": dt.date(2026, 1, 1)}}, "temporal.from: Extra inputs are not permitted"),
        ({"title": "Kejadian Bencana {agensi}"}, "title: unknown placeholder {agensi}"),
    ],
)
def test_a_wrong_file_is_refused_naming_the_file_and_the_field(
    root: Path, changes: dict[str, Any], expected: str
) -> None:
    path = root / "bpbd" / f"kejadian{SUFFIX}"
    _edit(path, changes)
    message = _refused(root)
    assert message.startswith(f"{path}:"), message
    assert expected in message


def test_a_publik_dataset_with_personal_data_is_refused(root: Path) -> None:
    schema_path = root / "bpbd" / "kejadian.avsc"
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    schema["fields"].append({"name": "nik_pelapor", "type": ["null", "string"], "default": None, "doc": "NIK."})
    schema_path.write_text(json.dumps(schema), encoding="utf-8")
    message = _refused(root)
    assert f"{root / 'bpbd' / ('kejadian' + SUFFIX)}:" in message
    assert "classification: publik, but nik_pelapor of bpbd/kejadian.avsc hold personal data" in message
    _edit(root / "bpbd" / f"kejadian{SUFFIX}", {"classification": "terbatas", "licence": NOT_OPEN})
    assert load_metadata("bpbd", "kejadian", root).classification == "terbatas"


def test_a_common_dataset_names_no_producer(root: Path) -> None:
    path = root / "common" / f"layanan{SUFFIX}"
    _edit(path, {"produsen_data": "diskominfotik"})
    message = _refused(root, "dinsos", "layanan")
    assert message.startswith(f"{path}:")
    assert "produsen_data: a common dataset is produced by each agency that publishes it" in message


def test_an_agency_dataset_may_name_another_producer(root: Path) -> None:
    _edit(root / "bpbd" / f"kejadian{SUFFIX}", {"produsen_data": "gulkarmat", "spatial": ["31.71.06.1001"]})
    metadata = load_metadata("bpbd", "kejadian", root)
    assert (metadata.agency.code, metadata.produsen_data.code) == ("bpbd", "gulkarmat")
    assert [(p.code, p.name) for p in metadata.spatial] == [("31.71.06.1001", "Menteng")]


def test_a_missing_file_says_which_and_what_to_put_in_it(root: Path) -> None:
    path = root / "bpbd" / f"kejadian{SUFFIX}"
    path.unlink()
    message = _refused(root)
    assert message.startswith(f"{path}: missing.")
    for field in ("title", "description", "walidata", "periodicity", "classification", "licence", "contact"):
        assert field in message
    assert "keywords" in message and "reference_codes" in message


def test_a_missing_common_file_is_named_for_every_agency(root: Path) -> None:
    (root / "common" / f"layanan{SUFFIX}").unlink()
    assert _refused(root, "dinsos", "layanan").startswith(f"{root / 'common' / ('layanan' + SUFFIX)}: missing.")


def test_a_file_that_is_not_a_mapping_is_refused(root: Path) -> None:
    path = root / "bpbd" / f"kejadian{SUFFIX}"
    path.write_text("- title\n- description\n", encoding="utf-8")
    assert _refused(root) == f"{path}: expected a mapping of fields (title, description, ...), not list"


def test_an_unknown_agency_or_dataset_is_refused(root: Path) -> None:
    assert "'bpdb' is not an agency of the catalogue" in _refused(root, "bpdb", "kejadian")
    assert "bpbd/banjir: no schema" in _refused(root, "bpbd", "banjir")
    assert "a common dataset's metadata is loaded for an agency that publishes it" in _refused(root, "common")
