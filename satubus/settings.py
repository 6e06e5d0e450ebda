"""One settings model for every process; each field has an env var (``SATUBUS_<FIELD>``).

Values may also come from a file named by ``SATUBUS_ENV_FILE`` (dotenv format).
The defaults point at the local stack that ``satubus stack up`` starts.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SATUBUS_",
        env_file=os.environ.get("SATUBUS_ENV_FILE"),
        frozen=True,
        extra="forbid",
    )

    kafka_bootstrap: str = "127.0.0.1:19092"
    kafka_controller_port: int = 19093
    registry_url: str = "http://127.0.0.1:18085/apis/ccompat/v7"
    registry_management_port: int = 18086
    # Seconds before a registry request is abandoned (and retried by the client); without it a stuck request hangs.
    registry_timeout: float = 10.0
    database_url: str = "postgresql://satubus@127.0.0.1:15432/satubus"

    # Key of the HMAC that turns a NIK into a person_id. No default: a guessable key would make
    # person_id reversible by brute force over the 16-digit NIK space.
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

    # Prefixes every topic, consumer group and stream application id of this bus ("<namespace>.<name>"), so that
    # two buses share one Kafka cluster without touching each other's data (the test suite runs in "test").
    namespace: str = ""

    topic_partitions: int = 4
    topic_replication_factor: int = 1

    # HTTP ingest gateway: each agency's bearer token, as JSON: SATUBUS_GATEWAY_TOKENS='{"bpbd": "..."}'.
    gateway_tokens: dict[str, SecretStr] = {}
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 19110
    gateway_max_events: int = 1000
    gateway_max_body_bytes: int = 5_000_000
    gateway_ack_timeout: float = 30.0  # seconds; an event not acknowledged by then is reported failed

    # The live API (consumers/api.py) and the scoreboard it serves (consumers/scoreboard.py).
    api_host: str = "127.0.0.1"
    api_port: int = 19120
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
    def kafka_port(self) -> int:
        return int(self.kafka_bootstrap.rsplit(":", 1)[1])

    @property
    def registry_port(self) -> int:
        return urlsplit(self.registry_url).port or 80

    @property
    def database_port(self) -> int:
        return urlsplit(self.database_url).port or 5432


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
