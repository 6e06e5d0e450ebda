"""The stream processor's decisions (streams/processor.py), batch by batch, without Kafka.

The real mappings, regions and join rules; a fake decoder stands in for the registry (bytes -> a prepared record),
and a plain dict stands in for the state table (each batch's state writes are applied to it, as the app does once
the outputs are confirmed).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from satubus.errors import RegistryUnavailable
from satubus.schemas.activity import STATUSES
from satubus.schemas.dead_letters import PREVIEW_CHARS, REPLAY_HEADER
from satubus.schemas.errors import ForeignSchemaId, LimitExceeded, NotWireFormat, Origin
from satubus.schemas.pseudonym import person_id
from satubus.schemas.regions import Regions, load_regions
from satubus.schemas.topics import agency_topic
from satubus.streams.joins import JOINS, JoinState, PartChange
from satubus.streams.mapping import MAX_VERSION, DatasetMapping, discover_mappings
from satubus.streams.ordering import KeyState
from satubus.streams.processor import EntityJoiner, Input, Joiner, Normalizer, Outcome, Output, RegionJoiner, Result
from tests.samples import DUKCAPIL_RESIDENT, NIK

KEY = b"unit-test-key"
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
MAGIC = b"\x00\x00\x00\x00\x2a"  # a Confluent frame: magic byte 0, schema id 42

PENDUDUK = agency_topic("dukcapil", "penduduk")
BANSOS = agency_topic("dinsos", "penerima_bansos")
KEJADIAN = agency_topic("bpbd", "kejadian")
PARTS = "canonical.person.v2"

NIK_2 = "3171065508950003"  # the same woman's NIK as Dukcapil corrected it (another serial)
BAD_NIK = "3171063299950002"  # day 32: impossible
PID = person_id(KEY, NIK)
PID_2 = person_id(KEY, NIK_2)
MENTENG = "31.71.06.1001"
KAMPUNG_MELAYU = "31.75.03.1001"
UNKNOWN_PLACE: dict[str, Any] = {"kode_kel": "9999999999", "nama_kel": "Kel. Antah Berantah"}
# Menteng as a BPS code (not its Kemendagri code): refused until the mapping says Dukcapil writes BPS codes.
BPS_MENTENG: dict[str, Any] = {"kode_kel": "3173020001", "nama_kel": None}

AID: dict[str, Any] = {
    "id_penyaluran": "PKH-2026-11-000001",
    "nik": NIK,
    "nama_penerima": "SITI RAHMAWATI",
    "program": "pkh",
    "periode": "2026-11",
    "nominal": 600_000,
    "status_salur": "SALUR",
    "tgl_salur": "2026/11/20",
    "kelurahan": "Kel. Menteng",
    "alamat": None,
}
INCIDENT: dict[str, Any] = {
    "id_kejadian": "B-1",
    "jenis": "BANJIR",
    "waktu_kejadian": NOW - dt.timedelta(hours=3),
    "kelurahan": "Kampung Melayu",
    "kecamatan": None,
    "rw_terdampak": ["3", "11"],
    "tinggi_air_cm": 40,
    "pengungsi": 12,
    "meninggal": 0,
    "luka": 1,
    "status": "BERLANGSUNG",
    "lintang": None,
    "bujur": None,
}


# --- the fake registry and the bus around the processor ------------------------------------------------------


def event_id(n: int) -> uuid.UUID:
    return uuid.UUID(int=n, version=4)


class Wire:
    """Stands in for the Confluent-framed Avro values: ``frame`` registers a record and returns its bytes; the
    decoder returns a copy of the record, and fails as the real one does on bytes it does not know."""

    def __init__(self) -> None:
        self.records: dict[bytes, dict[str, Any]] = {}
        self.readers: list[dict[str, Any] | None] = []

    def frame(self, record: dict[str, Any]) -> bytes:
        raw = MAGIC + json.dumps(record, default=str, sort_keys=True).encode()
        self.records[raw] = record
        return raw

    def decode(self, value: bytes, origin: Origin, reader: dict[str, Any] | None) -> dict[str, Any]:
        self.readers.append(reader)
        if value not in self.records:
            raise NotWireFormat(f"magic byte is {value[0]}, not 0: not Confluent wire format", value, origin)
        return copy.deepcopy(self.records[value])


def envelope(
    agency: str,
    key: str,
    after: dict[str, Any] | None,
    *,
    n: int = 1,
    version: int = 1,
    op: str | None = None,
    minutes_ago: int = 10,
) -> dict[str, Any]:
    """A change event as the decoder returns it (schemas/envelope.py): uuid, enum symbol, aware datetime."""
    return {
        "event_id": event_id(n),
        "op": op or ("d" if after is None else "c" if version == 1 else "u"),
        "occurred_at": NOW - dt.timedelta(minutes=minutes_ago),
        "source": {"agency": agency, "system": "test", "version": "1"},
        "key": key,
        "version": version,
        "after": after,
        "before": None,
    }


def resident(key: str = NIK, *, n: int = 1, version: int = 7, deleted: bool = False, **changes: Any) -> dict[str, Any]:
    return envelope("dukcapil", key, None if deleted else DUKCAPIL_RESIDENT | changes, n=n, version=version)


def aid(key: str = AID["id_penyaluran"], *, n: int = 100, version: int = 1, **changes: Any) -> dict[str, Any]:
    return envelope("dinsos", key, AID | changes, n=n, version=version)


def incident(key: str = "B-1", *, n: int = 200, version: int = 1, deleted: bool = False) -> dict[str, Any]:
    return envelope("bpbd", key, None if deleted else INCIDENT | {"id_kejadian": key}, n=n, version=version)


@dataclass
class Bus:
    """The processor between a fake registry and a dict of state, as the app runs it batch after batch."""

    wire: Wire = field(default_factory=Wire)
    state: dict[str, bytes] = field(default_factory=dict)
    mappings: dict[str, DatasetMapping] = field(
        default_factory=lambda: {agency_topic(m.agency, m.dataset): m for m in discover_mappings()}
    )
    regions: Regions = field(default_factory=load_regions)
    next_offsets: Counter[tuple[str, int]] = field(default_factory=Counter)

    def input(
        self,
        topic: str,
        record: dict[str, Any],
        *,
        partition: int = 0,
        offset: int | None = None,
        headers: tuple[tuple[str, bytes], ...] = (),
    ) -> Input:
        """The record as read from ``topic``, at the partition's next offset unless ``offset`` is given."""
        key = str(record.get("key", record.get("entity_key"))).encode()
        if "entity_key" in record:  # a part: canonical topics carry batches of them
            record = {"parts": [record]}
        if offset is None:
            offset = self.next_offsets[(topic, partition)]
        self.next_offsets[(topic, partition)] = max(self.next_offsets[(topic, partition)], offset + 1)
        return Input(topic, partition, offset, key, self.wire.frame(record), headers)

    def normalize(self, *batch: Input, decode: Callable[..., dict[str, Any]] | None = None) -> Result:
        normalizer = Normalizer(self.mappings, self.regions, KEY, decode or self.wire.decode)
        return self._apply(batch, normalizer.process(batch, self.held, self.scan, NOW))

    def join(self, *batch: Input, entity: str = "person") -> Result:
        joiner: Joiner = (
            RegionJoiner(self.regions, self.wire.decode)
            if entity == "region"
            else EntityJoiner(JOINS[entity], self.wire.decode)
        )
        return self._apply(batch, joiner.process(batch, self.held))

    def held(self, key: str, partition: int) -> bytes | None:
        return self.state.get(key)

    def scan(self, partition: int) -> list[tuple[str, bytes]]:
        return [(key, value) for key, value in self.state.items() if value is not None]

    def _apply(self, batch: tuple[Input, ...], result: Result) -> Result:
        assert len(result.outcomes) == len(batch)
        self.state |= {key: write.value for key, write in result.state.items()}
        return result


