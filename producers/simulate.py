"""``satubus simulate``: publish simulated Dukcapil residents and write the ground truth."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from producers.publisher import AgencyPublisher
from producers.simulator import (
    Pacer,
    ResidentEvent,
    dukcapil_record,
    expected_person,
    generate_residents,
    resident_events,
    write_truth,
)
from satubus import metrics
from satubus.errors import ConfigurationError
from satubus.settings import Settings
from schemas.models import Person
from schemas.regions import load_regions
from schemas.registry import registry_client
from schemas.serde import AvroSerde

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--residents", type=int, default=10_000, help="residents to publish (default 10000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed; the same seed gives the same data")
    parser.add_argument("--rate", type=float, default=0, help="events per second; 0 = as fast as possible")
    parser.add_argument("--truth", type=Path, help="write the expected unified person rows here (JSON lines)")
    parser.add_argument("--metrics", action="store_true", help="serve Prometheus metrics while publishing")


@dataclass(frozen=True, slots=True)
class Simulation:
    events: list[ResidentEvent]
    expected: list[Person]  # the unified rows the pipeline must then hold, one per event


def simulate(settings: Settings, *, residents: int, seed: int, rate: float = 0) -> Simulation:
    """Publish ``residents`` resident creation events and return them with their ground truth."""
    if settings.pseudonym_key is None:
        raise ConfigurationError("SATUBUS_PSEUDONYM_KEY is not set: the ground truth needs the pseudonym key")
    key = settings.pseudonym_key.get_secret_value().encode()
    people = generate_residents(residents, seed=seed, regions=load_regions(), today=dt.date.today())
    events, expected = [], []
    with (
        AvroSerde(registry_client(settings)) as serde,
        AgencyPublisher(settings, serde, agency="dukcapil", dataset="penduduk", system="siak") as publisher,
    ):
        pacer = Pacer(residents, rate, "dukcapil.penduduk")
        for event in resident_events(people, seed=seed, clock=_now_millis):
            publisher.publish(
                event.resident.nik,
                dukcapil_record(event.resident),
                version=event.version,
                op="c",
                occurred_at=event.occurred_at,
                event_id=event.event_id,
            )
            events.append(event)
            expected.append(expected_person(event, key))
            pacer.tick(lambda: publisher.acknowledged)
        publisher.flush()
        pacer.finish(publisher.acknowledged)
    return Simulation(events, expected)


def _now_millis() -> dt.datetime:
    """Avro's timestamp-millis keeps milliseconds: stamp events at that precision so the truth matches."""
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def main(args: argparse.Namespace, settings: Settings) -> int:
    if args.metrics:
        metrics.serve(settings.metrics_host, settings.simulator_metrics_port)
    simulation = simulate(settings, residents=args.residents, seed=args.seed, rate=args.rate)
    if args.truth:
        write_truth(args.truth, simulation.expected)
        log.info("wrote the ground truth (%d unified person rows) to %s", len(simulation.expected), args.truth)
    return 0
