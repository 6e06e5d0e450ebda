"""The attack suite: each control of the security model, tried on the real stack by someone it must stop.

Every test asserts the refusal *and* that nothing was written (the topic's end offsets, the registry's versions and
rules, the table's rows are what they were). Remove the control and its test fails: a test that only checked the
error would pass against a broker that ignores the request.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.admin._acl import AclBinding, AclBindingFilter, AclOperation, AclPermissionType
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType

from satubus import access, database
from satubus.acl import binding, plan, provision_local
from satubus.credentials import add_token
from satubus.kafka import admin_client, client_config
from satubus.schemas.topics import DEAD_LETTERS, PERSON_NIK, UNIFIED_PERSON, agency_topic
from satubus.secrets import LocalSecrets
from satubus.settings import Settings
from tests.integration.conftest import process_env
from tests.integration.test_gateway import running_gateway

BPBD = agency_topic("bpbd", "kejadian")
DUKCAPIL = agency_topic("dukcapil", "penduduk")
TARGET = "dlh"  # the agency whose credentials these tests issue, rotate, revoke and block
TARGET_TOPIC = agency_topic(TARGET, "layanan")
TARGET_URL = f"/v1/agencies/{TARGET}/datasets/layanan/events"
REFUSED_WITHIN = 20.0  # seconds for a block or a revocation to take effect (the gateway rereads every 2 s)


def ends(settings: Settings, topic: str) -> dict[int, int]:
    """Each partition's end offset, read as the administrator."""
    consumer = Consumer(client_config(settings, access.ADMIN) | {"group.id": "test-security-ends"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    finally:
        consumer.close()


def produce(config: dict[str, Any], topic: str, timeout: float = 8.0) -> KafkaError | None:
    """Send one record and return the broker's answer (None: acknowledged). Not idempotent: an idempotent
    producer without WRITE on any topic is refused before it sends anything (no producer id), which would test
    less than the topic's ACL."""
    answers: list[KafkaError | None] = []
    producer = Producer(
        config | {"message.timeout.ms": int(timeout * 1000), "enable.idempotence": False, "acks": "all"}
    )
    producer.produce(topic, key=b"attack", value=b"forged", on_delivery=lambda err, _msg: answers.append(err))
    producer.flush(timeout + 5)
    return answers[0] if answers else None


# The consumer group each role may use, so that a refused read is refused by the topic's ACL, not the group's.
GROUPS = {
    access.DOWNSTREAM: f"{access.DOWNSTREAM_GROUPS}test-security",
    access.MATERIALIZER: f"{access.MATERIALIZER_GROUPS}test-security",
    access.RESTRICTED: access.RESTRICTED_GROUP,
    access.API: access.API_GROUP,
    access.STREAMS: access.STREAMS,
}


def read_error(settings: Settings, role: str, topic: str) -> int | None:
    """The error code of subscribing to ``topic`` as ``role`` in a group it may use (None: no error within 6 s).
    A subscription, not an assignment: the broker hides a topic one may not describe, and a consumer assigned to
    one waits for its leader without an error."""
    group = settings.topic(GROUPS.get(role, "agencies-have-no-group"))
    consumer = Consumer(
        client_config(settings, role)
        | {"group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest"}
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is None:
                return None
            if error.code() != KafkaError._PARTITION_EOF:
                return int(error.code())
        return None
    finally:
        consumer.close()


def as_role(settings: Settings, role: str) -> dict[str, Any]:
    return client_config(settings, role)


@pytest.fixture(scope="module")
def secured(bus: Settings) -> Iterator[Settings]:
    _satubus(bus, "agency", "unblock", TARGET, "--by", "test")  # a run stopped halfway may have left it blocked
    yield bus
    _satubus(bus, "agency", "unblock", TARGET, "--by", "test")
    provision_local(bus)  # whatever a test revoked is given back for the modules after this one


# --------------------------------------------------------------------------------------------- Kafka


def test_an_anonymous_client_is_refused_and_writes_nothing(secured: Settings) -> None:
    topic = secured.topic(BPBD)
    before = ends(secured, topic)
    plaintext = {"bootstrap.servers": secured.kafka_bootstrap, "socket.timeout.ms": 5000}
    with pytest.raises(KafkaException):
        AdminClient(plaintext).list_topics(timeout=5)
    assert produce(plaintext, topic, timeout=5) is not None
    tls_only = plaintext | {"security.protocol": "SSL", "ssl.ca.location": str(secured.kafka_ca)}
    assert produce(tls_only, topic, timeout=5) is not None  # TLS without a SASL login is not a client either
    assert ends(secured, topic) == before


def test_a_wrong_password_is_refused_and_writes_nothing(secured: Settings) -> None:
    topic = secured.topic(BPBD)
    before = ends(secured, topic)
    wrong = as_role(secured, access.agency_principal("bpbd")) | {"sasl.password": "not-the-password"}
    with pytest.raises(KafkaException):
        AdminClient(wrong).list_topics(timeout=5)
    assert produce(wrong, topic, timeout=5) is not None
    assert ends(secured, topic) == before


def test_an_agency_cannot_write_another_agencys_topic(secured: Settings) -> None:
    forged, own = secured.topic(DUKCAPIL), secured.topic(BPBD)
    before = ends(secured, forged)
    bpbd = as_role(secured, access.agency_principal("bpbd"))
    answer = produce(bpbd, forged)
    assert answer is not None and answer.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert ends(secured, forged) == before
    assert produce(bpbd, own) is None  # its own topic, with the same identity: the refusal is the ACL's


def describe_error(settings: Settings, role: str, topic: str) -> int | None:
    """The error code of describing ``topic`` as ``role``: READ and WRITE imply DESCRIBE, so a refusal here means
    the role may do neither."""
    admin = AdminClient(client_config(settings, role))
    try:
        admin.describe_topics(TopicCollection([topic]), request_timeout=10)[topic].result()
    except KafkaException as exc:
        return int(exc.args[0].code())
    return None


@pytest.mark.parametrize("topic", [PERSON_NIK.name, DEAD_LETTERS.name, DUKCAPIL, BPBD])
def test_an_agency_cannot_read_restricted_dead_letters_or_agency_topics(secured: Settings, topic: str) -> None:
    bpbd = access.agency_principal("bpbd")
    # An agency has no consumer group at all, so its read is refused by the group first; the topic's own ACL is
    # shown by DESCRIBE, which READ would imply (its own topic it may describe: it may write it).
    refused = {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED}
    assert read_error(secured, bpbd, secured.topic(topic)) in refused
    expected = None if topic == BPBD else KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert describe_error(secured, bpbd, secured.topic(topic)) == expected


def test_the_downstream_principal_reads_unified_topics_only(secured: Settings) -> None:
    downstream = as_role(secured, access.DOWNSTREAM)
    unified = secured.topic(UNIFIED_PERSON.name)
    assert read_error(secured, access.DOWNSTREAM, unified) is None
    for topic in (BPBD, PERSON_NIK.name):
        assert read_error(secured, access.DOWNSTREAM, secured.topic(topic)) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    before = ends(secured, unified)
    answer = produce(downstream, unified)
    assert answer is not None and answer.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert ends(secured, unified) == before


def test_only_the_restricted_principal_reads_clear_niks(secured: Settings) -> None:
    restricted = secured.topic(PERSON_NIK.name)
    for role in (access.MATERIALIZER, access.API, access.STREAMS, access.DOWNSTREAM):
        assert read_error(secured, role, restricted) == KafkaError.TOPIC_AUTHORIZATION_FAILED, role
    assert read_error(secured, access.RESTRICTED, restricted) is None


@pytest.mark.parametrize("role", [access.STREAMS, access.MATERIALIZER, access.agency_principal("bpbd")])
def test_nobody_but_the_administrator_creates_or_deletes_topics_or_changes_acls(secured: Settings, role: str) -> None:
    admin = AdminClient(as_role(secured, role))
    doomed, new = secured.topic(UNIFIED_PERSON.name), secured.topic("attack.new-topic")
    with pytest.raises(KafkaException, match="AUTHORIZATION_FAILED"):
        admin.delete_topics([doomed], operation_timeout=10)[doomed].result()
    with pytest.raises(KafkaException, match="AUTHORIZATION_FAILED"):
        admin.create_topics([NewTopic(new, 1, 1)], operation_timeout=10)[new].result()
    victim = min(access.grants(secured.namespace))  # a grant the plan wants, as `satubus acl apply` would send it
    with pytest.raises(KafkaException, match="AUTHORIZATION_FAILED"):
        for future in admin.delete_acls([binding(victim, AclBindingFilter)]).values():  # type: ignore[list-item]
            future.result()
    forged = access.Grant(access.principal(secured.namespace, role), "TOPIC", "", "PREFIXED", "WRITE")
    with pytest.raises(KafkaException, match="AUTHORIZATION_FAILED"):
        for future in admin.create_acls([binding(forged)]).values():
            future.result()
    topics = admin_client(secured).list_topics(timeout=10).topics
    assert doomed in topics and new not in topics
    assert plan(secured).empty  # every ACL is still the plan's, and only the plan's


def test_acl_apply_is_idempotent_and_plan_finds_drift(secured: Settings) -> None:
    env = process_env(secured)
    satubus = str(Path(sys.executable).with_name("satubus"))
    assert subprocess.run([satubus, "acl", "plan"], env=env, capture_output=True).returncode == 0
    downstream = access.principal(secured.namespace, access.DOWNSTREAM)
    extra = access.Grant(downstream, "TOPIC", "x.", "PREFIXED", "WRITE")
    deny = AclBinding(
        ResourceType.TOPIC,
        "y.",
        ResourcePatternType.PREFIXED,
        f"User:{downstream}",
        "*",
        AclOperation.READ,
        AclPermissionType.DENY,
    )  # of a kind the plan never makes
    admin = admin_client(secured)
    for future in admin.create_acls([binding(extra), deny]).values():
        future.result()
    drift = subprocess.run([satubus, "acl", "plan"], env=env, capture_output=True, text=True)
    assert drift.returncode == 2 and f"- {extra}" in drift.stdout and "DENY READ topic y." in drift.stdout
    assert subprocess.run([satubus, "acl", "apply"], env=env, capture_output=True).returncode == 0
    again = subprocess.run([satubus, "acl", "apply"], env=env, capture_output=True, text=True)
    assert "added 0, removed 0" in again.stdout
    assert plan(secured).empty


# --------------------------------------------------------------------------------------------- registry


def _registry(settings: Settings, method: str, path: str, body: Any = None, user: tuple[str, str] | None = None) -> int:
    headers = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(user).encode()).decode()
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(settings.registry_url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _registry_json(settings: Settings, path: str) -> Any:
    with urllib.request.urlopen(settings.registry_url + path, timeout=10) as response:
        return json.load(response)


@pytest.mark.parametrize("who", ["anonymous", "an agency's Kafka identity"])
def test_only_the_registry_administrator_registers_deletes_or_changes_rules(secured: Settings, who: str) -> None:
    subject = UNIFIED_PERSON.within(secured.namespace).subject
    user = None
    if who != "anonymous":
        name = access.principal(secured.namespace, access.agency_principal("bpbd"))
        password = LocalSecrets(secured.secrets_dir).get("kafka", name)
        assert password is not None
        user = (name, password)
    versions, level = _registry_json(secured, f"/subjects/{subject}/versions"), _registry_json(secured, "/config")
    forged = {"schema": json.dumps({"type": "record", "name": "Forged", "fields": []})}
    assert _registry(secured, "POST", f"/subjects/{subject}/versions", forged, user) == 401
    assert _registry(secured, "PUT", "/config", {"compatibility": "NONE"}, user) == 401
    assert _registry(secured, "PUT", f"/config/{subject}", {"compatibility": "NONE"}, user) == 401
    assert _registry(secured, "DELETE", f"/subjects/{subject}", None, user) == 401
    assert _registry_json(secured, f"/subjects/{subject}/versions") == versions
    assert _registry_json(secured, "/config") == level
    assert _registry(secured, "GET", f"/subjects/{subject}/versions/latest") == 200  # reads stay open


# --------------------------------------------------------------------------------------------- PostgreSQL


async def _select(settings: Settings, login: str, query: str) -> str:
    connection = await asyncpg.connect(database.dsn(settings, login))
    try:
        await connection.fetch(query)
        return "read"
    except asyncpg.InsufficientPrivilegeError:
        return "refused"
    finally:
        await connection.close()


async def _select_nik(settings: Settings, login: str) -> str:
    return await _select(settings, login, "SELECT nik FROM restricted.person_nik LIMIT 1")


def test_only_the_nik_logins_read_clear_niks(secured: Settings) -> None:
    seen = {login: asyncio.run(_select_nik(secured, login)) for login in database.GROUPS}
    assert seen == {
        database.API: "refused",
        database.MATERIALIZER: "refused",
        database.GATEWAY: "refused",
        database.AUDITOR: "refused",
        database.NIK_MATERIALIZER: "read",
        database.NIK_API: "read",  # the API's restricted lookup, behind read:restricted and the audit log
    }


async def _tamper_with_audit_log(settings: Settings, login: str | None) -> str:
    connection = await asyncpg.connect(database.dsn(settings, login))
    try:
        await connection.execute("DELETE FROM audit.access_log")
        return "deleted"
    except (asyncpg.InsufficientPrivilegeError, asyncpg.RaiseError):
        return "refused"
    finally:
        await connection.close()


def test_only_the_auditor_reads_the_audit_log_and_nobody_deletes_from_it(secured: Settings) -> None:
    logins = [*database.GROUPS, None]  # None: the owner
    read = "SELECT * FROM audit.access_log LIMIT 1"
    assert {login: asyncio.run(_select(secured, login, read)) for login in database.GROUPS} == {
        login: "read" if login == database.AUDITOR else "refused" for login in database.GROUPS
    }
    assert {login: asyncio.run(_tamper_with_audit_log(secured, login)) for login in logins} == dict.fromkeys(
        logins, "refused"
    )


async def _write_as_api(settings: Settings) -> None:
    connection = await asyncpg.connect(database.dsn(settings, database.API))
    try:
        await connection.execute("DELETE FROM unified.person")
    finally:
        await connection.close()


def test_the_apis_login_reads_but_cannot_write_the_view(secured: Settings) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        asyncio.run(_write_as_api(secured))


def test_without_its_password_postgresql_refuses_even_the_owner(secured: Settings) -> None:
    no_password = secured.database_url  # the owner's user, no password (trust would let it in)
    wrong = database.dsn(secured).replace(":" + urlsplit(database.dsn(secured)).password, ":wrong", 1)  # type: ignore[operator]
    for url in (no_password, wrong):
        with pytest.raises((asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)):
            asyncio.run(_connect_and_close(url))


async def _connect_and_close(url: str) -> None:
    connection = await asyncpg.connect(url, timeout=10)
    await connection.close()


# --------------------------------------------------------------------------------------------- credentials


def _satubus(settings: Settings, *args: str) -> str:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("satubus")), *args],
        env=process_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _issued(output: str) -> tuple[str, str]:
    """(Kafka password, gateway token) from `satubus agency credentials issue|rotate`'s output."""
    password = next(line.split("=", 1)[1] for line in output.splitlines() if "SATUBUS_KAFKA_PASSWORD=" in line)
    token = next(line.split("Bearer ", 1)[1] for line in output.splitlines() if "Bearer " in line)
    return password.strip(), token.strip()


def _kafka_identity(settings: Settings, password: str) -> dict[str, Any]:
    return as_role(settings, access.agency_principal(TARGET)) | {"sasl.password": password}


def _event(i: int) -> dict[str, Any]:
    return {
        "key": f"SEC-{i}",
        "version": 1,
        "record": {
            "no_tiket": f"SEC-{i}",
            "kanal": "web",
            "kategori": "kebersihan",
            "uraian": "uji keamanan",
            "kelurahan": "Gambir",
            "status": "SELESAI",
            "waktu_lapor": "2026-11-28T03:04:05+00:00",
        },
    }


def _until(check: Any, what: str) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < REFUSED_WITHIN, f"{what} not within {REFUSED_WITHIN:.0f} s"
        time.sleep(0.5)
    return time.monotonic() - started


def _refused_everywhere(
    settings: Settings, kafka: dict[str, Any], gateway: httpx.Client, header: dict[str, str], who: str
) -> tuple[float, KafkaError]:
    """Wait until ``who``'s publishes are refused by Kafka and by the gateway; then check that one more of each is
    refused and writes nothing. Returns the seconds it took and Kafka's answer."""
    topic, url = settings.topic(TARGET_TOPIC), TARGET_URL
    seconds = _until(lambda: produce(kafka, topic, timeout=3) is not None, f"{who}'s publish refused")
    seconds += _until(
        lambda: gateway.post(url, json={"events": [_event(2)]}, headers=header).status_code == 401,
        f"{who}'s token refused",
    )
    before = ends(settings, topic)
    refused = produce(kafka, topic, timeout=3)
    assert refused is not None
    assert gateway.post(url, json={"events": [_event(2)]}, headers=header).status_code == 401
    assert ends(settings, topic) == before
    return seconds, refused


def test_a_blocked_agency_is_refused_on_kafka_and_the_gateway_until_unblocked(secured: Settings) -> None:
    password, token = _issued(_satubus(secured, "agency", "credentials", "issue", TARGET))
    kafka = _kafka_identity(secured, password)
    topic = secured.topic(TARGET_TOPIC)
    url, header = TARGET_URL, {"Authorization": f"Bearer {token}"}
    with running_gateway(secured, secured.gateway_port + 7) as gateway:
        assert produce(kafka, topic) is None
        assert gateway.post(url, json={"events": [_event(1)]}, headers=header).status_code == 200
        _satubus(secured, "agency", "block", TARGET, "--reason", "attack suite", "--by", "test")
        try:
            seconds, refused = _refused_everywhere(secured, kafka, gateway, header, "the blocked agency")
            assert refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
            print(f"\nblocked: publish and token refused within {seconds:.1f} s")
        finally:
            _satubus(secured, "agency", "unblock", TARGET, "--by", "test")
        _until(lambda: produce(kafka, topic, timeout=3) is None, "the unblocked agency's publish accepted")
        _until(
            lambda: gateway.post(url, json={"events": [_event(3)]}, headers=header).status_code == 200,
            "the unblocked agency's token accepted",
        )


def test_a_revoked_agency_is_refused_within_seconds(secured: Settings) -> None:
    password, token = _issued(_satubus(secured, "agency", "credentials", "issue", TARGET))
    kafka = _kafka_identity(secured, password)
    url, header = TARGET_URL, {"Authorization": f"Bearer {token}"}
    with running_gateway(secured, secured.gateway_port + 8) as gateway:
        assert gateway.post(url, json={"events": [_event(4)]}, headers=header).status_code == 200
        _satubus(secured, "agency", "credentials", "revoke", TARGET)
        seconds, _ = _refused_everywhere(secured, kafka, gateway, header, "the revoked agency")
        print(f"\nrevoked: publish and token refused within {seconds:.1f} s")


def test_a_rotated_token_works_until_revoked(secured: Settings) -> None:
    old = asyncio.run(add_token(secured, TARGET, "test"))
    _, new = _issued(_satubus(secured, "agency", "credentials", "rotate", TARGET))
    url = TARGET_URL
    with running_gateway(secured, secured.gateway_port + 9) as gateway:
        for token in (old.token, new):
            response = gateway.post(url, json={"events": [_event(6)]}, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200, token
        _satubus(secured, "agency", "credentials", "revoke", TARGET, "--token", old.token_id)
        _until(
            lambda: (
                gateway.post(
                    url, json={"events": [_event(7)]}, headers={"Authorization": f"Bearer {old.token}"}
                ).status_code
                == 401
            ),
            "the revoked old token refused",
        )
        response = gateway.post(url, json={"events": [_event(8)]}, headers={"Authorization": f"Bearer {new}"})
        assert response.status_code == 200
