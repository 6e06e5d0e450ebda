"""``satubus simulate``: the integrated agencies publish a simulated city; the ground truth is written beside it.

Output is deterministic for a seed and the city's clock (``--as-of``): records, keys, event ids and order. Dates and
times inside the records (births, visits, incidents, requests) are relative to that clock; event times are the
publish times. The 12 agencies the catalogue lists as not integrated stay silent.

Events go out in batches (``publish_batch``); the ground truth holds the events the broker acknowledged, so it
matches the topics even when some were not, and the counts of each outcome are reported.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TextIO

from satubus import metrics, pseudonym_key
from satubus.errors import EXIT_FAILURE, EXIT_UNAVAILABLE, ConfigurationError
from satubus.producers.publisher import AgencyPublisher, Change, Outcome, Status
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
BATCH = 10_000  # events sent at a time, one publish_batch per dataset, the datasets' batches side by side
BATCH_SECONDS = 0.05  # a paced run (--rate) sends what it has at least this often: its events wait no longer


@dataclass
class Simulation:
    world: World
    published: list[Published]  # acknowledged by the broker, in the script's order
    truth: Truth  # of the published events
    outcomes: Counter[Status] = field(default_factory=Counter)  # every event sent, by outcome
    first_problem: str = ""  # the reason of the first event not published


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
    key = pseudonym_key.load(settings)  # the ground truth needs it: ConfigurationError first, if there is none
    integrated: set[str] = {a.code for a in load_catalogue() if a.integrated}
    chosen = integrated if agencies is None else agencies & integrated
    regions = load_regions()
    clock = as_of or _now_millis().replace(minute=0, second=0, microsecond=0)
    if clock > _now_millis():
        raise ConfigurationError(f"--as-of {clock.isoformat()} is in the future; the bus rejects future records")
    world = generate_world(residents, seed=seed, regions=regions, now=clock)
    script = plan(world, seed=seed, dirty=dirty, regions=regions, agencies=chosen)
    simulation = Simulation(world, [], Truth())
    _publish(settings, script, simulation, rate=rate, duration=duration, progress=progress)
    simulation.truth = compute(simulation.published, key.secret)
    return simulation


def _publish(
    settings: Settings, script: list[Planned], into: Simulation, *, rate: float, duration: float, progress: TextIO
) -> None:
    publishers: dict[tuple[str, str], AgencyPublisher] = {}
    pending: list[tuple[Planned, Change]] = []
    started = last_report = last_sent = time.monotonic()
    with AvroSerde(registry_client(settings)) as serde, ThreadPoolExecutor(8) as threads:

        def send() -> None:
            """Publish the pending events, one batch per dataset (waiting for the broker side by side); record each
            event's outcome in script order."""
            by_dataset: dict[tuple[str, str], list[int]] = {}
            for position, (planned, _) in enumerate(pending):
                by_dataset.setdefault((planned.agency, planned.dataset), []).append(position)
            for agency, dataset in by_dataset.keys() - publishers.keys():
                publishers[(agency, dataset)] = AgencyPublisher(
                    settings, serde, agency=agency, dataset=dataset, system="simulator"
                )
            batches = {
                name: threads.submit(publishers[name].publish_batch, [pending[p][1] for p in positions])
                for name, positions in by_dataset.items()
            }
            outcomes: dict[int, Outcome] = {}
            for name, positions in by_dataset.items():
                outcomes.update(zip(positions, batches[name].result(), strict=True))
            for position, (planned, change) in enumerate(pending):
                outcome = outcomes[position]
                into.outcomes[outcome.status] += 1
                if outcome.status == "published":
                    assert change.occurred_at is not None
                    into.published.append(Published(planned, change.occurred_at))
                elif not into.first_problem:
                    into.first_problem = f"{planned.agency}.{planned.dataset} {outcome.status}: {outcome.reason}"
            pending.clear()

        for n, planned in enumerate(script, start=1):
            now = time.monotonic()
            if duration and now - started >= duration:
                break
            if rate and (due := started + n / rate) > now:
                time.sleep(due - now)
            occurred_at = _now_millis() + (FUTURE if planned.future else dt.timedelta())
            change = Change(planned.key, planned.record, planned.version, planned.op, occurred_at, planned.event_id)
            pending.append((planned, change))
            if len(pending) >= BATCH or (rate and now - last_sent >= BATCH_SECONDS):
                send()
                last_sent = now
            if now - last_report >= 1:
                last_report = now
                _report(progress, len(into.published), len(script), started, end="")
        send()
    _report(progress, len(into.published), len(script), started, end="\n")


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
    rejected, failed = simulation.outcomes["rejected"], simulation.outcomes["failed"]
    if rejected or failed:
        print(
            f"satubus simulate: {rejected} events rejected, {failed} not acknowledged by the broker (the ground truth "
            f"leaves them out); first: {simulation.first_problem}",
            file=sys.stderr,
        )
    return EXIT_UNAVAILABLE if failed else EXIT_FAILURE if rejected else 0
