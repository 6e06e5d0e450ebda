"""``satubus dlq`` against the real stack with hostile dead letters: ``inspect`` decodes a record with the registry and
shows it with its personal fields masked; ``replay`` sends a letter back only to a topic of its own agency and
refuses the rest (a unified topic, another agency's, a topic of another agency than the letter's)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from confluent_kafka import Producer

from satubus import access
from satubus.kafka import admin_client, producer_config, read_to_end
from satubus.registry import registry_client
from satubus.schemas.dead_letters import REPLAY_HEADER, DeadLetter
from satubus.schemas.topics import DEAD_LETTERS, DUKCAPIL_PENDUDUK
from satubus.serde import AvroSerde
from satubus.settings import Settings
from satubus.streams.errors import Rejected
from tests.integration.test_dlq_replay import satubus

NIK = "3171064808850001"
KK = "3171060101200003"
NAME = "SITI RAHMAWATI"
STREET = "Jl. Kebon Sirih No. 12"


def resident_event() -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "op": "c",
        "occurred_at": dt.datetime.now(dt.UTC),
        "source": {"agency": "dukcapil", "system": "siak", "version": "2.1"},
        "key": NIK,
        "version": 1,
        "after": {
            "nik": NIK,
            "no_kk": KK,
            "nama_lgkp": NAME,
            "tgl_lhr": "08-08-1985",
            "jenis_klmin": "WANITA",
            "alamat": STREET,
            "no_rt": "3",
            "no_rw": "5",
            "kode_kel": "3171061001",
            "nama_kel": "KAMPUNG MELAYU",
            "stat_hidup": "HIDUP",
            "tgl_mati": None,
        },
        "before": None,
    }


def dead_letter(bus: Settings, reason: str, topic: str, agency: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    contract = DUKCAPIL_PENDUDUK.within(bus.namespace)
    with AvroSerde(registry_client(bus)) as serde:
        raw = serde.encode(contract.subject, contract.value_schema(), resident_event())
    error = Rejected("jenis_klmin", reason, f"'WANITA' is not in code list sex (nik {NIK})")
    return raw, DeadLetter("normalize", reason, error, topic, 0, 7, agency).headers(raw)


def send_letters(bus: Settings, letters: list[tuple[bytes, list[tuple[str, bytes]]]]) -> None:
    producer = Producer(producer_config(bus, "test-dlq-letters", access.ADMIN))
    for value, headers in letters:
        producer.produce(bus.topic(DEAD_LETTERS.name), key=NIK.encode(), value=value, headers=headers)
    assert producer.flush(30) == 0


def test_inspect_shows_the_decoded_record_with_personal_fields_masked(bus: Settings) -> None:
    send_letters(bus, [dead_letter(bus, "masking_test", bus.topic(DUKCAPIL_PENDUDUK.name), "dukcapil")])

    as_json = satubus(bus, "dlq", "inspect", "--reason", "masking_test", "--json", "--limit", "0")
    assert as_json.returncode == 0, as_json.stderr
    (line,) = as_json.stdout.splitlines()
    letter = json.loads(line)
    assert letter["record"]["after"] | {"tgl_mati": None} == {
        "nik": "3171************",
        "no_kk": "3171************",
        "nama_lgkp": "S*** R********",
        "tgl_lhr": "**-**-1985",
        "jenis_klmin": "WANITA",
        "alamat": "<masked, 22 chars>",
        "no_rt": "3",
        "no_rw": "5",
        "kode_kel": "3171061001",
        "nama_kel": "KAMPUNG MELAYU",
        "stat_hidup": "HIDUP",
        "tgl_mati": None,
    }
    assert letter["record"]["key"] == "3171************"
    assert letter["message"] == "jenis_klmin: 'WANITA' is not in code list sex (nik 3171************)"

    as_text = satubus(bus, "dlq", "inspect", "--reason", "masking_test", "--limit", "0")
    assert as_text.returncode == 0, as_text.stderr
    assert '    after.nama_lgkp: "S*** R********"' in as_text.stdout.splitlines()
    assert "1  dukcapil  masking_test" in as_text.stderr
    for output in (as_json.stdout, as_text.stdout):
        for clear in (NIK, KK, NAME, "RAHMAWATI", "Kebon", "08-08-1985"):
            assert clear not in output


def test_replay_refuses_every_letter_but_those_for_a_topic_of_their_own_agency(bus: Settings) -> None:
    own_topic = bus.topic(DUKCAPIL_PENDUDUK.name)
    unified = bus.topic("unified.person.v1")
    foreign = bus.topic("agency.other.x")
    send_letters(
        bus,
        [
            dead_letter(bus, "hostile_replay", unified, "dukcapil"),
            dead_letter(bus, "hostile_replay", foreign, "dukcapil"),
            dead_letter(bus, "hostile_replay", own_topic, "dinsos"),  # the letter's agency is not the topic's
            dead_letter(bus, "hostile_replay", own_topic, "dukcapil"),  # the one to replay
        ],
    )
    before = {topic: len(read_to_end(bus, topic)) for topic in (own_topic, unified)}
    replays_before = _replays(bus, own_topic)

    dry = satubus(bus, "dlq", "replay", "--reason", "hostile_replay", "--dry-run")
    assert dry.returncode == 1, dry.stderr
    assert "1 of 4 matching letters would be replayed; 3 refused" in dry.stdout

    replayed = satubus(bus, "dlq", "replay", "--reason", "hostile_replay")
    assert replayed.returncode == 1, replayed.stderr
    assert "replayed 1 dead letters to their original topics; 3 refused" in replayed.stdout
    refusals = [line for line in replayed.stderr.splitlines() if line.startswith("refused ")]
    assert len(refusals) == 3
    assert f"'{unified}' is not an agency topic" in refusals[0]
    assert f"'{foreign}' is not a topic of its agency 'dukcapil'" in refusals[1]
    assert f"'{own_topic}' is not a topic of its agency 'dinsos'" in refusals[2]

    assert len(read_to_end(bus, unified)) == before[unified]
    assert foreign not in admin_client(bus).list_topics(timeout=15).topics
    assert len(read_to_end(bus, own_topic)) == before[own_topic] + 1
    assert _replays(bus, own_topic) == replays_before + 1  # the one new record is the replayed letter


def _replays(bus: Settings, topic: str) -> int:
    """Records of ``topic`` sent by `satubus dlq replay` (earlier tests of the session may have sent some)."""
    return sum(REPLAY_HEADER in dict(m.headers() or []) for m in read_to_end(bus, topic))
