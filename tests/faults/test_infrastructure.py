"""Faults of what the bus runs on: a partition leader broker killed, then another (F3); PostgreSQL stopped
immediately for 20 s (F5); the schema registry down for 30 s (F6)."""

from __future__ import annotations

import os
import signal
import time
from functools import partial
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from satubus.deploy.local.stack import Kafka, KafkaNode, Stack, _read_pid
from satubus.kafka import admin_client
from satubus.schemas.topics import agency_topic
from satubus.settings import Settings
from tests.faults.scenario import City, Measured, Results, settle_and_record
from tests.integration.conftest import Pipeline

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1500)]

BROKER_DOWN_SECONDS = 20
POSTGRES_DOWN_SECONDS = 20
REGISTRY_DOWN_SECONDS = 30
SERVICE_BACK_SECONDS = 120  # for a restarted service to answer again


def leader_of(settings: Settings, cluster: Kafka, topic: str, partition: int = 0) -> KafkaNode:
    admin: AdminClient = admin_client(settings)  # kept: its futures never complete once it is gone
    leader = (
        admin.list_topics(settings.topic(topic), timeout=15).topics[settings.topic(topic)].partitions[partition].leader
    )
    return next(node for node in cluster.nodes if node.number == leader)


def wait_until_in_sync(settings: Settings, timeout: float = 180) -> None:
    """Every partition of the bus's topics has all its replicas in sync again."""
    admin: AdminClient = admin_client(settings)
    deadline = time.monotonic() + timeout
    while True:
        topics = admin.list_topics(timeout=15).topics
        lagging = [
            (name, p.id)
            for name, t in topics.items()
            if name.startswith(f"{settings.namespace}.")
            for p in t.partitions.values()
            if len(p.isrs) < len(p.replicas)
        ]
        if not lagging:
            return
        assert time.monotonic() < deadline, f"{len(lagging)} partitions not back in sync, e.g. {lagging[:3]}"
        time.sleep(1)


def test_f3_the_leader_broker_killed_then_another(
    bus: Settings, cluster: Kafka, pipeline: Pipeline, results: Results
) -> None:
    city = City(bus, seed=3103)
    recoveries = []
    killed: list[int] = []
    for point in city.fault_points(2):
        city.wait_for_persons(point, pipeline)
        node = leader_of(bus, cluster, agency_topic("dukcapil", "penduduk"))
        if node.number in killed:  # the second kill takes another broker
            node = next(n for n in cluster.nodes if n.number not in killed)
        pid = _read_pid(node.pidfile)
        assert pid is not None, f"broker {node.number} is not running"
        os.kill(pid, signal.SIGKILL)
        killed.append(node.number)
        time.sleep(BROKER_DOWN_SECONDS)
        node.start()
        recoveries.append(city.recovery(pipeline))
        wait_until_in_sync(bus)
    print(f"\nkilled brokers {killed} (each the leader of the first partition of agency.dukcapil.penduduk.v1)")
    measured = settle_and_record(
        results, "F3 kill -9 of the leader broker, then of another", city, pipeline, recoveries
    )
    assert measured.events >= 20_000
    assert measured.compared.clean, measured.compared.details


def outage(
    bus: Settings, pipeline: Pipeline, results: Results, scenario: str, seed: int, service: Any, seconds: float
) -> Measured:
    """A city published while ``service`` (of the stack) is stopped for ``seconds`` once mid-flow, then started."""
    city = City(bus, seed=seed)
    city.wait_for_persons(city.fault_points(1)[0], pipeline)
    service.stop()
    time.sleep(seconds)
    service.start()
    # start() returns once the process runs; the comparison reads the registry and PostgreSQL too, so the outage
    # ends when the service answers again.
    deadline = time.monotonic() + SERVICE_BACK_SECONDS
    while not service.ready():
        assert time.monotonic() < deadline, (
            f"{scenario}: the service did not answer {SERVICE_BACK_SECONDS:.0f}s after start"
        )
        time.sleep(0.5)
    recovery = city.recovery(pipeline)
    return settle_and_record(results, scenario, city, pipeline, [recovery])


def test_f5_postgresql_stopped_immediately_for_20_s(
    bus: Settings, stack: Stack, pipeline: Pipeline, results: Results
) -> None:
    immediate = SimpleNamespace(
        stop=partial(stack.postgres.stop, mode="immediate"), start=stack.postgres.start, ready=stack.postgres.ready
    )
    scenario = "F5 PostgreSQL stopped (immediate) for 20 s"
    measured = outage(bus, pipeline, results, scenario, 3105, immediate, POSTGRES_DOWN_SECONDS)
    assert measured.compared.clean, measured.compared.details


def test_f6_the_registry_down_for_30_s_dead_letters_no_valid_event(
    bus: Settings, stack: Stack, pipeline: Pipeline, results: Results
) -> None:
    scenario = "F6 schema registry down for 30 s"
    measured = outage(bus, pipeline, results, scenario, 3106, stack.registry, REGISTRY_DOWN_SECONDS)
    assert measured.compared.wrongly_dead_lettered == 0, measured.compared.details
    assert measured.compared.clean, measured.compared.details
