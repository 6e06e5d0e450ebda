"""A new kind of record onboarded without Python, against the real stack: DLH's waste-collection trips
(docs/examples/dlh-ritase) go from ``satubus dataset init`` to rows in their own table, and the agency reads the
rejected rows in the report of its upload, and what the bus dead-lettered later through the API, with its own key.

The stream worker, the materializer and the API run from the start and are never restarted by hand. ``apply``
installs the dataset's files where a user's go, in schemas/agencies/dlh/; they are removed at the end.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from satubus.consumers.migrate import recreate
from satubus.database import dsn as owner_dsn
from satubus.producers.publisher import AgencyPublisher, Change
from satubus.registry import registry_client
from satubus.schemas.catalogue import load_catalogue
from satubus.schemas.envelope import AGENCIES_DIR
from satubus.serde import AvroSerde
from satubus.settings import Settings
from tests.integration.conftest import Pipeline, _reset_topics, run_satubus

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "dlh-ritase"
FOLDER = AGENCIES_DIR / "dlh"
FILES = ("ritase.avsc", "ritase.mapping.yaml", "ritase.metadata.yaml")
PATIENCE = 180.0  # seconds for the rows to reach the view


@pytest.fixture
def clean_bus(bus: Settings) -> Iterator[Settings]:
    """A clean bus, and no ritase files left behind whatever happens."""
    assert not any((FOLDER / name).exists() for name in FILES), f"{FOLDER} already has ritase files: remove them"
    _reset_topics(bus)
    asyncio.run(recreate(owner_dsn(bus)))
    try:
        yield bus
    finally:
        for name in FILES:
            (FOLDER / name).unlink(missing_ok=True)
        load_catalogue.cache_clear()


def satubus(settings: Settings, *args: str, expect: int = 0) -> str:
    done = run_satubus(settings, *args)
    assert done.returncode == expect, f"satubus {' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


async def rows(settings: Settings) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(owner_dsn(settings))
    try:
        return [dict(r) for r in await conn.fetch("SELECT * FROM datasets.dlh__ritase ORDER BY trip_id")]
    except asyncpg.UndefinedTableError:  # not applied yet
        return []
    finally:
        await conn.close()


def test_waste_collection_trips_from_a_sample_to_rows_in_the_view_without_a_restart(
    clean_bus: Settings, tmp_path: Path
) -> None:
    settings = clean_bus
    logs = settings.state_dir.resolve() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline(settings, logs)  # running before the dataset exists, and never restarted by hand
    pipeline.start("stream")
    pipeline.start("materialize")
    pipeline.start("api")
    stream_log = pipeline.log("stream")
    try:
        steps = onboard(settings, tmp_path, pipeline)
        found = asyncio.run(rows(settings))
        letters = letters_of(settings)
        rejected_id = publish_without_the_check(settings)
        own, others, nobody = rejections_read(settings, pipeline, rejected_id)
        per_day, gambir, gambir_anonymous = aggregate_read(settings)
        assert pipeline.processes["stream"].poll() is None  # the same process (same pid) took the dataset up
        assert b"configuration changed" in stream_log.read_bytes()
    finally:
        codes = pipeline.stop()
    assert all(code == 0 for code in codes.values()), f"unclean exit {codes}; see {logs}"

    assert [r["trip_id"] for r in found] == ["RT-2026-000101", "RT-2026-000102", "RT-2026-000103"]
    first = found[0]
    assert (first["kelurahan_code"], first["waste_kind"], first["tonnes"]) == ("31.71.01.1001", "ORGANIC", 7.4)
    assert first["departed_at"].isoformat() == "2026-11-29T22:10:00+00:00"  # 05:10 WIB
    assert len(first["driver_id"]) == 64 and "3171011505850001" not in json.dumps(found, default=str)
    assert letters == []  # nothing the mapping rejects reached the bus through the upload
    (rejection,) = own  # what a Kafka client that does not check sent, dead-lettered by the bus
    assert (rejection["event_id"], rejection["reason"], rejection["dataset"]) == (rejected_id, "out_of_range", "ritase")
    assert "tonase" in rejection["message"] and "3174065207900003" not in json.dumps(own)
    assert (others, nobody) == (403, 401)  # another agency's key, no key
    # The mapping's aggregate: per kelurahan and local day of departure, the trips and their tonnage.
    assert per_day["total"] == 3
    assert {"kelurahan_code": "31.71.01.1001", "period": "2026-11-30", "records": 1, "tonnes": 7.4} in per_day["items"]
    # The same, among every aggregate of Gambir; without a key, the terbatas dataset's is withheld.
    assert {"dataset": "dlh.ritase", "aggregate": "tonnes_per_day", "per": "day"} | {
        "items": [{"period": "2026-11-30", "records": 1, "tonnes": 7.4}]
    } in gambir["aggregates"]
    assert gambir_anonymous["withheld"] == ["dlh.ritase.tonnes_per_day"] and gambir_anonymous["aggregates"] == []
    assert steps[-1][1] < 600, f"onboarding took {steps[-1][1]:.0f}s, more than 10 minutes"
    print("onboarding, seconds from init:", ", ".join(f"{name} {at:.1f}" for name, at in steps))


def onboard(settings: Settings, tmp_path: Path, pipeline: Pipeline) -> list[tuple[str, float]]:
    """The steps of docs/onboarding.md, as the agency's IT staff run them; the time each one ended."""
    started = time.monotonic()
    steps: list[tuple[str, float]] = []
    sample, drafts = tmp_path / "ritase.csv", tmp_path / "drafts"
    shutil.copy(EXAMPLE / "ritase.csv", sample)

    out = satubus(settings, "dataset", "init", "dlh", "ritase", "--sample", str(sample), "--dir", str(drafts))
    assert "REVIEW kelurahan" in out and "REVIEW nik_pengemudi" in out
    out = satubus(settings, "dataset", "apply", "dlh", "ritase", "--dir", str(drafts), expect=1)
    assert "ISI:" in out  # a draft is not applied
    steps.append(("init", time.monotonic() - started))
    for name in FILES:  # the review: docs written, guesses checked, value rules added
        shutil.copy(EXAMPLE / name, drafts / "dlh" / name)
    mapping = drafts / "dlh" / "ritase.mapping.yaml"
    out = satubus(settings, "dataset", "test", str(mapping), "--sample", str(sample), expect=1)
    assert "6 row(s): 3 ok, 3 rejected" in out
    steps.append(("review and test", time.monotonic() - started))
    out = satubus(settings, "dataset", "apply", "dlh", "ritase", "--dir", str(drafts))
    assert "datasets.dlh__ritase up to date" in out and "ritase.mapping.yaml" in out
    out = satubus(settings, "dataset", "apply", "dlh", "ritase", "--dir", str(drafts))  # again: nothing to do
    assert "installed into" in out and ": unchanged" in out
    steps.append(("apply", time.monotonic() - started))

    # The upload puts each row through the mapping first: the agency gets the three rejections in its report at once.
    out = satubus(
        settings, "upload", "--agency", "dlh", "--dataset", "ritase", "--key", "id_ritase", str(sample), expect=1
    )
    assert "3 rows published to test.agency.dlh.ritase.v1, 3 rejected" in out
    report = Path(f"{sample}.errors.csv").read_text(encoding="utf-8")
    for reason in ("[out_of_range]", "[failed_rule]", "[unknown_region]"):
        assert reason in report, report
    steps.append(("upload", time.monotonic() - started))
    deadline = time.monotonic() + PATIENCE
    while len(found := asyncio.run(rows(settings))) < 3:
        pipeline.assert_running()
        assert time.monotonic() < deadline, f"{len(found)} of 3 trips in the view after {PATIENCE:.0f}s"
        time.sleep(1)
    steps.append(("rows in the view", time.monotonic() - started))
    return steps


