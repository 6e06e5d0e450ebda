"""The launcher against the real services it runs."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from satubus.deploy.local.stack import Stack, StackError, alive, mvn
from satubus.settings import Settings

SATUBUS = str(Path(sys.executable).with_name("satubus"))


def test_status_shows_every_service_ready_with_port_and_pid(stack: Stack) -> None:
    result = subprocess.run([SATUBUS, "stack", "status"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    services, processes = result.stdout.split("\n\n")
    lines = {line.split()[0]: line.split() for line in services.splitlines()[1:]}
    assert set(lines) == {"kafka", "registry", "postgres", "prometheus"}
    # The bus's own processes: none runs here, and each says so.
    assert [line.split()[0] for line in processes.splitlines()[1:]] == ["stream", "materialize", "api", "gateway"]
    assert all(line.endswith("not running") for line in processes.splitlines()[1:])
    for name, (_, port, pid, state) in lines.items():
        assert state == "ready", name
        assert int(port) > 1024 and int(pid) > 1


def test_a_second_up_is_a_no_op(stack: Stack) -> None:
    pids = {row[0]: row[2] for row in stack.status()}
    result = subprocess.run([SATUBUS, "stack", "up"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "starting" not in result.stdout
    assert {row[0]: row[2] for row in stack.status()} == pids


def test_down_leaves_no_process_and_up_brings_back_the_same_state(stack: Stack) -> None:
    pids = [pid for _, _, pid, _ in stack.status()]
    with urllib.request.urlopen(f"{stack.registry.url}/subjects", timeout=10) as response:
        subjects = set(json.load(response))
    assert subjects  # the suite registered the contracts
    try:
        down = subprocess.run([SATUBUS, "stack", "down"], capture_output=True, text=True, timeout=180)
        assert down.returncode == 0, down.stdout + down.stderr
        assert not [pid for pid in pids if pid is not None and alive(pid)]
        state = str(Settings().state_dir.resolve())
        leftover = subprocess.run(
            ["pgrep", "-af", f"{state}/(kafka|registry|postgres|prometheus)"], capture_output=True, text=True
        )
        assert leftover.stdout == "", leftover.stdout
    finally:  # later tests need the stack
        up = subprocess.run([SATUBUS, "stack", "up"], capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    assert [state for *_, state in stack.status()] == ["ready"] * 4
    with urllib.request.urlopen(f"{stack.registry.url}/subjects", timeout=10) as response:
        assert set(json.load(response)) == subjects  # the registry keeps its schemas in PostgreSQL


def test_the_registry_enforces_backward_compatibility(stack: Stack) -> None:
    with urllib.request.urlopen(f"{stack.registry.url}/config", timeout=10) as response:
        assert json.load(response)["compatibilityLevel"] == "BACKWARD"


def test_a_failed_download_says_what_to_check() -> None:
    with pytest.raises(StackError, match=r"from Maven Central failed\. Check that Maven Central is reachable"):
        mvn(["dependency:get", "-Dartifact=id.go.jakarta.satubus:no-such-artifact:0.0.1"], "a missing artifact")
