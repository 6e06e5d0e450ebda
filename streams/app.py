"""The faust application: one agent per agency dataset, concurrency 1 per partition.

Values travel as raw bytes and are decoded by our serde inside the agent, so a record that does not decode is
dead-lettered with its context instead of crashing the stream. faust flushes its producer before committing
offsets, so every output of an event is acknowledged before the event counts as done (at-least-once).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import faust

from satubus.errors import ConfigurationError
from satubus.settings import Settings
from schemas.dead_letters import DEAD_LETTERED, DeadLetter
from schemas.errors import DecodeError, Origin
from schemas.nik import mask_nik
from schemas.regions import load_regions
from schemas.registry import registry_client
from schemas.serde import AvroSerde
from schemas.topics import DEAD_LETTERS, DUKCAPIL_PENDUDUK, UNIFIED_PERSON
from streams import metrics
from streams.codec import AvroCodec
from streams.errors import Rejected
from streams.normalize import Deletion, normalize_resident

log = logging.getLogger(__name__)

APP_ID = "satubus-streams"


def build_app(settings: Settings) -> faust.App:
    if settings.pseudonym_key is None:
        raise ConfigurationError(
            "SATUBUS_PSEUDONYM_KEY is not set: the stream processor needs the secret HMAC key that turns NIKs "
            "into person_id values (set it in the environment or in the file named by SATUBUS_ENV_FILE)"
        )
    pseudonym_key = settings.pseudonym_key.get_secret_value().encode()
    app = faust.App(
        APP_ID,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        datadir=str(settings.state_dir / "streams"),
        topic_replication_factor=1,
        topic_partitions=settings.topic_partitions,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=False,
    )
    serde = AvroSerde(registry_client(settings))
    regions = load_regions()
    source = app.topic(DUKCAPIL_PENDUDUK.name, key_type=bytes, value_type=bytes)
    unified = app.topic(
        UNIFIED_PERSON.name,
        key_type=bytes,
        value_serializer=AvroCodec(serde=serde, subject=UNIFIED_PERSON.subject, schema=UNIFIED_PERSON.value_schema()),
    )
    dead_letters = app.topic(DEAD_LETTERS.name, key_type=bytes, value_type=bytes)
    agency, dataset = "dukcapil", "penduduk"

    async def dead_letter(message: Any, stage: str, reason: str, error: Exception) -> None:
        letter = DeadLetter(stage, reason, error, message.topic, message.partition, message.offset, agency)
        await dead_letters.send(key=message.key, value=message.value, headers=letter.headers(message.value))
        metrics.EVENTS_INVALID.labels(agency, dataset, stage, reason).inc()
        DEAD_LETTERED.labels(stage, reason).inc()
        log.warning(
            "dead-lettered %s/%d@%d at %s: %s",
            message.topic,
            message.partition,
            message.offset,
            stage,
            mask_nik(str(error)),
        )

    @app.agent(source, concurrency=1)
    async def normalize_residents(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            metrics.EVENTS_IN.labels(agency, dataset).inc()
            started = time.perf_counter()
            try:
                envelope = serde.decode(message.value, Origin(message.topic, message.partition, message.offset))
            except DecodeError as exc:
                await dead_letter(message, "decode", type(exc).__name__, exc)
                continue
            try:
                result = normalize_resident(
                    envelope, pseudonym_key=pseudonym_key, regions=regions, now=dt.datetime.now(dt.UTC)
                )
            except Rejected as exc:
                await dead_letter(message, "normalize", exc.reason, exc)
                continue
            if isinstance(result, Deletion):
                await unified.send(key=result.person_id.encode(), value=None)
            else:
                await unified.send(key=result.person_id.encode(), value=result.to_avro())
            metrics.EVENTS_OUT.labels("person").inc()
            metrics.LAST_VALID_EVENT.labels(agency, dataset).set(time.time())
            metrics.PROCESSING_SECONDS.labels("normalize").observe(time.perf_counter() - started)

    return app