def sent(result: Result, topic: str) -> list[Output]:
    return [o for o in result.outputs if o.topic == topic]


def topics(result: Result) -> list[str]:
    return [o.topic for o in result.outputs]


def value(output: Output) -> dict[str, Any]:
    assert isinstance(output.value, dict)
    return output.value


def part(output: Output) -> PartChange:
    return PartChange.from_avro(value(output))


def error_headers(output: Output) -> dict[str, str]:
    return {name.removeprefix("satubus.error."): raw.decode() for name, raw in output.headers}


def activity(result: Result) -> dict[str, dict[str, Any]]:
    """The batch's counts by ``agency.dataset`` (summed over its records, one per partition), checked to reconcile
    with the outcomes and with each record's letters."""
    records: dict[str, dict[str, Any]] = {}
    for output in sent(result, "bus.activity"):
        assert output.key is not None
        record = value(output)
        assert record["processed_at"] == NOW
        assert record["events_in"] == record["accepted"] + record["invalid"] + record["dropped"]
        letters = Counter(record["outcomes"])
        assert (letters["a"], letters["i"], letters["d"]) == (record["accepted"], record["invalid"], record["dropped"])
        summed = records.setdefault(output.key.decode(), dict.fromkeys(("events_in", *STATUSES), 0))
        for name in summed:
            summed[name] += record[name]
    by_source = Counter((o.source, o.status) for o in result.outcomes)
    for source, summed in records.items():
        for status in STATUSES:
            assert summed[status] == by_source[(source, status)], (source, status)
    assert set(records) == {o.source for o in result.outcomes}
    return records


def counts(record: dict[str, Any]) -> tuple[int, int, int, int]:
    return record["events_in"], record["accepted"], record["invalid"], record["dropped"]


def key_state(result: Result) -> KeyState:
    (write,) = result.state.values()
    decoded = KeyState.decode(write.value)
    assert decoded is not None
    return decoded


def fixed_for_bps_codes(mapping: DatasetMapping) -> DatasetMapping:
    """The Dukcapil mapping after the fix for a feed that writes BPS kelurahan codes."""
    fields = dict(mapping.spec.fields)
    fields["kelurahan_code"] = fields["kelurahan_code"].model_copy(update={"region_by": ["code", "bps", "name"]})
    return replace(mapping, spec=mapping.spec.model_copy(update={"fields": fields}))


# --- the normalizer -------------------------------------------------------------------------------------------


