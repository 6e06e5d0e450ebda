from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from pydantic import SecretStr

from satubus import pseudonym_key
from satubus.errors import ConfigurationError
from satubus.settings import Settings


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)


def test_a_key_file_of_random_bytes_gives_the_key_and_its_id(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_bytes(secrets.token_bytes(48) + b"\n")
    key = pseudonym_key.load(_settings(pseudonym_key_file=path))
    assert key.secret == path.read_bytes().strip()
    assert key.key_id == pseudonym_key.key_id(key.secret) and len(key.key_id) == 16
    assert key.secret.hex() not in repr(key)

    other = tmp_path / "other"
    other.write_bytes(secrets.token_bytes(48))
    assert pseudonym_key.load(_settings(pseudonym_key_file=other)).key_id != key.key_id


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({}, "no pseudonym key"),
        ({"pseudonym_key": SecretStr(secrets.token_hex(32))}, "for the local stack only"),
        ({"pseudonym_key": SecretStr("short-but-local"), "env": "local"}, "fewer than 32"),
        ({"pseudonym_key_file": Path("/nonexistent/key")}, "cannot read SATUBUS_PSEUDONYM_KEY_FILE"),
    ],
)
def test_a_missing_short_or_inline_key_is_refused_saying_what_to_do(values: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigurationError, match=says) as refused:
        pseudonym_key.load(_settings(**values))
    assert "openssl rand" in str(refused.value)


def test_the_public_keys_are_refused_outside_the_local_stack(tmp_path: Path) -> None:
    for public in pseudonym_key.PUBLIC_KEYS:
        path = tmp_path / "key"
        path.write_bytes(public)
        with pytest.raises(ConfigurationError, match="public"):
            pseudonym_key.load(_settings(pseudonym_key_file=path))
        assert pseudonym_key.load(_settings(pseudonym_key_file=path, env="local")).secret == public


def test_the_local_stack_s_key_is_public_and_long_enough() -> None:
    dev_env = Path(__file__).parents[2] / "deploy" / "local" / "dev.env"
    settings = Settings(_env_file=dev_env)
    assert settings.env == "local"
    assert pseudonym_key.load(settings).secret in pseudonym_key.PUBLIC_KEYS
