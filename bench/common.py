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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
from confluent_kafka import Consumer, KafkaException, TopicPartition

from satubus import access
from satubus.database import dsn as owner_dsn
from satubus.deploy.local.stack import mvn
from satubus.kafka import admin_client, client_config, create_topics, ensure_topics, login
from satubus.settings import Settings, get_settings
from satubus.streams.app import APP_ID, local_state

DATABASE = "satubus_bench"
JAVA_POMS = Path(__file__).parent / "java"
TICKS = os.sysconf("SC_CLK_TCK")


def report(results: dict[str, Any], path: Path) -> None:
    """Print a step's figures, one per line (nested ones as JSON), and write them to ``path``."""
    width = max(map(len, results)) + 2
    for name, value in results.items():
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict) or value is None else value
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
        conn = await asyncpg.connect(owner_dsn(settings))
        try:
            return await conn.fetchrow(sql)
        finally:
            await conn.close()

    return asyncio.run(fetch())


def empty_topics(settings: Settings, topics: Sequence[str]) -> None:
    """Delete the topics, the stream processor's internal topics and its group, then create the bus's topics."""
    admin = admin_client(settings)
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
    admin = admin_client(settings)
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


def metric(settings: Settings, name: str, *, port: int | None = None, **labels: str) -> float:
    """The sum of one of a stream worker's counters over its labels (those given must match), from its /metrics on
    ``port`` (default: the settings' stream metrics port); 0 when it is not up."""
    url = f"http://{settings.metrics_host}:{port or settings.stream_metrics_port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return 0
    wanted = [f'{label}="{value}"' for label, value in labels.items()]
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((f"{name} ", f"{name}{{")) and all(w in line for w in wanted)
    )


def group_lag(settings: Settings, group: str, topics: Sequence[str]) -> int:
    """Records of ``topics`` past the consumer group's committed offsets (all of a partition it never committed)."""
    consumer = Consumer(client_config(settings, access.ADMIN) | {"group.id": group})  # never subscribes
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in consumer.list_topics(topic, timeout=15).topics[topic].partitions
        ]
        lag = 0
        for committed in consumer.committed(partitions, timeout=15):
            end = consumer.get_watermark_offsets(TopicPartition(committed.topic, committed.partition), timeout=15)[1]
            lag += end - max(committed.offset, 0)
        return lag
    finally:
        consumer.close()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a live process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss(pid: int) -> int:
    """The most resident memory a live process has had (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def disk_usage(path: Path) -> int:
    """Bytes of disk the files under ``path`` take (as du counts them: allocated blocks); 0 when it is missing."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def progress(text: str) -> None:
    """One line of progress on stderr (the figures go to stdout)."""
    print(f"  {text}", file=sys.stderr, flush=True)


class StreamWorker:
    """One ``satubus stream`` process: its output appended to ``bench-stream[-<instance id>].log`` under the stack's
    state, and, when given, an instance id of its own (its own RocksDB files) and metrics port."""

    def __init__(self, settings: Settings, *, instance_id: str | None = None, port: int | None = None) -> None:
        self.settings = settings
        self.port = port or settings.stream_metrics_port
        logs = settings.state_dir.resolve() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log = logs / ("bench-stream.log" if instance_id is None else f"bench-stream-{instance_id}.log")
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        env = {**os.environ, "SATUBUS_STREAM_METRICS_PORT": str(self.port)}
        if instance_id is not None:
            env["SATUBUS_INSTANCE_ID"] = instance_id
        self.started = time.perf_counter()
        satubus = str(Path(sys.executable).with_name("satubus"))
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([satubus, "stream"], stdout=out, stderr=subprocess.STDOUT, env=env)
        self.pid = self.process.pid

    def metric(self, name: str, **labels: str) -> float:
        return metric(self.settings, name, port=self.port, **labels)

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def peak_rss(self) -> int:
        return peak_rss(self.pid)

    def logged(self) -> str:
        """What the worker has logged since it started."""
        with self.log.open("rb") as f:
            f.seek(self._offset)
            return f.read().decode(errors="replace")

    def wait_ready(self, *, timeout: float = 180, every: float = 0, show: Callable[[], str] | None = None) -> float:
        """Seconds from the start of the process until faust logged "Worker ready" (joined its group and recovered
        its tables); ``show``'s text is shown every ``every`` seconds meanwhile."""
        shown = time.perf_counter()
        while "Worker ready" not in self.logged():
            now = time.perf_counter()
            if self.process.poll() is not None or now - self.started > timeout:
                raise SystemExit(f"the stream worker did not get ready in {timeout:.0f} s; see {self.log}")
            if every and show is not None and now - shown >= every:
                progress(show())
                shown = now
            time.sleep(0.1)
        return time.perf_counter() - self.started

    def stop(self) -> None:
        """Stop it as an operator would (SIGTERM: faust commits and closes its stores); kill it after a minute."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


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


def java_client_properties(settings: Settings, role: str = access.ADMIN) -> dict[str, str]:
    """A Java Kafka client's connection settings for ``role``: what kafka.client_config gives librdkafka."""
    identity = login(settings, role)
    return {
        "bootstrap.servers": ",".join(settings.kafka_servers),
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{identity.username}" password="{identity.password}";'
        ),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(identity.ca_file),
    }


def write_properties(path: Path, values: dict[str, str]) -> Path:
    """A Java properties file, readable by its owner only (it may hold a password)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    return path
