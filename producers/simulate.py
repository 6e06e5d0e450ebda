"""``satubus simulate``: the integrated agencies publish a simulated city; the ground truth is written beside it.

Output is deterministic for a seed and the city's clock (``--as-of``): records, keys, event ids and order. Dates and
times inside the records (births, visits, incidents, requests) are relative to that clock; event times are the
publish times. The 12 agencies the catalogue lists as not integrated stay silent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from dataclasses import dataclass
from typing import TextIO

from satubus import metrics
from satubus.errors import ConfigurationError
from satubus.producers.publisher import AgencyPublisher
from satubus.producers.simulator.script import Planned, plan
from satubus.producers.simulator.truth import Published, Truth, compute
from satubus.producers.simulator.world import World, generate_world
from satubus.registry import registry_client
from satubus.schemas.catalogue import load_catalogue
from satubus.schemas.regions import load_regions
from satubus.serde import AvroSerde
from satubus.settings import Settings

log = logging.getLogger(__name__)
FUTURE = dt.timedelta(days=1)


@dataclass
class Simulation:
    world: World
    published: list[Published]
    truth: Truth


def simulate(
    settings: Settings,
    *,
    residents: int,
    seed: int,
    dirty: float = 0.02,
    rate: float = 0,
    duration: float = 0,
    agencies: set[str] | None = None,
    as_of: dt.datetime | None = None,
    progress: TextIO = sys.stderr,
) -> Simulation:
    if settings.pseudonym_key is None:
        raise ConfigurationError("SATUBUS_PSEUDONYM_KEY is not set: the ground truth needs the pseudonym key")
    integrated: set[str] = {a.code for a in load_catalogue() if a.integrated}
    chosen = integrated if agencies is None else agencies & integrated
    regions = load_regions()
    clock = as_of or _now_millis().replace(minute=0, second=0, microsecond=0)
    if clock > _now_millis():
        raise ConfigurationError(f"--as-of {clock.isoformat()} is in the future; the bus rejects future records")
    world = generate_world(residents, seed=seed, regions=regions, now=clock)
    script = plan(world, seed=seed, dirty=dirty, regions=regions, agencies=chosen)
    published = _publish(settings, script, rate=rate, duration=duration, progress=progress)
    return Simulation(world, published, compute(published, settings.pseudonym_key.get_secret_value().encode()))


def _publish(
    settings: Settings, script: list[Planned], *, rate: float, duration: float, progress: TextIO
) -> list[Published]:
    published: list[Published] = []
    publishers: dict[tuple[str, str], AgencyPublisher] = {}
    started = last_report = time.monotonic()
    with AvroSerde(registry_client(settings)) as serde:
        try:
            for n, planned in enumerate(script, start=1):
                now = time.monotonic()
                if duration and now - started >= duration:
                    break
                if rate and (due := started + n / rate) > now:
                    time.sleep(due - now)
                publisher = publishers.get((planned.agency, planned.dataset))
                if publisher is None:
                    publisher = publishers[(planned.agency, planned.dataset)] = AgencyPublisher(
                        settings, serde, agency=planned.agency, dataset=planned.dataset, system="simulator"
                    )
                occurred_at = _now_millis() + (FUTURE if planned.future else dt.timedelta())
                publisher.publish(
                    planned.key,
                    planned.record,
                    version=planned.version,
                    op=planned.op,
                    occurred_at=occurred_at,
                    event_id=planned.event_id,
                )
                published.append(Published(planned, occurred_at))
                if now - last_report >= 1:
                    last_report = now
                    _report(progress, len(published), len(script), started, end="")
        finally:
            for publisher in publishers.values():
                publisher.flush()
    _report(progress, len(published), len(script), started, end="\n")
    return published


def _report(out: TextIO, done: int, total: int, started: float, end: str) -> None:
    elapsed = max(time.monotonic() - started, 1e-9)
    print(
        f"\rsimulated agencies: {done}/{total} events published, {done / elapsed:,.0f} events/s",
        end=end,
        file=out,
        flush=True,
    )


def _now_millis() -> dt.datetime:
    """Avro's timestamp-millis keeps milliseconds: stamp events at that precision so the truth matches."""
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def main(args: argparse.Namespace, settings: Settings) -> int:
    if args.metrics:
        metrics.serve(settings.metrics_host, settings.simulator_metrics_port, "SATUBUS_SIMULATOR_METRICS_PORT")
    agencies = set(args.agencies.split(",")) if args.agencies else None
    simulation = simulate(
        settings,
        residents=args.residents,
        seed=args.seed,
        dirty=args.dirty,
        rate=args.rate,
        duration=args.duration,
        agencies=agencies,
        as_of=args.as_of,
    )
    truth = simulation.truth
    print(
        f"{len(simulation.published)} events from {len(truth.counts)} topics; expected: "
        f"{len(truth.persons)} persons, {len(truth.parcels)} parcels, {len(truth.incidents)} incidents, "
        f"{len(truth.findings)} findings, {len(truth.dead_letters)} dead letters"
    )
    if args.truth:
        truth.write(args.truth)
        print(f"ground truth written to {args.truth}")
    return 0