def test_a_valid_resident_becomes_an_identity_part_and_her_clear_nik_goes_only_to_the_restricted_topic() -> None:
    bus = Bus()
    event = resident()
    result = bus.normalize(bus.input(PENDUDUK, event, partition=2, offset=41))

    assert result.outcomes == [Outcome("dukcapil.penduduk", "accepted")]
    assert sorted(topics(result)) == ["bus.activity", "canonical.person.v2", "restricted.person_nik.v1"]
    (out,) = sent(result, "canonical.person.v2")
    assert out.key == PID.encode()
    change = part(out)
    assert (change.entity, change.entity_key, change.part) == ("person", PID, "identity")
    assert (change.agency, change.dataset, change.event_id) == ("dukcapil", "penduduk", str(event_id(1)))
    assert (change.version, change.occurred_at) == (7, event["occurred_at"])
    assert change.part_key.startswith("dukcapil.penduduk:")
    assert change.data is not None
    assert change.data["person_id"] == PID
    assert (change.data["full_name"], change.data["kelurahan_code"]) == ("Siti Rahmawati", MENTENG)

    (restricted,) = sent(result, "restricted.person_nik.v1")
    assert restricted.key == PID.encode()
    assert restricted.value == {"person_id": PID, "nik": NIK, "version": 7, "updated_at": event["occurred_at"]}
    for output in result.outputs:
        if output is not restricted:
            assert NIK not in repr((output.key, output.value, output.headers)), output.topic

    assert counts(activity(result)["dukcapil.penduduk"]) == (1, 1, 0, 0)
    assert value(sent(result, "bus.activity")[0])["agency"] == "dukcapil"
    (state_key,) = result.state
    assert NIK not in state_key and state_key.startswith("dukcapil.penduduk:")
    assert result.state[state_key].partition == 2
    assert key_state(result) == KeyState(7, (str(event_id(1)),), PID, at=41)
    assert bus.wire.readers == [bus.mappings[PENDUDUK].envelope]  # resolved to the mapping's own event schema


def test_a_redelivered_event_is_dropped_as_duplicate_in_the_same_batch() -> None:
    bus = Bus()
    event = resident()
    result = bus.normalize(bus.input(PENDUDUK, event, offset=1), bus.input(PENDUDUK, event, offset=2))

    assert result.outcomes == [
        Outcome("dukcapil.penduduk", "accepted"),
        Outcome("dukcapil.penduduk", "dropped", "duplicate"),
    ]
    assert len(sent(result, "canonical.person.v2")) == 1
    assert len(sent(result, "restricted.person_nik.v1")) == 1
    assert counts(activity(result)["dukcapil.penduduk"]) == (2, 1, 0, 1)
    assert len(result.state) == 1


def test_a_redelivered_event_is_dropped_as_duplicate_in_a_later_batch() -> None:
    bus = Bus()
    event = resident()
    bus.normalize(bus.input(PENDUDUK, event, offset=1))
    before = dict(bus.state)

    result = bus.normalize(bus.input(PENDUDUK, event, offset=9))

    assert result.outcomes == [Outcome("dukcapil.penduduk", "dropped", "duplicate")]
    assert topics(result) == ["bus.activity"]
    assert counts(activity(result)["dukcapil.penduduk"]) == (1, 0, 0, 1)
    assert result.state == {} and bus.state == before


def test_an_older_version_after_a_newer_one_is_dropped_as_stale() -> None:
    bus = Bus()
    newer, older, oldest = resident(n=1, version=8), resident(n=2, version=7), resident(n=3, version=6)
    first = bus.normalize(bus.input(PENDUDUK, newer), bus.input(PENDUDUK, older))
    later = bus.normalize(bus.input(PENDUDUK, oldest))

    assert first.outcomes[1] == Outcome("dukcapil.penduduk", "dropped", "stale")
    assert later.outcomes == [Outcome("dukcapil.penduduk", "dropped", "stale")]
    assert [part(o).version for o in sent(first, "canonical.person.v2")] == [8]
    assert topics(later) == ["bus.activity"] and later.state == {}
    assert counts(activity(first)["dukcapil.penduduk"]) == (2, 1, 0, 1)
    assert key_state(first).version == 8


def test_a_corrected_nik_moves_the_part_to_the_new_person_and_tombstones_the_old_nik() -> None:
    bus = Bus()
    first = bus.normalize(bus.input(PENDUDUK, resident("siak-0001", n=1, version=1, nik=NIK)))
    old_part = part(sent(first, "canonical.person.v2")[0])

    result = bus.normalize(bus.input(PENDUDUK, resident("siak-0001", n=2, version=2, nik=NIK_2)))

    assert result.outcomes == [Outcome("dukcapil.penduduk", "accepted")]
    removal, moved = sent(result, "canonical.person.v2")
    assert removal.key == PID.encode() and moved.key == PID_2.encode()
    left, arrived = part(removal), part(moved)
    assert (left.entity_key, left.data) == (PID, None)
    assert left.part_key == old_part.part_key == arrived.part_key  # the same record: the joiner empties its slot
    assert (left.version, left.event_id) == (2, str(event_id(2)))
    assert arrived.entity_key == PID_2 and arrived.data is not None and arrived.data["person_id"] == PID_2
    tombstone, nik = sent(result, "restricted.person_nik.v1")
    assert (tombstone.key, tombstone.value) == (PID.encode(), None)
    assert nik.key == PID_2.encode() and value(nik)["nik"] == NIK_2
    assert key_state(result).routed_to == PID_2


def test_a_deleted_resident_removes_her_part_from_the_person_it_was_routed_to() -> None:
    bus = Bus()
    bus.normalize(bus.input(PENDUDUK, resident(n=1, version=1)))

    result = bus.normalize(bus.input(PENDUDUK, resident(n=2, version=2, deleted=True)))

    assert result.outcomes == [Outcome("dukcapil.penduduk", "accepted")]
    (removal,) = sent(result, "canonical.person.v2")
    assert removal.key == PID.encode()
    assert (part(removal).entity_key, part(removal).part, part(removal).data) == (PID, "identity", None)
    assert [(o.key, o.value) for o in sent(result, "restricted.person_nik.v1")] == [(PID.encode(), None)]
    assert key_state(result).routed_to is None


