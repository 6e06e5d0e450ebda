"""librdkafka client configuration shared by producers and consumers."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import AlterConfigOpType, ConfigEntry, ConfigResource
from confluent_kafka.cimpl import NewTopic

from satubus import access
from satubus.errors import ConfigurationError
from satubus.schemas.envelope import AGENCIES_DIR
from satubus.schemas.topics import DEAD_LETTERS, all_contracts
from satubus.secrets import LocalSecrets
from satubus.settings import Settings


@dataclass(frozen=True)
class Login:
    """A Kafka identity: SCRAM-SHA-512 user and password, over TLS verified against ``ca_file``."""

    username: str
    password: str = field(repr=False)
    ca_file: Path


def login(settings: Settings, role: str) -> Login:
    """The identity a process in ``role`` (``access.STREAMS``, ``access.agency_principal(code)``, ...) connects
    with: ``SATUBUS_KAFKA_USERNAME``/``SATUBUS_KAFKA_PASSWORD`` when set, else the role's principal in the bus's
    namespace with its password from the local stack's secrets."""
    username = settings.kafka_username or access.principal(settings.namespace, role)
    if settings.kafka_password is not None:
        password = settings.kafka_password.get_secret_value()
    else:
        found = LocalSecrets(settings.secrets_dir).get("kafka", username)
        if found is None:
            raise ConfigurationError(
                f"no Kafka password for user {username}: set SATUBUS_KAFKA_USERNAME and SATUBUS_KAFKA_PASSWORD, or "
                f"on the local stack run `satubus stack up` (with this SATUBUS_NAMESPACE), which issues every "
                f"principal of the namespace its password, kept in {settings.secrets_dir}"
            )
        password = found
    if not settings.kafka_ca.is_file():
        raise ConfigurationError(
            f"the Kafka CA certificate {settings.kafka_ca} does not exist: set SATUBUS_KAFKA_CA_FILE to the PEM file "
            "of the CA that signed the brokers' certificates, or start the local stack (`satubus stack up`)"
        )
    return Login(username, password, settings.kafka_ca)


def client_config(settings: Settings, role: str) -> dict[str, Any]:
    """librdkafka's connection settings for ``role``: SASL_SSL with SCRAM-SHA-512, the broker's certificate
    verified (hostname included) against the CA."""
    identity = login(settings, role)
    return {
        "bootstrap.servers": ",".join(settings.kafka_servers),
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": identity.username,
        "sasl.password": identity.password,
        "ssl.ca.location": str(identity.ca_file),
    }


def admin_client(settings: Settings, role: str = access.ADMIN) -> AdminClient:
    return AdminClient(client_config(settings, role))


def producer_config(settings: Settings, client_id: str, role: str) -> dict[str, Any]:
    """An idempotent producer: no duplicates or reordering on retries, acknowledged by all replicas."""
    return client_config(settings, role) | {
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
    }


def consumer_config(settings: Settings, group_id: str, role: str) -> dict[str, Any]:
    return client_config(settings, role) | {
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }


def create_topics(settings: Settings) -> list[str]:
    """Create every contract topic of the bus's namespace that is missing, and give every one (the stream
    processor's changelogs too) its retention (``topic_config``); returns the names created."""
    contracts = all_contracts(settings.namespace, settings.mappings_dir or AGENCIES_DIR)  # the applied datasets too
    created = ensure_topics(settings, [(c.name, c.compacted) for c in contracts])
    changelogs = f"{access.principal(settings.namespace, access.STREAMS)}-"
    admin = admin_client(settings)
    existing = [
        t for t in admin.list_topics(timeout=15).topics if t.startswith(changelogs) and t.endswith("-changelog")
    ]
    configure_topics(settings, [(c.name, c.compacted) for c in contracts])
    configure_topics(settings, [(name, True) for name in existing])
    return created


