"""The event script: every change each agency publishes, in order, with the dirt a real feed has.

Clean events express facts. With probability ``dirty`` a clean event is followed by a dirty one, whose fate is
part of the script: ``dlq:<reason>`` (a bad NIK, a kelurahan no reference knows, an event time in the future),
``duplicate`` (the same event sent twice) or ``stale`` (an older version arriving after a newer one).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from satubus.producers.publisher import Op
from satubus.producers.simulator import render
from satubus.producers.simulator.world import World
from satubus.schemas.regions import Regions

NIK_FIELDS = {
    ("dukcapil", "penduduk"): "nik",
    ("dinsos", "penerima_bansos"): "nik",
    ("dinkes", "kunjungan"): "nik_pasien",
}
REGION_FIELDS = {
    ("dukcapil", "penduduk"): ("kode_kel", "nama_kel"),
    ("dinsos", "penerima_bansos"): ("kelurahan",),
    ("dinkes", "kunjungan"): ("kode_kel_domisili",),
    ("bapenda", "objek_pajak"): ("kelurahan_op",),
    ("citata", "zonasi"): ("kode_kelurahan",),
    ("bpbd", "kejadian"): ("kelurahan",),
    ("*", "layanan"): ("kelurahan",),
}
UNKNOWN_PLACE = {"kode_kel": "3199999999", "kode_kel_domisili": "3199999999", "kode_kelurahan": "31.99.99.9999"}


@dataclass(frozen=True, slots=True)
class Planned:
    agency: str
    dataset: str
    key: str
    record: dict[str, Any] | None
    version: int
    op: Op
    event_id: uuid.UUID
    fact: Any  # what a clean event says (a Resident, a Parcel, ...); None for dirt
    expect: str = "unified"  # unified | dlq:<reason> | duplicate | stale
    future: bool = False  # stamped a day ahead: the normalizer must refuse it


def plan(world: World, *, seed: int, dirty: float, regions: Regions, agencies: set[str] | None = None) -> list[Planned]:
    rng = random.Random(seed * 31 + 7)
    ids = random.Random(seed * 17 + 3)

    def event(agency: str, dataset: str, key: str, record: dict[str, Any], fact: Any, version: int = 1) -> Planned:
        op: Op = "c" if version == 1 else "u"
        return Planned(
            agency,
            dataset,
            key,
            record,
            version,
            op,
            uuid.UUID(int=ids.getrandbits(128), version=4),
            fact,
        )

    streams: dict[tuple[str, str], list[Planned]] = {
        ("dukcapil", "penduduk"): [
            event("dukcapil", "penduduk", r.nik, render.penduduk(r), r) for r in world.residents
        ],
        ("dinsos", "penerima_bansos"): [
            event("dinsos", "penerima_bansos", d.id, render.penerima_bansos(d, rng), d) for d in world.disbursements
        ],
        ("disdik", "peserta_didik"): [
            event("disdik", "peserta_didik", e.nisn, render.peserta_didik(e, regions), e) for e in world.enrolments
        ],
        ("dinkes", "kunjungan"): [event("dinkes", "kunjungan", v.id, render.kunjungan(v), v) for v in world.visits],
        ("bapenda", "objek_pajak"): [
            event("bapenda", "objek_pajak", p.nop, render.objek_pajak(p, rng), p) for p in world.parcels
        ],
        ("citata", "zonasi"): [event("citata", "zonasi", p.nop, render.zonasi(p), p) for p in world.parcels],
        ("dpmptsp", "pbg"): [
            event("dpmptsp", "pbg", permit.application, render.pbg(p, permit, rng), (p, permit))
            for p in world.parcels
            for permit in p.permits
        ],
        ("bpbd", "kejadian"): [
            event("bpbd", "kejadian", i.id, render.kejadian(i, status, rng), i, version)
            for i in world.incidents
            for version, status in enumerate(i.statuses, start=1)
        ],
    }
    for request in world.requests:
        stream = streams.setdefault((request.agency, "layanan"), [])
        opened = replace(request, closed_at=None)
        stream.append(event(request.agency, "layanan", request.ticket, render.layanan(opened, rng), opened))
        if request.closed_at is not None:
            stream.append(event(request.agency, "layanan", request.ticket, render.layanan(request, rng), request, 2))

    for (agency, dataset), stream in streams.items():
        streams[(agency, dataset)] = list(_with_dirt(stream, rng, ids, dirty, (agency, dataset), regions))
    chosen = {k: v for k, v in streams.items() if agencies is None or k[0] in agencies}
    return _interleave(chosen, rng)


def _with_dirt(
    stream: list[Planned],
    rng: random.Random,
    ids: random.Random,
    dirty: float,
    dataset: tuple[str, str],
    regions: Regions,
) -> Iterator[Planned]:
    later: list[tuple[int, Planned]] = []  # duplicates and stale versions arrive some events after the original
    nik_field = NIK_FIELDS.get(dataset)
    region_fields = REGION_FIELDS.get(dataset) or REGION_FIELDS.get(("*", dataset[1]))
    for index, clean in enumerate(stream):
        while later and later[0][0] <= index:
            yield later.pop(0)[1]
        yield clean
        if rng.random() >= dirty or clean.record is None:
            continue
        kinds = ["duplicate", "stale", "dlq:future_event"]
        kinds += ["dlq:invalid_nik"] if nik_field else []
        kinds += ["dlq:unknown_region"] if region_fields else []
        kind = rng.choice(kinds)
        fresh = uuid.UUID(int=ids.getrandbits(128), version=4)
        if kind == "stale" and clean.version == 1:
            kind = "duplicate"  # versions count from 1: the first has no older one (and publishers refuse 0)
        if kind == "duplicate":
            later.append((index + rng.randint(1, 50), replace(clean, fact=None, expect="duplicate")))
        elif kind == "stale":
            older = replace(clean, event_id=fresh, version=clean.version - 1, op="u", fact=None, expect="stale")
            later.append((index + rng.randint(1, 50), older))
        elif kind == "dlq:future_event":
            yield replace(clean, event_id=fresh, fact=None, expect=kind, future=True)
        elif kind == "dlq:invalid_nik":
            assert nik_field is not None
            bad = clean.record[nik_field][:6] + "3299" + clean.record[nik_field][10:]  # day 32: impossible
            key = bad if dataset == ("dukcapil", "penduduk") else clean.key
            yield replace(
                clean, key=key, record=clean.record | {nik_field: bad}, event_id=fresh, fact=None, expect=kind
            )
        else:
            assert region_fields is not None
            if any(f in UNKNOWN_PLACE for f in region_fields):
                unknown = {f: UNKNOWN_PLACE.get(f, "Kel. Antah Berantah") for f in region_fields}
            else:  # a name typed by hand: misspelled
                unknown = {f: _misspelled(clean.record[f], rng, regions) for f in region_fields}
            yield replace(clean, record=clean.record | unknown, event_id=fresh, fact=None, expect=kind)
    yield from (planned for _, planned in later)


def _misspelled(name: str, rng: random.Random, regions: Regions) -> str:
    """A clerk's typo in a kelurahan name: one letter dropped or two neighbouring letters swapped, never in a
    'Kel.' prefix; never a name that exists."""
    body = name.removeprefix("Kel. ")
    inner = [i for i in range(1, len(body) - 1) if body[i].isalpha()]
    if not inner:  # a code, not a name
        return "Kel. Antah Berantah"
    at = rng.choice(inner)
    if rng.random() < 0.5 or not body[at + 1].isalpha():
        typo = body[:at] + body[at + 1 :]
    else:
        typo = body[:at] + body[at + 1] + body[at] + body[at + 2 :]
    typo = name[: len(name) - len(body)] + typo
    return typo if regions.kelurahan_named(typo) is None else "Kel. Antah Berantah"


def _interleave(streams: dict[tuple[str, str], list[Planned]], rng: random.Random) -> list[Planned]:
    """Merge the agencies' streams at random, keeping each stream's own order."""
    cursors = {name: 0 for name in streams}
    weights = {name: len(stream) for name, stream in streams.items()}
    merged: list[Planned] = []
    while cursors:
        names = list(cursors)
        name = rng.choices(names, weights=[weights[n] - cursors[n] for n in names])[0]
        merged.append(streams[name][cursors[name]])
        cursors[name] += 1
        if cursors[name] == len(streams[name]):
            del cursors[name]
    return merged
