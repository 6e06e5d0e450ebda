"""Kafka's ceiling here: Kafka's own ProducerPerformance and ConsumerPerformance (the ``kafka-tools`` jar) on a topic
shaped like the bus's (same partitions, acks=all, idempotent), with the bus's median record size.

Run: ``SATUBUS_ENV_FILE=deploy/local/dev.env .venv/bin/python -m bench.kafka_ceiling [--records N] [--size B]``
(stack up first). Writes bench/results/kafka_ceiling.json.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path
from typing import Any

from bench.common import JAVA_POMS, java_client_properties, java_tool, recreate_topic, report, write_properties
from satubus.deploy.local.stack import kafka_java
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
    produced = _tool(
        settings,
        "org.apache.kafka.tools.ProducerPerformance",
        *("--topic", TOPIC, "--num-records", str(records), "--record-size", str(size), "--throughput", "-1"),
        *("--producer.config", str(client), "--producer-props", "acks=all", "enable.idempotence=true"),
    )
    # "500000 records sent, 123813.4 records/sec (24.68 MB/sec), 27.62 ms avg latency, ..."
    summary = next(line for line in produced.splitlines() if " records sent, " in line)
    produce_rate = float(summary.split(" records sent, ")[1].split(" ", 1)[0])
    consumed = _tool(
        settings,
        "org.apache.kafka.tools.ConsumerPerformance",
        *("--bootstrap-server", settings.kafka_bootstrap, "--topic", TOPIC, "--messages", str(records)),
        *("--timeout", "60000", "--group", "bench-kafka-ceiling", "--consumer.config", str(client)),
    )
    # start.time, end.time, MB, MB.sec, nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
    row = consumed.strip().splitlines()[-1].split(", ")
    return {
        "record size (bytes)": size,
        "records": records,
        "ProducerPerformance (records/s)": round(produce_rate),
        "ConsumerPerformance, after group join (records/s)": round(float(row[9])),
    }


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
