from __future__ import annotations

import datetime as dt

from satubus import tokens
from satubus.consumers import api_scopes
from satubus.consumers.api_keys import Keys, StoredKey

PERSON = {"person_id": "a" * 64, "full_name": "Siti", "aid": [{"amount": 1}], "health_visits": 3, "immunisations": []}


def test_without_the_field_scopes_aid_and_health_are_withheld_and_named() -> None:
    shown, withheld = api_scopes.visible("person", PERSON, frozenset({api_scopes.PERSON}))
    assert withheld == ["aid", "health_visits", "immunisations", "last_health_visit_at"]
    assert set(shown) == {"person_id", "full_name"}


def test_each_field_scope_opens_its_fields_only() -> None:
    shown, withheld = api_scopes.visible("person", PERSON, frozenset({api_scopes.PERSON, api_scopes.AID}))
    assert "aid" in shown and "health_visits" not in shown
    assert withheld == ["health_visits", "immunisations", "last_health_visit_at"]
    every = frozenset(api_scopes.SCOPES)
    assert api_scopes.visible("person", PERSON, every) == (PERSON, [])


def test_public_entities_need_no_scope_and_personal_ones_read_person() -> None:
    nobody: frozenset[str] = frozenset()
    assert api_scopes.may_read("region", nobody) and api_scopes.may_read("incident", nobody)
    for entity in ("person", "parcel", "finding"):
        assert not api_scopes.may_read(entity, nobody)
        assert api_scopes.may_read(entity, frozenset({api_scopes.PERSON}))
    assert api_scopes.unknown_scopes(["read:person", "write:all"]) == ["write:all"]


def test_a_key_is_its_callers_until_it_expires_and_nobodys_when_forged() -> None:
    issued = tokens.issue()
    now = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    keys = Keys({issued.token_id: StoredKey("dinsos-app", issued.digest, frozenset({"read:person"}), now)})
    caller = keys.caller(issued.token, now - dt.timedelta(seconds=1))
    assert caller is not None and (caller.name, caller.scopes) == ("dinsos-app", frozenset({"read:person"}))
    assert keys.caller(issued.token, now) is None
    assert keys.caller(issued.token[:-2] + "xx", now - dt.timedelta(seconds=1)) is None
    assert keys.caller("not-a-key") is None
