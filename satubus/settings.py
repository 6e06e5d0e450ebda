"""One settings model for every process; each field has an env var (``SATUBUS_<FIELD>``).

Values may also come from a file named by ``SATUBUS_ENV_FILE`` (dotenv format), read when the settings are made
(``Settings()``, the first ``get_settings()``), not at import; the environment wins over the file. A ``SATUBUS_*``
name that is not a setting, in the environment or in the file, is refused with the closest valid name, unless it is
one of ``NOT_SETTINGS``; so is an invalid value. Both raise ``ConfigurationError``.
The defaults point at the local stack that ``satubus stack up`` starts.
"""

from __future__ import annotations

import difflib
import os
import re
import socket
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from satubus.errors import ConfigurationError

PREFIX = "SATUBUS_"

# SATUBUS_* variables that are not settings, read from the environment only (never from the env file): the env
# file's own path (here), the local stack's binaries (deploy/local/stack.py), the integration suite's namespace
# (tests/integration/conftest.py) and the image deploy/compose runs.
NOT_SETTINGS = frozenset(
    {
        "SATUBUS_ENV_FILE",
        "SATUBUS_PG_BIN",
        "SATUBUS_KAFKA_JAVA",
        "SATUBUS_REGISTRY_JAVA",
        "SATUBUS_TEST_NAMESPACE",
        "SATUBUS_IMAGE",
    }
)

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

