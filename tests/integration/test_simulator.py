"""``satubus simulate`` publishes the whole simulated city through the real broker and writes its ground truth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from satubus import access
from satubus.kafka import client_config
from satubus.registry import registry_client
from satubus.schemas.catalogue import load_catalogue
from satubus.schemas.topics import agency_topic, value_subject
from satubus.serde import AvroSerde
from satubus.settings import Settings
from tests.integration.conftest import process_env
from tests.integration.test_dukcapil_end_to_end import read_topic

DUKCAPIL = agency_topic("dukcapil", "penduduk")


def simulate(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("satubus")), "simulate", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=process_env(settings),
    )


def message_counts(settings: Settings, topics: list[str]) -> dict[str, int]:
    """Messages in each contract topic (in the suite's namespace), by the contract topic's name."""
    consumer = Consumer(client_config(settings, access.ADMIN) | {"group.id": "test-counter"})
    try:
        counts = {}
        for topic in topics:
            name = settings.topic(topic)
            partitions = consumer.list_topics(name, timeout=10).topics[name].partitions
            counts[topic] = sum(
                consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1] for p in partitions
            )
        return counts
    finally:
        consumer.close()


def test_all_integrated_agencies_publish_and_the_truth_accounts_for_every_event(bus: Settings, tmp_path: Path) -> None:
    topics = [agency_topic(a.code, d) for a in load_catalogue() for d in a.datasets]
    before = message_counts(bus, topics)
    result = simulate(bus, "--residents", "1500", "--seed", "9", "--truth", str(tmp_path / "truth"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ground truth written" in result.stdout
    after = message_counts(bus, topics)
    counts = json.loads((tmp_path / "truth" / "counts.json").read_text())
    published = {topic: after[topic] - before[topic] for topic in topics}
    assert {t: n for t, n in published.items() if n} == {t: c["in"] for t, c in counts.items()}
    silent = [agency_topic(a.code, d) for a in load_catalogue() if not a.integrated for d in a.datasets]
    assert all(published[topic] == 0 for topic in silent)
    for name in ("persons", "parcels", "incidents", "findings", "dead_letters"):
        assert (tmp_path / "truth" / f"{name}.jsonl").read_text().strip(), name


def test_the_same_seed_and_clock_publish_the_same_events(bus: Settings) -> None:
    """Records depend on the seed and --as-of only, not on when the run happens."""
    runs: list[list[Any]] = []
    for as_of in ("2026-10-01T08:00:00+07:00", "2026-10-01T08:00:00+07:00", "2025-03-15T00:00:00Z"):
        start = {m.partition(): m.offset() + 1 for m in read_topic(bus, DUKCAPIL)}
        result = simulate(bus, "--residents", "300", "--seed", "31", "--agencies", "dukcapil", "--as-of", as_of)
        assert result.returncode == 0, result.stdout + result.stderr
        with AvroSerde(registry_client(bus)) as serde:
            new = sorted(
                (m for m in read_topic(bus, DUKCAPIL) if m.offset() >= start.get(m.partition(), 0)),
                key=lambda m: (m.partition(), m.offset()),
            )
            events = [serde.decode(m.value(), value_subject(m.topic())) for m in new]
        runs.append([(e["key"], e["event_id"], e["version"], e["after"]) for e in events])
    assert runs[0] and runs[0] == runs[1]
    assert runs[2] != runs[0]  # another clock, other birth dates and NIKs


def test_rate_and_duration_bound_what_is_published(bus: Settings) -> None:
    before = message_counts(bus, [DUKCAPIL])[DUKCAPIL]
    result = simulate(
        bus, "--residents", "5000", "--seed", "32", "--agencies", "dukcapil", "--rate", "50", "--duration", "2"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    published = message_counts(bus, [DUKCAPIL])[DUKCAPIL] - before
    # Pacing lets event n go no earlier than n / rate seconds after the start, and the run stops at the duration.
    assert 0 < published <= 50 * 2 + 1
    assert result.stdout.startswith(f"{published} events")


def test_a_clock_in_the_future_is_refused(bus: Settings) -> None:
    result = simulate(bus, "--residents", "10", "--as-of", "2999-01-01T00:00:00Z")
    assert result.returncode == 2
    assert "in the future" in result.stderr
