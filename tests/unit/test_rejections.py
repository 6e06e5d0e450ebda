"""bus.dlq's letters as rows of bus.rejections: from the headers alone, the agency's stages only, nothing clear."""

from __future__ import annotations

import datetime as dt
from typing import Any

from satubus.consumers.api_keys import Keys, StoredKey
from satubus.consumers.rejections import rejection
from satubus.consumers.tables import MATERIALIZED, REJECTIONS
from satubus.schemas.dead_letters import DeadLetter
from satubus.streams.errors import Rejected
from satubus.tokens import issue

NIK = "3171061508950001"
AT = dt.datetime(2026, 11, 30, 5, 10, tzinfo=dt.UTC)


class Letter:
    """A message of bus.dlq as confluent-kafka gives it."""

    def __init__(self, letter: DeadLetter, raw: bytes, dlq_offset: int = 9) -> None:
        self._headers = letter.headers(raw)
        self._offset = dlq_offset

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return 1, int(AT.timestamp() * 1000)

    def offset(self) -> int:
        return self._offset

    def partition(self) -> int:
        return 0


def letter(
    stage: str = "normalize",
    topic: str = "kota.agency.dlh.ritase.v1",
    agency: str = "dlh",
    dlq_offset: int = 9,
    **kw: Any,
) -> Letter:
    error = Rejected("tonase", "out_of_range", f"tonase -3 is below 0 (driver {NIK})")
    dead = DeadLetter(stage, "out_of_range", error, topic, 2, 41, agency, **kw)
    return Letter(dead, b"\x00" + NIK.encode(), dlq_offset)


def test_a_rejected_event_is_a_row_of_its_agency_with_its_reason_and_event_id() -> None:
    row = rejection(letter(event_id="e-1"))
    assert row is not None
    assert (row["agency"], row["dataset"], row["topic"]) == ("dlh", "ritase", "agency.dlh.ritase.v1")
    assert (row["stage"], row["reason"], row["event_id"]) == ("normalize", "out_of_range", "e-1")
    assert (row["source_partition"], row["source_offset"], row["version"], row["rejected_at"]) == (2, 41, 9, AT)
    assert row["letter_id"] == "agency.dlh.ritase.v1:2:41:normalize"
    assert "tonase" in row["message"]
    assert all(NIK not in str(value) for value in row.values())
    assert REJECTIONS.row(row)  # every column there


def test_the_same_event_lettered_again_is_the_same_row_and_an_undecoded_one_has_no_event_id() -> None:
    first, again = rejection(letter(dlq_offset=9)), rejection(letter(dlq_offset=12))
    assert first is not None and again is not None and first["letter_id"] == again["letter_id"]
    decode = rejection(letter(stage="decode"))
    assert decode is not None and decode["event_id"] is None


def test_letters_that_blame_no_agency_are_left_out() -> None:
    assert rejection(letter(stage="materialize", topic="kota.unified.person.v1", agency="")) is None
    assert rejection(letter(stage="join", topic="kota.canonical.person.v2", agency="bus")) is None
    assert rejection(letter(topic="kota.bus.erasure", agency="bus")) is None


def test_the_rejections_are_materialized_by_the_principal_that_may_read_the_letters() -> None:
    assert MATERIALIZED["rejection"] is REJECTIONS and REJECTIONS.contract.name == "bus.dlq"
    assert REJECTIONS.clock in REJECTIONS.columns and REJECTIONS.key == "letter_id"


def test_an_agency_key_says_whose_rejections_it_reads() -> None:
    issued = issue()
    keys = Keys({issued.token_id: StoredKey("agency-dlh", issued.digest, frozenset(), agency="dlh")})
    caller = keys.caller(issued.token)
    assert caller is not None and caller.agency == "dlh"


def test_a_letter_whose_location_is_not_a_number_is_still_a_row_named_by_its_place_in_the_dlq() -> None:
    written_by_hand = letter(dlq_offset=77)
    written_by_hand._headers = [
        (name, b"forty-one" if name == "satubus.error.offset" else value) for name, value in written_by_hand._headers
    ]
    row = rejection(written_by_hand)
    assert row is not None
    assert (row["source_partition"], row["source_offset"]) == (2, -1)
    assert row["letter_id"] == "agency.dlh.ritase.v1:dlq-0-77:normalize"
    assert REJECTIONS.row(row)
