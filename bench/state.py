"""State that fits a city: the stream worker's tables at a city's size. N persons' identities (as Dukcapil's mapping
makes them) are written straight to ``canonical.person.v2``, as the normalizer would write them, and one worker
joins them: every person gets its join state, and its contribution to its kelurahan a record of its own in the region
table, so the tables hold 2 N + (kelurahan) keys.

Measured, in one run on the local stack: the drain (persons/s, CPU time per person from /proc, the worker's peak
RSS, the mean parts per joiner batch), the size of the RocksDB files (du) and of the changelog topics (confluent-kafka
2.16's AdminClient has no describe_log_dirs: du of the partition directories of a local broker, or nothing); then the
worker is stopped, its local state wiped, and the time it takes to start again until faust's "Worker ready" (its
tables recovered from the changelogs) is taken; then it is stopped and started again with its state kept.

Run: ``SATUBUS_ENV_FILE=deploy/local/dev.env .venv/bin/python -m bench.state [--persons N]`` (stack up, no other
stream worker running). It empties the bus's topics. 1,000,000 persons take about 8 minutes here (publishing 25 s,
joining 3 min, recovering 3 min). Writes bench/results/state.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from bench.common import StreamWorker, disk_usage, empty_topics, progress, report
from satubus import access, pseudonym_key
from satubus.kafka import admin_client, client_config, producer_config
from satubus.producers.simulator.world import FAMILY_NAMES, FIRST_NAMES_FEMALE, FIRST_NAMES_MALE, STREETS
from satubus.registry import registry_client
from satubus.schemas.models import PersonIdentity
from satubus.schemas.pseudonym import pseudonymize
from satubus.schemas.regions import load_regions
from satubus.schemas.topics import all_contracts, canonical_contract, partition_of
from satubus.serde import AvroSerde
from satubus.settings import Settings, get_settings
from satubus.streams.app import APP_ID, local_state
from satubus.streams.delivery import BATCH_ITEMS
from satubus.streams.joins import PartChange

RESULTS = Path(__file__).parent / "results" / "state.json"
PARTS_IN = "satubus_join_parts_in_total"
BATCHES = "satubus_stream_processing_seconds_count"  # batches processed, by stage
EVERY = 10.0  # seconds between progress lines
STALL = 180  # seconds without progress after which the run is called failed
RECOVERY_TIMEOUT = 3600
DECEASED_SHARE = 0.03
TODAY = dt.date(2026, 11, 1)
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ", re.MULTILINE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--persons", type=int, default=1_000_000, help="persons written and joined (default 1000000: a city)"
    )
    args = parser.parse_args()
    results = measure(get_settings(), persons=args.persons)
    report(results, RESULTS)


def measure(settings: Settings, *, persons: int) -> dict[str, Any]:
    empty_topics(settings, [c.name for c in all_contracts()])
    published, kelurahan = publish(settings, persons)
    keys = 2 * persons + kelurahan  # a join state per person, a contributor record per person, a sum per kelurahan

    progress(f"one worker joining {persons:,} persons...")
    worker = StreamWorker(settings)
    try:
        drained = _drain(worker, persons)
        drain_rss = worker.peak_rss()
    finally:
        worker.stop()
    state_dir = local_state(settings)
    rocksdb = disk_usage(state_dir)
    changelogs = _changelogs(settings)
    records = _records(settings, changelogs)
    on_broker, broker_note = _broker_bytes(settings, changelogs)

    progress(f"local state wiped ({rocksdb / 1e6:,.0f} MB): recovering {records:,} changelog records...")
    shutil.rmtree(state_dir)
    recovered, recovery_span, recovery_rss = _start(settings)
    rebuilt = disk_usage(state_dir)
    progress("restarting with the state kept...")
    restarted, restart_span, _ = _start(settings)

    return {
        "persons (identity parts written to canonical.person.v2)": persons,
        "keys in the tables (join states, region contributors, kelurahan)": keys,
        "parts published (parts/s, generated, encoded and acknowledged)": round(published),
        "drain: persons joined, region contributions included (persons/s)": round(drained["rate"]),
        "drain: CPU per person (µs, its part joined and its region contribution)": round(drained["cpu"] * 1e6),
        "drain: worker start-up to Worker ready (s)": round(drained["start-up"], 1),
        "drain: worker peak RSS (MB)": round(drain_rss / 1e6),
        "drain: parts per joiner batch (mean, person and region joiners)": round(2 * persons / drained["batches"]),
        "RocksDB files after the drain (MB)": round(rocksdb / 1e6, 1),
        "RocksDB files rebuilt from the changelogs (MB)": round(rebuilt / 1e6, 1),
        "changelog records": records,
        "changelog topics on the broker (MB)": None if on_broker is None else round(on_broker / 1e6, 1),
        "changelog topics: how measured": broker_note,
        "recovery, local state wiped: start to Worker ready (s)": round(recovered, 1),
        "recovery, local state wiped: reading the changelogs (s, faust's log)": recovery_span,
        "recovery per million keys (s, start to Worker ready)": round(recovered / keys * 1e6, 1),
        "recovery: worker peak RSS (MB)": round(recovery_rss / 1e6),
        "restart, local state kept: start to Worker ready (s)": round(restarted, 1),
        "restart, local state kept: reading the changelogs (s, faust's log)": restart_span,
    }


def identities(key: bytes, persons: int, *, seed: int = 1) -> Iterator[tuple[bytes, str, dict[str, Any]]]:
    """Each person's identity part as the normalizer sends it for Dukcapil's penduduk (schemas/parts.py:
    PersonIdentity), with its entity key and its kelurahan."""
    rng = random.Random(seed)
    kelurahan = sorted(load_regions().of_level("kelurahan"), key=lambda r: r.code)
    occurred = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    for n in range(persons):
        place = rng.choice(kelurahan)
        sex = rng.choice(("MALE", "FEMALE"))
        birth = TODAY - dt.timedelta(days=rng.randint(0, 90 * 365))
        deceased = birth + (TODAY - birth) * rng.random() if rng.random() < DECEASED_SHARE else None
        nik = f"{n:016d}"  # unique, so that every person is a key of its own
        person_id = pseudonymize(key, "nik", nik)
        street = f"{rng.choice(STREETS)} No. {rng.randint(1, 200)}"
        data = {
            "person_id": person_id,
            "household_id": pseudonymize(key, "kk", f"{n // 4:016d}"),
            "full_name": f"{rng.choice(FIRST_NAMES_MALE if sex == 'MALE' else FIRST_NAMES_FEMALE)} "
            f"{rng.choice(FAMILY_NAMES)}",
            "birth_date": birth.isoformat(),
            "sex": sex,
            "address": f"{street} RT {rng.randint(1, 15):03d}/RW {rng.randint(1, 12):03d}",
            "kelurahan_code": place.code,
            "kecamatan_code": place.parent_code,
            "kota_code": place.parent_code.rsplit(".", 1)[0],
            "is_deceased": deceased is not None,
            "deceased_on": None if deceased is None else deceased.isoformat(),
        }
        part = PartChange(
            entity="person",
            entity_key=person_id,
            part="identity",
            part_key=f"dukcapil.penduduk:{pseudonymize(key, 'state', nik)[:32]}",
            agency="dukcapil",
            dataset="penduduk",
            event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            version=1,
            occurred_at=occurred + dt.timedelta(seconds=n % 86_400),
            data=data,
        )
        yield person_id.encode(), place.code, part.to_avro()


def publish(settings: Settings, persons: int) -> tuple[float, int]:
    """Write the persons' identity parts to ``canonical.person.v2``, in records of up to BATCH_ITEMS parts of one
    partition, as the stream processor does; returns the parts/s and the number of kelurahan they live in."""
    key = pseudonym_key.load(settings).secret
    contract = canonical_contract("person").within(settings.namespace)
    serde = AvroSerde(registry_client(settings))
    encoder = serde.encoder(contract.subject, contract.value_schema())
    producer = Producer(
        producer_config(settings, "bench-state", access.ADMIN)
        | {"linger.ms": 20, "queue.buffering.max.messages": 100_000}
    )
    partitions = len(producer.list_topics(contract.name, timeout=30).topics[contract.name].partitions)
    failed: list[KafkaError] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failed.append(error)

    def send(partition: int, parts: list[dict[str, Any]]) -> None:
        value = encoder.encode({"parts": parts})
        while True:
            try:
                producer.produce(contract.name, value=value, partition=partition, on_delivery=delivered)
                break
            except BufferError:  # the local queue is full: let it drain
                producer.poll(0.5)
        producer.poll(0)

    pending: dict[int, list[dict[str, Any]]] = {p: [] for p in range(partitions)}
    places: set[str] = set()
    started = shown = time.perf_counter()
    for n, (entity_key, place, part) in enumerate(identities(key, persons), 1):
        if n == 1:
            PersonIdentity.model_validate_json(part["data"])  # the shape the joiner expects
        places.add(place)
        partition = partition_of(entity_key, partitions)
        batch = pending[partition]
        batch.append(part)
        if len(batch) == BATCH_ITEMS:
            send(partition, batch)
            pending[partition] = []
        if time.perf_counter() - shown >= EVERY:
            shown = time.perf_counter()
            progress(f"publishing: {n:,} / {persons:,} parts ({n / (shown - started):,.0f} parts/s)")
    for partition, batch in pending.items():
        if batch:
            send(partition, batch)
    remaining = producer.flush(120)
    serde.close()
    if remaining or failed:
        raise SystemExit(f"{remaining} records not acknowledged, {len(failed)} failed: {failed[:1]}")
    rate = persons / (time.perf_counter() - started)
    progress(f"published {persons:,} parts ({rate:,.0f} parts/s)")
    return rate, len(places)


def _drain(worker: StreamWorker, persons: int) -> dict[str, float]:
    """Wait until the worker has joined every person and every region contribution; its rate and CPU time per
    person from its "Worker ready" to the last part counted. (Not from its first batch counted, as in bench.stream: a
    joiner batch here holds tens of thousands of parts, and is counted once done.)"""
    start_up = worker.wait_ready()
    begun, cpu_from = time.perf_counter(), worker.cpu()
    seen = 0.0
    progressed = shown = begun
    while True:
        time.sleep(0.5)  # each look at /metrics costs the worker: not more often
        joined = worker.metric(PARTS_IN, entity="person")
        contributed = worker.metric(PARTS_IN, entity="region")
        now = time.perf_counter()
        if joined >= persons and contributed >= persons:
            break
        if joined + contributed > seen:
            seen, progressed = joined + contributed, now
        elif now - progressed > STALL:
            raise SystemExit(
                f"the worker joined {joined:.0f} persons, {contributed:.0f} contributions of {persons}, "
                f"and then nothing for {STALL} s; see {worker.log}"
            )
        if now - shown >= EVERY:
            shown = now
            progress(
                f"draining: {joined:,.0f} / {persons:,} persons joined, {contributed:,.0f} region contributions, "
                f"{joined / (now - begun):,.0f} persons/s, peak RSS {worker.peak_rss() / 1e6:,.0f} MB"
            )
    return {
        "rate": persons / (now - begun),
        "cpu": (worker.cpu() - cpu_from) / persons,
        "start-up": start_up,
        "batches": worker.metric(BATCHES, stage="join"),
    }


def _start(settings: Settings) -> tuple[float, float | None, int]:
    """Start a worker and stop it once it is ready: seconds to ready, seconds faust logged reading the changelogs
    (None when it did not log both ends) and its peak RSS."""
    worker = StreamWorker(settings)
    try:

        def status() -> str:
            remaining = re.findall(r"total remaining=(\d+)", worker.logged())
            left = f", {int(remaining[-1]):,} changelog records left (faust's estimate)" if remaining else ""
            rss = worker.peak_rss() / 1e6
            return f"starting: {time.perf_counter() - worker.started:,.0f} s{left}, peak RSS {rss:,.0f} MB"

        ready = worker.wait_ready(timeout=RECOVERY_TIMEOUT, every=EVERY, show=status)
        rss = worker.peak_rss()
        span = _span(worker.logged(), "Highwater for active changelog partitions", "Recovery complete")
    finally:
        worker.stop()
    progress(f"ready in {ready:,.1f} s")
    return ready, span, rss


def _span(log: str, first: str, last: str) -> float | None:
    """Seconds between the log lines holding ``first`` and then ``last``."""

    def at(text: str, start: int = 0) -> tuple[int, dt.datetime] | None:
        where = log.find(text, start)
        if where < 0:
            return None
        stamps = [m for m in LOG_TIME.finditer(log, 0, where)]
        return (where, dt.datetime.strptime(stamps[-1].group(1), "%Y-%m-%d %H:%M:%S,%f")) if stamps else None

    begin = at(first)
    end = None if begin is None else at(last, begin[0])
    return None if begin is None or end is None else round((end[1] - begin[1]).total_seconds(), 1)


def _changelogs(settings: Settings) -> list[str]:
    admin = admin_client(settings)
    prefix = f"{settings.topic(APP_ID)}-"
    return sorted(t for t in admin.list_topics(timeout=15).topics if t.startswith(prefix) and t.endswith("-changelog"))


def _records(settings: Settings, topics: list[str]) -> int:
    """Records written to the topics (the sum of their partitions' end offsets)."""
    consumer = Consumer(client_config(settings, access.ADMIN) | {"group.id": "bench-state"})
    try:
        total = 0
        for topic in topics:
            for partition in consumer.list_topics(topic, timeout=15).topics[topic].partitions:
                total += consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=15)[1]
        return total
    finally:
        consumer.close()


def _broker_bytes(settings: Settings, topics: list[str]) -> tuple[int | None, str]:
    """The topics' size on the broker's disk, and how it was measured."""
    properties = settings.state_dir.resolve() / "kafka" / "server.properties"
    dirs = re.findall(r"^log\.dirs=(.+)$", properties.read_text(), re.MULTILINE) if properties.exists() else []
    if not dirs:
        return None, "not measured: confluent-kafka 2.16 has no describe_log_dirs and the broker is not local"
    size = sum(
        disk_usage(partition)
        for d in dirs[0].split(",")
        for topic in topics
        for partition in Path(d).glob(f"{topic}-*")
        if partition.name.rsplit("-", 1)[0] == topic
    )
    return size, (
        "du of the local broker's partition directories (confluent-kafka 2.16 has no describe_log_dirs), right after "
        "the drain: compaction may not have run yet"
    )


if __name__ == "__main__":
    main()
