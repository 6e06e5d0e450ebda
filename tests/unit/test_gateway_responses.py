"""The gateway's answers, from the outcomes of ``publish_batch``, with a stand-in broker and registry
(tests/unit/fake_kafka.py): 200 with each event's fate, 422 when every record is wrong, 503 with ``Retry-After``
when the broker or the registry is unavailable. The publishing runs off the event loop."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import Iterator
from typing import Any

import fastavro
import pytest
from confluent_kafka import KafkaError
from fastapi.testclient import TestClient

from satubus import tokens
from satubus.producers import gateway
from satubus.producers.gateway_tokens import Tokens
from satubus.schemas.envelope import agency_event_schema
from satubus.schemas.record_models import agency_model
from satubus.settings import Settings
from tests.unit.fake_kafka import Fakes, count_validations, failed, install

URL = "/v1/agencies/bpbd/datasets/kejadian/events"
ISSUED = {"bpbd": tokens.issue(), "dinsos": tokens.issue()}
AUTH = {"Authorization": f"Bearer {ISSUED['bpbd'].token}"}
NIK = "3171069935850001"


def incident(i: int) -> dict[str, Any]:
    return {
        "id_kejadian": f"G-{i}",
        "jenis": "KEBAKARAN",
        "kelurahan": "Kebon Melati",
        "status": "SELESAI",
        "waktu_kejadian": "2026-11-28T03:04:05+00:00",
        "pengungsi": i,
    }


def events(n: int) -> list[dict[str, Any]]:
    return [{"key": f"G-{i}", "version": 1, "record": incident(i)} for i in range(n)]


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Fakes:
    fakes = install(monkeypatch)
    monkeypatch.setattr(gateway, "AvroSerde", fakes.serde)
    return fakes


@pytest.fixture
def client(fakes: Fakes) -> Iterator[TestClient]:
    settings = Settings(namespace="kota", gateway_ack_timeout=0.2)
    with TestClient(gateway.create_app(settings, Tokens.of(ISSUED))) as client:
        yield client
    assert fakes.on_the_loop == [], "a blocking call ran on the event loop"


def test_each_event_is_answered_once_and_each_record_validated_once(
    client: TestClient, fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    validations = count_validations(monkeypatch, agency_model("bpbd", "kejadian"))
    batch = events(6)
    batch[1]["record"] = incident(1) | {"pengungsi": "banyak"}
    batch[3] = {"key": "G-3", "version": 2, "op": "d", "record": None}
    fixed = str(uuid.uuid4())
    batch[4]["event_id"] = fixed
    fakes.fates = {1: failed(), 3: failed(KafkaError.NOT_ENOUGH_REPLICAS)}  # sent: 0, 2, 3 (the delete), 4, 5
    response = client.post(URL, json={"events": batch}, headers=AUTH)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["topic"] == "kota.agency.bpbd.kejadian.v1"
    assert [a["index"] for a in body["accepted"]] == [0, 3, 5]
    assert body["rejected"] == [
        {"index": 1, "errors": [{"field": "pengungsi", "reason": "Input should be a valid integer"}]},
        {"index": 2, "errors": [{"field": "<broker>", "reason": "Local: Message timed out"}]},
        {"index": 4, "errors": [{"field": "<broker>", "reason": "Broker: Not enough in-sync replicas"}]},
    ]
    assert len(validations) == 5  # six events, one delete: each record once (twice before)


def test_a_batch_whose_every_record_is_wrong_is_422_with_the_reasons(client: TestClient) -> None:
    record = {"id_penyaluran": "PKH-1", "nik": NIK, "nominal": "enam ratus ribu " + NIK, "program": "PKH"}
    response = client.post(
        "/v1/agencies/dinsos/datasets/penerima_bansos/events",
        json={"events": [{"key": "PKH-1", "version": 1, "record": record}]},
        headers={"Authorization": f"Bearer {ISSUED['dinsos'].token}"},
    )
    assert response.status_code == 422
    body = response.json()
    assert body["accepted"] == [] and body["rejected"][0]["index"] == 0
    assert {e["field"] for e in body["rejected"][0]["errors"]} >= {"nominal", "status_salur"}
    assert NIK[:10] not in response.text


def test_a_broker_that_acknowledges_nothing_is_503_with_retry_after(client: TestClient, fakes: Fakes) -> None:
    fakes.fates = {0: failed(), 1: failed()}
    batch = events(3)
    batch[2]["record"] = None  # a create without a record: a data error
    response = client.post(URL, json={"events": batch}, headers=AUTH)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "10"
    body = response.json()
    assert "acknowledged none" in body["detail"]
    assert [r["index"] for r in body["rejected"]] == [0, 1, 2]


def test_an_unavailable_registry_is_503_with_retry_after_then_recovers(client: TestClient, fakes: Fakes) -> None:
    fakes.registry_down = True
    response = client.post(URL, json={"events": events(1)}, headers=AUTH)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "10"
    assert response.json() == {"detail": "the schema registry is unavailable; retry later"}
    fakes.registry_down = False
    assert client.post(URL, json={"events": events(1)}, headers=AUTH).status_code == 200


def test_an_empty_batch_is_200(client: TestClient) -> None:
    response = client.post(URL, json={"events": []}, headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"topic": "kota.agency.bpbd.kejadian.v1", "accepted": [], "rejected": []}


def test_the_response_models_have_their_own_names_and_the_same_fields(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert {"BatchResponse", "AcceptedEvent", "RejectedEvent"} <= set(schemas)
    assert not {"BatchResult", "Accepted", "Rejected"} & set(schemas)
    assert list(schemas["BatchResponse"]["properties"]) == ["topic", "accepted", "rejected"]
    assert list(schemas["AcceptedEvent"]["properties"]) == ["index", "event_id"]
    assert list(schemas["RejectedEvent"]["properties"]) == ["index", "errors"]


def test_occurred_at_and_event_id_reach_the_envelope(client: TestClient, fakes: Fakes) -> None:
    event_id = uuid.uuid4()
    event = events(1)[0] | {"event_id": str(event_id), "occurred_at": "2026-11-28T10:00:00+07:00", "op": "r"}
    response = client.post(URL, json={"events": [event]}, headers=AUTH)
    assert response.json()["accepted"] == [{"index": 0, "event_id": str(event_id)}]
    (_, key, value) = fakes.produced[0]
    envelope = fastavro.schemaless_reader(
        io.BytesIO(value[5:]), fastavro.parse_schema(agency_event_schema("bpbd", "kejadian")), None
    )
    assert isinstance(envelope, dict) and key == b"G-0"
    assert (envelope["event_id"], envelope["op"]) == (event_id, "r")
    assert envelope["occurred_at"] == dt.datetime(2026, 11, 28, 3, tzinfo=dt.UTC)
    assert envelope["after"]["waktu_kejadian"] == dt.datetime(2026, 11, 28, 3, 4, 5, tzinfo=dt.UTC)


def test_an_event_its_mapping_rejects_is_refused_with_the_reason_and_not_sent(client: TestClient, fakes: Fakes) -> None:
    batch = events(3)
    batch[1]["record"] = incident(1) | {"kelurahan": "Kelurahan Antah"}  # no such kelurahan in DKI Jakarta
    batch[2]["record"] = incident(2) | {"jenis": "METEOR"}  # not in BPBD's code list
    response = client.post(URL, json={"events": batch}, headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert [a["index"] for a in body["accepted"]] == [0]
    errors = {r["index"]: r["errors"] for r in body["rejected"]}
    assert errors[1][0]["field"] == "kelurahan" and "[unknown_region]" in errors[1][0]["reason"]
    assert errors[2][0]["field"] == "jenis" and "[unknown_code]" in errors[2][0]["reason"]
    assert [key for _, key, _ in fakes.produced] == [b"G-0"]  # only the event the mapping takes was sent
