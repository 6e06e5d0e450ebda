import pytest

from satubus.schemas.regions import dotted, load_regions, name_key


def test_reference_has_all_of_dki_jakarta() -> None:
    regions = load_regions()
    assert len(regions.of_level("kota", "kabupaten")) == 6
    assert len(regions.of_level("kecamatan")) == 44
    assert len(regions.of_level("kelurahan", "desa")) == 267


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("31.71.01.1001", "Gambir"),
        ("31.71.06.1001", "Menteng"),
        ("31.01.02.1002", "Pulau Tidung"),
        ("31.75.02.1001", "Pulo Gadung"),
        ("31.74.07.1006", "Senayan"),
        ("31.74.07.1010", "Cipete Utara"),
    ],
)
def test_spot_checks_against_kemendagri(code: str, name: str) -> None:
    region = load_regions().kelurahan(code)
    assert region is not None and region.name == name


def test_kebayoran_baru_is_31_74_07_with_ten_kelurahan() -> None:
    regions = load_regions()
    kecamatan = regions.get("31.74.07")
    assert kecamatan is not None and kecamatan.name == "Kebayoran Baru"
    assert len([r for r in regions.of_level("kelurahan") if r.parent_code == "31.74.07"]) == 10


def test_undotted_codes_and_name_variants_resolve() -> None:
    regions = load_regions()
    assert dotted("3171061001") == "31.71.06.1001"
    assert regions.kelurahan("3171061001") == regions.kelurahan("31.71.06.1001")
    for variant in ("Kel. Menteng", "MENTENG", " kelurahan  menteng ", "Kel.Menteng", "Desa Menteng"):
        assert regions.kelurahan_named(variant) == regions.kelurahan("31.71.06.1001"), variant
    for variant in ("Kramat Pela", "KRAMATPELA", "Kel. Kramat-Pela"):
        assert regions.kelurahan_named(variant) == regions.kelurahan("31.74.07.1003"), variant
    assert regions.kelurahan_named("Kelapa Gading Timur") is not None  # 'Kel' begins a name, too
    assert name_key("Kel.  Pulau   Tidung") == "pulautidung"


def test_kelurahan_names_stay_distinct_as_comparison_keys() -> None:
    kelurahan = load_regions().of_level("kelurahan", "desa")
    assert len({name_key(r.name) for r in kelurahan}) == len(kelurahan) == 267


def test_a_bps_code_is_not_read_as_a_kemendagri_code() -> None:
    # BPS 3173020001 is Menteng; as a Kemendagri code it names nothing in DKI Jakarta.
    assert load_regions().kelurahan("3173020001") is None
    assert load_regions().kelurahan("31.71") is None  # a kota is not a kelurahan


def test_bps_codes_translate_through_the_crosswalk() -> None:
    regions = load_regions()
    menteng = regions.from_bps("3173020001")
    assert menteng is not None and (menteng.code, menteng.name) == ("31.71.06.1001", "Menteng")
    jakarta_pusat = regions.from_bps("3173")
    assert jakarta_pusat is not None and jakarta_pusat.code == "31.71"  # not Kemendagri 31.73 (Jakarta Barat)
    assert regions.from_bps("3171") == regions.get("31.74")  # BPS 3171 is Jakarta Selatan
    kelurahan = regions.of_level("kelurahan", "desa")
    assert sum(regions.from_bps(code) is not None for code in _bps_kelurahan_codes()) == len(kelurahan) == 267


def _bps_kelurahan_codes() -> list[str]:
    from satubus.schemas.regions import BPS_CROSSWALK_FILE

    with BPS_CROSSWALK_FILE.open() as f:
        return [line.split(",")[0] for line in f if not line.startswith("#") and ",kelurahan," in line]
