"""Peer: the same materialization by Kafka Connect (standalone) with the Debezium JDBC sink, side by side with our
materializer, on the same unified region records (Avro, Confluent wire format) from one topic into the same
PostgreSQL table (``unified.region``), in one run on the local stack.

The region table is the unified view's flat one: the JDBC sink cannot write Avro arrays of records, which the
person and parcel tables store as jsonb. Both write every record once (unique keys, so no reduction helps either);
ours also guards versions and stores its offsets with the rows, the sink upserts blindly. The rate of each is the
rows over the span of their ``committed_at`` (the first row inserted to the last), measured in PostgreSQL.

Run: ``SATUBUS_ENV_FILE=deploy/local/dev.env .venv/bin/python -m bench.debezium_peer [--rows N]`` (stack up). It
uses its own topic and database (``bench.unified.region``, ``satubus_bench``). Writes
bench/results/debezium_peer.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from bench.common import (
    JAVA_POMS,
    bench_settings,
    java_client_properties,
    java_tool,
    query,
    recreate_topic,
    report,
    write_properties,
)
from bench.materialize import materialized, produce
from satubus.consumers.materializer import BATCH_MAX
from satubus.consumers.migrate import recreate
from satubus.consumers.tables import REGION
from satubus.database import dsn as owner_dsn
from satubus.deploy.local.stack import kafka_java
from satubus.settings import Settings

RESULTS = Path(__file__).parent / "results" / "debezium_peer.json"
TOPIC = "unified.bench-region"  # read by our materializer as well (bench/materialize.py)
CONNECT_PORT = 19083
STALL = 120  # seconds without a new row after which the sink is called stuck


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="region records to materialize (default 100000)")
    args = parser.parse_args()
    results = measure(bench_settings(), rows=args.rows)
    report(results, RESULTS)


def measure(settings: Settings, *, rows: int) -> dict[str, Any]:
    records = [_region(n) for n in range(rows)]
    recreate_topic(settings, TOPIC, compacted=True)
    produce(settings, REGION, TOPIC, records)

    asyncio.run(recreate(owner_dsn(settings)))
    asyncio.run(materialized(settings, REGION, TOPIC, rows))
    ours = _span_rate(settings)

    asyncio.run(recreate(owner_dsn(settings)))
    started = time.monotonic()
    with _connect(settings) as log:
        _wait_for_rows(settings, rows, log)
    took = time.monotonic() - started
    sink = _span_rate(settings)
    return {
        "rows": rows,
        "our materializer (rows/s)": round(ours),
        "rows/s": round(sink),
        "Debezium JDBC sink incl. JVM start-up (s)": round(took, 1),
        "ratio ours / Debezium JDBC sink": round(ours / sink, 2),
    }


def _region(n: int) -> dict[str, Any]:
    return {
        "kelurahan_code": f"31.71.{n // 10_000:02d}.{n % 10_000:04d}",
        "name": f"KELURAHAN {n}",
        "kecamatan_code": f"31.71.{n // 10_000:02d}",
        "kota_code": "31.71",
        "population": 10_000 + n % 5_000,
        "deceased": n % 40,
        "aid_recipients": n % 900,
        "students": n % 2_500,
        "incidents_24h": n % 3,
        "open_service_requests": n % 17,
        "version": 1,
        "updated_at": dt.datetime(2026, 11, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=n),
    }


class _connect:
    """Kafka Connect standalone with the JDBC sink on the topic, for the length of a ``with`` block."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = settings.state_dir.resolve() / "bench" / "connect"
        self.log = settings.state_dir.resolve() / "logs" / "bench-connect.log"

    def __enter__(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "offsets").unlink(missing_ok=True)
        worker, sink = self.dir / "worker.properties", self.dir / "jdbc-sink.properties"
        write_properties(worker, _worker(self.settings, self.dir))
        write_properties(sink, _sink(self.settings))
        java = kafka_java()
        command = [
            java,
            "-Xmx1g",
            f"-Dlog4j2.configurationFile=file:{JAVA_POMS / 'connect-log4j2.properties'}",
            "-cp",
            java_tool("debezium-jdbc-sink", self.settings),
            "org.apache.kafka.connect.cli.ConnectStandalone",
            str(worker),
            str(sink),
        ]
        self.process = subprocess.Popen(command, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        return self.log

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _worker(settings: Settings, directory: Path) -> dict[str, str]:
    client = java_client_properties(settings)  # the worker's own clients and its connectors' (prefixed)
    return {
        **client,
        **{f"{kind}.{key}": value for kind in ("consumer", "producer", "admin") for key, value in client.items()},
        "listeners": f"http://127.0.0.1:{CONNECT_PORT}",
        "rest.advertised.host.name": "127.0.0.1",
        "offset.storage.file.filename": str(directory / "offsets"),
        "offset.flush.interval.ms": "1000",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "connector.client.config.override.policy": "All",
        "plugin.discovery": "service_load",  # the connector is on the classpath: no plugin scan (2 s less)
    }


def _sink(settings: Settings) -> dict[str, str]:
    parts = urlsplit(owner_dsn(settings))
    return {
        "name": "bench-jdbc-sink",
        "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
        "tasks.max": "1",
        "topics": TOPIC,
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        # Apicurio's converter reads the Confluent wire format; ids from the ccompat API are content ids.
        "value.converter": "io.apicurio.registry.utils.converter.AvroConverter",
        "value.converter.apicurio.registry.url": settings.registry_url.split("/apis/", 1)[0] + "/apis/registry/v2",
        "value.converter.apicurio.registry.as-confluent": "true",
        "value.converter.apicurio.registry.use-id": "contentId",
        "connection.url": f"jdbc:postgresql://{parts.hostname}:{parts.port}{parts.path}",
        "connection.username": unquote(parts.username or ""),
        "connection.password": unquote(parts.password or ""),
        "insert.mode": "upsert",
        "primary.key.mode": "record_value",
        "primary.key.fields": REGION.key,
        "delete.enabled": "false",
        "schema.evolution": "none",
        "collection.name.format": REGION.table,
        "batch.size": str(BATCH_MAX),
        "use.reduction.buffer": "true",
        "consumer.override.max.poll.records": str(BATCH_MAX),
        "consumer.override.auto.offset.reset": "earliest",
        "consumer.override.group.id": f"bench-jdbc-sink-{time.time_ns()}",
    }


def _wait_for_rows(settings: Settings, rows: int, log: Path) -> None:
    seen, progressed = -1, time.monotonic()
    while (count := _count(settings)) < rows:
        if count > seen:
            seen, progressed = count, time.monotonic()
        elif time.monotonic() - progressed > STALL:
            raise SystemExit(f"the JDBC sink wrote {count} of {rows} rows and then nothing for {STALL} s; see {log}")
        time.sleep(0.5)


def _count(settings: Settings) -> int:
    return int(query(settings, f"SELECT count(*) AS n FROM {REGION.table}")["n"])


def _span_rate(settings: Settings) -> float:
    """Rows over the time from the first row's commit to the last's."""
    row = query(
        settings,
        f"SELECT count(*) AS n, extract(epoch FROM max(committed_at) - min(committed_at)) AS span FROM {REGION.table}",
    )
    return float(row["n"]) / max(float(row["span"]), 1e-3)


if __name__ == "__main__":
    main()
