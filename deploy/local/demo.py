"""``satubus demo``: the whole pipeline on the local stack with simulated agencies.

Starts the stack, provisions topics, schemas and tables, runs the stream processor, the materializer and the live
API as child processes, publishes simulated residents, follows the unified view until it is complete and says where to
look. The pipeline keeps running until Ctrl-C (or stops at once with ``--exit``); the stack stays up.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from satubus import access, database, metrics
from satubus.consumers import api_keys, api_scopes
from satubus.consumers.migrate import migrate
from satubus.database import dsn as owner_dsn
from satubus.deploy.local.stack import Stack, StackError
from satubus.kafka import create_topics
from satubus.producers.simulate import simulate
from satubus.registry import register_contracts, registry_client
from satubus.schemas.envelope import AGENCIES_DIR
from satubus.schemas.topics import all_contracts
from satubus.secrets import LocalSecrets
from satubus.settings import Settings


def _start(name: str, logs: Path) -> subprocess.Popen[bytes]:
    with (logs / f"{name}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "satubus.cli", name],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


async def _follow_view(
    settings: Settings,
    person_ids: list[str],
    children: list[subprocess.Popen[bytes]],
    logs: Path,
    patience: float = 600,
) -> bool:
    """Wait until every person is in the view; True when they all were at the first look."""
    conn = await asyncpg.connect(owner_dsn(settings))
    started = time.monotonic()
    first = True
    try:
        while True:
            count = await conn.fetchval(
                "SELECT count(*) FROM unified.person WHERE person_id = ANY($1::text[])", person_ids
            )
            print(f"\runified view: {count}/{len(person_ids)} rows", end="", flush=True)
            if count == len(person_ids):
                print()
                return first
            first = False
            if (code := _exit_code(children)) is not None:
                raise StackError(f"a pipeline process exited with {code}; see the logs in {logs}")
            if time.monotonic() - started > patience:
                raise StackError(f"the view was incomplete after {patience:.0f}s; see the logs in {logs}")
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


def _exit_code(children: list[subprocess.Popen[bytes]]) -> int | None:
    """The exit code of the first child that has exited (``Popen.poll`` does not wait), or None."""
    return next((child.returncode for child in children if child.poll() is not None), None)


async def _people(settings: Settings) -> int:
    conn = await asyncpg.connect(owner_dsn(settings))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM unified.person"))
    finally:
        await conn.close()


def _host(settings: Settings) -> str:
    return urlsplit(settings.database_url).netloc.rpartition("@")[2]


def main(args: argparse.Namespace, settings: Settings) -> int:
    print("1/5 local stack (Kafka, schema registry, PostgreSQL, Prometheus)")
    Stack.from_settings(settings).up()
    print("2/5 topics, schemas and tables")
    create_topics(settings)
    with registry_client(settings, admin=True) as registry:
        register_contracts(registry, all_contracts(settings.namespace, settings.mappings_dir or AGENCIES_DIR))
    asyncio.run(migrate(owner_dsn(settings)))

    logs = settings.state_dir.resolve() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    print(f"3/5 stream processor, materializer and live API (logs in {logs})")
    children = [_start("stream", logs), _start("materialize", logs), _start("api", logs)]
    try:
        metrics.serve(settings.metrics_host, settings.simulator_metrics_port, "SATUBUS_SIMULATOR_METRICS_PORT")
        print(f"4/5 the 40 integrated agencies publish a simulated city of {args.residents} residents")
        rows_before = asyncio.run(_people(settings))
        published = time.monotonic()
        simulation = simulate(settings, residents=args.residents, seed=args.seed, rate=args.rate)
        expected = list(simulation.truth.persons.values())
        print("5/5 waiting for the unified view")
        at_once = asyncio.run(_follow_view(settings, [p.person_id for p in expected], children, logs))
        elapsed = time.monotonic() - published
        if at_once and rows_before >= len(expected):  # the same seed made the same events: dropped as applied
            print(
                f"They were all there already: an earlier demo published this city (seed {args.seed}). "
                f"Run `satubus demo --seed N` to simulate another one."
            )
        api = f"http://{settings.api_host}:{settings.api_port}"
        key = asyncio.run(api_keys.issue(settings, "demo-operator", frozenset({api_scopes.PERSON}), "satubus demo"))
        reader = urlsplit(settings.database_url)._replace(netloc=f"{database.API}@{_host(settings)}").geturl()
        secrets_file = LocalSecrets(settings.secrets_dir).path
        print(
            f"\n{len(simulation.published)} agency events published; the {len(expected)} residents are in the unified "
            f"view {elapsed:.1f}s after publishing began. The stream processor normalizes every dataset that has a "
            f"mapping file and joins them: people with their aid, schooling and health visits, parcels with their "
            f"tax, zoning and permits, regions, incidents and findings.\n\nWhere to look:\n"
            f"  scoreboard        {api}/v1/scoreboard (which of the 52 agencies are integrated)\n"
            f"  live API          {api}/docs (lookups, findings, live changes at /v1/changes); personal records\n"
            f"                    need a key and a purpose, e.g. with this one (read:person, shown once):\n"
            f"                    curl -H 'Authorization: Bearer {key.token}' "
            f"'{api}/v1/persons/{expected[0].person_id}?purpose=pelayanan'\n"
            f"  the unified view  psql {reader} -c "
            f"'SELECT kota_code, count(*), sum(is_deceased::int) AS deceased FROM unified.person GROUP BY 1'\n"
            f"                    (a read-only login; its password: {secrets_file}, postgres.{database.API})\n"
            f"  metrics           http://127.0.0.1:{settings.prometheus_port} (Prometheus, with the alert rules); "
            f"Grafana dashboards to import: deploy/grafana/*.json\n"
            f"                    each process's own: publishing http://{settings.metrics_host}:"
            f"{settings.simulator_metrics_port}/metrics, stream {settings.stream_metrics_port}, "
            f"materializer {settings.materializer_metrics_port}\n"
            f"  unified topics    unified.person.v1, .parcel.v1, .region.v1, .incident.v1, .finding.v1 on "
            f"{settings.kafka_bootstrap} (schema registry {settings.registry_url}), SASL_SSL with SCRAM-SHA-512 as "
            f"{access.DOWNSTREAM} (CA {settings.kafka_ca}; password: {secrets_file}, kafka.{access.DOWNSTREAM})\n"
            f"  logs              {logs}\n"
            f"  stop the stack    satubus stack down"
        )
        if not args.exit:
            print("\nThe pipeline keeps running; press Ctrl-C to stop it.")
            signals = {signal.SIGINT, signal.SIGTERM}
            signal.pthread_sigmask(signal.SIG_BLOCK, signals)
            signal.sigwait(signals)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
    return 0
