"""Unit tests need no services. Code that builds Kafka clients needs an identity and a CA certificate to build them
with: every unit test gets a password and a CA of its own (a real certificate, made with openssl, that no broker
uses), never the local stack's secrets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from satubus.deploy.local.tls import ensure_certificates


@pytest.fixture(scope="session")
def unit_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ca, _, _ = ensure_certificates(tmp_path_factory.mktemp("tls"))
    return ca


@pytest.fixture(autouse=True)
def kafka_identity(monkeypatch: pytest.MonkeyPatch, unit_ca: Path) -> Iterator[None]:
    monkeypatch.setenv("SATUBUS_KAFKA_PASSWORD", "unit-test-password")
    monkeypatch.setenv("SATUBUS_KAFKA_CA_FILE", str(unit_ca))
    yield
