"""Who may read what through the live API: scopes, the fields each one opens, and the purposes of a read.

A caller without a key reads what is public: the scoreboard, regions (kelurahan aggregates) and incidents. The
person-level records need ``read:person``; within a person, aid payments need ``read:aid`` and health visits and
immunisations ``read:health``; a caller without them gets the record without those fields, and ``withheld`` names
them. The clear NIK behind a person_id needs ``read:restricted``.

Every read of personal data states its purpose, one of ``PURPOSES`` (UU PDP 27/2022 Pasal 16: processing is
limited to its purpose); the audit log keeps it with the read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, get_args

PERSON = "read:person"
HEALTH = "read:health"
AID = "read:aid"
RESTRICTED = "read:restricted"
SCOPES = (PERSON, HEALTH, AID, RESTRICTED)

Purpose = Literal["pelayanan", "penegakan", "statistik", "perencanaan", "hak_subjek"]
PURPOSES: tuple[str, ...] = get_args(Purpose)
PURPOSE_MEANINGS = {
    "pelayanan": "public service delivery to the person (e.g. paying aid, enrolling a pupil)",
    "penegakan": "law or regulation enforcement (e.g. a permit that breaks the zoning rules)",
    "statistik": "statistics and research, published only in aggregate",
    "perencanaan": "planning and evaluating a programme",
    "hak_subjek": "answering the person's own request under UU PDP (access, rectification, erasure)",
}

# The scope an entity needs (None: public).
ENTITY_SCOPES: dict[str, str | None] = {
    "person": PERSON,
    "parcel": PERSON,
    "finding": PERSON,
    "region": None,
    "incident": None,
}

# Fields of an entity that need a further scope.
FIELD_SCOPES: dict[str, dict[str, str]] = {
    "person": {
        "aid": AID,
        "health_visits": HEALTH,
        "last_health_visit_at": HEALTH,
        "immunisations": HEALTH,
    },
}


def unknown_scopes(scopes: Iterable[str]) -> list[str]:
    return sorted(set(scopes) - set(SCOPES))


def is_personal(entity: str) -> bool:
    return ENTITY_SCOPES[entity] is not None


def may_read(entity: str, scopes: frozenset[str]) -> bool:
    needed = ENTITY_SCOPES[entity]
    return needed is None or needed in scopes


def visible(entity: str, record: dict[str, Any], scopes: frozenset[str]) -> tuple[dict[str, Any], list[str]]:
    """``record`` without the fields ``scopes`` do not open, and the names of those withheld (sorted)."""
    closed = sorted(name for name, scope in FIELD_SCOPES.get(entity, {}).items() if scope not in scopes)
    if not closed:
        return record, []
    return {k: v for k, v in record.items() if k not in closed}, closed
