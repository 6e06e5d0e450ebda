"""The mapping engine: files are checked at load, and mapped records match the simulator's ground truth."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from satubus.producers.simulator.script import plan
from satubus.producers.simulator.truth import Published, compute
from satubus.producers.simulator.world import generate_world
from satubus.schemas.catalogue import load_catalogue
from satubus.schemas.code_lists import agency_code_lists
from satubus.schemas.envelope import AGENCIES_DIR
from satubus.schemas.mapping_spec import MappingError
from satubus.schemas.regions import load_regions
from satubus.streams.errors import Rejected
from satubus.streams.joins import JOINS, JoinState, PartChange, merge, track_findings
from satubus.streams.mapping import discover_mappings, load_mapping
from satubus.streams.ordering import KeyState, admit, remember

KEY = b"unit-test-key"
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
FUTURE = dt.timedelta(days=1)


def test_every_mapping_in_the_repository_loads() -> None:
    assert {(m.agency, m.dataset) for m in discover_mappings()} >= {("dukcapil", "penduduk"), ("bpbd", "kejadian")}


def test_mapped_and_joined_records_equal_the_ground_truth_and_dirt_gets_its_reason() -> None:
    """The whole normalize-and-join logic without Kafka: every agency's events through its mapping, the per-key
    guard and the joiners, in publication order, give the simulator's people, parcels, incidents and findings."""
    world = generate_world(3000, seed=21, regions=load_regions(), now=NOW)
    planned = plan(world, seed=21, dirty=0.1, regions=load_regions())
    published = [
        Published(p, NOW - dt.timedelta(seconds=1) + (FUTURE if p.future else dt.timedelta())) for p in planned
    ]
    truth = compute(published, KEY)
    mappings = {(m.agency, m.dataset): m for m in discover_mappings()}
    keys: dict[tuple[str, str, str], KeyState] = {}
    joins: dict[tuple[str, str], JoinState] = defaultdict(JoinState)
    unified: dict[str, dict[str, Any]] = defaultdict(dict)
    findings: set[tuple[str, str]] = set()
    outcomes: Counter[str] = Counter()
    for event in published:
        p = event.planned
        mapping = mappings.get((p.agency, p.dataset))
        if mapping is None:
            continue  # a dataset without a mapping yet (the agencies' service requests)
        try:
            result = mapping.apply(event.envelope(), regions=load_regions(), pseudonym_key=KEY, now=NOW)
        except Rejected as rejected:
            assert p.expect == f"dlq:{rejected.reason}", (p.expect, rejected)
            if rejected.reason == "unknown_region":
                findings.add(("UNKNOWN_REGION_CODE", f"{p.agency}.{p.dataset}:{rejected.value}"))
            continue
        assert not p.expect.startswith("dlq:"), p.expect
        key_state = keys.get((p.agency, p.dataset, p.key))
        verdict = admit(key_state, str(p.event_id), p.version)
        outcomes[verdict] += 1
        if verdict != "new":
            assert p.expect in ("duplicate", "stale"), p.expect
            continue
        keys[(p.agency, p.dataset, p.key)] = remember(key_state, str(p.event_id), p.version)
        entity_key = str(getattr(result, mapping.spec.key))
        if mapping.spec.part is None:
            unified[mapping.spec.entity][entity_key] = result
            continue
        if getattr(result, mapping.spec.key) is None:
            outcomes["unlinked"] += 1
            continue
        if mapping.spec.entity == "region":
            continue  # region parts are summed with contributions the joiners send: tests/unit/test_joins.py
        state = joins[(mapping.spec.entity, entity_key)]
        change = PartChange(
            mapping.spec.entity,
            entity_key,
            str(mapping.spec.part),
            f"{p.agency}.{p.dataset}:{p.key}",
            p.agency,
            p.dataset,
            str(p.event_id),
            p.version,
            event.occurred_at,
            result.model_dump(mode="json"),
        )
        assert merge(state, PartChange.from_avro(change.to_avro())) == "new"
        join = JOINS[mapping.spec.entity]
        record = join.compose(entity_key, state)
        if record is not None:
            unified[mapping.spec.entity][entity_key] = record
        for found in track_findings(state, join.findings(state), now=event.occurred_at):
            (findings.add if found.status == "OPEN" else findings.discard)((found.kind, entity_key))
    assert unified["person"] == truth.persons
    assert unified["parcel"] == truth.parcels
    assert unified["incident"] == truth.incidents
    mapped = {f"{agency}.{dataset}" for agency, dataset in mappings}
    expected = {(kind, s) for kind, s in truth.findings if kind != "UNKNOWN_REGION_CODE" or s.split(":")[0] in mapped}
    assert findings == expected
    assert {kind for kind, _ in findings} == {
        "AID_TO_DECEASED",
        "NO_CIVIL_REGISTRY_RECORD",
        "PERMIT_FORBIDDEN_BY_ZONING",
        "UNKNOWN_REGION_CODE",
    }
    counted = Counter[str]()
    for topic, counts in truth.counts.items():
        if topic.split(".")[1:3] in ([a, d] for a, d in mappings):
            counted.update(counts)
    assert (outcomes["new"] - outcomes["unlinked"], outcomes["duplicate"], outcomes["stale"]) == (
        counted["unified"],
        counted["duplicate"],
        counted["stale"],
    )
    assert outcomes["unlinked"] == counted["unlinked"] > 0


