"""The integration suite runs against the real local stack (Kafka, Apicurio Registry, PostgreSQL).

The ``stack`` fixture starts it if it is not running (``satubus stack up`` is idempotent). The suite runs its bus
in its own namespace (``SATUBUS_TEST_NAMESPACE``, default ``test``): its topics, schema subjects, consumer groups and
stream application are prefixed ``test.``, and its database is ``satubus_test``, so a demo running on the same stack
is never touched. The ``bus`` fixture gives the suite a clean bus: the namespace's topics recreated empty, schemas
registered and a fresh database, so results can be compared exactly; each module that runs the ``pipeline`` starts
from a clean bus again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException
from pydantic import SecretStr

from satubus.acl import provision_local
from satubus.consumers.materializer import GROUP_ID
from satubus.consumers.migrate import recreate
from satubus.consumers.tables import MATERIALIZED
from satubus.database import dsn as owner_dsn
from satubus.deploy.local.stack import Stack
from satubus.kafka import admin_client, create_topics
from satubus.registry import register_contracts, registry_client
from satubus.schemas.topics import all_contracts
from satubus.settings import Settings
from satubus.streams.app import APP_ID, local_state

NAMESPACE = os.environ.get("SATUBUS_TEST_NAMESPACE", "test")
PSEUDONYM_KEY = "integration-test-key-public-not-a-secret"
# The suite's processes listen on their own ports, so that they run beside a demo's: the defaults shifted by 100
# (by more for another namespace, so that two suites can run side by side).
PORT_SHIFT = 100 if NAMESPACE == "test" else 200 + zlib.crc32(NAMESPACE.encode()) % 40 * 10
PORTS = ("simulator_metrics_port", "stream_metrics_port", "materializer_metrics_port", "api_port", "gateway_port")


def suite_settings(**overrides: Any) -> Settings:
    """The settings of the suite's bus: its namespace and database on the local stack."""
    base = Settings()
    defaults: dict[str, Any] = {
        "namespace": NAMESPACE,
        "database_url": base.database_url.rsplit("/", 1)[0] + f"/satubus_{NAMESPACE}",
        "env": "local",
        "pseudonym_key": SecretStr(PSEUDONYM_KEY),
        **{port: getattr(base, port) + PORT_SHIFT for port in PORTS},
    }
    return Settings(**(defaults | overrides))


@pytest.fixture(scope="session")
def settings() -> Settings:
    return suite_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Stack:
    stack = Stack.from_settings(Settings())
    stack.up()
    return stack


def _reset_topics(settings: Settings) -> None:
    admin = admin_client(settings)
    existing = admin.list_topics(timeout=15).topics
    app_id = settings.topic(APP_ID)
    ours = [c.name for c in all_contracts(settings.namespace)] + [t for t in existing if t.startswith(f"{app_id}-")]
    doomed = [t for t in ours if t in existing]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=30).values():
            future.result()
    groups = [app_id, *(settings.topic(f"{GROUP_ID}-{entity}") for entity in MATERIALIZED)]
    for future in admin.delete_consumer_groups(groups).values():
        with contextlib.suppress(KafkaException):  # the group did not exist
            future.result()
    shutil.rmtree(local_state(settings), ignore_errors=True)  # the tables' files go with their changelogs
    deadline = time.monotonic() + 60
    while set(doomed) & set(admin.list_topics(timeout=15).topics):  # deletion completes asynchronously
        assert time.monotonic() < deadline, "topics were not deleted within 60s"
        time.sleep(0.2)
    while True:  # and creating a just-deleted topic can be refused for a moment
        try:
            create_topics(settings)
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture(scope="session")
def bus(stack: Stack, settings: Settings) -> Settings:
    provision_local(settings)  # the namespace's principals, their passwords and ACLs
    _reset_topics(settings)
    with registry_client(settings, admin=True) as registry:
        register_contracts(registry, all_contracts(settings.namespace))
    asyncio.run(recreate(owner_dsn(settings)))
    return settings


def unanswered_address() -> str:
    """A loopback address nothing listens on: a broker that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def process_env(settings: Settings) -> dict[str, str]:
    assert settings.pseudonym_key is not None
    return {
        **os.environ,
        "SATUBUS_NAMESPACE": settings.namespace,
        "SATUBUS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "SATUBUS_KAFKA_CONTROLLER_PORT": str(settings.kafka_controller_port),
        "SATUBUS_KAFKA_BROKERS": str(settings.kafka_brokers),
        "SATUBUS_TOPIC_REPLICATION_FACTOR": str(settings.topic_replication_factor),
        "SATUBUS_DATABASE_URL": settings.database_url,
        **{f"SATUBUS_{port.upper()}": str(getattr(settings, port)) for port in PORTS},
        "SATUBUS_PSEUDONYM_KEY": settings.pseudonym_key.get_secret_value(),
        "SATUBUS_ENV": settings.env,
    }


def run_satubus(settings: Settings, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``satubus <args>`` as a user runs it, on the suite's bus."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("satubus")), *args],
        env=process_env(settings) | (env or {}),
        capture_output=True,
        text=True,
        timeout=300,
    )


class Pipeline:
    """The stream processor and the materializer, each a real ``satubus`` process."""

    def __init__(self, settings: Settings, logs: Path, env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.logs = logs
        self.env = process_env(settings) | (env or {})
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        with self.log(name).open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [str(Path(sys.executable).with_name("satubus")), name],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )

    def log(self, name: str) -> Path:
        return self.logs / f"{self.settings.namespace}-{name}.log"

    def assert_running(self) -> None:
        for name, process in self.processes.items():
            assert process.poll() is None, f"{name} exited with {process.returncode}; see {self.logs}"

    def restart(self, name: str, *, ready_line: bytes | None = None) -> None:
        """Restart one process; with ``ready_line``, return once its log shows that line again."""
        process = self.processes[name]
        process.terminate()
        assert process.wait(timeout=60) == 0, f"{name} did not stop cleanly; see {self.logs}"
        log = self.log(name)
        offset = log.stat().st_size
        self.start(name)
        deadline = time.monotonic() + 120
        while ready_line is not None and ready_line not in log.read_bytes()[offset:]:
            self.assert_running()
            assert time.monotonic() < deadline, f"{name} did not log {ready_line!r} within 120s; see {log}"
            time.sleep(0.2)

    def kill(self, name: str) -> None:
        """kill -9 one process, leaving it no chance to finish anything, and start it again."""
        process = self.processes[name]
        process.kill()
        process.wait(timeout=60)
        self.start(name)

    def stop(self) -> dict[str, int]:
        for process in self.processes.values():
            process.terminate()
        codes = {}
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = process.wait()
        return codes


@pytest.fixture(scope="module")
def pipeline_env() -> dict[str, str]:
    """Extra environment of the pipeline's processes; a module overrides this fixture to change it."""
    return {}


@pytest.fixture(scope="module")
def pipeline(bus: Settings, pipeline_env: dict[str, str]) -> Iterator[Pipeline]:
    """A clean bus (empty topics, stream state and database) and the pipeline's processes running on it."""
    _reset_topics(bus)
    asyncio.run(recreate(owner_dsn(bus)))
    logs = bus.state_dir.resolve() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline(bus, logs, pipeline_env)
    pipeline.start("stream")
    pipeline.start("materialize")
    yield pipeline
    codes = pipeline.stop()
    assert all(code == 0 for code in codes.values()), f"unclean exit {codes}; see {logs}"
