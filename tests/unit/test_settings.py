"""Every ``SATUBUS_*`` variable is a setting (or explicitly not one), wherever it is set; mistakes are refused."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from satubus.errors import ConfigurationError
from satubus.settings import NOT_SETTINGS, Settings, get_settings

ROOT = Path(__file__).resolve().parents[2]
MISSPELT_ON_PURPOSE = {"tests/unit/test_settings.py", "tests/unit/test_cli.py"}  # to test that they are refused


@pytest.fixture
def env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty env file named by SATUBUS_ENV_FILE; a test writes its lines."""
    path = tmp_path / "test.env"
    path.write_text("")
    monkeypatch.setenv("SATUBUS_ENV_FILE", str(path))
    return path


def test_the_log_level_is_a_setting_and_may_be_in_the_env_file(env_file: Path) -> None:
    env_file.write_text("SATUBUS_LOG_LEVEL=warning\n")
    assert Settings().log_level == "WARNING"


def test_the_log_level_defaults_to_info(env_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SATUBUS_LOG_LEVEL", raising=False)
    assert Settings().log_level == "INFO"


def test_an_unknown_log_level_is_refused(env_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATUBUS_LOG_LEVEL", "loud")
    with pytest.raises(ConfigurationError, match=r"SATUBUS_LOG_LEVEL.*'DEBUG', 'INFO', 'WARNING', 'ERROR'.*'LOUD'"):
        Settings()


def test_a_misspelt_variable_in_the_environment_is_refused_with_the_closest_name(
    env_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SATUBUS_TOPIC_PARTITONS", "8")
    with pytest.raises(ConfigurationError, match=r"SATUBUS_TOPIC_PARTITONS \(environment\).*SATUBUS_TOPIC_PARTITIONS"):
        Settings()


def test_a_misspelt_variable_in_the_env_file_is_refused_with_the_closest_name(env_file: Path) -> None:
    env_file.write_text("SATUBUS_PSEUDONYM_KEY=k\nSATUBUS_STATEDIR=/tmp/x\n")
    with pytest.raises(
        ConfigurationError, match=rf"SATUBUS_STATEDIR \({re.escape(str(env_file))}\).*SATUBUS_STATE_DIR"
    ):
        Settings()


def test_every_unknown_name_is_reported_at_once(env_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATUBUS_KAFKA_BOOTSRAP", "x:1")
    env_file.write_text("SATUBUS_SOMETHING_ELSE_ENTIRELY=1\n")
    with pytest.raises(ConfigurationError) as raised:
        Settings()
    message = str(raised.value)
    assert "SATUBUS_KAFKA_BOOTSRAP (environment) is not a setting: did you mean SATUBUS_KAFKA_BOOTSTRAP?" in message
    assert "SATUBUS_SOMETHING_ELSE_ENTIRELY" in message
    assert "satubus/settings.py" in message


def test_variables_that_are_not_settings_are_allowed_in_the_environment(
    env_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in NOT_SETTINGS:
        if name != "SATUBUS_ENV_FILE":
            monkeypatch.setenv(name, "x")
    Settings()


def test_variables_that_are_not_settings_are_refused_in_the_env_file(env_file: Path) -> None:
    env_file.write_text("SATUBUS_PG_BIN=/opt/pg/bin\n")
    with pytest.raises(ConfigurationError, match=r"SATUBUS_PG_BIN .* is read from the environment only"):
        Settings()


def test_names_are_not_case_sensitive(env_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("satubus_topic_partitions", "7")
    assert Settings().topic_partitions == 7


def test_the_env_file_is_the_one_named_when_the_settings_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first.env", tmp_path / "second.env"
    first.write_text("SATUBUS_TOPIC_PARTITIONS=7\n")
    second.write_text("SATUBUS_TOPIC_PARTITIONS=9\n")
    monkeypatch.setenv("SATUBUS_ENV_FILE", str(first))
    assert Settings().topic_partitions == 7
    monkeypatch.setenv("SATUBUS_ENV_FILE", str(second))
    assert Settings().topic_partitions == 9
    monkeypatch.delenv("SATUBUS_ENV_FILE")
    assert Settings().topic_partitions == 4


def test_get_settings_reads_the_env_file_named_at_its_first_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "late.env"
    path.write_text("SATUBUS_TOPIC_PARTITIONS=5\n")
    monkeypatch.setenv("SATUBUS_ENV_FILE", str(path))
    get_settings.cache_clear()
    try:
        assert get_settings().topic_partitions == 5
    finally:
        get_settings.cache_clear()


def test_an_explicit_env_file_wins_over_satubus_env_file(env_file: Path, tmp_path: Path) -> None:
    env_file.write_text("SATUBUS_TOPIC_PARTITIONS=7\n")
    other = tmp_path / "other.env"
    other.write_text("SATUBUS_TOPIC_PARTITIONS=3\n")
    assert Settings(_env_file=other).topic_partitions == 3
    assert Settings(_env_file=None).topic_partitions == 4


def test_the_environment_wins_over_the_env_file(env_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file.write_text("SATUBUS_TOPIC_PARTITIONS=7\n")
    monkeypatch.setenv("SATUBUS_TOPIC_PARTITIONS", "2")
    assert Settings().topic_partitions == 2


def test_a_missing_env_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATUBUS_ENV_FILE", str(tmp_path / "nowhere.env"))
    with pytest.raises(ConfigurationError, match=r"SATUBUS_ENV_FILE names .*nowhere\.env.* does not exist"):
        Settings()


def test_an_invalid_value_is_a_configuration_error_naming_the_variable(
    env_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SATUBUS_TOPIC_PARTITIONS", "many")
    with pytest.raises(ConfigurationError, match=r"SATUBUS_TOPIC_PARTITIONS: .*integer.*'many'"):
        Settings()


def test_an_invalid_secret_is_refused_without_showing_it(env_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATUBUS_GATEWAY_TOKENS", "bpbd=very-secret-token")
    with pytest.raises(ConfigurationError, match="SATUBUS_GATEWAY_TOKENS") as raised:
        Settings()
    assert "very-secret-token" not in str(raised.value)


def test_the_local_env_file_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATUBUS_ENV_FILE", str(ROOT / "deploy" / "local" / "dev.env"))
    settings = Settings()
    assert settings.pseudonym_key is not None
    assert settings.log_level == os.environ.get("SATUBUS_LOG_LEVEL", "INFO").upper()


def _used_names() -> dict[str, set[str]]:
    """Every SATUBUS_* name the repository mentions (code, env files, Makefile, docs), with where."""
    skip = {".git", ".venv", ".stack", "__pycache__", "satubus.egg-info"}
    used: dict[str, set[str]] = {}
    for folder, dirs, files in os.walk(ROOT):  # not into satubus/'s symlinks to the top-level folders
        dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            path = Path(folder) / name
            if path.suffix not in {".py", ".env", ".md", ".yml", ".yaml", ".toml", ".sh"} and name != "Makefile":
                continue
            if str(path.relative_to(ROOT)) in MISSPELT_ON_PURPOSE:
                continue
            for found in re.findall(r"\bSATUBUS_[A-Z][A-Z0-9_]*[A-Z0-9]\b", path.read_text(errors="replace")):
                used.setdefault(found, set()).add(str(path.relative_to(ROOT)))
    return used


def test_every_satubus_name_the_repository_uses_is_a_setting_or_explicitly_not_one() -> None:
    known = {f"SATUBUS_{field.upper()}" for field in Settings.model_fields} | NOT_SETTINGS
    used = _used_names()
    assert "SATUBUS_PSEUDONYM_KEY" in used  # the scan works
    unknown = {name: sorted(where) for name, where in used.items() if name not in known}
    assert not unknown, f"neither a Settings field nor in NOT_SETTINGS: {unknown}"


def test_a_name_without_the_prefix_in_the_env_file_is_refused_with_the_closest_name(env_file: Path) -> None:
    env_file.write_text("LOG_LEVEL=debug\n")
    with pytest.raises(
        ConfigurationError, match=r"LOG_LEVEL \(.*\) is not a setting: did you mean SATUBUS_LOG_LEVEL\?"
    ):
        Settings()