def copy_of_agencies(tmp_path: Path) -> Path:
    root = tmp_path / "agencies"
    shutil.copytree(AGENCIES_DIR, root)
    return root


def test_a_new_agency_dataset_is_onboarded_from_files_alone(tmp_path: Path) -> None:
    root = copy_of_agencies(tmp_path)
    (root / "gulkarmat").mkdir()
    (root / "gulkarmat" / "laporan_kebakaran.avsc").write_text(
        json.dumps(
            {
                "type": "record",
                "name": "LaporanKebakaran",
                "namespace": "id.go.jakarta.agency.gulkarmat",
                "doc": "A fire report of Dinas Gulkarmat.",
                "fields": [
                    {"name": "no_laporan", "type": "string", "doc": "Report number."},
                    {"name": "waktu", "type": "string", "doc": "Local time (WIB) as DD/MM/YYYY HH:MM."},
                    {"name": "kode_kelurahan_bps", "type": "string", "doc": "Kelurahan, BPS code."},
                    {"name": "korban", "type": "int", "doc": "Casualties."},
                    {"name": "padam", "type": "boolean", "doc": "Fire out."},
                ],
            }
        )
    )
    (root / "gulkarmat" / "laporan_kebakaran.mapping.yaml").write_text("""
entity: incident
key: incident_id
code_lists:
  padam: {"true": OVER, "false": ONGOING}
fields:
  incident_id:    {from: no_laporan, prefix: "gulkarmat:"}
  agency:         {value: gulkarmat}
  kind:           {value: FIRE}
  kelurahan_code: {from: kode_kelurahan_bps, region: kelurahan, region_by: [bps]}
  started_at:     {from: waktu, datetime: '%d/%m/%Y %H:%M', timezone: Asia/Jakarta}
  status:         {from: padam, codes: padam}
  displaced:      {value: 0}
  fatalities:     {value: 0}
  injured:        {from: korban}
  version:        {from: $version}
  updated_at:     {from: $occurred_at}
""")
    mapping = load_mapping("gulkarmat", "laporan_kebakaran", root)
    record = {
        "no_laporan": "DPK-77",
        "waktu": "28/11/2026 09:30",
        "kode_kelurahan_bps": "3173020001",
        "korban": 2,
        "padam": False,
    }
    incident = mapping.apply(
        {"event_id": "e1", "op": "c", "occurred_at": NOW, "key": "DPK-77", "version": 1, "after": record},
        regions=load_regions(),
        pseudonym_key=KEY,
        now=NOW,
    )
    assert (incident.incident_id, incident.kelurahan_code, incident.status) == (
        "gulkarmat:DPK-77",
        "31.71.06.1001",
        "ONGOING",
    )
    assert incident.started_at == dt.datetime(2026, 11, 28, 2, 30, tzinfo=dt.UTC)  # 09:30 WIB


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("  full_name:       {from: nama_lgkp, case: title}\n", "canonical field full_name is not mapped"),
        ("from: nama_lgkp, case: title", "fields.full_name.from: nama_lengkap is not a field of dukcapil/penduduk"),
        ("codes: sex}", "fields.sex.codes: no code list gender"),
        ("pattern: '\\d{16}'", "fields.household_id.pattern:"),
        ("case: title}", "fields.full_name.case: Input should be 'upper', 'lower' or 'title'"),
        ("{parent_of: kelurahan_code, level: kota}", "fields.kota_code: give exactly one of"),
        ("part: identity", "part: person has no part idnetity (known: identity, aid, schooling, health)"),
        ("restricted_nik: nik ", "restricted_nik: no_nik is not a field of dukcapil/penduduk"),
    ],
)
def test_a_broken_mapping_is_refused_naming_the_file_and_the_problem(tmp_path: Path, change: str, problem: str) -> None:
    root = copy_of_agencies(tmp_path)
    path = root / "dukcapil" / "penduduk.mapping.yaml"
    text = path.read_text()
    broken = {
        "  full_name:       {from: nama_lgkp, case: title}\n": "",
        "from: nama_lgkp, case: title": "from: nama_lengkap, case: title",
        "codes: sex}": "codes: gender}",
        "pattern: '\\d{16}'": "pattern: '[0-9'",
        "case: title}": "case: proper}",
        "{parent_of: kelurahan_code, level: kota}": "{parent_of: kelurahan_code, level: kota, value: 1}",
        "part: identity": "part: idnetity",
        "restricted_nik: nik ": "restricted_nik: no_nik ",
    }[change]
    assert change in text
    path.write_text(text.replace(change, broken))
    with pytest.raises(MappingError) as caught:
        load_mapping("dukcapil", "penduduk", root)
    assert str(path) in str(caught.value)
    assert problem in str(caught.value)


