"""``satubus simulate`` publishes the whole simulated city through the real broker and writes its ground truth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from satubus.settings import Settings
from schemas.catalogue import load_catalogue
from schemas.topics import agency_topic
from tests.integration.conftest import process_env


def message_counts(settings: Settings, topics: list[str]) -> dict[str, int]:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "test-counter"})
    try:
        counts = {}
        for topic in topics:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            counts[topic] = sum(
                consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions
            )
        return counts
    finally:
        consumer.close()


def test_all_integrated_agencies_publish_and_the_truth_accounts_for_every_event(bus: Settings, tmp_path: Path) -> None:
    topics = [agency_topic(a.code, d) for a in load_catalogue() for d in a.datasets]
    before = message_counts(bus, topics)
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("satubus")),
            "simulate",
            "--residents",
            "1500",
            "--seed",
            "9",
            "--truth",
            str(tmp_path / "truth"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=process_env(bus),
    )
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
