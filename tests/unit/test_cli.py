import subprocess
import sys
from pathlib import Path

import pytest

from satubus.cli import build_parser

COMMANDS = [
    "stack",
    "topics",
    "schemas",
    "migrate",
    "simulate",
    "outbox",
    "gateway",
    "upload",
    "stream",
    "dlq",
    "materialize",
    "api",
    "demo",
]


def test_every_sub_command_is_listed() -> None:
    choices = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert sorted(choices) == sorted(COMMANDS)


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)])
def test_help_works_through_the_installed_console_script(command: list[str]) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("satubus")), *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: satubus" in result.stdout


def test_a_missing_sub_command_is_a_usage_error() -> None:
    result = subprocess.run([sys.executable, "-m", "satubus.cli"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