def test_a_deleted_incident_is_tombstoned_and_its_contribution_leaves_its_kelurahan() -> None:
    bus = Bus()
    created = bus.normalize(bus.input(KEJADIAN, incident(n=1, version=1)))
    (unified,) = sent(created, "unified.incident.v1")
    assert unified.key == b"bpbd:B-1"
    assert value(unified)["kelurahan_code"] == KAMPUNG_MELAYU and value(unified)["affected_rw"] == ["003", "011"]
    (contribution,) = sent(created, "canonical.region.v2")
    assert contribution.key == KAMPUNG_MELAYU.encode()
    assert (part(contribution).part, part(contribution).part_key) == ("incident", "bpbd:B-1")
    assert part(contribution).data == {"started_at": INCIDENT["waktu_kejadian"].isoformat()}

    result = bus.normalize(bus.input(KEJADIAN, incident(n=2, version=2, deleted=True)))

    assert result.outcomes == [Outcome("bpbd.kejadian", "accepted")]
    assert [(o.key, o.value) for o in sent(result, "unified.incident.v1")] == [(b"bpbd:B-1", None)]
    (removal,) = sent(result, "canonical.region.v2")
    assert removal.key == KAMPUNG_MELAYU.encode()
    assert (part(removal).part, part(removal).part_key, part(removal).data) == ("incident", "bpbd:B-1", None)
    assert part(removal).version == 2
    assert counts(activity(result)["bpbd.kejadian"]) == (1, 1, 0, 0)


def test_an_invalid_nik_is_dead_lettered_with_the_original_bytes_and_masked_headers() -> None:
    bus = Bus()
    event = resident(BAD_NIK, nik=BAD_NIK)
    message = bus.input(PENDUDUK, event, partition=1, offset=77)
    assert message.value is not None and BAD_NIK.encode() in message.value[:PREVIEW_CHARS]

    result = bus.normalize(message)

    assert result.outcomes == [Outcome("dukcapil.penduduk", "invalid", "invalid_nik", "normalize")]
    assert topics(result) == ["bus.dlq", "bus.activity"]
    (letter,) = sent(result, "bus.dlq")
    assert (letter.key, letter.value) == (message.key, message.value)
    headers = error_headers(letter)
    assert headers | {"message": "", "preview": ""} == {
        "stage": "normalize",
        "reason": "invalid_nik",
        "class": "Rejected",
        "message": "",
        "topic": PENDUDUK,
        "partition": "1",
        "offset": "77",
        "agency": "dukcapil",
        "event_id": str(event_id(1)),  # the agency finds its event by it
        "preview": "",
    }
    assert headers["message"].startswith("nik: ")
    assert BAD_NIK not in headers["preview"] and BAD_NIK not in headers["message"]
    assert BAD_NIK[:4] + "*" * 12 in headers["preview"]
    assert counts(activity(result)["dukcapil.penduduk"]) == (1, 0, 1, 0)
    assert key_state(result) == KeyState(0, (), None, (str(event_id(1)),))


def test_an_unknown_kelurahan_is_dead_lettered_and_raises_an_unknown_region_finding() -> None:
    bus = Bus()
    event = resident(**UNKNOWN_PLACE)
    result = bus.normalize(bus.input(PENDUDUK, event))

    assert result.outcomes == [Outcome("dukcapil.penduduk", "invalid", "unknown_region", "normalize")]
    (letter,) = sent(result, "bus.dlq")
    headers = error_headers(letter)
    assert (headers["stage"], headers["reason"]) == ("normalize", "unknown_region")
    assert NIK not in headers["preview"] and NIK not in headers["message"]
    (finding,) = sent(result, "unified.finding.v1")
    assert finding.key == b"UNKNOWN_REGION_CODE:dukcapil.penduduk:9999999999"
    assert value(finding) | {"description": ""} == {
        "finding_id": "UNKNOWN_REGION_CODE:dukcapil.penduduk:9999999999",
        "kind": "UNKNOWN_REGION_CODE",
        "severity": "INFO",
        "subject_type": "region",
        "subject_id": "dukcapil.penduduk:9999999999",
        "agencies": ["dukcapil"],
        "description": "",
        "evidence": {"agency": "dukcapil", "dataset": "penduduk", "written": "9999999999"},
        "status": "OPEN",
        "detected_at": event["occurred_at"],
        "version": 1,
        "updated_at": event["occurred_at"],
    }
    assert not sent(result, "canonical.person.v2") and not sent(result, "restricted.person_nik.v1")
    assert str(event_id(1)) in key_state(result).rejected


def test_a_dead_lettered_event_read_again_without_the_replay_header_is_dropped_as_duplicate() -> None:
    bus = Bus()
    event = resident(**BPS_MENTENG)
    bus.normalize(bus.input(PENDUDUK, event, offset=5))

    again = bus.normalize(bus.input(PENDUDUK, event, offset=5))  # read again after a restart

    assert again.outcomes == [Outcome("dukcapil.penduduk", "dropped", "duplicate")]
    assert topics(again) == ["bus.activity"]  # no second letter, no second finding


def test_a_replayed_dead_letter_is_normalized_again_and_rejected_again_while_the_cause_remains() -> None:
    bus = Bus()
    event = resident(**BPS_MENTENG)
    bus.normalize(bus.input(PENDUDUK, event))
    replay = ((REPLAY_HEADER, b"bus.dlq:0:0"),)

    result = bus.normalize(bus.input(PENDUDUK, event, headers=replay))

    assert result.outcomes == [Outcome("dukcapil.penduduk", "invalid", "unknown_region", "normalize")]
    assert len(sent(result, "bus.dlq")) == 1


