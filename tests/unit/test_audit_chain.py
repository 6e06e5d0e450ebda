from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from satubus import audit

AT = dt.datetime(2026, 11, 30, 3, 15, 30, 123456, tzinfo=dt.UTC)


def _chain(count: int) -> list[dict[str, Any]]:
    rows, previous = [], audit.GENESIS
    for seq in range(1, count + 1):
        row: dict[str, Any] = {
            "seq": seq,
            "at": AT + dt.timedelta(seconds=seq),
            "principal": "dinsos-bansos-app",
            "purpose": "pelayanan",
            "action": "GET /v1/persons/{person_id}",
            "entity": "person",
            "keys": [f"{seq:064x}"],
            "fields": ["full_name", "address"],
            "client": "10.0.0.7",
            "detail": "",
        }
        row["prev_hash"], row["hash"] = previous, audit.row_hash(previous, row)
        previous = row["hash"]
        rows.append(row)
    return rows


def test_an_intact_chain_holds() -> None:
    assert audit.first_broken(_chain(5)) == (5, None)
    assert audit.first_broken([]) == (0, None)


def test_a_changed_field_breaks_the_chain_at_that_row() -> None:
    rows = _chain(5)
    rows[2]["purpose"] = "statistik"
    assert audit.first_broken(rows)[1] == audit.Broken(3, "its content does not match its hash: the row was changed")


def test_a_removed_row_breaks_the_chain_where_it_was() -> None:
    rows = _chain(5)
    checked, broken = audit.first_broken(rows[:2] + rows[3:])
    assert (checked, broken and broken.seq) == (3, 4)


def test_a_row_rewritten_with_a_new_hash_breaks_the_chain_at_the_next_row() -> None:
    rows = _chain(5)
    forged = dict(rows[2], principal="intruder")
    forged["hash"] = audit.row_hash(rows[1]["hash"], forged)
    broken = audit.first_broken([*rows[:2], forged, *rows[3:]])[1]
    assert broken == audit.Broken(4, "its previous hash is not the hash of the row before it")


def test_the_canonical_text_separates_fields_unambiguously() -> None:
    row = _chain(1)[0]
    shifted = dict(row, principal=row["principal"] + "pelayanan", purpose="")
    assert audit.canonical(row) != audit.canonical(shifted)
    assert audit.canonical(dict(row, keys=["a,b"])) != audit.canonical(dict(row, keys=["a", "b"]))
    assert "2026-11-30T03:15:31.123456Z" in audit.canonical(row)


def test_access_is_a_plain_record() -> None:
    access = audit.Access("p", "statistik", "GET /x", "person", ["k"], ["f"], "127.0.0.1")
    assert dataclasses.asdict(access)["detail"] == ""
