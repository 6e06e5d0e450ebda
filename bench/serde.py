"""Serde benchmark: our serde (Confluent wire format over fastavro, schema ids from the registry) against raw
fastavro writing and reading the same records with the same schema, in one run.

Run: ``SATUBUS_ENV_FILE=deploy/local/dev.env .venv/bin/python -m bench.serde [--events N]`` (stack up first: the
serde looks its schema up in the registry once). The records are Dinsos aid disbursements in their change-event
envelope, the bus's most frequent shape after Dukcapil's. Writes bench/results/serde.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro

from bench.common import report
from bench.publish import _envelope
from satubus.producers.simulator.render import penerima_bansos
from satubus.producers.simulator.world import generate_world
from satubus.registry import registry_client
from satubus.schemas.envelope import agency_event_schema
from satubus.schemas.regions import load_regions
from satubus.schemas.topics import agency_topic, value_subject
from satubus.serde import AvroSerde
from satubus.settings import Settings, get_settings

RESULTS = Path(__file__).parent / "results" / "serde.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000, help="records per measurement (default 50000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; each figure is the best (default 5)")
    args = parser.parse_args()
    results = measure(get_settings(), events=args.events, rounds=args.rounds)
    report(results, RESULTS)


def measure(settings: Settings, *, events: int, rounds: int) -> dict[str, Any]:
    world = generate_world(events // 2, seed=3, regions=load_regions(), now=dt.datetime.now(dt.UTC))
    rng = random.Random(1)
    records = [_envelope(penerima_bansos(d, rng)) for d in world.disbursements]
    records = (records * (events // max(len(records), 1) + 1))[:events]
    schema = agency_event_schema("dinsos", "penerima_bansos")
    parsed = fastavro.parse_schema(schema)

    with AvroSerde(registry_client(settings)) as serde:
        subject = value_subject(agency_topic("dinsos", "penerima_bansos"))
        encoder = serde.encoder(subject, schema)
        ours = [encoder.encode(r) for r in records]
        raw = [_raw_encode(parsed, r) for r in records]
        work: dict[str, tuple[list[Any], Callable[[Any], object]]] = {
            "raw fastavro encode": (records, lambda r: _raw_encode(parsed, r)),
            "our serde encode": (records, encoder.encode),
            "raw fastavro decode": (raw, lambda b: fastavro.schemaless_reader(io.BytesIO(b), parsed, None)),
            "our serde decode": (ours, lambda b: serde.decode(b, subject)),
            "our serde decode to the mapping's reader schema": (
                ours,
                lambda b: serde.decode(b, subject, reader=schema),
            ),
        }
        rates = _best_rates(work, rounds=rounds)
    sizes = sorted(len(b) for b in ours)
    return {
        "records": len(records),
        "median record size (bytes, with the 5-byte header)": sizes[len(sizes) // 2],
        **{f"{name} (records/s)": round(rate) for name, rate in rates.items()},
        "ratio encode ours / raw": round(rates["our serde encode"] / rates["raw fastavro encode"], 3),
        "ratio decode ours / raw": round(rates["our serde decode"] / rates["raw fastavro decode"], 3),
        "our cost per record, encode + decode (µs)": round(
            1e6 / rates["our serde encode"] + 1e6 / rates["our serde decode"], 2
        ),
    }


def _raw_encode(parsed: Any, record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed, record)
    return out.getvalue()


def _best_rates(work: dict[str, tuple[list[Any], Callable[[Any], object]]], rounds: int) -> dict[str, float]:
    """Records per second of each piece of work, the best of ``rounds`` rounds. The rounds interleave the pieces,
    so that a noisy moment on this shared machine does not fall on one of them only."""
    best = dict.fromkeys(work, float("inf"))
    for _ in range(rounds):
        for name, (items, function) in work.items():
            started = time.perf_counter()
            for item in items:
                function(item)
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: len(work[name][0]) / seconds for name, seconds in best.items()}


if __name__ == "__main__":
    main()
