"""The fault suite's bus: a three-broker Kafka cluster of its own (beside the local stack's single broker: other
ports, other folders), the stack's registry and PostgreSQL, namespace ``faults``. Each scenario starts from empty
topics, stream state and database, runs the real ``satubus stream`` and ``satubus materialize`` processes, and adds
its row to the table printed (and written to ``.stack/faults/results.md``) at the end."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from satubus.acl import provision_local
from satubus.consumers.migrate import recreate
from satubus.database import dsn as owner_dsn
from satubus.deploy.local.stack import Kafka, Stack
from satubus.registry import register_contracts, registry_client
from satubus.schemas.topics import all_contracts
from satubus.settings import Settings
from tests.faults.scenario import Results
from tests.integration.conftest import PORTS, PSEUDONYM_KEY, Pipeline, _reset_topics

NAMESPACE = "faults"
BOOTSTRAP_PORT, CONTROLLER_PORT = 19592, 19593  # nodes 2 and 3 at +100 and +200
PORT_SHIFT = 600  # the processes' ports, beside a demo's and the integration suite's


def fault_settings() -> Settings:
    base = Settings()
    return Settings(
        namespace=NAMESPACE,
        database_url=base.database_url.rsplit("/", 1)[0] + f"/satubus_{NAMESPACE}",
        env="local",
        pseudonym_key=SecretStr(PSEUDONYM_KEY),
        kafka_bootstrap=f"127.0.0.1:{BOOTSTRAP_PORT}",
        kafka_controller_port=CONTROLLER_PORT,
        kafka_brokers=3,
        topic_replication_factor=3,
        **{port: getattr(base, port) + PORT_SHIFT for port in PORTS},
    )


@pytest.fixture(scope="session")
def settings() -> Settings:
    return fault_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Stack]:
    """The local stack with the suite's three-broker cluster as its Kafka; the cluster is stopped at the end (the
    registry, PostgreSQL and Prometheus are the local stack's and stay)."""
    stack = Stack.from_settings(settings)
    stack.up()
    yield stack
    stack.kafka.stop()


@pytest.fixture(scope="session")
def cluster(stack: Stack) -> Kafka:
    return stack.kafka


@pytest.fixture(scope="session")
def bus(stack: Stack, settings: Settings) -> Settings:
    provision_local(settings)
    _reset_topics(settings)
    with registry_client(settings, admin=True) as registry:
        register_contracts(registry, all_contracts(settings.namespace))
    return settings


@pytest.fixture(scope="session")
def results(settings: Settings) -> Iterator[Results]:
    results = Results(settings.state_dir.resolve() / "faults" / "results.md")
    yield results
    print("\n\nFaults survived (three brokers, replication 3, min.insync.replicas 2):\n" + results.markdown())


@pytest.fixture
def pipeline(bus: Settings) -> Iterator[Pipeline]:
    """A clean bus (empty topics, stream state and database) and the pipeline's processes running on it."""
    _reset_topics(bus)
    asyncio.run(recreate(owner_dsn(bus)))
    logs: Path = bus.state_dir.resolve() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline(bus, logs)
    pipeline.start("stream")
    pipeline.start("materialize")
    yield pipeline
    codes = pipeline.stop()
    assert all(code == 0 for code in codes.values()), f"unclean exit {codes}; see {logs}"
