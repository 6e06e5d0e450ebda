"""The publishers that run long check each event with the dataset's mapping as it is now: the gateway (which also
sees a dataset applied since it started), the outbox relay and an SDK client. A mapping changed by ``satubus dataset
apply`` is read again once the directory's fingerprint changed, looked at every few seconds, not at each event. No
service: a copy of the package's ``schemas/agencies/`` with the worked example's dataset, a stand-in broker and
registry (tests/unit/fake_kafka.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from satubus import tokens
from satubus.producers import gateway, mapping_check, outbox
from satubus.producers.gateway_tokens import Tokens
from satubus.producers.mapping_check import LiveMappingCheck, MappingCheck
from satubus.producers.publisher import AgencyPublisher, Change
from satubus.schemas import configuration
from satubus.schemas.configuration import Watched
from satubus.schemas.envelope import AGENCIES_DIR
from satubus.schemas.mapping_spec import MappingError
from satubus.schemas.record_models import RecordRejected
from satubus.settings import Settings
from tests.unit.fake_kafka import Fakes, install
from tests.unit.test_outbox_relay import FakeConnection, payload, row

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "dlh-ritase"
URL = "/v1/agencies/dlh/datasets/ritase/events"
ISSUED = {"dlh": tokens.issue()}
AUTH = {"Authorization": f"Bearer {ISSUED['dlh'].token}"}


def trip(i: int, tonnes: float = 7.4) -> dict[str, Any]:
    return {
        "id_ritase": f"RT-{i}",
        "no_polisi": "B 9123 PQA",
        "kode_tps": "TPS-GMB-01",
        "kelurahan": "Gambir",
        "nik_pengemudi": "3171011505850001",
        "jenis_sampah": "ORGANIK",
        "tonase": tonnes,
        "waktu_berangkat": "2026-11-02 05:10",
        "waktu_tiba": "2026-11-02 06:25",
    }


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The bus's mappings directory, with DLH's ritase installed (``satubus dataset apply dlh ritase``)."""
    root = tmp_path / "mappings"
    copy_package(root)
    apply_files(root, "avsc", "metadata.yaml", "mapping.yaml")
    return root


def copy_package(root: Path) -> None:
    """The package's directory, without a ritase that ``satubus dataset apply``'s integration test may have put there
    meanwhile."""
    shutil.copytree(AGENCIES_DIR, root, ignore=shutil.ignore_patterns("ritase.*"))


def apply_files(root: Path, *suffixes: str) -> None:
    (root / "dlh").mkdir(exist_ok=True)
    for suffix in suffixes:
        shutil.copy(EXAMPLE / f"ritase.{suffix}", root / "dlh" / f"ritase.{suffix}")


def edit_mapping(root: Path, old: str, new: str) -> None:
    mapping = root / "dlh" / "ritase.mapping.yaml"
    text = mapping.read_text(encoding="utf-8")
    assert old in text
    mapping.write_text(text.replace(old, new), encoding="utf-8")


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Fakes:
    return install(monkeypatch)


def sdk(fakes: Fakes, root: Path, check: Any) -> AgencyPublisher:
    serde: Any = fakes.serde()
    return AgencyPublisher(Settings(), serde, agency="dlh", dataset="ritase", system="armada", check=check, root=root)


def test_an_sdk_client_refuses_what_the_mapping_rejects_and_follows_its_changes(fakes: Fakes, root: Path) -> None:
    now = [0.0]
    check = LiveMappingCheck("dlh", "ritase", root, Watched(root, every=5.0, clock=lambda: now[0]))
    publisher = sdk(fakes, root, check)

    outcomes = publisher.publish_batch([Change("RT-1", trip(1), 1), Change("RT-2", trip(2, tonnes=-2.0), 1)])
    assert [o.status for o in outcomes] == ["published", "rejected"]
    (error,) = outcomes[1].errors
    assert error.field == "tonase" and "[out_of_range]" in error.reason
    with pytest.raises(RecordRejected, match=r"tonase: .*\[out_of_range\]"):
        publisher.publish("RT-2", trip(2, tonnes=-2.0), version=1)
    assert [key for _, key, _ in fakes.produced] == [b"RT-1"]  # what the mapping rejects is never sent

    edit_mapping(root, "max: 30", "max: 5")  # apply brings a stricter mapping
    assert publisher.publish_batch([Change("RT-3", trip(3), 1)])[0].status == "published"  # not looked at yet
    now[0] = 5.0
    (outcome,) = publisher.publish_batch([Change("RT-4", trip(4), 1)])
    assert outcome.status == "rejected" and outcome.errors[0].field == "tonase"
    assert [key for _, key, _ in fakes.produced] == [b"RT-1", b"RT-3"]


