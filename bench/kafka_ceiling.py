"""Kafka's ceiling here: Kafka's own ProducerPerformance and ConsumerPerformance (the ``kafka-tools`` jar) on a topic
shaped like the bus's (same partitions, acks=all, idempotent), with the bus's median record size; and the cost of
TLS and SCRAM: the same tools, in the same run, against a throwaway broker without them (same jars and settings,
loopback ports of its own, deleted afterwards). The stack's broker has no such listener, and never will.

Run: ``SATUBUS_ENV_FILE=deploy/local/dev.env .venv/bin/python -m bench.kafka_ceiling [--records N] [--size B]``
(stack up first). Writes bench/results/kafka_ceiling.json.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from bench.common import JAVA_POMS, java_client_properties, java_tool, recreate_topic, report, write_properties
from satubus.deploy.local.stack import Kafka, Layout, kafka_java
from satubus.settings import Settings, get_settings

RESULTS = Path(__file__).parent / "results" / "kafka_ceiling.json"
TOPIC = "bench.kafka-ceiling"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500_000, help="records to produce and consume (500000)")
    parser.add_argument("--size", type=int, default=209, help="record size in bytes (default 209, the bus's median)")
    args = parser.parse_args()
    results = measure(get_settings(), records=args.records, size=args.size)
    report(results, RESULTS)


def measure(settings: Settings, *, records: int, size: int) -> dict[str, Any]:
    recreate_topic(settings, TOPIC)
    # TLS and SCRAM, as every client of the bus connects.
    client = write_properties(
        settings.state_dir / "bench" / "kafka-client.properties", java_client_properties(settings)
    )
    with plaintext_broker(settings) as bootstrap:
        plain = write_properties(
            settings.state_dir / "bench" / "kafka-plain.properties", {"bootstrap.servers": bootstrap}
        )
        # In turns, twice, keeping the best of each: the throwaway broker starts cold, the stack's is warm.
        rounds = [
            (_perf(settings, client, records=records, size=size), _perf(settings, plain, records=records, size=size))
            for _ in range(2)
        ]
    secured = (max(r[0][0] for r in rounds), max(r[0][1] for r in rounds))
    without = (max(r[1][0] for r in rounds), max(r[1][1] for r in rounds))
    return {
        "record size (bytes)": size,
        "records": records,
        "ProducerPerformance (records/s)": secured[0],
        "ConsumerPerformance, after group join (records/s)": secured[1],
        "without TLS and SCRAM: ProducerPerformance (records/s)": without[0],
        "without TLS and SCRAM: ConsumerPerformance, after group join (records/s)": without[1],
    }


def _perf(settings: Settings, client: Path, *, records: int, size: int) -> tuple[int, int]:
    """(records/s produced, records/s consumed) by Kafka's own tools with the client settings in ``client``."""
    produced = _tool(
        settings,
        "org.apache.kafka.tools.ProducerPerformance",
        *("--topic", TOPIC, "--num-records", str(records), "--record-size", str(size), "--throughput", "-1"),
        *("--producer.config", str(client), "--producer-props", "acks=all", "enable.idempotence=true"),
    )
    # "500000 records sent, 123813.4 records/sec (24.68 MB/sec), 27.62 ms avg latency, ..."
    summary = next(line for line in produced.splitlines() if " records sent, " in line)
    produce_rate = float(summary.split(" records sent, ")[1].split(" ", 1)[0])
    bootstrap = next(line for line in client.read_text().splitlines() if line.startswith("bootstrap.servers="))
    consumed = _tool(
        settings,
        "org.apache.kafka.tools.ConsumerPerformance",
        *("--bootstrap-server", bootstrap.split("=", 1)[1], "--topic", TOPIC, "--messages", str(records)),
        *("--timeout", "60000", "--group", "bench-kafka-ceiling", "--consumer.config", str(client)),
    )
    # start.time, end.time, MB, MB.sec, nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
    row = consumed.strip().splitlines()[-1].split(", ")
    return round(produce_rate), round(float(row[9]))


@contextlib.contextmanager
def plaintext_broker(settings: Settings) -> Iterator[str]:
    """A single-node broker without TLS, SASL or ACLs, with the topic the tools use; yields its bootstrap address."""
    folder = settings.state_dir.resolve() / "bench" / "plaintext-kafka"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    port, controller = _free_port(), _free_port()
    config = folder / "server.properties"
    config.write_text(
        "process.roles=broker,controller\nnode.id=1\n"
        f"controller.quorum.voters=1@127.0.0.1:{controller}\n"
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n"
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}\ncontroller.listener.names=CONTROLLER\n"
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n"
        f"log.dirs={folder / 'data'}\noffsets.topic.replication.factor=1\noffsets.topic.num.partitions=8\n"
        "transaction.state.log.replication.factor=1\ntransaction.state.log.min.isr=1\n"
        "group.initial.rebalance.delay.ms=0\n"
    )
    kafka = Kafka(settings, Layout(settings.state_dir.resolve()))  # the stack's jars and JVM options
    subprocess.run(
        kafka.java_command(
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip('=')}",
            "-c",
            str(config),
        ),
        check=True,
        capture_output=True,
    )
    with (folder / "broker.log").open("wb") as log:
        broker = subprocess.Popen(kafka.java_command("kafka.Kafka", str(config)), stdout=log, stderr=subprocess.STDOUT)
    bootstrap = f"127.0.0.1:{port}"
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        deadline = time.monotonic() + 60
        while True:
            try:
                admin.list_topics(timeout=2)
                break
            except KafkaException:
                if broker.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the plaintext broker did not start; see {folder / 'broker.log'}") from None
        partitions = settings.topic_partitions
        admin.create_topics([NewTopic(TOPIC, partitions, 1)], operation_timeout=30)[TOPIC].result()
        yield bootstrap
    finally:
        broker.terminate()
        broker.wait(60)
        shutil.rmtree(folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tool(settings: Settings, main_class: str, *args: str) -> str:
    java = kafka_java()
    log4j = f"-Dlog4j.configuration=file:{JAVA_POMS / 'tools-log4j.properties'}"
    command = [java, "-Xmx512m", log4j, "-cp", java_tool("kafka-tools", settings), main_class, *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{main_class} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


if __name__ == "__main__":
    main()
