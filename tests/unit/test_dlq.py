"""``satubus dlq``: replay only to the letter's own agency's topics; inspect shows records with personal data masked.
A letter's headers are whatever was written to bus.dlq, so the letters here are hostile."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from satubus.schemas.dead_letters import preview
from satubus.schemas.errors import NotWireFormat
from satubus.settings import Settings
from satubus.streams import dlq
from satubus.streams.dlq import Letter, replay_refusal

AGENCY_TOPICS = "kota.agency."
NIK = "3171064808850001"


@pytest.mark.parametrize(
    ("topic", "agency"),
    [
        ("kota.agency.dukcapil.penduduk.v1", "dukcapil"),
        ("kota.agency.dukcapil.penduduk", "dukcapil"),
        ("kota.agency.bpbd.kejadian.v2", "bpbd"),
    ],
)
def test_a_letter_may_go_back_to_a_topic_of_its_own_agency(topic: str, agency: str) -> None:
    assert replay_refusal(topic, agency, AGENCY_TOPICS) is None


@pytest.mark.parametrize(
    ("topic", "agency", "why"),
    [
        ("kota.unified.person.v1", "dukcapil", "'kota.unified.person.v1' is not an agency topic"),
        ("kota.canonical.person.v2", "dukcapil", "is not an agency topic"),
        ("kota.restricted.person_nik.v1", "dukcapil", "is not an agency topic"),
        ("kota.bus.dlq", "dukcapil", "is not an agency topic"),
        ("agency.dukcapil.penduduk.v1", "dukcapil", "is not an agency topic"),  # another namespace's
        ("other.agency.dukcapil.penduduk.v1", "dukcapil", "is not an agency topic"),
        ("kota.agency.other.x", "dukcapil", "is not a topic of its agency 'dukcapil'"),
        ("kota.agency.dukcapilx.penduduk.v1", "dukcapil", "is not a topic of its agency"),
        ("kota.agency.dukcapil", "dukcapil", "is not a topic of its agency"),  # no dataset
        ("kota.agency.dukcapil.", "dukcapil", "is not a topic of its agency"),
        ("kota.agency.dukcapil..v1", "dukcapil", "is not a topic of its agency"),
        ("kota.agency.dukcapil.penduduk.v1\n", "dukcapil", "is not a topic of its agency"),
        ("kota.agency.dukcapil.pen duduk", "dukcapil", "is not a topic of its agency"),
        ("kota.agency.dukcapil.penduduk.v1", "dinsos", "is not a topic of its agency 'dinsos'"),
        ("kota.agency.dukcapil.penduduk.v1", "dukcapil.penduduk", "is not an agency code"),
        ("kota.agency.dukcapil.penduduk.v1", "", "is not an agency code"),
        ("kota.agency.dukcapil.penduduk.v1", None, "is not an agency code"),
        ("", "dukcapil", "names no original topic"),
        (None, "dukcapil", "names no original topic"),
    ],
)
def test_every_other_letter_is_refused_with_the_reason(topic: str | None, agency: str | None, why: str) -> None:
    refusal = replay_refusal(topic, agency, AGENCY_TOPICS)
    assert refusal is not None and why in refusal


def letter(offset: int, topic: str | None, agency: str | None, value: bytes | None = b"\x00v") -> Letter:
    facts = {"stage": "normalize", "reason": "unknown_code", "partition": "0", "offset": str(offset)}
    facts |= {"topic": topic} if topic is not None else {}
    facts |= {"agency": agency} if agency is not None else {}
    return Letter(0, offset, b"k", value, facts | {"message": "m", "preview": preview(value)})


def test_a_dry_run_lists_what_it_would_replay_and_what_it_refuses(capsys: pytest.CaptureFixture[str]) -> None:
    letters = [
        letter(1, "kota.agency.dukcapil.penduduk.v1", "dukcapil"),
        letter(2, "kota.unified.person.v1", "dukcapil"),
        letter(3, "kota.agency.other.x\x1b[2J", "dukcapil"),
        letter(4, "kota.agency.dukcapil.penduduk.v1", "dukcapil", value=None),
    ]
    code = dlq._replay(Settings(namespace="kota"), letters, dry_run=True)
    out, err = capsys.readouterr()
    assert code == 1
    assert out.splitlines() == [
        "would replay 0@1 to kota.agency.dukcapil.penduduk.v1",
        "1 of 4 matching letters would be replayed; 2 refused (not a topic of their agency); 1 without a value, "
        "not replayed",
    ]
    assert err.splitlines() == [
        "refused 0@2: 'kota.unified.person.v1' is not an agency topic (kota.agency.<agency>.<dataset>)",
        "refused 0@3: 'kota.agency.other.x\\x1b[2J' is not a topic of its agency 'dukcapil'",
    ]


def test_a_dry_run_with_nothing_to_refuse_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    letters = [letter(1, "kota.agency.dukcapil.penduduk.v1", "dukcapil")]
    assert dlq._replay(Settings(namespace="kota"), letters, dry_run=True) == 0
    assert capsys.readouterr().err == ""


class FakeSerde:
    """The registry's answers: a decoded resident for a value starting with b"\\x00", else not wire format."""

    def __init__(self, registry: object) -> None:
        self.subjects: list[str] = []

    def __enter__(self) -> FakeSerde:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def decode(self, data: bytes, subject: str) -> dict[str, Any]:
        self.subjects.append(subject)
        if not data.startswith(b"\x00"):
            raise NotWireFormat("magic byte is 120, not 0: not Confluent wire format", data)
        return {
            "event_id": "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b",
            "key": NIK,
            "after": {"nik": NIK, "nama_lgkp": "SITI RAHMAWATI", "alamat": "Jl. Kebon Sirih No. 12", "no_rt": "3"},
        }