def test_a_replayed_dead_letter_is_accepted_once_the_mapping_is_fixed() -> None:
    bus = Bus()
    event = resident(**BPS_MENTENG)
    bus.normalize(bus.input(PENDUDUK, event))
    bus.mappings[PENDUDUK] = fixed_for_bps_codes(bus.mappings[PENDUDUK])
    replay = ((REPLAY_HEADER, b"bus.dlq:0:0"),)

    result = bus.normalize(bus.input(PENDUDUK, event, headers=replay))

    assert result.outcomes == [Outcome("dukcapil.penduduk", "accepted")]
    (out,) = sent(result, "canonical.person.v2")
    data = part(out).data
    assert data is not None and data["kelurahan_code"] == MENTENG
    assert len(sent(result, "restricted.person_nik.v1")) == 1
    # Once applied, the original letter read again (no header) and the replay redelivered are both duplicates.
    again = bus.normalize(bus.input(PENDUDUK, event), bus.input(PENDUDUK, event, headers=replay))
    assert [(o.status, o.reason) for o in again.outcomes] == [("dropped", "duplicate")] * 2
    assert topics(again) == ["bus.activity"]


@pytest.mark.parametrize("version", [0, -1, MAX_VERSION + 1, 2**63 - 1], ids=["0", "-1", "2^53", "2^63-1"])
def test_a_version_outside_1_to_2_53_is_dead_lettered_as_invalid_version_and_the_key_goes_on(version: int) -> None:
    """Versions count a record's changes at the source, from 1, and stay below 2^53: a version near 2^63 taken
    as the key's latest would leave it no newer change to accept."""
    bus = Bus()

    result = bus.normalize(bus.input(PENDUDUK, resident(version=version)))

    assert result.outcomes == [Outcome("dukcapil.penduduk", "invalid", "invalid_version", "normalize")]
    assert error_headers(sent(result, "bus.dlq")[0])["reason"] == "invalid_version"
    assert sent(result, "canonical.person.v2") == []
    later = bus.normalize(bus.input(PENDUDUK, resident(n=2, version=MAX_VERSION)))
    assert later.outcomes == [Outcome("dukcapil.penduduk", "accepted")]
    assert part(sent(later, "canonical.person.v2")[0]).version == MAX_VERSION


def test_hostile_values_among_valid_events_are_dead_lettered_and_the_others_go_on() -> None:
    """The decoder refuses, at once, a value of a schema its topic does not hold and one beyond the limits; the
    batch goes on with the events around them."""
    bus = Bus()
    foreign = Input(PENDUDUK, 0, 1, b"x", b"\x00\x00\x00\x00\x07\x80\x80\x80\x80\x80\x40")  # 2^40 nulls
    too_many = Input(PENDUDUK, 0, 2, b"y", b"\x00\x00\x00\x00\x08\x80\x80\x80\x80\x80\x40")

    def hostile(raw: bytes, origin: Origin, reader: dict[str, Any] | None) -> dict[str, Any]:
        if raw == foreign.value:
            raise ForeignSchemaId(f"schema id 7 is not registered under {origin.topic}-value", raw, origin)
        if raw == too_many.value:
            raise LimitExceeded("a value of schema 8: arrays claim over 10000 items that take no bytes", raw, origin)
        return bus.wire.decode(raw, origin, reader)

    result = bus.normalize(
        bus.input(PENDUDUK, resident(n=1), offset=0),
        foreign,
        too_many,
        bus.input(BANSOS, aid(), offset=3),
        decode=hostile,
    )

    assert result.outcomes == [
        Outcome("dukcapil.penduduk", "accepted"),
        Outcome("dukcapil.penduduk", "invalid", "ForeignSchemaId", "decode"),
        Outcome("dukcapil.penduduk", "invalid", "LimitExceeded", "decode"),
        Outcome("dinsos.penerima_bansos", "accepted"),
    ]
    letters = sent(result, "bus.dlq")
    assert [letter.value for letter in letters] == [foreign.value, too_many.value]
    assert [error_headers(letter)["stage"] for letter in letters] == ["decode", "decode"]
    assert len(sent(result, "canonical.person.v2")) == 2


def test_parts_with_versions_near_2_63_join_into_a_person_whose_version_is_its_revision() -> None:
    """The joined version was the sum of its parts' versions, which overflowed an Avro long here and froze the key;
    it is the key's revision, as is the version of the person's contribution to its kelurahan."""
    bus = Bus()
    top = 2**63 - 1

    result = bus.join(
        bus.input(PARTS, change("identity", IDENTITY, version=top), offset=1),
        bus.input(PARTS, change("aid", PAYMENT, version=top - 1, minutes=1), offset=2),
    )

    assert [o.status for o in result.outcomes] == ["accepted", "accepted"]
    assert value(sent(result, "unified.person.v1")[0])["version"] == 2
    (contribution,) = sent(result, "canonical.region.v2")
    assert part(contribution).version == 2
    regions = bus.join(bus.input("canonical.region.v2", value(contribution)), entity="region")
    assert value(sent(regions, "unified.region.v1")[0])["version"] == 1


def test_an_undecodable_value_is_dead_lettered_at_the_decode_stage() -> None:
    bus = Bus()
    garbage = Input(PENDUDUK, 3, 12, b"k", b"x not avro at all")
    tombstone = Input(PENDUDUK, 3, 13, b"k", None)

    result = bus.normalize(garbage, tombstone)

    assert result.outcomes == [
        Outcome("dukcapil.penduduk", "invalid", "NotWireFormat", "decode"),
        Outcome("dukcapil.penduduk", "invalid", "NotWireFormat", "decode"),
    ]
    letters = sent(result, "bus.dlq")
    assert [(o.key, o.value) for o in letters] == [(b"k", b"x not avro at all"), (b"k", None)]
    headers = error_headers(letters[0])
    assert (headers["stage"], headers["reason"], headers["class"]) == ("decode", "NotWireFormat", "NotWireFormat")
    assert (headers["topic"], headers["partition"], headers["offset"]) == (PENDUDUK, "3", "12")
    assert error_headers(letters[1])["preview"] == "<null>"
    assert counts(activity(result)["dukcapil.penduduk"]) == (2, 0, 2, 0)
    assert result.state == {}


