"""Peer: the same normalization as a plain Quix Streams application (bench/quix/app.py), on the agency topics as the
stream benchmark left them, in a virtualenv of its own (Quix pins older confluent-kafka and pydantic). Its rate is
counted from its first event: before that, Quix creates a changelog topic per input topic, one a second.

Run: ``SATUBUS_ENV_FILE=deploy/local/dev.env .venv/bin/python -m bench.quix_peer [--residents N]`` (stack up). It
publishes a simulated city to emptied topics first. Writes bench/results/quix_peer.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import empty_topics, report
from satubus import access
from satubus.kafka import admin_client, client_config
from satubus.producers.simulate import simulate
from satubus.schemas.topics import agency_topic, all_contracts
from satubus.settings import Settings, get_settings
from satubus.streams.mapping import discover_mappings

HERE = Path(__file__).parent / "quix"
RESULTS = Path(__file__).parent / "results" / "quix_peer.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=10_000, help="size of the simulated city (default 10000)")
    args = parser.parse_args()
    settings = get_settings()
    empty_topics(settings, [c.name for c in all_contracts()])
    agencies = {m.agency for m in discover_mappings()}
    simulation = simulate(settings, residents=args.residents, seed=1, agencies=agencies, progress=io.StringIO())
    results = measure(settings, events=len(simulation.published))
    report(results, RESULTS)


def measure(settings: Settings, *, events: int) -> dict[str, Any]:
    """Normalize the ``events`` waiting in the mapped agency topics with Quix Streams."""
    python = _virtualenv(settings)
    topics = sorted({agency_topic(m.agency, m.dataset) for m in discover_mappings()})
    state = settings.state_dir.resolve() / "bench" / "quix-state"
    shutil.rmtree(state, ignore_errors=True)  # a folder per consumer group, and each run has a group of its own
    assert settings.pseudonym_key is not None
    env = {
        **os.environ,
        "PYTHONPATH": str(HERE.parent.parent),
        "QUIX_STATE_DIR": str(state),
        # The same TLS and SCRAM login as the bus's own clients (librdkafka's settings, as JSON).
        "QUIX_KAFKA_CONFIG": json.dumps(client_config(settings, access.ADMIN)),
        "SATUBUS_PSEUDONYM_KEY": settings.pseudonym_key.get_secret_value(),
    }
    done = subprocess.run(
        [python, str(HERE / "app.py"), str(events), *topics], capture_output=True, text=True, env=env, timeout=1800
    )
    _delete_quix_topics(settings)
    if done.returncode != 0:
        raise SystemExit(f"the Quix Streams application failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if figures["processed"] != events:
        raise SystemExit(f"the Quix Streams application processed {figures['processed']} of {events} events")
    return figures


def _delete_quix_topics(settings: Settings) -> None:
    """Quix makes a changelog topic per input topic and consumer group, and each run has a group of its own."""
    admin = admin_client(settings)
    ours = ("changelog__bench-quix-", "bench.quix.")
    doomed = [t for t in admin.list_topics(timeout=15).topics if t.startswith(ours)]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=60).values():
            future.result()


def _virtualenv(settings: Settings) -> str:
    venv = settings.state_dir.resolve() / "bench" / "quix-venv"
    python = venv / "bin" / "python"
    stamp = venv / "requirements.txt"
    wanted = (HERE / "requirements.txt").read_text()
    if not stamp.exists() or stamp.read_text() != wanted:
        print("  installing Quix Streams into its own virtualenv (first run only)...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-r", str(HERE / "requirements.txt")],
            check=True,
        )
        stamp.write_text(wanted)
    return str(python)


if __name__ == "__main__":
    main()