def test_a_changed_mapping_that_does_not_load_leaves_the_last_one_in_use(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    check = LiveMappingCheck("dlh", "ritase", root, Watched(root, every=5.0, clock=lambda: now[0]))
    assert check.current() is not None
    edit_mapping(root, "max: 30", "max: 5")
    now[0] = 5.0
    stricter = check.current()
    assert stricter is not None and stricter is check.current()  # read once per change, not per event
    edit_mapping(root, "from: tonase", "from: no_such_field")
    now[0] = 10.0
    with caplog.at_level(logging.ERROR):
        assert check.current() is stricter
    assert "the changed mapping does not load" in caplog.text
    (root / "dlh" / "ritase.mapping.yaml").unlink()
    now[0] = 15.0
    assert check.current() is None  # no mapping of its own: the stream processor alone checks its events


def test_a_mapping_that_does_not_load_is_not_checked_or_raises_when_loaded(root: Path) -> None:
    edit_mapping(root, "from: tonase", "from: no_such_field")
    assert MappingCheck.of("dlh", "ritase", root) is None  # as before: logged, the stream processor refuses it too
    with pytest.raises(MappingError, match="no_such_field"):
        MappingCheck.load("dlh", "ritase", root)
    assert MappingCheck.load("dlh", "layanan", root) is None  # a common dataset: no mapping of its own


@pytest.fixture
def gateway_on(monkeypatch: pytest.MonkeyPatch, fakes: Fakes, tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    """The gateway on its mappings directory, where DLH has no ritase yet."""
    root = tmp_path / "mappings"
    copy_package(root)
    monkeypatch.setattr(gateway, "AvroSerde", fakes.serde)
    settings = Settings(namespace="kota", gateway_ack_timeout=0.2, mappings_dir=root)
    with TestClient(gateway.create_app(settings, Tokens.of(ISSUED))) as client:
        yield client, root
    assert fakes.on_the_loop == [], "a blocking call ran on the event loop"


def post(client: TestClient, *records: dict[str, Any]) -> Any:
    events = [{"key": r["id_ritase"], "version": 1, "record": r} for r in records]
    return client.post(URL, json={"events": events}, headers=AUTH)


def test_the_gateway_takes_up_an_applied_dataset_and_a_changed_mapping_without_a_restart(
    gateway_on: tuple[TestClient, Path], fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, root = gateway_on
    monkeypatch.setattr(configuration, "LOOK_SECONDS", 3600.0)
    assert post(client, trip(1)).status_code == 404

    apply_files(root, "avsc", "metadata.yaml", "mapping.yaml")  # an unknown dataset is looked for at once
    response = post(client, trip(1), trip(2, tonnes=-2.0))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["topic"] == "kota.agency.dlh.ritase.v1"
    assert [a["index"] for a in body["accepted"]] == [0]
    (rejected,) = body["rejected"]
    assert rejected["errors"][0]["field"] == "tonase" and "[out_of_range]" in rejected["errors"][0]["reason"]

    loads: list[str] = []
    load_mapping = mapping_check.load_mapping
    monkeypatch.setattr(mapping_check, "load_mapping", lambda *a: loads.append(a[1]) or load_mapping(*a))
    edit_mapping(root, "max: 30", "max: 5")
    assert post(client, trip(3)).status_code == 200  # looked at less than LOOK_SECONDS ago: not read again
    assert loads == []

    monkeypatch.setattr(configuration, "LOOK_SECONDS", 0.0)
    response = post(client, trip(4), trip(5, tonnes=4.0))
    assert [a["index"] for a in response.json()["accepted"]] == [1]
    assert response.json()["rejected"][0]["errors"][0]["field"] == "tonase"
    assert post(client, trip(6, tonnes=4.5)).status_code == 200
    assert loads == ["ritase"]  # once for the change, not at each request
    assert [key for _, key, _ in fakes.produced] == [b"RT-1", b"RT-3", b"RT-5", b"RT-6"]

    (root / "dlh" / "ritase.avsc").unlink()  # taken off the directory: no longer the agency's
    assert post(client, trip(7)).status_code == 404


def test_the_outbox_relay_marks_a_row_its_mapping_rejects_and_goes_on(
    fakes: Fakes, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The relay as ``satubus outbox relay`` makes it: a row the mapping rejects is marked with the field and the
    reason, never sent, and the rows after it are published."""
    root = tmp_path / "mappings"
    copy_package(root)
    relays: list[outbox.OutboxRelay] = []

    class Captured(outbox.OutboxRelay):
        async def run(self, stop: asyncio.Event) -> None:  # the relay as made, kept for the test to drive
            relays.append(self)

    monkeypatch.setattr(outbox, "OutboxRelay", Captured)
    monkeypatch.setattr(outbox, "AvroSerde", fakes.serde)
    monkeypatch.setattr(outbox, "registry_client", lambda settings: None)
    args = argparse.Namespace(agency="dinsos", dataset="penerima_bansos", system="simbansos", dsn="postgresql://x/y")
    asyncio.run(outbox._relay(Settings(mappings_dir=root), args))
    (relay,) = relays

    conn = FakeConnection(
        [
            row(1, payload(1)),
            row(2, payload(2) | {"kelurahan": "Kelurahan Antah"}),  # no such kelurahan in DKI Jakarta
            row(3, payload(3)),
        ]
    )
    assert asyncio.run(relay.relay_once(conn)) == 3
    assert conn.published == [1, 3]
    ((seq, reason),) = conn.rejected
    assert seq == 2 and "kelurahan: " in reason and "[unknown_region]" in reason
    assert reason.startswith("dinsos.penerima_bansos record rejected: ")
    assert len(fakes.produced) == 2  # the rejected row was never sent
    assert asyncio.run(relay.relay_once(conn)) == 0  # and it does not come back: nothing blocks the relay
