import datetime as dt

import pytest

from satubus.schemas.catalogue import load_catalogue
from satubus.schemas.record_models import FieldError, RecordRejected, agency_model, validate
from tests.samples import DUKCAPIL_RESIDENT, NIK


def test_a_valid_record_passes_unchanged() -> None:
    assert validate(agency_model("dukcapil", "penduduk"), DUKCAPIL_RESIDENT, "dukcapil.penduduk") == DUKCAPIL_RESIDENT


def test_every_bad_field_is_named_with_its_reason_and_no_value_is_echoed() -> None:
    bad = DUKCAPIL_RESIDENT | {"nik": int(NIK), "no_rt": None, "hobby": "catur"}
    del bad["alamat"]
    with pytest.raises(RecordRejected) as caught:
        validate(agency_model("dukcapil", "penduduk"), bad, "dukcapil.penduduk")
    assert caught.value.errors == [
        FieldError("nik", "Input should be a valid string"),
        FieldError("alamat", "Field required"),
        FieldError("no_rt", "Input should be a valid string"),
        FieldError("hobby", "Extra inputs are not permitted"),
    ]
    assert NIK not in str(caught.value)


def test_defaults_logical_types_and_ranges_follow_the_schema() -> None:
    model = agency_model("bpbd", "kejadian")
    minimal = {
        "id_kejadian": "B-1",
        "jenis": "BANJIR",
        "kelurahan": "Kampung Melayu",
        "status": "BERLANGSUNG",
        "waktu_kejadian": dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC),
    }
    full = validate(model, minimal, "bpbd.kejadian")
    assert full["pengungsi"] == 0 and full["rw_terdampak"] == [] and full["tinggi_air_cm"] is None
    with pytest.raises(RecordRejected, match="waktu_kejadian: Input should have timezone info"):
        validate(model, minimal | {"waktu_kejadian": dt.datetime(2026, 1, 2)}, "bpbd.kejadian")
    with pytest.raises(RecordRejected, match="pengungsi: Input should be less than or equal to 2147483647"):
        validate(model, minimal | {"pengungsi": 2**40}, "bpbd.kejadian")


def test_every_catalogued_dataset_has_a_model() -> None:
    for agency in load_catalogue():
        for dataset in agency.datasets:
            assert agency_model(agency.code, dataset).model_fields