def test_a_registry_outage_propagates_and_leaves_nothing_half_done() -> None:
    bus = Bus()
    ok = bus.input(PENDUDUK, resident(n=1), offset=1)
    unlucky = bus.input(BANSOS, aid(), offset=2)

    def registry_down_for_bansos(raw: bytes, origin: Origin, reader: dict[str, Any] | None) -> dict[str, Any]:
        if origin.topic == BANSOS:
            raise RegistryUnavailable("the schema registry does not answer")
        return bus.wire.decode(raw, origin, reader)

    with pytest.raises(RegistryUnavailable):
        bus.normalize(ok, unlucky, decode=registry_down_for_bansos)
    assert bus.state == {}

    # The caller runs the same batch again once the registry answers: it is processed as if for the first time.
    result = bus.normalize(ok, unlucky)
    assert [o.status for o in result.outcomes] == ["accepted", "accepted"]
    assert len(sent(result, "canonical.person.v2")) == 2


def test_an_unforeseen_exception_dead_letters_the_event_as_internal_error_and_the_batch_goes_on() -> None:
    bus = Bus()
    broken = bus.input(PENDUDUK, resident(n=1), offset=1)
    fine = bus.input(BANSOS, aid(), offset=2)

    def buggy(raw: bytes, origin: Origin, reader: dict[str, Any] | None) -> dict[str, Any]:
        if origin.topic == PENDUDUK:
            raise ValueError("a bug of ours")
        return bus.wire.decode(raw, origin, reader)

    result = bus.normalize(broken, fine, decode=buggy)

    assert result.outcomes == [
        Outcome("dukcapil.penduduk", "invalid", "internal_error", "normalize"),
        Outcome("dinsos.penerima_bansos", "accepted"),
    ]
    (letter,) = sent(result, "bus.dlq")
    assert letter.value == broken.value
    headers = error_headers(letter)
    assert (headers["stage"], headers["reason"], headers["class"]) == ("normalize", "internal_error", "ValueError")
    assert counts(activity(result)["dukcapil.penduduk"]) == (1, 0, 1, 0)
    assert counts(activity(result)["dinsos.penerima_bansos"]) == (1, 1, 0, 0)
    assert not sent(result, "restricted.person_nik.v1")


def test_two_events_of_a_key_in_one_batch_give_one_state_write_with_the_later_state_and_partition() -> None:
    bus = Bus()
    result = bus.normalize(
        bus.input(PENDUDUK, resident(n=1, version=1), partition=3, offset=10),
        bus.input(PENDUDUK, resident(n=2, version=2, nama_lgkp="SITI RAHMAWATI PUTRI"), partition=5, offset=11),
    )

    assert [o.status for o in result.outcomes] == ["accepted", "accepted"]
    assert len(result.state) == 1
    (write,) = result.state.values()
    assert write.partition == 5
    assert KeyState.decode(write.value) == KeyState(2, (str(event_id(1)), str(event_id(2))), PID, at=11)


def test_every_normalizer_outcome_is_reported_once_per_input_in_input_order() -> None:
    bus = Bus()
    valid = resident(n=1)
    batch = [
        bus.input(PENDUDUK, valid, offset=1),
        Input(PENDUDUK, 0, 2, b"k", b"garbage"),
        bus.input(BANSOS, aid(), offset=3),
        bus.input(PENDUDUK, valid, offset=4),
        bus.input(PENDUDUK, resident(n=2, version=6), offset=5),
        bus.input(KEJADIAN, incident(), offset=6),
        bus.input(BANSOS, aid("PKH-2", n=101, nik=BAD_NIK), offset=7),
    ]

    result = bus.normalize(*batch)

    assert [(o.source, o.status, o.reason) for o in result.outcomes] == [
        ("dukcapil.penduduk", "accepted", None),
        ("dukcapil.penduduk", "invalid", "NotWireFormat"),
        ("dinsos.penerima_bansos", "accepted", None),
        ("dukcapil.penduduk", "dropped", "duplicate"),
        ("dukcapil.penduduk", "dropped", "stale"),
        ("bpbd.kejadian", "accepted", None),
        ("dinsos.penerima_bansos", "invalid", "invalid_nik"),
    ]
    records = activity(result)
    assert counts(records["dukcapil.penduduk"]) == (4, 1, 1, 2)
    assert counts(records["dinsos.penerima_bansos"]) == (2, 1, 1, 0)
    assert counts(records["bpbd.kejadian"]) == (1, 1, 0, 0)
    assert len(sent(result, "bus.dlq")) == 2


# --- the joiner -----------------------------------------------------------------------------------------------

T0 = dt.datetime(2026, 11, 28, 8, 0, tzinfo=dt.UTC)
IDENTITY = {
    "person_id": PID,
    "household_id": "b" * 64,
    "full_name": "Siti Rahmawati",
    "birth_date": "1950-08-15",
    "sex": "FEMALE",
    "address": "Jl. Kenari II No. 5 RT 003/RW 011",
    "kelurahan_code": MENTENG,
    "kecamatan_code": "31.71.06",
    "kota_code": "31.71",
    "is_deceased": True,
    "deceased_on": "2026-09-01",
}
PAYMENT = {
    "person_id": PID,
    "disbursement_id": "KLJ-2026-10-000001",
    "programme": "KLJ",
    "period": "2026-10",
    "amount": 300000,
    "status": "PAID",
    "paid_on": "2026-10-05",
    "kelurahan_code": MENTENG,
}
AGENCY = {"identity": ("dukcapil", "penduduk"), "aid": ("dinsos", "penerima_bansos")}


