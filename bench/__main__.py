"""Every benchmark in one run, side by side: Kafka's and PostgreSQL's ceilings here, the serde, the publish paths,
each stage of the pipeline (the stream worker's CPU per event, memory and idle cost, one worker and two), the stream
state at a city's size (memory, disk, recovery), the whole pipeline (sustained rate, CPU per event, latency at
25/50/80 % of that rate) and the peers (Quix Streams, Kafka Connect with the Debezium JDBC sink) on the same
workload. Prints the ratios as a table and writes bench/results/latest.json and latest.md.

Run: ``make bench`` or ``SATUBUS_ENV_FILE=deploy/local/dev.env .venv/bin/python -m bench [--quick]`` (stack up, no
pipeline running: it empties the bus's topics and uses its own database). About 20 minutes, 7 of them the state
of 1,000,000 persons; ``--quick`` takes smaller sizes and 20 s latency runs (for trying it out: its figures are
noisier).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import debezium_peer, kafka_ceiling, materialize, pipeline, publish, quix_peer, serde, state, stream
from bench.common import bench_settings
from satubus.registry import register_contracts, registry_client
from satubus.schemas.topics import all_contracts
from satubus.settings import get_settings

RESULTS = Path(__file__).parent / "results"
SIZES = {  # full run, --quick
    "kafka records": (500_000, 100_000),
    "serde records": (50_000, 10_000),
    "publish events": (30_000, 5_000),
    "materialize rows": (100_000, 20_000),
    "residents": (10_000, 2_000),
    "persons": (1_000_000, 100_000),
    "latency seconds": (60, 20),
}
LOADS = (0.25, 0.5, 0.8)
STEPS = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, 20 s latency runs (noisier)")
    args = parser.parse_args()
    size = {name: sizes[1 if args.quick else 0] for name, sizes in SIZES.items()}
    settings, bench = get_settings(), bench_settings()
    with registry_client(settings, admin=True) as registry:  # a fresh stack holds no schema yet
        register_contracts(registry, all_contracts(settings.namespace))
    runs: dict[str, Any] = {}

    def step(name: str, work: Callable[[], Any]) -> Any:
        print(f"[{len(runs) + 1}/{STEPS}] {name}...", file=sys.stderr, flush=True)
        started = time.monotonic()
        runs[name] = work()
        print(f"      done in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        return runs[name]

    codec = step("serde", lambda: serde.measure(settings, events=size["serde records"], rounds=5))
    record_size = codec["median record size (bytes, with the 5-byte header)"]
    step("kafka", lambda: kafka_ceiling.measure(settings, records=size["kafka records"], size=record_size))
    step("publish", lambda: publish.measure(settings, events=size["publish events"]))
    step("materialize", lambda: materialize.measure(bench, rows=size["materialize rows"]))
    step("debezium", lambda: debezium_peer.measure(bench, rows=size["materialize rows"]))
    streamed = step("stream", lambda: stream.measure(settings, residents=size["residents"]))
    step("quix", lambda: quix_peer.measure(settings, events=streamed["events"]))  # reads the stream step's events
    step("state", lambda: state.measure(settings, persons=size["persons"]))
    top = step("pipeline", lambda: pipeline.sustained(bench, residents=size["residents"]))
    max_rate = top["events/s, backlog drained to committed rows"]
    step(
        "latency",
        lambda: {
            f"{load:.0%}": pipeline.latency(bench, rate=round(max_rate * load), duration=size["latency seconds"])
            for load in LOADS
        },
    )
    table = ratios(runs)
    summary = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "quick": args.quick, "table": table}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps({**summary, "runs": runs}, indent=2, ensure_ascii=False) + "\n")
    markdown = render(table)
    (RESULTS / "latest.md").write_text(markdown)
    print(markdown)


def ratios(runs: dict[str, Any]) -> list[dict[str, Any]]:
    """The headline rows: each measurement, what it is compared with, the ratio, and the goal."""
    kafka, mat, dbz = runs["kafka"], runs["materialize"], runs["debezium"]
    produce = kafka["ProducerPerformance (records/s)"]
    consume = kafka["ConsumerPerformance, after group join (records/s)"]
    kafka_hop = min(produce, consume)
    upsert = max(v for k, v in mat.items() if k.startswith("PostgreSQL:") and "insert only" not in k)
    ours_mat = mat["materializer, Kafka to committed rows (rows/s)"]
    normalizers = runs["stream"]["normalizers, after start-up (events/s)"]
    e2e = runs["pipeline"]["events/s, backlog drained to committed rows"]

    def row(name: str, value: float, unit: str, versus: str = "", base: float = 0, goal: str = "") -> dict[str, Any]:
        return {
            "measurement": name,
            "value": value,
            "unit": unit,
            "versus": versus,
            "ratio": float(f"{value / base:.3g}") if base else None,
            "goal": goal,
        }

    table = [
        row(
            "Kafka ProducerPerformance (acks=all), TLS and SCRAM",
            produce,
            "records/s",
            "same, without TLS and SCRAM",
            kafka["without TLS and SCRAM: ProducerPerformance (records/s)"],
        ),
        row(
            "Kafka ConsumerPerformance, TLS and SCRAM",
            consume,
            "records/s",
            "same, without TLS and SCRAM",
            kafka["without TLS and SCRAM: ConsumerPerformance, after group join (records/s)"],
        ),
        row(
            "serde encode",
            runs["serde"]["our serde encode (records/s)"],
            "records/s",
            "raw fastavro",
            runs["serde"]["raw fastavro encode (records/s)"],
        ),
        row(
            "serde decode",
            runs["serde"]["our serde decode (records/s)"],
            "records/s",
            "raw fastavro",
            runs["serde"]["raw fastavro decode (records/s)"],
        ),
        row(
            "SDK publish_batch()",
            runs["publish"][f"SDK publish_batch() of {publish.BATCH}"],
            "events/s",
            "Kafka producer",
            produce,
        ),
        row("normalizers (with the joiners alongside)", normalizers, "events/s", "Kafka consumer", consume),
        row("joiners", runs["stream"]["joiners, alongside (parts/s)"], "parts/s", "Kafka consumer", consume),
        row("materializer", ours_mat, "rows/s", "best batched upsert", upsert, "≥ 0.6"),
        row("end to end, sustained", e2e, "events/s", "Kafka, slowest hop", kafka_hop, "≥ 20,000 events/s"),
        row("normalization: ours", normalizers, "events/s", "Quix Streams", runs["quix"]["events/s"], "≥ 1"),
        row(
            "materialization (region table): ours",
            dbz["our materializer (rows/s)"],
            "rows/s",
            "Debezium JDBC sink",
            dbz["rows/s"],
            "≥ 5",
        ),
    ]
    table += stream_rows(runs["stream"], normalizers, row) + state_rows(runs["state"], row)
    warm = f"after the first {pipeline.WARM_UP} s"
    for load, figures in runs["latency"].items():
        table.append(
            row(
                f"latency at {load} load ({figures['achieved events/s']} events/s): p50 / p99 / p99.9",
                figures["latency p99 (ms)"],
                f"ms p99 (p50 {figures['latency p50 (ms)']}, p99.9 {figures['latency p99.9 (ms)']})",
                goal="p99 ≤ 250 ms" if load == "50%" else "",
            )
        )
        table.append(
            row(
                f"latency at {load} load, {warm} (producers connected)",
                figures[f"latency p99 {warm} (ms)"],
                f"ms p99 (p50 {figures[f'latency p50 {warm} (ms)']}, p99.9 {figures[f'latency p99.9 {warm} (ms)']})",
            )
        )
    for name, value in runs["pipeline"].items():
        if name.startswith("CPU per event"):
            table.append(row(name.removesuffix(" (µs)"), value, "µs CPU"))
    return table


Row = Callable[..., dict[str, Any]]


def stream_rows(stream: dict[str, Any], normalizers: float, row: Row) -> list[dict[str, Any]]:
    """The stream worker's costs: CPU per event at drain, memory, idle; and two workers against one."""
    idle = next(v for k, v in stream.items() if k.startswith("worker idle after the drain"))
    return [
        row(
            "CPU per event at drain, stream worker (normalizers and joiners)",
            stream["CPU per event at drain, normalizers and joiners (µs)"],
            "µs CPU",
            goal="≤ 300 µs CPU per event at drain",
        ),
        row("stream worker idle, after the drain", idle, "% of a core", goal="< 2 % of a core idle"),
        row("stream worker peak RSS, after the drain", stream["worker peak RSS (MB)"], "MB"),
        row(
            "two stream workers, a rebalance during the drain",
            stream["two workers: events/s"],
            f"events/s ({stream['two workers: events read twice (redelivered by the rebalance)']:,} read twice)",
            "one worker",
            normalizers,
        ),
    ]


