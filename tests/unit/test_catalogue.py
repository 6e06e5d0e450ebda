from collections import Counter

from satubus.schemas.catalogue import AGENCY_COUNT, agency, load_catalogue
from satubus.schemas.compatibility import undocumented
from satubus.schemas.envelope import AGENCIES_DIR, agency_schema_path
from satubus.schemas.topics import all_contracts


def test_fifty_two_agencies_forty_integrated() -> None:
    agencies = load_catalogue()
    assert len(agencies) == AGENCY_COUNT == 52
    assert Counter(a.integrated for a in agencies) == {True: 40, False: 12}


def test_composition_is_forty_two_perangkat_daerah_and_ten_biro() -> None:
    kinds = Counter(a.kind for a in load_catalogue())
    assert kinds["biro"] == 10
    assert kinds["dinas"] == 22 and kinds["badan"] == 10
    assert kinds["kota"] + kinds["kabupaten"] == 6
    assert sum(kinds.values()) - kinds["biro"] == 42


def test_older_names_are_kept_as_aliases() -> None:
    assert "Badan Pajak dan Retribusi Daerah" in agency("bapenda").aliases


def test_every_dataset_has_a_documented_schema() -> None:
    for entry in load_catalogue():
        for dataset in entry.datasets:
            path = agency_schema_path(entry.code, dataset)
            assert path.exists(), f"{entry.code}/{dataset}: no {path}"
    for contract in all_contracts():
        if contract.schema is not None:
            assert undocumented(contract.value_schema()) == [], contract.subject


def test_every_agency_schema_file_belongs_to_a_catalogued_dataset() -> None:
    catalogued = {(a.code, d) for a in load_catalogue() for d in a.datasets}
    for path in AGENCIES_DIR.glob("*/*.avsc"):
        owner = path.parent.name
        assert owner == "common" or (owner, path.stem) in catalogued, path