def inspect(monkeypatch: pytest.MonkeyPatch, letters: list[Letter], *, as_json: bool) -> int:
    monkeypatch.setattr(dlq, "registry_client", lambda settings: object())
    monkeypatch.setattr(dlq, "AvroSerde", FakeSerde)
    args = argparse.Namespace(limit=0, json=as_json)
    return dlq._inspect(Settings(namespace="kota"), letters, args)


def hostile_letters() -> list[Letter]:
    decodes = letter(1, "kota.agency.dukcapil.penduduk.v1", "dukcapil", value=b"\x00" + NIK.encode())
    garbage = letter(2, "kota.agency.dukcapil.penduduk.v1", "dukcapil", value=b"x SITI RAHMAWATI " + NIK.encode())
    # A letter written before previews were masked this way: its preview header shows the name.
    garbage.facts["preview"] = f"x SITI RAHMAWATI {NIK}"
    garbage.facts["message"] = f"nik: {NIK} born 08-08-1985"
    return [decodes, garbage]


def test_inspect_shows_decoded_records_field_by_field_with_personal_fields_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert inspect(monkeypatch, hostile_letters(), as_json=False) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "0@1  normalize/unknown_code  kota.agency.dukcapil.penduduk.v1:0@1  m",
        '    event_id: "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"',
        '    key: "3171************"',
        '    after.nik: "3171************"',
        '    after.nama_lgkp: "S*** R********"',
        '    after.alamat: "<masked, 22 chars>"',
        '    after.no_rt: "3"',
        "0@2  normalize/unknown_code  kota.agency.dukcapil.penduduk.v1:0@2  nik: 3171************ born **-**-1985",
        "    preview: x S*** R******** 3171************",
    ]
    assert "2 dead letters match" in err
    assert "        2  dukcapil  unknown_code" in err


def test_inspect_as_json_is_masked_the_same_way(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert inspect(monkeypatch, hostile_letters(), as_json=True) == 0
    out = capsys.readouterr().out
    decoded, garbage = (json.loads(line) for line in out.splitlines())
    assert decoded["record"]["after"]["nama_lgkp"] == "S*** R********"
    assert decoded["dlq"] == "0@1"
    assert garbage["record"] is None
    assert garbage["preview"] == "x S*** R******** 3171************"
    assert NIK not in out and "SITI" not in out and "RAHMAWATI" not in out and "Kebon" not in out


def test_a_letter_repeated_by_a_batch_that_ran_again_is_taken_once() -> None:
    topic = "agency.dinsos.penerima_bansos"
    first, other = letter(7, topic, "dinsos"), letter(8, topic, "dinsos")
    repeat = Letter(0, 20, first.key, first.value, dict(first.facts))  # later in bus.dlq, the same event
    unnamed = Letter(0, 21, b"k", b"v", {"stage": "normalize"})  # names no event: kept
    differs = Letter(0, 22, first.key, first.value, first.facts | {"agency": "dukcapil"})  # not a repeat: kept

    kept, repeated = dlq.once_per_event([first, other, repeat, unnamed, unnamed, differs])

    assert kept == [first, other, unnamed, unnamed, differs] and repeated == 1