def state_rows(figures: dict[str, Any], row: Row) -> list[dict[str, Any]]:
    """The stream state at a city's size: drain, memory, disk, recovery."""
    persons = figures["persons (identity parts written to canonical.person.v2)"]
    keys = figures["keys in the tables (join states, region contributors, kelurahan)"]
    wiped = figures["recovery, local state wiped: start to Worker ready (s)"]
    rows = [
        row(
            f"state: {persons:,} persons joined",
            figures["drain: persons joined, region contributions included (persons/s)"],
            "persons/s",
        ),
        row(
            "state: CPU per person at drain",
            figures["drain: CPU per person (µs, its part joined and its region contribution)"],
            "µs CPU",
        ),
        row(
            f"state: stream worker peak RSS at {persons:,} persons",
            figures["drain: worker peak RSS (MB)"],
            "MB",
            goal="≤ 300 MB RSS at 1,000,000 persons",
        ),
        row(f"state: RocksDB files, {keys:,} keys", figures["RocksDB files after the drain (MB)"], "MB"),
    ]
    if figures["changelog topics on the broker (MB)"] is not None:
        rows.append(row("state: changelog topics on the broker", figures["changelog topics on the broker (MB)"], "MB"))
    return [
        *rows,
        row(
            "state: recovery, local state wiped (start to ready)",
            figures["recovery per million keys (s, start to Worker ready)"],
            f"s per million keys ({wiped:,} s for {keys:,})",
        ),
        row(
            "state: restart, local state kept (start to ready)",
            figures["restart, local state kept: start to Worker ready (s)"],
            "s",
        ),
    ]


def render(table: list[dict[str, Any]]) -> str:
    lines = ["| measurement | value | versus | ratio | goal |", "|---|---:|---|---:|---|"]
    for r in table:
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.3g}"
        lines.append(f"| {r['measurement']} | {r['value']:,} {r['unit']} | {r['versus']} | {ratio} | {r['goal']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