def topic_config(settings: Settings, name: str, compacted: bool) -> dict[str, str]:
    """How long a topic keeps what it holds. A compacted topic rolls its active segment and cleans a replaced or
    deleted value within ``erasure_bound_hours`` (Kafka's max.compaction.lag.ms: a segment is also rolled when a
    record is appended after that lag) and keeps a tombstone as long again, so that consumers see it. With three
    replicas, a write needs two of them in sync (producers ask for all: acks=all)."""
    durability = {"min.insync.replicas": "2" if settings.topic_replication_factor >= 3 else "1"}
    if compacted:
        bound = str(int(settings.erasure_bound_hours * 3_600_000))
        return durability | {
            "cleanup.policy": "compact",
            "max.compaction.lag.ms": bound,
            "delete.retention.ms": bound,
            "min.cleanable.dirty.ratio": "0.1",
        }
    days = settings.dlq_retention_days if name == settings.topic(DEAD_LETTERS.name) else settings.retention_days
    return durability | {"cleanup.policy": "delete", "retention.ms": str(int(days * 86_400_000))}


def configure_topics(settings: Settings, topics: Iterable[tuple[str, bool]]) -> None:
    """Set ``topic_config`` on existing topics (name, compacted), leaving their other settings alone."""
    resources = [
        ConfigResource(
            "TOPIC",
            name,
            incremental_configs=[
                ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
                for key, value in topic_config(settings, name, compacted).items()
            ],
        )
        for name, compacted in topics
    ]
    if not resources:
        return
    admin = admin_client(settings)  # kept: the futures never complete once their client is gone
    for future in admin.incremental_alter_configs(resources, request_timeout=30).values():
        future.result(timeout=60)


def ensure_topics(settings: Settings, topics: Iterable[tuple[str, bool]], role: str = access.ADMIN) -> list[str]:
    """Create the missing topics among (name, compacted), with their retention, as ``role``; returns the names
    created."""
    admin = admin_client(settings, role)
    existing = admin.list_topics(timeout=15).topics
    missing = [
        NewTopic(
            name,
            num_partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
            config=topic_config(settings, name, compacted),
        )
        for name, compacted in topics
        if name not in existing
    ]
    if not missing:
        return []
    created = []
    for name, future in admin.create_topics(missing, operation_timeout=15).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    _wait_until_served(settings, created, role)
    return created


def _wait_until_served(settings: Settings, topics: list[str], role: str) -> None:
    """Return once the broker answers for every partition of ``topics``. The controller acknowledges a creation
    before the broker has created the partitions' logs; events produced in that moment to a topic that has just
    been deleted and created again were seen acknowledged and then missing."""
    consumer = Consumer(client_config(settings, role) | {"group.id": "satubus-admin"})
    try:
        for topic in topics:
            for partition in range(settings.topic_partitions):
                _end_offset(consumer, TopicPartition(topic, partition), patience=60.0)
    finally:
        consumer.close()


def topic_id(settings: Settings, topic: str, role: str) -> str:
    """The topic's id: unlike its name, it changes when the topic is deleted and created again."""
    admin = admin_client(settings, role)
    description = admin.describe_topics(TopicCollection([topic]))[topic].result()
    return str(description.topic_id)


def read_to_end(settings: Settings, topic: str, *, timeout: float = 60.0) -> list[Message]:
    """Every message of ``topic`` from its beginning to its end as of now; raises if it cannot get there."""
    consumer = Consumer(
        client_config(settings, access.ADMIN) | {"group.id": "satubus-reader", "enable.auto.commit": False}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: _end_offset(consumer, TopicPartition(topic, p)) for p in partitions}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        messages: list[Message] = []
        pending = {p for p, end in ends.items() if end > 0}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            messages.append(message)
            if (message.offset() or 0) + 1 >= ends[message.partition() or 0]:
                pending.discard(message.partition() or 0)
        if pending:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"could not read {topic} to its end in {timeout}s"))
        return messages
    finally:
        consumer.close()


_NOT_READY_YET = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_PARTITION,  # not yet in this client's metadata
}


def _end_offset(consumer: Consumer, partition: TopicPartition, patience: float = 10.0) -> int:
    """The partition's high watermark; a topic created a moment ago may not have its leader known yet."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return int(consumer.get_watermark_offsets(partition, timeout=10)[1])
        except KafkaException as exc:
            if exc.args[0].code() not in _NOT_READY_YET or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
