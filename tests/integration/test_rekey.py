"""Re-keying the pseudonyms on a small city (README: "The pseudonym key"): the pipeline stopped, ``satubus rebuild
--yes``, the stream processor started again under a new key file. Every resident is then in the view under the
person_id of the new key only, and the unified topic's records carry the new key's id."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import pytest

from satubus.producers.simulate import Simulation, simulate
from satubus.pseudonym_key import KEY_ID_HEADER, key_id
from satubus.schemas.pseudonym import person_id
from satubus.schemas.topics import UNIFIED_PERSON
from satubus.settings import Settings
from tests.integration.conftest import PSEUDONYM_KEY, Pipeline, run_satubus
from tests.integration.test_dukcapil_end_to_end import read_topic
from tests.integration.test_streams_against_truth import table

RESIDENTS = 40


def _wait_for_people(settings: Settings, pipeline: Pipeline, count: int) -> set[str]:
    deadline = time.monotonic() + 300
    while len(people := set(asyncio.run(table(settings, "person")))) < count:
        pipeline.assert_running()
        assert time.monotonic() < deadline, f"{len(people)} of {count} persons in the view after 300s"
        time.sleep(0.5)
    return people


@pytest.fixture(scope="module")
def city(bus: Settings, pipeline: Pipeline) -> Simulation:
    simulation = simulate(bus, residents=RESIDENTS, seed=2027, dirty=0, agencies={"dukcapil"})
    _wait_for_people(bus, pipeline, len(simulation.truth.persons))
    return simulation


def test_a_rebuild_under_a_new_key_gives_every_resident_the_new_person_id_only(
    bus: Settings, pipeline: Pipeline, city: Simulation, tmp_path: Path
) -> None:
    residents = [r for r in city.world.residents if person_id(PSEUDONYM_KEY.encode(), r.nik) in city.truth.persons]
    old = {person_id(PSEUDONYM_KEY.encode(), r.nik) for r in residents}
    assert set(asyncio.run(table(bus, "person"))) == old

    assert all(code == 0 for code in pipeline.stop().values())
    refused = run_satubus(bus, "rebuild")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    rebuilt = run_satubus(bus, "rebuild", "--yes")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert asyncio.run(table(bus, "person")) == {}

    new_key = secrets.token_bytes(48)
    key_file = tmp_path / "pseudonym.key"
    key_file.write_bytes(new_key)
    pipeline.env["SATUBUS_PSEUDONYM_KEY_FILE"] = str(key_file)
    pipeline.start("stream")
    pipeline.start("materialize")

    people = _wait_for_people(bus, pipeline, len(residents))
    assert people == {person_id(new_key, r.nik) for r in residents}
    assert not people & old
    stamps = {dict(m.headers() or []).get(KEY_ID_HEADER) for m in read_topic(bus, UNIFIED_PERSON.name)}
    assert stamps == {key_id(new_key).encode()}
