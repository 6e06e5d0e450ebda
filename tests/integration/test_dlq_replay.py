"""Dead letters after a mapping gap, inspected, then replayed once the mapping is fixed: nothing is lost."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from satubus.producers.simulate import Simulation, simulate
from satubus.schemas.envelope import AGENCIES_DIR
from satubus.settings import Settings
from tests.integration.conftest import Pipeline, process_env
from tests.integration.test_dukcapil_end_to_end import scrape
from tests.integration.test_streams_against_truth import table

RESIDENTS = 400
GAP = "PEREMPUAN: FEMALE, "  # the broken mapping does not know Dukcapil's code for women


@pytest.fixture(scope="module")
def mappings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mappings") / "agencies"
    shutil.copytree(AGENCIES_DIR, root)
    path = root / "dukcapil" / "penduduk.mapping.yaml"
    assert GAP in path.read_text()
    path.write_text(path.read_text().replace(GAP, ""))
    return root


@pytest.fixture(scope="module")
def pipeline_env(mappings: Path) -> dict[str, str]:
    return {"SATUBUS_MAPPINGS_DIR": str(mappings)}


def satubus(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("satubus")), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=process_env(settings),
    )


def wait_for(condition: object, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:.0f}s"
        time.sleep(0.5)


def events_in(settings: Settings) -> float:
    try:
        return scrape(settings.stream_metrics_port).get("satubus_events_in_total", 0)
    except OSError:
        return -1


def test_dead_letters_are_inspected_and_replayed_after_the_fix(
    bus: Settings, pipeline: Pipeline, mappings: Path
) -> None:
    simulation: Simulation = simulate(bus, residents=RESIDENTS, seed=4, dirty=0, agencies={"dukcapil"})
    women = [r for r in simulation.world.residents if r.sex == "FEMALE"]
    wait_for(lambda: events_in(bus) >= RESIDENTS, "consuming every event")
    wait_for(
        lambda: len(asyncio.run(table(bus, "person"))) >= RESIDENTS - len(women),
        "materializing the men",
    )

    inspected = satubus(bus, "dlq", "inspect", "--reason", "unknown_code", "--json", "--limit", "0")
    assert inspected.returncode == 0, inspected.stderr
    lines = inspected.stdout.splitlines()
    assert len(lines) == len(women)
    assert f"{len(women)} dead letters match" in inspected.stderr
    assert not any(r.nik in inspected.stdout for r in simulation.world.residents)  # previews are masked

    path = mappings / "dukcapil" / "penduduk.mapping.yaml"
    path.write_text(path.read_text().replace("LAKI-LAKI: MALE, ", "LAKI-LAKI: MALE, " + GAP))  # the fix
    # Replay once the restarted worker is ready. Replaying while it was still joining the group lost one message
    # in our runs (see the issue note): that start-up race is under investigation, not tested here.
    pipeline.restart("stream", ready_line=b"Worker ready")
    replayed = satubus(bus, "dlq", "replay", "--reason", "unknown_code")
    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed {len(women)} dead letters" in replayed.stdout

    expected = {k: v.model_dump() for k, v in simulation.truth.persons.items()}
    wait_for(lambda: len(asyncio.run(table(bus, "person"))) >= RESIDENTS, "the replayed rows")
    rows = asyncio.run(table(bus, "person"))
    assert rows == expected  # replayed events keep their event_id: source_event_id as if never rejected

    again = satubus(bus, "dlq", "replay", "--reason", "unknown_code")  # a second replay changes nothing
    assert again.returncode == 0
    wait_for(
        lambda: scrape(bus.stream_metrics_port).get("satubus_events_dropped_total", 0) >= len(women),
        "dropping the second replay as duplicates",
    )
    assert asyncio.run(table(bus, "person")) == rows