def test_the_common_service_request_mapping_applies_to_every_agency_unless_it_has_its_own(tmp_path: Path) -> None:
    root = copy_of_agencies(tmp_path)
    common = (root / "common" / "layanan.mapping.yaml").read_text()
    own = common.replace("status: {}", "status: {MASUK: OPEN, TUTUP: CLOSED}")
    (root / "dinsos" / "layanan.mapping.yaml").write_text(own)
    service = {m.agency: m for m in discover_mappings(root) if m.dataset == "layanan"}
    publishing = {a.code for a in load_catalogue() if "layanan" in a.datasets}
    assert set(service) == publishing
    assert service["dinsos"].spec.code_lists["status"] == {"MASUK": "OPEN", "TUTUP": "CLOSED"}
    assert "MASUK" not in service["dinkes"].spec.code_lists["status"]


def test_each_agency_keeps_its_own_service_request_codes() -> None:
    service = {m.agency: m for m in discover_mappings() if m.dataset == "layanan"}
    declared = agency_code_lists("layanan")
    assert {"BARU", "PROSES", "SELESAI"} == set(declared["*"]["status"])
    for agency, mapping in service.items():
        assert mapping.spec.code_lists["status"] == (declared.get(agency) or declared["*"])["status"], agency
    by_list = {tuple(sorted(m.spec.code_lists["status"])) for m in service.values()}
    assert len(by_list) == 3  # agencies really do differ

    def status_of(agency: str, code: str) -> object:
        record = {
            "no_tiket": "T-1",
            "kanal": "JAKI",
            "kategori": "X-01",
            "uraian": "jalan rusak",
            "kelurahan": "31.71.06.1001",
            "status": code,
            "waktu_lapor": NOW - dt.timedelta(hours=1),
            "waktu_selesai": None,
            "nik_pelapor": None,
        }
        event = {"event_id": "e1", "op": "c", "occurred_at": NOW, "key": "T-1", "version": 1, "after": record}
        return service[agency].apply(event, regions=load_regions(), pseudonym_key=KEY, now=NOW).status

    numeric = next(a for a, m in service.items() if "3" in m.spec.code_lists["status"])
    default = next(a for a in service if a not in declared)
    assert status_of(numeric, "3") == "CLOSED"
    with pytest.raises(Rejected) as caught:  # another agency's code is not this agency's
        status_of(default, "3")
    assert caught.value.reason == "unknown_code"