_FROM_ENVIRONMENT: Any = object()  # the default of Settings(_env_file=...): the file SATUBUS_ENV_FILE names


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, extra="forbid")

    def __init__(self, _env_file: str | Path | None = _FROM_ENVIRONMENT, **values: Any) -> None:
        """Read the environment and ``_env_file`` (default: the file ``SATUBUS_ENV_FILE`` names now, if any).

        Raises ``ConfigurationError`` naming each unknown ``SATUBUS_*`` name or invalid value, and what to do."""
        if _env_file is _FROM_ENVIRONMENT:
            _env_file = os.environ.get("SATUBUS_ENV_FILE") or None
        file_names: list[str] = []
        if _env_file is not None:
            if not Path(_env_file).is_file():
                raise ConfigurationError(
                    f"SATUBUS_ENV_FILE names {_env_file}, which does not exist (relative paths are from the current "
                    f"directory, {Path.cwd()}): give the path of an existing dotenv file, or unset SATUBUS_ENV_FILE"
                )
            file_names = list(dotenv_values(_env_file))
        problems = _unknown_names(os.environ, "environment", set(type(self).model_fields))
        problems += _unknown_names(file_names, str(_env_file), set(type(self).model_fields), in_file=True)
        if problems:
            raise ConfigurationError(
                "unknown configuration variable(s):\n  "
                + "\n  ".join(problems)
                + "\nRename or remove each one; every setting is a field of Settings in satubus/settings.py."
            )
        try:
            super().__init__(_env_file=_env_file, **values)
        except ValidationError as exc:
            raise ConfigurationError(_invalid(exc, _env_file)) from exc
        except SettingsError as exc:  # a value that should be JSON is not
            raise ConfigurationError(_invalid(exc, _env_file)) from exc

    # One address or several, comma-separated ("host:port,host:port"): name every broker of a cluster, so that a
    # process starting while one is down still finds the others.
    kafka_bootstrap: str = "127.0.0.1:19092"
    kafka_controller_port: int = 19093
    # How many brokers the local stack runs (`satubus stack up --brokers 3`): each node is broker and controller,
    # node n listening on the ports of node 1 plus 100 x (n - 1).
    kafka_brokers: int = Field(1, ge=1, le=9)
    # This process's Kafka identity (SASL/SCRAM-SHA-512 over TLS). Unset, each process uses its own principal
    # (satubus/access.py: satubus-streams, agency-<code>, ...) and finds its password in the local stack's secrets
    # (state_dir/secrets); a deployment sets both per process.
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    # The CA that signed the brokers' certificates (PEM); default: the local stack's, state_dir/secrets/ca.pem.
    kafka_ca_file: Path | None = None
    registry_url: str = "http://127.0.0.1:18085/apis/ccompat/v7"
    registry_management_port: int = 18086
    # Reads are anonymous; registering schemas and changing compatibility need the registry's administrator.
    # Unset, the password is the local stack's (state_dir/secrets); only `satubus schemas register` and the
    # tools that set up a bus use it.
    registry_admin_username: str = "admin"
    registry_admin_password: SecretStr | None = None
    # Seconds before a registry request is abandoned (and retried by the client); without it a stuck request hangs.
    registry_timeout: float = 10.0
    database_url: str = "postgresql://satubus@127.0.0.1:15432/satubus"

    # "local": the local stack, where public keys and passwords are fine; anything else is a deployment.
    env: Literal["local", "production"] = "production"

    # Key of the HMAC that turns a NIK into a person_id (satubus/pseudonym_key.py): a file of at least 32 random
    # bytes. No default: a guessable key would make person_id reversible by brute force over the NIK space. The
    # key itself in the environment (pseudonym_key) is accepted on the local stack only.
    pseudonym_key_file: Path | None = None
    pseudonym_key: SecretStr | None = None

    # Where the stream processor finds <agency>/<dataset>.avsc and .mapping.yaml files (default: schemas/agencies).
    mappings_dir: Path | None = None

    # Names this instance in its consumer groups (Kafka static membership); unique per running instance.
    instance_id: str = socket.gethostname()

    # Where processes keep local state (faust tables) and the local stack keeps its services.
    state_dir: Path = Path(".stack")

    # The stream processor takes up to this many events at a time, waiting at most stream_batch_seconds for them.
    stream_batch_size: int = 500
    stream_batch_seconds: float = 0.1
    # Seconds a stream worker may go without a heartbeat before its group hands its partitions to the others: how
    # long a killed worker's partitions wait (faust's default is 60). Heartbeats go every 3 s.
    stream_session_timeout: float = 15.0

    # Of every satubus process's log; `satubus -v` forces DEBUG. Case-insensitive.
    log_level: LogLevel = "INFO"

    @model_validator(mode="before")
    @classmethod
    def _replicas_on_a_cluster(cls, values: Any) -> Any:
        brokers = str(values.get("kafka_brokers", 1)).strip() if isinstance(values, dict) else "1"
        if brokers.isdigit() and int(brokers) > 1:  # anything else is the field's to refuse
            values.setdefault("topic_replication_factor", min(3, int(brokers)))
        return values

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    # Prefixes every topic, consumer group and stream application id of this bus ("<namespace>.<name>"), so that
    # two buses share one Kafka cluster without touching each other's data (the test suite runs in "test").
    namespace: str = ""

    topic_partitions: int = 4
    # 3 by default on a cluster of three brokers or more: a topic then also requires 2 in-sync replicas for a write
    topic_replication_factor: int = 1
    # How long personal data stays in Kafka (README: "Personal data"). Compacted topics (the unified view, the
    # restricted NIKs, the stream processor's state) drop a replaced or erased value within erasure_bound_hours,
    # and the erasure's tombstone within as long again; the others (agency topics, the canonical parts, bus.activity)
    # keep records retention_days, the dead letters dlq_retention_days.
    erasure_bound_hours: float = 24
    retention_days: float = 30
    dlq_retention_days: float = 14

    # HTTP ingest gateway. Agencies' tokens are issued by `satubus agency credentials` (kept as digests in
    # PostgreSQL); the gateway reads them, and the blocks, this often.
    gateway_token_refresh_seconds: float = 2.0
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 19110
    gateway_max_events: int = 1000
    gateway_max_body_bytes: int = 5_000_000
    gateway_ack_timeout: float = 30.0  # seconds; an event not acknowledged by then is reported failed

    # `satubus upload` (producers/sheets.py): the largest file it reads, the most data rows a sheet may have and the
    # longest cell, in characters; an .xlsx may unpack to at most ten times the file limit.
    upload_max_file_bytes: int = 20_000_000
    upload_max_rows: int = 100_000
    upload_max_cell_chars: int = 10_000

    # The live API (consumers/api.py) and the scoreboard it serves (consumers/scoreboard.py).
    api_host: str = "127.0.0.1"
    api_port: int = 19120
    # Hosts the API answers to (the Host header, without the port; "*" for any): others get 400, which stops DNS
    # rebinding. Comma-separated.
    api_allowed_hosts: str = "127.0.0.1,localhost"
    api_key_refresh_seconds: float = 2.0  # how often the API reloads the callers' keys (satubus api-key)
    api_streams_per_caller: int = 4  # live change streams open at once per API key (per address without one)
    scoreboard_freshness_seconds: float = 3600  # a valid event at least this recently: integrated
    scoreboard_max_invalid_ratio: float = 0.1  # of an agency's events in the last 24 h
    scoreboard_refresh_seconds: float = 15  # how often the API recomputes the scoreboard's metrics

    prometheus_port: int = 19090  # the local stack's Prometheus (deploy/prometheus/prometheus.yml)

    metrics_host: str = "127.0.0.1"
    simulator_metrics_port: int = 19101
    stream_metrics_port: int = 19102
    materializer_metrics_port: int = 19103

    def topic(self, name: str) -> str:
        """The Kafka name of a contract topic (or a consumer group, or an application id) in this namespace."""
        return f"{self.namespace}.{name}" if self.namespace else name

    @property
    def secrets_dir(self) -> Path:
        """Where the local stack keeps its CA, certificates and generated passwords (mode 0700)."""
        return self.state_dir / "secrets"

    @property
    def kafka_ca(self) -> Path:
        return self.kafka_ca_file or self.secrets_dir / "ca.pem"

    @property
    def kafka_servers(self) -> list[str]:
        """The brokers to bootstrap from: those named, or all three of a local three-broker cluster when only the
        first is named."""
        named = [server.strip() for server in self.kafka_bootstrap.split(",") if server.strip()]
        if len(named) == 1 and self.kafka_brokers > 1:
            host, port = named[0].rsplit(":", 1)
            return [f"{host}:{int(port) + 100 * n}" for n in range(self.kafka_brokers)]
        return named

    @property
    def kafka_port(self) -> int:
        """The first broker's port."""
        return int(self.kafka_servers[0].rsplit(":", 1)[1])

    @property
    def registry_port(self) -> int:
        return urlsplit(self.registry_url).port or 80

    @property
    def database_port(self) -> int:
        return urlsplit(self.database_url).port or 5432


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """This process's settings, made at the first call (a ``ConfigurationError`` is not cached)."""
    return Settings()