def publish_without_the_check(settings: Settings) -> str:
    """A trip with a negative tonnage from the agency's own Kafka client, which does not run the mapping: the bus
    dead-letters it. Returns its event id."""
    trip = {
        "id_ritase": "RT-2026-000199",
        "no_polisi": "B 9555 PQC",
        "kode_tps": "TPS-MTD-03",
        "kelurahan": "Menteng Dalam",
        "nik_pengemudi": "3174065207900003",
        "jenis_sampah": "ORGANIK",
        "tonase": -3.0,
        "waktu_berangkat": "2026-11-30 11:00",
        "waktu_tiba": "2026-11-30 12:10",
    }
    with (
        AvroSerde(registry_client(settings)) as serde,
        AgencyPublisher(settings, serde, agency="dlh", dataset="ritase", system="timbangan") as publisher,
    ):
        (outcome,) = publisher.publish_batch([Change(key=trip["id_ritase"], record=trip, version=1)])
    assert outcome.status == "published", outcome
    return str(outcome.event_id)


def rejections_read(settings: Settings, pipeline: Pipeline, event_id: str) -> tuple[list[dict[str, Any]], int, int]:
    """dlh's rejections once the one of ``event_id`` is there, read with dlh's key (``satubus api-key issue
    --agency``); and the status answered to bpbd's key and to no key."""
    keys = {}
    for agency in ("dlh", "bpbd"):
        out = satubus(settings, "api-key", "issue", f"{agency}-it", "--agency", agency, "--by", "tests")
        keys[agency] = {"Authorization": "Bearer " + out.split("Authorization: Bearer ", 1)[1].split()[0]}
    url = f"http://127.0.0.1:{settings.api_port}/v1/agencies/dlh/rejections"
    deadline = time.monotonic() + PATIENCE
    with httpx.Client(timeout=30) as client:
        while True:
            pipeline.assert_running()
            try:
                answer = client.get(url, headers=keys["dlh"])
                if answer.status_code == 200 and any(r["event_id"] == event_id for r in answer.json()["items"]):
                    break
            except httpx.TransportError:  # the API still starting
                pass
            assert time.monotonic() < deadline, f"dlh's rejection not readable after {PATIENCE:.0f}s"
            time.sleep(1)
        while (others := client.get(url, headers=keys["bpbd"]).status_code) == 401:  # the API rereads keys every 2 s
            assert time.monotonic() < deadline, f"bpbd's key not known to the API after {PATIENCE:.0f}s"
            time.sleep(1)
        nobody = client.get(url).status_code
    return answer.json()["items"], others, nobody


