import stat
from pathlib import Path

from pydantic import SecretStr

from satubus import database
from satubus.secrets import LocalSecrets
from satubus.settings import Settings


def test_secrets_are_generated_once_and_readable_by_their_owner_only(tmp_path: Path) -> None:
    store = LocalSecrets(tmp_path / "secrets")
    first = store.ensure("kafka", "satubus-streams")
    assert store.ensure("kafka", "satubus-streams") == first and len(first) >= 32
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.folder.stat().st_mode) == 0o700
    store.remove("kafka", "satubus-streams")
    assert store.get("kafka", "satubus-streams") is None


def test_each_process_connects_to_postgresql_with_its_own_login(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, database_url="postgresql://satubus@127.0.0.1:15432/satubus_test")
    store = LocalSecrets(settings.secrets_dir)
    store.put("postgres", "satubus", "owner/pw")
    store.put("postgres", database.API, "api-pw")
    assert database.dsn(settings) == "postgresql://satubus:owner%2Fpw@127.0.0.1:15432/satubus_test"
    assert database.dsn(settings, database.API) == "postgresql://satubus_api:api-pw@127.0.0.1:15432/satubus_test"


def test_a_url_with_a_password_is_used_as_it_is() -> None:
    url = "postgresql://satubus_api:given@db.example:5432/satubus"
    settings = Settings(database_url=url, pseudonym_key=SecretStr("k"))
    assert database.dsn(settings, database.MATERIALIZER) == url