def _unknown_names(names: Iterable[str], where: str, fields: set[str], *, in_file: bool = False) -> list[str]:
    """What is wrong with each name that is not a setting: ``SATUBUS_*`` names, or in a file every name (pydantic
    refuses the others there too). Names are case-insensitive."""
    settings = {PREFIX + field.upper() for field in fields}
    problems = []
    for name in sorted(names):
        upper = name.upper()
        if upper in settings or not (in_file or upper.startswith(PREFIX)):
            continue
        if upper in NOT_SETTINGS:
            if in_file:
                problems.append(
                    f"{name} ({where}) is read from the environment only, not from the env file: set it there"
                )
            continue
        prefixed = upper if upper.startswith(PREFIX) else PREFIX + upper
        close = difflib.get_close_matches(prefixed, sorted(settings | (set() if in_file else NOT_SETTINGS)), n=1)
        hint = f"did you mean {close[0]}?" if close else "no setting has a similar name"
        problems.append(f"{name} ({where}) is not a setting: {hint}")
    return problems


def _invalid(error: ValidationError | SettingsError, env_file: str | Path | None) -> str:
    """Each invalid setting by its variable, without the values of secrets."""
    source = "in the environment" + (f" or in {env_file}" if env_file is not None else "")
    if isinstance(error, SettingsError):
        # 'error parsing value for field "gateway_tokens" from source "EnvSettingsSource"'
        found = re.search(r'field "(\w+)"', str(error))
        if found is None:
            return f"invalid configuration ({error}); fix it {source}"
        return f"invalid setting {PREFIX}{found[1].upper()}: its value must be JSON; fix it {source}"
    lines = []
    for detail in error.errors():
        field = str(detail["loc"][0]) if detail["loc"] else ""
        annotation = str(Settings.model_fields[field].annotation) if field in Settings.model_fields else ""
        shown = "" if "Secret" in annotation else f" (got {detail['input']!r})"
        lines.append(f"{PREFIX}{field.upper()}: {detail['msg']}{shown}")
    return f"invalid setting(s); fix them {source}:\n  " + "\n  ".join(lines)
