"""The same normalization as the bus's normalizers, as a plain Quix Streams application: for each agency event,
decode the Avro envelope, drop it unless its version is newer than the key's last one (state in Quix's own store),
apply the dataset's mapping, and produce the canonical record as JSON. Rejected events are counted, not
dead-lettered.

Run by bench/quix_peer.py with the Quix virtualenv's Python and the repository on PYTHONPATH: ``app.py EVENTS
TOPIC...``. Stops once EVENTS events are processed (or after 60 s without one) and prints its figures as JSON.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import sys
import time
import uuid
from typing import Any

import fastavro
from quixstreams import Application, State
from quixstreams.kafka.configuration import ConnectionConfig

from satubus.schemas.regions import load_regions
from satubus.streams.errors import Rejected
from satubus.streams.mapping import DatasetMapping, Deletion, discover_mappings

REGIONS = load_regions()
KEY = os.environ["SATUBUS_PSEUDONYM_KEY"].encode()


class Normalizer:
    def __init__(self, app: Application, expected: int) -> None:
        self.app, self.expected = app, expected
        self.processed = self.rejected = self.stale = 0
        self.first = self.last = 0.0

    def __call__(self, mapping: DatasetMapping) -> Any:
        schema = fastavro.parse_schema(mapping.envelope)

        def normalize(value: bytes, state: State) -> dict[str, Any] | None:
            envelope: dict[str, Any] = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema, None)  # type: ignore[assignment]
            out = self._apply(mapping, envelope, state)
            self.processed += 1
            if self.processed == 1:
                self.first = time.perf_counter()
            if self.processed >= self.expected:
                self.last = time.perf_counter()
                self.app.stop()
            return out

        return normalize

    def _apply(self, mapping: DatasetMapping, envelope: dict[str, Any], state: State) -> dict[str, Any] | None:
        if envelope["version"] <= state.get("version", -1):
            self.stale += 1
            return None
        try:
            result = mapping.apply(envelope, regions=REGIONS, pseudonym_key=KEY, now=dt.datetime.now(dt.UTC))
        except Rejected:
            self.rejected += 1
            return None
        state.set("version", envelope["version"])
        return None if isinstance(result, Deletion) else result.model_dump(mode="json")


def main() -> None:
    expected, topics = int(sys.argv[1]), sys.argv[2:]
    app = Application(
        broker_address=ConnectionConfig.from_librdkafka_dict(json.loads(os.environ["QUIX_KAFKA_CONFIG"])),
        consumer_group=f"bench-quix-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        state_dir=os.environ.get("QUIX_STATE_DIR", "state"),
        loglevel="WARNING",
    )
    normalizer = Normalizer(app, expected)
    mappings = {f"agency.{m.agency}.{m.dataset}.v1": m for m in discover_mappings()}
    out = app.topic("bench.quix.canonical", key_serializer="bytes", value_serializer="json")
    for name in topics:
        source = app.topic(name, key_deserializer="bytes", value_deserializer="bytes")
        sdf = app.dataframe(source).apply(normalizer(mappings[name]), stateful=True)
        sdf.filter(lambda value: value is not None).to_topic(out)
    started = time.perf_counter()
    app.run(timeout=60, collect=False)
    last = normalizer.last or time.perf_counter()
    print(
        json.dumps(
            {
                "processed": normalizer.processed,
                "rejected": normalizer.rejected,
                "stale": normalizer.stale,
                "start-up (s)": round(normalizer.first - started, 2),
                "events/s": round(normalizer.processed / max(last - normalizer.first, 1e-9)),
            }
        )
    )


if __name__ == "__main__":
    main()
