"""The mapping engine: files are checked at load, and mapped records match the simulator's ground truth."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from producers.simulator.script import plan
from producers.simulator.truth import Published, compute
from producers.simulator.world import generate_world
from schemas.envelope import AGENCIES_DIR
from schemas.regions import load_regions
from streams.errors import Rejected
from streams.mapping import MappingError, discover_mappings, load_mapping

KEY = b"unit-test-key"
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
FUTURE = dt.timedelta(days=1)


def test_every_mapping_in_the_repository_loads() -> None:
    assert {(m.agency, m.dataset) for m in discover_mappings()} >= {("dukcapil", "penduduk"), ("bpbd", "kejadian")}


def test_mapped_records_equal_the_ground_truth_and_dirt_gets_its_reason() -> None:
    world = generate_world(3000, seed=21, regions=load_regions(), now=NOW)
    planned = plan(world, seed=21, dirty=0.1, regions=load_regions(), agencies={"dukcapil", "bpbd"})
    published = [
        Published(p, NOW - dt.timedelta(seconds=1) + (FUTURE if p.future else dt.timedelta())) for p in planned
    ]
    truth = compute(published, KEY)
    mappings = {(m.agency, m.dataset): m for m in discover_mappings()}
    latest: dict[str, Any] = {}
    for event in published:
        p = event.planned
        mapping = mappings.get((p.agency, p.dataset))
        if mapping is None:
            continue  # a dataset without a mapping yet (bpbd's service requests)
        try:
            result = mapping.apply(event.envelope(), regions=load_regions(), pseudonym_key=KEY, now=NOW)
        except Rejected as rejected:
            assert p.expect == f"dlq:{rejected.reason}", (p.expect, rejected)
            continue
        assert not p.expect.startswith("dlq:"), p.expect
        if p.expect == "unified":
            key = getattr(result, mapping.spec.key)
            latest[key] = result
    assert {k: v for k, v in latest.items() if k in truth.persons} == truth.persons
    assert {k: v for k, v in latest.items() if k in truth.incidents} == truth.incidents
    assert len(latest) == len(truth.persons) + len(truth.incidents)


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
        ("{from: $version}", "fields.version.from: $verzion is not a field"),
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
        "{from: $version}": "{from: $verzion}",
    }[change]
    assert change in text
    path.write_text(text.replace(change, broken))
    with pytest.raises(MappingError) as caught:
        load_mapping("dukcapil", "penduduk", root)
    assert str(path) in str(caught.value)
    assert problem in str(caught.value)
