"""``AgencyPublisher.publish_batch``: one outcome per change, in input order, each record validated once; with a
stand-in broker and registry (tests/unit/fake_kafka.py)."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from typing import Any

import fastavro
import pytest

from satubus.producers.publisher import AgencyPublisher, Change, Outcome
from satubus.schemas.envelope import agency_event_schema
from satubus.schemas.record_models import agency_model
from satubus.settings import Settings
from tests.unit.fake_kafka import SILENT, Fakes, count_validations, failed, install, refused

NIK = "3171069935850001"


def incident(i: int) -> dict[str, Any]:
    return {
        "id_kejadian": f"B-{i}",
        "jenis": "BANJIR",
        "kelurahan": "Kampung Melayu",
        "status": "BERLANGSUNG",
        "waktu_kejadian": dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC),
        "tinggi_air_cm": 40 + i,
    }


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Fakes:
    return install(monkeypatch)


def publisher(fakes: Fakes, namespace: str = "", **options: Any) -> AgencyPublisher:
    serde: Any = fakes.serde()
    return AgencyPublisher(
        Settings(namespace=namespace), serde, agency="bpbd", dataset="kejadian", system="test", **options
    )


def test_every_change_has_one_outcome_in_input_order(fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    validations = count_validations(monkeypatch, agency_model("bpbd", "kejadian"))
    fixed = uuid.uuid4()
    as_json = json.dumps(incident(5) | {"waktu_kejadian": "2026-11-28T03:00:00+07:00"})
    changes = [
        Change("B-0", incident(0), version=1, event_id=fixed),  # sent 0: acknowledged
        Change("B-1", incident(1) | {"tinggi_air_cm": "40cm", "jenis": None}, version=1),  # rejected
        Change("B-2", incident(2), version=1),  # sent 1: the broker fails it
        Change("B-3", None, version=2, op="u"),  # rejected: only a delete has no record
        Change("B-4", None, version=3, op="d"),  # sent 2: acknowledged
        Change("B-5", as_json, version=1),  # sent 3: a JSON document, ISO time: acknowledged
        Change("B-6", incident(6), version=1),  # sent 4: never answered
        Change("B-7", incident(7), version=1),  # offered 5: the client refuses it as too large
        Change("B-8", incident(8), version=1),  # offered 6: the client refuses it for another reason
    ]
    fakes.fates = {1: failed(), 4: SILENT, 5: refused(), 6: refused(-191)}  # -191: Local: Fatal error
    outcomes = publisher(fakes).publish_batch(changes, timeout=0.2)

    assert [(o.index, o.status) for o in outcomes] == [
        (0, "published"),
        (1, "rejected"),
        (2, "failed"),
        (3, "rejected"),
        (4, "published"),
        (5, "published"),
        (6, "failed"),
        (7, "rejected"),
        (8, "failed"),
    ]
    assert outcomes[0] == Outcome(0, fixed, "published")
    assert {(e.field, e.reason) for e in outcomes[1].errors} == {
        ("tinggi_air_cm", "Input should be a valid integer"),
        ("jenis", "Input should be a valid string"),
    }
    assert outcomes[2].reason == "<broker>: Local: Message timed out"
    assert outcomes[3].reason == "after: a delete has no record; other ops need one"
    assert outcomes[6].reason == "<broker>: not acknowledged within 0.2s"
    assert outcomes[7].errors[0].field == "<record>" and "too large" in outcomes[7].reason
    assert outcomes[8].errors[0].field == "<broker>"
    assert len({o.event_id for o in outcomes}) == len(changes)
    assert sorted(validations) == ["model_validate"] * 6 + ["model_validate_json"]  # once per record (7)
    assert len(fakes.produced) == 5


def test_what_is_sent_is_the_validated_record_in_its_envelope(fakes: Fakes) -> None:
    occurred = dt.datetime(2026, 11, 28, 1, 2, 3, tzinfo=dt.UTC)
    event_id = uuid.uuid4()
    (outcome,) = publisher(fakes).publish_batch(
        [Change("B-1", json.dumps(incident(1), default=str), 7, "u", occurred, event_id)]
    )
    assert outcome.status == "published"
    topic, key, value = fakes.produced[0]
    assert (topic, key) == ("agency.bpbd.kejadian.v1", b"B-1")
    parsed = fastavro.parse_schema(agency_event_schema("bpbd", "kejadian"))
    envelope = fastavro.schemaless_reader(io.BytesIO(value[5:]), parsed, None)
    assert isinstance(envelope, dict)
    assert (envelope["event_id"], envelope["op"], envelope["version"], envelope["occurred_at"]) == (
        event_id,
        "u",
        7,
        occurred,
    )
    assert envelope["after"]["waktu_kejadian"] == incident(1)["waktu_kejadian"]


def test_topic_and_subject_are_the_contracts_in_the_settings_namespace(fakes: Fakes) -> None:
    sdk = publisher(fakes, namespace="kota")
    assert sdk.topic == "kota.agency.bpbd.kejadian.v1"
    assert fakes.subjects == ["kota.agency.bpbd.kejadian.v1-value"]
    sdk.publish_batch([Change("B-1", incident(1), version=1)])
    assert [topic for topic, _, _ in fakes.produced] == ["kota.agency.bpbd.kejadian.v1"]


def test_a_batch_reports_its_failures_instead_of_raising_them_later(fakes: Fakes) -> None:
    """Before, publish_batch raised DeliveryFailed for the whole batch; the failures are outcomes now, and a later
    flush (leaving a ``with`` block) does not raise them again."""
    fakes.fates = {0: failed()}
    sdk = publisher(fakes)
    outcomes = sdk.publish_batch([Change(f"B-{i}", incident(i), version=1) for i in range(3)])
    assert [o.status for o in outcomes] == ["failed", "published", "published"]
    sdk.flush()
    assert sdk.acknowledged == 2


def test_the_default_wait_outlasts_the_delivery_timeout(fakes: Fakes) -> None:
    assert publisher(fakes, delivery_timeout=2).batch_timeout == 7
    assert fakes.producers[-1].config["message.timeout.ms"] == 2000
    assert publisher(fakes).batch_timeout == 60


def test_reasons_never_carry_a_nik(fakes: Fakes) -> None:
    serde: Any = fakes.serde()
    dinsos = AgencyPublisher(Settings(), serde, agency="dinsos", dataset="penerima_bansos", system="test")
    record = {"id_penyaluran": "P-1", "nik": NIK, "nominal": "enam ratus ribu " + NIK, "program": NIK}
    (outcome,) = dinsos.publish_batch([Change("P-1", json.dumps(record), version=1)])
    assert outcome.status == "rejected" and outcome.errors
    assert NIK[:10] not in outcome.reason


def test_publish_raises_for_a_bad_record_as_before(fakes: Fakes) -> None:
    from satubus.schemas.record_models import RecordRejected

    with pytest.raises(RecordRejected, match="tinggi_air_cm: Input should be a valid integer"):
        publisher(fakes).publish("B-x", incident(0) | {"tinggi_air_cm": "40cm"}, version=1)
    assert fakes.produced == []
