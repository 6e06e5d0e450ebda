"""What the benchmarks share: a database of their own, emptied topics, the pipeline's processes and their CPU time,
and Java tools resolved from Maven Central."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from satubus.deploy.local.stack import mvn
from satubus.kafka import create_topics, ensure_topics
from satubus.settings import Settings, get_settings
from satubus.streams.app import APP_ID, local_state

DATABASE = "satubus_bench"
JAVA_POMS = Path(__file__).parent / "java"
TICKS = os.sysconf("SC_CLK_TCK")


def report(results: dict[str, Any], path: Path) -> None:
    """Print a step's figures, one per line (nested ones as JSON), and write them to ``path``."""
    width = max(map(len, results)) + 2
    for name, value in results.items():
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else value
        print(f"{name:<{width}}{shown:>12}")
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")


def bench_settings() -> Settings:
    """The project's settings with the benchmarks' own database, so a run never touches the live view."""
    base = get_settings()
    return Settings(**{**base.model_dump(), "database_url": base.database_url.rsplit("/", 1)[0] + f"/{DATABASE}"})


def query(settings: Settings, sql: str) -> Any:
    """The one row a SQL query returns, from the settings' database."""

    async def fetch() -> Any:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return await conn.fetchrow(sql)
        finally:
            await conn.close()

    return asyncio.run(fetch())


def empty_topics(settings: Settings, topics: Sequence[str]) -> None:
    """Delete the topics, the stream processor's internal topics and its group, then create the bus's topics."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    existing = admin.list_topics(timeout=15).topics
    doomed = [t for t in existing if t in topics or t.startswith(f"{APP_ID}-")]
    for future in admin.delete_topics(doomed, operation_timeout=30).values():
        future.result()
    for future in admin.delete_consumer_groups([APP_ID]).values():
        with contextlib.suppress(KafkaException):  # the group did not exist
            future.result()
    shutil.rmtree(local_state(settings), ignore_errors=True)  # the tables' files go with their changelogs
    while set(doomed) & set(admin.list_topics(timeout=15).topics):
        time.sleep(0.2)
    while True:
        try:
            create_topics(settings)
            return
        except KafkaException:  # a just-deleted topic can be refused for a moment
            time.sleep(0.5)


def recreate_topic(settings: Settings, topic: str, *, compacted: bool = False) -> None:
    """Delete the topic if it exists and create it empty, shaped like the bus's topics."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    if topic in admin.list_topics(timeout=15).topics:
        for future in admin.delete_topics([topic], operation_timeout=30).values():
            future.result()
        while topic in admin.list_topics(timeout=15).topics:
            time.sleep(0.2)
    while True:
        try:
            ensure_topics(settings, [(topic, compacted)])
            return
        except KafkaException:  # a just-deleted topic can be refused for a moment
            time.sleep(0.5)


def metric(settings: Settings, name: str) -> float:
    """The sum of one of the stream worker's counters over its labels, from its /metrics; 0 when it is not up."""
    try:
        with urllib.request.urlopen(f"http://{settings.metrics_host}:{settings.stream_metrics_port}/metrics") as r:
            text = r.read().decode()
    except OSError:
        return 0
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith((f"{name} ", f"{name}{{"))
    )


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a live process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@contextlib.contextmanager
def pipeline(settings: Settings, *commands: str) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Run ``satubus <command>`` processes against the settings' database, logging under the stack's state; yield
    once the stream worker (if any) has joined its group and recovered its tables, and stop them all at the end."""
    logs = settings.state_dir.resolve() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    satubus = str(Path(sys.executable).with_name("satubus"))
    env = {**os.environ, "SATUBUS_DATABASE_URL": settings.database_url}
    started = {}
    offsets = {}
    for command in commands:
        log = logs / f"bench-{command}.log"
        offsets[command] = log.stat().st_size if log.exists() else 0
        started[command] = subprocess.Popen(
            [satubus, command], stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env
        )
    try:
        if "stream" in started:
            log, deadline = logs / "bench-stream.log", time.monotonic() + 180
            while b"Worker ready" not in log.read_bytes()[offsets["stream"] :]:
                if time.monotonic() > deadline or any(p.poll() is not None for p in started.values()):
                    raise SystemExit(f"the stream worker did not get ready; see {log}")
                time.sleep(0.2)
        yield started
    finally:
        for process in started.values():
            process.terminate()
        for process in started.values():
            process.wait(60)


def java_tool(name: str, settings: Settings) -> str:
    """The classpath of ``bench/java/<name>.xml``'s dependencies, fetched from Maven Central on first use."""
    libs = settings.state_dir.resolve() / "bench" / name
    if not libs.exists():
        print(f"  fetching {name} jars (first run only)...", file=sys.stderr, flush=True)
        staging = libs.with_suffix(".partial")
        shutil.rmtree(staging, ignore_errors=True)
        mvn(
            [
                "-s",
                str(JAVA_POMS / "maven-settings.xml"),
                "-f",
                str(JAVA_POMS / f"{name}.xml"),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}",
                "-DincludeScope=runtime",
            ],
            name,
        )
        staging.rename(libs)
    return f"{libs}/*"
