"""The faust application: one generic agent per mapped agency dataset (schemas/agencies/*/*.mapping.yaml).

For each event: decode (our serde; failures are dead-lettered with their offset), normalize through the dataset's
mapping (rejections are dead-lettered with field and reason), then admit it only if it is neither a redelivery
nor older than what its key already had (state per key in a faust Table, restored from its changelog), and send
the canonical record to ``unified.<entity>.v1``. Any other failure dead-letters the event too (reason
internal_error): faust would otherwise count it as done and it would be lost. Agent concurrency is 1 (faust #606
loses data above 1). faust flushes its producer before committing offsets, so every output of an event is
acknowledged before the event counts as done (at-least-once); the per-key guard makes it effectively-once.
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
from schemas.envelope import AGENCIES_DIR
from schemas.errors import DecodeError, Origin
from schemas.nik import mask_nik
from schemas.pseudonym import pseudonymize
from schemas.regions import Regions, load_regions
from schemas.registry import registry_client
from schemas.serde import AvroSerde
from schemas.topics import DEAD_LETTERS, agency_topic, unified_contract
from streams import metrics
from streams.codec import AvroCodec
from streams.errors import Rejected
from streams.mapping import DatasetMapping, Deletion, discover_mappings
from streams.ordering import KeyState, admit, remember

log = logging.getLogger(__name__)

APP_ID = "satubus-streams"


def build_app(settings: Settings) -> faust.App:
    if settings.pseudonym_key is None:
        raise ConfigurationError(
            "SATUBUS_PSEUDONYM_KEY is not set: the stream processor needs the secret HMAC key that turns NIKs "
            "into person_id values (set it in the environment or in the file named by SATUBUS_ENV_FILE)"
        )
    app = faust.App(
        APP_ID,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        datadir=str(settings.state_dir / "streams"),
        topic_replication_factor=settings.topic_replication_factor,
        topic_partitions=settings.topic_partitions,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=False,
    )
    pipeline = _Pipeline(app, settings, AvroSerde(registry_client(settings)), load_regions())
    for mapping in discover_mappings(settings.mappings_dir or AGENCIES_DIR):
        pipeline.add(mapping)
    return app


class _Pipeline:
    def __init__(self, app: faust.App, settings: Settings, serde: AvroSerde, regions: Regions) -> None:
        assert settings.pseudonym_key is not None
        self.app = app
        self.settings = settings
        self.serde = serde
        self.regions = regions
        self.key = settings.pseudonym_key.get_secret_value().encode()
        self.dead_letters = app.topic(DEAD_LETTERS.name, key_type=bytes, value_type=bytes)

    def add(self, mapping: DatasetMapping) -> None:
        agency, dataset = mapping.agency, mapping.dataset
        contract = unified_contract(mapping.spec.entity)
        source = self.app.topic(agency_topic(agency, dataset), key_type=bytes, value_type=bytes)
        unified = self.app.topic(
            contract.name,
            key_type=bytes,
            value_serializer=AvroCodec(serde=self.serde, subject=contract.subject, schema=contract.value_schema()),
        )
        # Keyed by a keyed hash of the agency's key: the changelog topic must not carry clear NIKs either.
        states = self.app.Table(
            f"keys-{agency}-{dataset}",
            key_type=str,
            value_type=bytes,
            partitions=self.settings.topic_partitions,
        )

        async def normalize(stream: faust.StreamT[bytes]) -> None:
            async for event in stream.events():
                await self._process(event.message, mapping, unified, states)

        self.app.agent(source, name=f"normalize-{agency}-{dataset}", concurrency=1)(normalize)
        log.info("normalizing %s into %s", source.get_topic_name(), contract.name)

    async def _process(self, message: Any, mapping: DatasetMapping, unified: Any, states: Any) -> None:
        metrics.EVENTS_IN.labels(mapping.agency, mapping.dataset).inc()
        try:
            await self._normalize(message, mapping, unified, states)
        except Exception as exc:  # anything unforeseen: keep the event, say why, go on
            await self._dead_letter(message, mapping.agency, mapping.dataset, "normalize", "internal_error", exc)

    async def _normalize(self, message: Any, mapping: DatasetMapping, unified: Any, states: Any) -> None:
        agency, dataset = mapping.agency, mapping.dataset
        started = time.perf_counter()
        try:
            envelope = self.serde.decode(
                message.value, Origin(message.topic, message.partition, message.offset), reader=mapping.envelope
            )
        except DecodeError as exc:
            await self._dead_letter(message, agency, dataset, "decode", type(exc).__name__, exc)
            return
        try:
            result = mapping.apply(envelope, regions=self.regions, pseudonym_key=self.key, now=dt.datetime.now(dt.UTC))
        except Rejected as exc:
            await self._dead_letter(message, agency, dataset, "normalize", exc.reason, exc)
            return
        state_key = pseudonymize(self.key, "state", str(envelope["key"]))
        state = KeyState.decode(states.get(state_key))
        event_id = str(envelope["event_id"])
        verdict = admit(state, event_id, envelope["version"])
        if verdict != "new":
            metrics.EVENTS_DROPPED.labels(agency, dataset, verdict).inc()
            return
        if isinstance(result, Deletion):
            await unified.send(key=result.key.encode(), value=None)
        else:
            await unified.send(key=str(getattr(result, mapping.spec.key)).encode(), value=result.model_dump())
        states[state_key] = remember(state, event_id, envelope["version"]).encode()
        metrics.EVENTS_OUT.labels(mapping.spec.entity).inc()
        metrics.LAST_VALID_EVENT.labels(agency, dataset).set(time.time())
        metrics.PROCESSING_SECONDS.labels("normalize").observe(time.perf_counter() - started)

    async def _dead_letter(
        self, message: Any, agency: str, dataset: str, stage: str, reason: str, error: Exception
    ) -> None:
        letter = DeadLetter(stage, reason, error, message.topic, message.partition, message.offset, agency)
        await self.dead_letters.send(key=message.key, value=message.value, headers=letter.headers(message.value))
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