def change(
    name: str, data: dict[str, Any] | None, *, version: int = 1, minutes: int = 0, key: str = PID
) -> dict[str, Any]:
    """A part as the normalizer sends it to canonical.person, decoded."""
    agency, dataset = AGENCY[name]
    event = f"{name}-{key[:6]}-v{version}"
    occurred_at = T0 + dt.timedelta(minutes=minutes)
    return PartChange(
        "person", key, name, f"{agency}.{dataset}:{name}-record", agency, dataset, event, version, occurred_at, data
    ).to_avro()


def test_one_persons_parts_in_one_batch_give_one_unified_record_its_contribution_and_its_finding() -> None:
    bus = Bus()
    identity, payment = change("identity", IDENTITY, minutes=1), change("aid", PAYMENT, minutes=2)

    result = bus.join(bus.input(PARTS, identity, offset=1), bus.input(PARTS, payment, offset=2))

    assert result.outcomes == [Outcome("person", "accepted"), Outcome("person", "accepted")]
    assert sorted(topics(result)) == ["canonical.region.v2", "unified.finding.v1", "unified.person.v1"]
    (person,) = sent(result, "unified.person.v1")
    assert person.key == PID.encode()
    record = value(person)
    assert (record["person_id"], record["full_name"], record["is_deceased"]) == (PID, "Siti Rahmawati", True)
    assert [a["disbursement_id"] for a in record["aid"]] == ["KLJ-2026-10-000001"]
    assert (record["version"], record["source_event_id"]) == (2, payment["event_id"])
    assert record["updated_at"] == T0 + dt.timedelta(minutes=2)

    (contribution,) = sent(result, "canonical.region.v2")
    assert contribution.key == MENTENG.encode()
    counted = part(contribution)
    assert (counted.entity, counted.entity_key, counted.part, counted.part_key) == ("region", MENTENG, "person", PID)
    assert counted.data == {"population": 0, "deceased": 1, "aid_recipients": 0, "students": 0}
    assert (counted.version, counted.event_id) == (2, f"{PID}@2")

    (finding,) = sent(result, "unified.finding.v1")
    assert finding.key == f"AID_TO_DECEASED:{PID}".encode()
    assert value(finding)["status"] == "OPEN" and value(finding)["severity"] == "CRITICAL"
    assert value(finding)["evidence"] == {
        "deceased_on": "2026-09-01",
        "disbursement_id": "KLJ-2026-10-000001",
        "paid_on": "2026-10-05",
        "payments_after_death": "1",
    }
    assert list(result.state) == [PID]


def test_a_finding_is_resolved_when_it_stops_holding() -> None:
    bus = Bus()
    bus.join(bus.input(PARTS, change("identity", IDENTITY)), bus.input(PARTS, change("aid", PAYMENT, minutes=1)))

    result = bus.join(bus.input(PARTS, change("aid", None, version=2, minutes=5)))  # Dinsos deletes the payment

    assert result.outcomes == [Outcome("person", "accepted")]
    (finding,) = sent(result, "unified.finding.v1")
    assert value(finding)["status"] == "RESOLVED"
    assert value(finding)["detected_at"] == T0 + dt.timedelta(minutes=1)  # when it was raised
    assert value(finding)["version"] == 3
    (person,) = sent(result, "unified.person.v1")
    assert value(person)["aid"] == [] and value(person)["version"] == 3
    assert JoinState.decode(bus.state[PID]).open_findings == {}


def test_a_batch_run_again_with_more_parts_still_settles_what_its_crashed_run_published() -> None:
    """A worker killed after sending a batch's outputs, before its state: the batch runs again from the same state,
    and may then hold more parts. What the first run published must not be left standing."""
    bus = Bus()
    payment, identity = change("aid", PAYMENT, minutes=1), change("identity", IDENTITY, minutes=2)
    before = dict(bus.state)
    crashed = bus.join(bus.input(PARTS, payment, offset=1))
    (opened,) = sent(crashed, "unified.finding.v1")
    assert (opened.key, value(opened)["status"]) == (f"NO_CIVIL_REGISTRY_RECORD:{PID}".encode(), "OPEN")
    bus.state = before

    again = bus.join(bus.input(PARTS, payment, offset=1), bus.input(PARTS, identity, offset=2))

    statuses = {o.key.decode(): value(o)["status"] for o in sent(again, "unified.finding.v1")}
    assert statuses == {f"NO_CIVIL_REGISTRY_RECORD:{PID}": "RESOLVED", f"AID_TO_DECEASED:{PID}": "OPEN"}
    assert {value(o)["version"] for o in sent(again, "unified.finding.v1")} == {2}  # newer than the crashed run's
    assert value(opened)["version"] == 1


def test_a_deletion_in_a_batch_run_again_removes_the_record_its_crashed_run_published() -> None:
    bus = Bus()
    identity, deleted = change("identity", IDENTITY), change("identity", None, version=2, minutes=1)
    crashed = bus.join(bus.input(PARTS, identity, offset=1))
    assert value(sent(crashed, "unified.person.v1")[0])["person_id"] == PID
    bus.state = {}

    again = bus.join(bus.input(PARTS, identity, offset=1), bus.input(PARTS, deleted, offset=2))

    (person,) = sent(again, "unified.person.v1")
    assert person.key == PID.encode() and person.value is None


