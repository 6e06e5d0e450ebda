"""The command line: every sub-command reaches a real handler, loads nothing it does not run, and starts with
valid settings or exits 2 saying what to fix. No service is needed."""

from __future__ import annotations

import argparse
import ast
import inspect
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

import faust
import pytest
from pydantic import SecretStr

from satubus import cli, metrics
from satubus.cli import Lazy, build_parser
from satubus.settings import Settings, get_settings

COMMANDS = [
    "stack",
    "catalogue",
    "dataset",
    "topics",
    "acl",
    "agency",
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
    "api-key",
    "erase",
    "rebuild",
    "audit",
    "k8s",
    "demo",
]


def test_every_sub_command_is_listed() -> None:
    choices = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert sorted(choices) == sorted(COMMANDS)


def _sub_parsers() -> dict[str, argparse.ArgumentParser]:
    action = build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    return dict(action.choices)  # type: ignore[arg-type]


@pytest.mark.parametrize("command", [[], *([c] for c in sorted(_sub_parsers()))])
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


def _imported_by(handler: Callable[..., Any]) -> list[str]:
    """What a handler of satubus/cli.py imports when it runs (``from m import f`` in its body); each must exist."""
    assert handler.__module__ == "satubus.cli", handler
    names = []
    for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(handler)))):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            module = import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{handler.__name__}: {node.module}.{alias.name} does not exist"
                names.append(f"{node.module}.{alias.name}")
    return names


@pytest.mark.parametrize("command", sorted(_sub_parsers()))
def test_every_sub_command_reaches_a_real_handler(command: str) -> None:
    handler = _sub_parsers()[command].get_default("handler")
    assert callable(handler), f"satubus {command} has no handler"
    inspect.signature(handler).bind(argparse.Namespace(), object())  # main calls it with (args, settings)
    if isinstance(handler, Lazy):
        target = getattr(import_module(handler.module), handler.function, None)
        assert callable(target), f"satubus {command}: {handler.module}.{handler.function} does not exist"
        inspect.signature(target).bind(argparse.Namespace(), object())
    else:
        assert _imported_by(handler), f"satubus {command}: {handler} imports nothing to check"


def test_building_the_parser_imports_no_component() -> None:
    code = "import sys; from satubus.cli import build_parser; build_parser(); print(*sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    heavy = ("fastapi", "asyncpg", "faust", "confluent_kafka", "aiokafka", "prometheus_client", "uvicorn")
    components = ("satubus.producers", "satubus.consumers", "satubus.streams", "satubus.deploy")
    loaded = [m for m in result.stdout.split() if m.split(".")[0] in heavy or m.startswith(components)]
    assert not loaded, f"building the parser imported {loaded}"


