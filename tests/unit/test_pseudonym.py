import re

import pytest

from satubus.schemas.pseudonym import household_id, person_id

NIK = "3171061508950001"


def test_person_id_is_a_stable_keyed_hmac() -> None:
    first = person_id(b"key-one", NIK)
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert person_id(b"key-one", NIK) == first
    assert person_id(b"key-two", NIK) != first
    assert person_id(b"key-one", "3171061508950002") != first
    assert NIK not in first


def test_person_id_matches_an_independent_hmac_sha256() -> None:
    """Downstream systems holding the key can recompute it: `printf 'nik:<NIK>' | openssl dgst -sha256 -hmac <key>`."""
    assert person_id(b"key-one", NIK) == "19884d1ee97863e023f00ad33caaadb8d12250ba9afe39c0cc115748a2b0fa9c"


def test_kinds_of_ids_are_domain_separated() -> None:
    assert household_id(b"key", NIK) != person_id(b"key", NIK)


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        person_id(b"", NIK)
