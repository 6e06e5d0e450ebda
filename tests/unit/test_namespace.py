"""A bus in a namespace (the test suite's, say) touches no topic, subject or group of the bus without one."""

from __future__ import annotations

from satubus.schemas.topics import all_contracts
from satubus.settings import Settings
from satubus.streams.app import APP_ID
from tests.integration.conftest import NAMESPACE, suite_settings


def test_the_suite_runs_in_a_namespace_of_its_own() -> None:
    assert suite_settings().namespace == NAMESPACE != ""
    assert suite_settings().database_url != Settings().database_url


def test_a_namespace_shares_no_topic_or_subject_with_the_default_bus() -> None:
    plain, namespaced = all_contracts(), all_contracts("test")
    assert len(plain) == len(namespaced)
    assert {c.name for c in plain}.isdisjoint(c.name for c in namespaced)
    assert {c.subject for c in plain}.isdisjoint(c.subject for c in namespaced)
    assert all(c.name.startswith("test.") for c in namespaced)


def test_groups_and_the_stream_application_are_in_the_namespace() -> None:
    settings = Settings(namespace="test")
    assert settings.topic(APP_ID) == f"test.{APP_ID}" != Settings().topic(APP_ID)
