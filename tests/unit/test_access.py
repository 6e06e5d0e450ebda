"""The ACL plan (satubus/access.py) is data: what each principal may do, checked here without a broker (the attack
suite, tests/integration/test_security.py, checks that the broker enforces it)."""

from __future__ import annotations

from satubus import access
from satubus.access import Grant
from satubus.consumers import changes, materializer
from satubus.schemas.catalogue import load_catalogue
from satubus.streams.app import APP_ID

GRANTS = access.grants("")


def of(role: str, namespace: str = "") -> set[Grant]:
    user = access.principal(namespace, role)
    return {g for g in access.grants(namespace) if g.principal == user}


def test_each_agency_may_only_write_its_own_topics() -> None:
    for agency in load_catalogue():
        assert of(access.agency_principal(agency.code)) == {
            Grant(f"agency-{agency.code}", "TOPIC", f"agency.{agency.code}.", "PREFIXED", "WRITE")
        }


def test_a_prefix_of_one_agency_never_covers_another() -> None:
    codes = [a.code for a in load_catalogue()]
    for code in codes:
        prefix = f"agency.{code}."
        assert not [other for other in codes if other != code and f"agency.{other}.".startswith(prefix)]


def test_only_the_restricted_principal_reads_restricted_topics() -> None:
    readers = {g.principal for g in GRANTS if g.operation == "READ" and g.resource.startswith("restricted.")}
    assert readers == {access.RESTRICTED}


def test_downstream_applications_read_unified_topics_and_write_nothing() -> None:
    assert {(g.operation, g.resource_type, g.resource) for g in of(access.DOWNSTREAM)} == {
        ("READ", "TOPIC", "unified."),
        ("READ", "GROUP", "downstream-"),
    }


def test_nobody_may_create_topics_but_the_stream_processor_its_own() -> None:
    creators = {(g.principal, g.resource) for g in GRANTS if g.operation == "CREATE"}
    assert creators == {(access.STREAMS, f"{APP_ID}-")}


def test_a_blocked_agency_has_no_acl_left() -> None:
    blocked = access.grants("", blocked=frozenset({"dukcapil"}))
    assert GRANTS - blocked == of(access.agency_principal("dukcapil"))


def test_principals_and_resources_live_in_the_namespace() -> None:
    grants = access.grants("kota")
    assert all(g.principal.startswith("kota.") for g in grants)
    assert all(g.resource.startswith("kota.") for g in grants)
    assert access.principal("kota", access.ADMIN) == "admin"  # the cluster's super user is everybody's


def test_the_groups_and_application_id_are_the_components_own() -> None:
    assert APP_ID == access.STREAMS
    assert changes.GROUP_ID == access.API_GROUP
    assert f"{materializer.GROUP_ID}-" == access.MATERIALIZER_GROUPS
    assert f"{materializer.GROUP_ID}-person_nik" == access.RESTRICTED_GROUP
