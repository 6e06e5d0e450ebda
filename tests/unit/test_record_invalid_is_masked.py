"""A record that does not fit its schema is refused with a message that names the field, not the person: the
validator's message holds the value, and the value of a union is the whole record."""

from __future__ import annotations

import datetime as dt

import pytest

from satubus.schemas.envelope import agency_event_schema
from satubus.serde import Encoder, RecordInvalid

NIK = "3171064808850001"


def test_the_message_of_a_record_that_does_not_fit_masks_its_personal_data() -> None:
    event = {
        "event_id": "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b",
        "op": "c",
        "occurred_at": dt.datetime(2026, 11, 28, tzinfo=dt.UTC),
        "source": {"agency": "dukcapil", "system": "siak", "version": "2.1"},
        "key": NIK,
        "version": 1,
        "after": {"nik": int(NIK), "nama_lgkp": "SITI RAHMAWATI", "tgl_lhr": "08-08-1985", "alamat": "Jl. Kebon"},
    }
    with pytest.raises(RecordInvalid) as caught:
        Encoder(1, agency_event_schema("dukcapil", "penduduk")).encode(event)
    message = str(caught.value)
    assert "Penduduk.nik is <3171************> of type int expected string" in message
    assert "'nama_lgkp': 'S*** R********'" in message
    for clear in (NIK, "SITI", "RAHMAWATI", "08-08", "Kebon"):
        assert clear not in message