@pytest.fixture
def fresh_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty env file named by SATUBUS_ENV_FILE, settings read anew, and ``satubus topics`` doing nothing."""
    env_file = tmp_path / "test.env"
    env_file.write_text("")
    monkeypatch.setenv("SATUBUS_ENV_FILE", str(env_file))
    monkeypatch.delenv("SATUBUS_LOG_LEVEL", raising=False)
    get_settings.cache_clear()
    yield env_file
    get_settings.cache_clear()


def _main(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, list[Settings], list[object]]:
    """Run ``satubus <argv>`` in this process: its exit code, the settings ``topics`` ran with, the log levels set."""
    ran: list[Settings] = []
    levels: list[object] = []
    monkeypatch.setattr(cli, "_topics", lambda args, settings: ran.append(settings) or 0)
    monkeypatch.setattr(logging, "basicConfig", lambda **kwargs: levels.append(kwargs["level"]))
    return cli.main(argv), ran, levels


def test_the_log_level_comes_from_the_env_file(fresh_settings: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh_settings.write_text("SATUBUS_LOG_LEVEL=warning\n")
    code, ran, levels = _main(["topics"], monkeypatch)
    assert (code, levels) == (0, ["WARNING"])
    assert ran[0].log_level == "WARNING"


def test_verbose_forces_debug(fresh_settings: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh_settings.write_text("SATUBUS_LOG_LEVEL=ERROR\n")
    assert _main(["-v", "topics"], monkeypatch)[::2] == (0, [logging.DEBUG])


def test_an_unknown_setting_exits_2_naming_the_closest_one(
    fresh_settings: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SATUBUS_TOPIC_PARTITONS", "8")
    code, ran, _ = _main(["topics"], monkeypatch)
    assert (code, ran) == (2, [])
    assert "SATUBUS_TOPIC_PARTITONS (environment) is not a setting: did you mean SATUBUS_TOPIC_PARTITIONS?" in (
        capsys.readouterr().err
    )


def test_an_invalid_setting_exits_2_through_the_console_script(tmp_path: Path) -> None:
    env = {**os.environ, "SATUBUS_LOG_LEVEL": "loud"}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("satubus")), "topics"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert "SATUBUS_LOG_LEVEL: Input should be 'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'" in result.stderr
    assert "Traceback" not in result.stderr


def _stream(argv: list[str], settings: Settings, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Run ``satubus stream <argv>`` up to the worker's first step; the data directories it started with."""
    from satubus.streams import run

    started: list[Path] = []

    class Worker:  # faust's, up to what it does first when it starts (App.on_first_start)
        def __init__(self, app: faust.App, **options: object) -> None:
            self.app = app

        def execute_from_commandline(self) -> None:
            self.app._create_directories()
            started.append(Path(self.app.conf.datadir))

    def build_app(settings: Settings) -> faust.App:  # the real one asks the registry for the schemas' ids
        return faust.App("fresh", store="memory://", datadir=str(settings.state_dir / "streams"))

    monkeypatch.setattr(run, "build_app", build_app)
    monkeypatch.setattr(faust, "Worker", Worker)
    monkeypatch.setattr(metrics, "serve", lambda *args, **kwargs: None)
    assert run.main(build_parser().parse_args(["stream", *argv]), settings) == 0
    return started


def test_stream_starts_in_a_fresh_clone_without_a_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(pseudonym_key=SecretStr("k"), state_dir=Path(".stack"))
    monkeypatch.chdir(tmp_path)  # an empty working directory: no .stack yet
    assert _stream([], settings, monkeypatch) == [Path(".stack/streams")]
    assert (tmp_path / ".stack" / "streams").is_dir()


def test_stream_loglevel_sets_the_log_level(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    before = root.level
    try:
        root.setLevel(logging.WARNING)
        _stream(["--loglevel", "debug"], Settings(pseudonym_key=SecretStr("k"), state_dir=tmp_path), monkeypatch)
        assert root.level == logging.DEBUG
    finally:
        root.setLevel(before)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["stream", "--loglevel", "loud"])


def test_the_onboarding_sheet_is_in_bahasa_indonesia_and_holds_what_the_agency_needs() -> None:
    from satubus.credentials import onboarding_sheet
    from satubus.schemas.catalogue import agency
    from satubus.settings import Settings
    from satubus.tokens import issue

    issued, reader = issue(), issue()
    sheet = onboarding_sheet(agency("bpbd"), Settings(namespace="kota"), "kota.agency-bpbd", "s3cret", issued, reader)
    assert "hanya ditampilkan SEKALI" in sheet and "Topic yang boleh Anda tulis" in sheet
    assert f"Authorization: Bearer {issued.token}" in sheet and "s3cret" in sheet
    assert f"Authorization: Bearer {reader.token}" in sheet and "/v1/agencies/bpbd/rejections" in sheet
    assert "kota.agency.bpbd.kejadian.v1" in sheet and "kota.agency.bpbd.layanan.v1" in sheet
    assert "satubus dataset init bpbd" in sheet and "docs/id/onboarding.md" in sheet