def aggregate_read(settings: Settings) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The aggregate tonnes_per_day of the example's mapping, with a key that may read a terbatas dataset; Gambir's
    aggregates with that key, and without one."""
    out = satubus(settings, "api-key", "issue", "dlh-analyst", "--scope", "read:person", "--by", "tests")
    headers = {"Authorization": "Bearer " + out.split("Authorization: Bearer ", 1)[1].split()[0]}
    url = f"http://127.0.0.1:{settings.api_port}/v1/datasets/dlh/ritase/aggregates/tonnes_per_day"
    deadline = time.monotonic() + 30  # the API reads new keys every few seconds
    while (answer := httpx.get(url, headers=headers, timeout=30)).status_code == 401:
        assert time.monotonic() < deadline, "the API did not take the new key up"
        time.sleep(0.5)
    assert answer.status_code == 200, answer.text
    gambir = f"http://127.0.0.1:{settings.api_port}/v1/regions/31.71.01.1001/aggregates"
    with_key, without = httpx.get(gambir, headers=headers, timeout=30), httpx.get(gambir, timeout=30)
    assert with_key.status_code == without.status_code == 200, (with_key.text, without.text)
    return answer.json(), with_key.json(), without.json()


def letters_of(settings: Settings) -> list[dict[str, Any]]:
    """dlh's dead letters of ritase, as the agency reads them (``satubus dlq inspect --agency``)."""
    out = satubus(settings, "dlq", "inspect", "--agency", "dlh", "--json", "--limit", "0")
    letters = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [letter for letter in letters if "ritase" in json.dumps(letter)]