def test_a_redelivered_part_is_dropped_as_duplicate_and_publishes_nothing() -> None:
    bus = Bus()
    identity = change("identity", IDENTITY)
    bus.join(bus.input(PARTS, identity, offset=1))
    before = dict(bus.state)

    result = bus.join(bus.input(PARTS, identity, offset=1))

    assert result.outcomes == [Outcome("person", "dropped", "duplicate")]
    assert result.outputs == [] and result.state == {} and bus.state == before


def test_a_part_that_does_not_decode_is_dead_lettered_at_the_join_stage() -> None:
    bus = Bus()
    result = bus.join(
        Input(PARTS, 4, 99, PID.encode(), b"not a part"),
        bus.input(PARTS, change("identity", IDENTITY), partition=4, offset=100),
    )

    assert result.outcomes == [
        Outcome("person", "invalid", "NotWireFormat", "join"),
        Outcome("person", "accepted"),
    ]
    (letter,) = sent(result, "bus.dlq")
    assert (letter.key, letter.value) == (PID.encode(), b"not a part")
    headers = error_headers(letter)
    assert (headers["stage"], headers["reason"], headers["agency"]) == ("join", "NotWireFormat", "bus")
    assert (headers["topic"], headers["partition"], headers["offset"]) == (PARTS, "4", "99")
    assert len(sent(result, "unified.person.v1")) == 1


def test_an_unforeseen_error_while_joining_dead_letters_that_persons_parts_only() -> None:
    bus = Bus()
    other = person_id(KEY, NIK_2)
    broken = change("aid", PAYMENT | {"amount": -1}, key=other)  # no mapping sends this: AidPayment refuses it
    result = bus.join(
        bus.input(PARTS, change("identity", IDENTITY | {"person_id": other}, key=other), offset=1),
        bus.input(PARTS, change("identity", IDENTITY), offset=2),
        bus.input(PARTS, broken, offset=3),
    )

    assert result.outcomes == [
        Outcome("person", "invalid", "internal_error", "join"),
        Outcome("person", "accepted"),
        Outcome("person", "invalid", "internal_error", "join"),
    ]
    assert [o.key for o in sent(result, "bus.dlq")] == [other.encode(), other.encode()]
    assert [o.key for o in sent(result, "unified.person.v1")] == [PID.encode()]
    assert list(result.state) == [PID]  # nothing of the broken person is kept: a replay re-drives it


def test_the_joiner_writes_each_entitys_state_once_in_the_partition_of_its_last_part() -> None:
    bus = Bus()
    other = person_id(KEY, NIK_2)
    result = bus.join(
        bus.input(PARTS, change("identity", IDENTITY), partition=1, offset=1),
        bus.input(PARTS, change("identity", IDENTITY | {"person_id": other}, key=other), partition=2, offset=1),
        bus.input(PARTS, change("aid", PAYMENT, minutes=3), partition=3, offset=2),
    )

    assert set(result.state) == {PID, other}
    assert result.state[PID].partition == 3 and result.state[other].partition == 2
    assert sorted(JoinState.decode(result.state[PID].value).slots) == [
        "aid:dinsos.penerima_bansos:aid-record",
        "identity:dukcapil.penduduk:identity-record",
    ]
    assert [o.key for o in sent(result, "unified.person.v1")] == [PID.encode(), other.encode()]
    # The next batch starts from what was written.
    later = bus.join(bus.input(PARTS, change("aid", PAYMENT | {"status": "RETURNED"}, version=2, minutes=9)))
    (person,) = sent(later, "unified.person.v1")
    assert value(person)["version"] == 3 and [a["status"] for a in value(person)["aid"]] == ["RETURNED"]


def test_every_joiner_outcome_is_reported_once_per_input_in_input_order() -> None:
    bus = Bus()
    other = person_id(KEY, NIK_2)
    identity = change("identity", IDENTITY)
    bus.join(bus.input(PARTS, identity))

    result = bus.join(
        bus.input(PARTS, change("aid", PAYMENT, minutes=1)),
        Input(PARTS, 0, 5, b"x", None),
        bus.input(PARTS, change("identity", IDENTITY | {"person_id": other}, key=other)),
        bus.input(PARTS, identity),
        bus.input(PARTS, change("aid", PAYMENT, minutes=1)),
    )

    assert [(o.status, o.reason) for o in result.outcomes] == [
        ("accepted", None),
        ("invalid", "DecodeError"),
        ("accepted", None),
        ("dropped", "duplicate"),
        ("dropped", "duplicate"),
    ]
    assert [o.key for o in sent(result, "unified.person.v1")] == [PID.encode(), other.encode()]


def test_an_older_version_read_after_a_newer_one_of_its_topic_counts_as_accepted_and_sends_nothing() -> None:
    """faust-streaming drops events fetched while a worker starts; read again, they come after later ones."""
    bus = Bus()
    result = bus.normalize(
        bus.input(PENDUDUK, resident(n=2, version=2, nama_lgkp="SITI RAHMAWATI PUTRI"), partition=5, offset=151),
        bus.input(PENDUDUK, resident(n=1, version=1), partition=5, offset=150),  # published first, read late
        bus.input(PENDUDUK, resident(n=3, version=1), partition=5, offset=152),  # sent late by the agency
    )
    assert [(o.status, o.reason) for o in result.outcomes] == [
        ("accepted", None),
        ("accepted", None),
        ("dropped", "stale"),
    ]
    assert len(sent(result, "canonical.person.v2")) == 1  # only the newer version's part
    assert counts(activity(result)["dukcapil.penduduk"]) == (3, 2, 0, 1)
