"""The faust application: one generic normalizer per mapped agency dataset (schemas/agencies/*/*.mapping.yaml) and
one joiner per joined entity (person, parcel, region).

Normalizer, for each event: decode (our serde; failures are dead-lettered with their offset), normalize through the
dataset's mapping (rejections are dead-lettered with field and reason), then admit it only if it is neither a
redelivery nor older than what its key already had (state per key in a faust Table, restored from its changelog).
A whole entity (an incident) goes to ``unified.<entity>.v1``; a part of a joined entity goes to
``canonical.<entity>`` keyed by the entity key, so that every part of one person or parcel reaches one joiner. The
civil registry's identity also sends the clear NIK to ``restricted.person_nik.v1``. After each batch, its counts
(in, accepted, invalid, dropped) go to ``bus.activity`` for the integration scoreboard.

Joiner, for each batch: fold each entity's parts into its join state (a faust Table keyed by entity key,
streams/joins.py), then send the full unified record (or a tombstone) once, and the findings that opened or
resolved. People (from their joiner)
and incidents (from their normalizer) also send their counts to the kelurahan they lie in (streams/regions.py).

Any unforeseen failure dead-letters the message (reason internal_error): faust would otherwise count it as done and
it would be lost. Agent concurrency is 1 (faust #606 loses data above 1). faust flushes its producer before
committing offsets, so every output is acknowledged before its input counts as done (at-least-once); the guards
per key and per part make it effectively-once.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
import weakref
from collections import Counter
from functools import partial
from typing import Any, Literal, cast

import faust
from faust.streams import _current_event

from satubus.errors import ConfigurationError
from satubus.metrics import DEAD_LETTERED
from satubus.registry import registry_client
from satubus.retry import Backoff, retry_async
from satubus.schemas.dead_letters import REPLAY_HEADER, DeadLetter
from satubus.schemas.envelope import AGENCIES_DIR
from satubus.schemas.errors import DecodeError, Origin
from satubus.schemas.nik import mask_nik
from satubus.schemas.pseudonym import pseudonymize
from satubus.schemas.regions import Regions, load_regions
from satubus.schemas.topics import (
    ACTIVITY,
    DEAD_LETTERS,
    PERSON_NIK,
    TopicContract,
    agency_topic,
    canonical_contract,
    unified_contract,
)
from satubus.serde import AvroSerde
from satubus.settings import Settings
from satubus.streams import commit_guard, metrics
from satubus.streams.codec import AvroCodec
from satubus.streams.errors import Rejected
from satubus.streams.findings import finding, unknown_region
from satubus.streams.joins import JOINS, Join, JoinState, PartChange, merge, track_findings
from satubus.streams.mapping import DatasetMapping, Deletion, discover_mappings
from satubus.streams.ordering import KeyState, admit, dead_lettered_before, remember, remember_rejected
from satubus.streams.regions import COUNTED, contribution, region_join

log = logging.getLogger(__name__)

# The stream processor waits for the registry as long as it takes (a dead letter would blame the agency, and a
# worker that exits only restarts into the same wait); the log shows every retry.
UNTIL_IT_ANSWERS = Backoff(first=0.5, longest=10.0, attempts=None)

APP_ID = "satubus-streams"

Outcome = Literal["accepted", "invalid", "dropped"]  # what became of one agency event
OUTCOMES: tuple[Outcome, ...] = ("accepted", "invalid", "dropped")


def build_app(settings: Settings) -> faust.App:
    commit_guard.install()
    if settings.pseudonym_key is None:
        raise ConfigurationError(
            "SATUBUS_PSEUDONYM_KEY is not set: the stream processor needs the secret HMAC key that turns NIKs "
            "into person_id values (set it in the environment or in the file named by SATUBUS_ENV_FILE)"
        )
    app = faust.App(
        settings.topic(APP_ID),
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
    mappings = discover_mappings(settings.mappings_dir or AGENCIES_DIR)
    for mapping in mappings:
        pipeline.normalize(mapping)
    for entity in sorted({m.spec.entity for m in mappings if m.spec.part is not None} - {"region"}):
        pipeline.join(JOINS[entity])
    pipeline.join(region_join(pipeline.regions))
    return app


class _Pipeline:
    def __init__(self, app: faust.App, settings: Settings, serde: AvroSerde, regions: Regions) -> None:
        assert settings.pseudonym_key is not None
        self.app = app
        self.settings = settings
        self.serde = serde
        self.regions = regions
        self.key = settings.pseudonym_key.get_secret_value().encode()
        self.dead_letters = app.topic(settings.topic(DEAD_LETTERS.name), key_type=bytes, value_type=bytes)
        self.findings = self._avro_topic(unified_contract("finding"))
        self.region_parts = self._avro_topic(canonical_contract("region"))
        self.activity = self._avro_topic(ACTIVITY)
        self.person_niks = self._avro_topic(PERSON_NIK)

    def _avro_topic(self, contract: TopicContract) -> Any:
        contract = contract.within(self.settings.namespace)
        codec = AvroCodec(serde=self.serde, subject=contract.subject, schema=contract.value_schema())
        return self.app.topic(contract.name, key_type=bytes, value_serializer=codec)

    def _table(self, name: str) -> Any:
        return self.app.Table(name, key_type=str, value_type=bytes, partitions=self.settings.topic_partitions)

    def _batches(self, stream: faust.StreamT[bytes]) -> Any:
        """Events a batch at a time, each to be acknowledged once processed (``_ack``). Not ``take_events``: when
        a worker stops in the middle of a batch, it acknowledges the whole batch, and the events not yet processed
        would be committed and lost."""
        return cast(faust.Stream[bytes], stream).noack_take(
            self.settings.stream_batch_size, within=self.settings.stream_batch_seconds
        )

    def normalize(self, mapping: DatasetMapping) -> None:
        agency, dataset, entity = mapping.agency, mapping.dataset, mapping.spec.entity
        contract = unified_contract(entity) if mapping.spec.part is None else canonical_contract(entity)
        source = self.app.topic(self.settings.topic(agency_topic(agency, dataset)), key_type=bytes, value_type=bytes)
        out = self._avro_topic(contract)
        # Keyed by a keyed hash of the agency's key: the changelog topic must not carry clear NIKs either.
        states = self._table(f"keys-{agency}-{dataset}")

        async def normalize(stream: faust.StreamT[bytes]) -> None:
            async for events in self._batches(stream):
                outcomes = Counter[Outcome]()
                for event in events:
                    _make_current(event)
                    outcomes[await self._process(event.message, mapping, out, states)] += 1
                    await _ack(stream, event)
                await self._report_activity(mapping, outcomes)

        self.app.agent(source, name=f"normalize-{agency}-{dataset}", concurrency=1)(normalize)
        log.info("normalizing %s into %s", source.get_topic_name(), out.get_topic_name())

    def join(self, join: Join) -> None:
        source = self.app.topic(
            self.settings.topic(canonical_contract(join.entity).name), key_type=bytes, value_type=bytes
        )
        unified = self._avro_topic(unified_contract(join.entity))
        states = self._table(f"join-{join.entity}")

        async def joiner(stream: faust.StreamT[bytes]) -> None:
            async for events in self._batches(stream):
                for entity_events in (await self._by_entity(stream, events, join)).values():
                    _make_current(entity_events[-1][0])
                    await self._join(entity_events, join, unified, states)
                    for event, _ in entity_events:
                        await _ack(stream, event)

        self.app.agent(source, name=f"join-{join.entity}", concurrency=1)(joiner)
        log.info("joining %s into %s", source.get_topic_name(), unified.get_topic_name())

    async def _process(self, message: Any, mapping: DatasetMapping, out: Any, states: Any) -> Outcome:
        metrics.EVENTS_IN.labels(mapping.agency, mapping.dataset).inc()
        try:
            # An unavailable registry fails the decoding, before anything is sent: the event waits, it is not at fault.
            return await retry_async(
                lambda: self._normalize(message, mapping, out, states),
                backoff=UNTIL_IT_ANSWERS,
                what=f"normalizing {message.topic}",
            )
        except Exception as exc:  # a data error is handled inside; anything unforeseen: keep the event, say why
            await self._dead_letter(message, mapping.agency, mapping.dataset, "normalize", "internal_error", exc)
            return "invalid"

    async def _report_activity(self, mapping: DatasetMapping, outcomes: Counter[Outcome]) -> None:
        """One record per batch of what became of its events: the scoreboard adds them up."""
        activity: dict[str, Any] = {
            "agency": mapping.agency,
            "dataset": mapping.dataset,
            "processed_at": dt.datetime.now(dt.UTC),
            "events_in": outcomes.total(),
            **{outcome: outcomes[outcome] for outcome in OUTCOMES},
        }
        await self.activity.send(key=f"{mapping.agency}.{mapping.dataset}".encode(), value=activity)

    async def _normalize(self, message: Any, mapping: DatasetMapping, out: Any, states: Any) -> Outcome:
        agency, dataset = mapping.agency, mapping.dataset
        started = time.perf_counter()
        try:
            envelope = self.serde.decode(
                message.value, Origin(message.topic, message.partition, message.offset), reader=mapping.envelope
            )
        except DecodeError as exc:
            await self._dead_letter(message, agency, dataset, "decode", type(exc).__name__, exc)
            return "invalid"
        state_key = pseudonymize(self.key, "state", str(envelope["key"]))
        state = KeyState.decode(states.get(state_key))
        event_id = str(envelope["event_id"])
        if dead_lettered_before(state, event_id) and not _is_replay(message):
            metrics.EVENTS_DROPPED.labels(agency, dataset, "duplicate").inc()
            return "dropped"
        try:
            result = mapping.apply(envelope, regions=self.regions, pseudonym_key=self.key, now=dt.datetime.now(dt.UTC))
        except Rejected as exc:
            await self._dead_letter(message, agency, dataset, "normalize", exc.reason, exc)
            if exc.reason == "unknown_region" and exc.value is not None:
                await self._send_finding(unknown_region(agency, dataset, exc.value, envelope["occurred_at"]))
            states[state_key] = remember_rejected(state, event_id).encode()
            return "invalid"
        verdict = admit(state, event_id, envelope["version"])
        if verdict != "new":
            metrics.EVENTS_DROPPED.labels(agency, dataset, verdict).inc()
            return "dropped"
        routed_to: str | None = None
        outcome: Outcome = "accepted"
        if mapping.spec.part is not None:
            routed_to, outcome = await self._send_part(mapping, envelope, result, state_key, state, out)
        else:
            record = None if isinstance(result, Deletion) else result
            entity_key = str(result.key if isinstance(result, Deletion) else getattr(result, mapping.spec.key))
            await out.send(key=entity_key.encode(), value=None if record is None else record.model_dump())
            if mapping.spec.entity in COUNTED:
                routed_to = await self._contribute(
                    mapping.spec.entity,
                    entity_key,
                    agency,
                    envelope["version"],
                    envelope["occurred_at"],
                    contribution(record),
                    state.routed_to if state else None,
                )
            metrics.EVENTS_ACCEPTED.labels(agency, dataset).inc()
            metrics.EVENTS_OUT.labels(mapping.spec.entity).inc()
        states[state_key] = remember(state, event_id, envelope["version"], routed_to).encode()
        metrics.LAST_VALID_EVENT.labels(agency, dataset).set(time.time())
        metrics.PROCESSING_SECONDS.labels("normalize").observe(time.perf_counter() - started)
        return outcome

    async def _send_part(
        self, mapping: DatasetMapping, envelope: Any, result: Any, state_key: str, state: KeyState | None, out: Any
    ) -> tuple[str | None, Outcome]:
        """Send the part to its entity key; if the record moved to another key (a corrected NIK), the entity it
        left gets the part's removal. Returns the key the record now belongs to, and whether it was accepted or
        dropped (a part of no entity, e.g. an enrolment without NIK)."""
        agency, dataset, entity = mapping.agency, mapping.dataset, mapping.spec.entity
        key = None if isinstance(result, Deletion) else getattr(result, mapping.spec.key)

        def change(entity_key: str, data: dict[str, Any] | None) -> dict[str, Any]:
            part = PartChange(
                entity,
                entity_key,
                str(mapping.spec.part),
                f"{agency}.{dataset}:{state_key[:32]}",
                agency,
                dataset,
                str(envelope["event_id"]),
                envelope["version"],
                envelope["occurred_at"],
                data,
            )
            return part.to_avro()

        previous = state.routed_to if state else None
        if previous is not None and previous != key:
            await out.send(key=previous.encode(), value=change(previous, None))
        if key is None:
            outcome = "accepted" if previous is not None else "unlinked"
        else:
            await out.send(key=key.encode(), value=change(key, result.model_dump(mode="json")))
            outcome = "accepted"
        if mapping.spec.restricted_nik is not None:
            await self._send_nik(mapping.spec.restricted_nik, envelope, key, previous)
        if outcome == "accepted":
            metrics.EVENTS_ACCEPTED.labels(agency, dataset).inc()
            return key, "accepted"
        metrics.EVENTS_DROPPED.labels(agency, dataset, outcome).inc()
        return key, "dropped"

    async def _send_nik(self, field: str, envelope: Any, person_id: str | None, previous: str | None) -> None:
        """The clear NIK behind ``person_id`` to the restricted topic; the person the record left loses it."""
        if previous is not None and previous != person_id:
            await self.person_niks.send(key=previous.encode(), value=None)
        if person_id is not None:
            nik = re.sub(r"\D", "", str(envelope["after"][field]))
            value = {
                "person_id": person_id,
                "nik": nik,
                "version": envelope["version"],
                "updated_at": envelope["occurred_at"],
            }
            await self.person_niks.send(key=person_id.encode(), value=value)

    async def _by_entity(
        self, stream: faust.StreamT[bytes], events: Any, join: Join
    ) -> dict[str, list[tuple[Any, PartChange]]]:
        """A batch's parts grouped by entity key, in arrival order; a part that does not decode is dead-lettered."""
        groups: dict[str, list[tuple[Any, PartChange]]] = {}
        for event in events:
            message = event.message
            metrics.PARTS_IN.labels(join.entity).inc()
            origin = Origin(message.topic, message.partition, message.offset)
            try:
                decoded = await retry_async(
                    partial(self._decode, message.value, origin), backoff=UNTIL_IT_ANSWERS, what="decoding a part"
                )
                part = PartChange.from_avro(decoded)
            except Exception as exc:
                reason = type(exc).__name__ if isinstance(exc, DecodeError) else "internal_error"
                await self._dead_letter(message, "bus", join.entity, "join", reason, exc)
                await _ack(stream, event)
                continue
            groups.setdefault(part.entity_key, []).append((event, part))
        return groups

    async def _decode(self, value: bytes, origin: Origin) -> dict[str, Any]:
        return self.serde.decode(value, origin)

    async def _join(self, parts: list[tuple[Any, PartChange]], join: Join, unified: Any, states: Any) -> None:
        """Fold one entity's parts of a batch into its state, then publish the entity once."""
        started = time.perf_counter()
        entity_key = parts[0][1].entity_key
        dropped: set[int] = set()
        try:
            state = JoinState.decode(states.get(entity_key))
            for n, (_, part) in enumerate(parts):
                if (verdict := merge(state, part)) != "new":
                    dropped.add(n)
                    metrics.PARTS_DROPPED.labels(join.entity, verdict).inc()
            if len(dropped) == len(parts):
                return
            record = join.compose(entity_key, state)
            if record is not None or state.published:
                value = None if record is None else record.model_dump()
                await unified.send(key=entity_key.encode(), value=value)
                state.published = record is not None
                metrics.EVENTS_OUT.labels(join.entity).inc()
            version, latest = state.version, state.latest  # each a pass over the parts: once per entity
            if join.entity in COUNTED:
                state.region = await self._contribute(
                    join.entity,
                    entity_key,
                    latest.agency,
                    version,
                    latest.occurred_at,
                    contribution(record),
                    state.region,
                )
            for found in track_findings(state, join.findings(state), now=latest.occurred_at):
                record_of_finding = finding(
                    found.kind,
                    entity_key,
                    status=found.status,
                    detected_at=found.detected_at,
                    evidence=found.evidence,
                    agencies=found.agencies,
                    version=version,
                    updated_at=latest.occurred_at,
                )
                await self._send_finding(record_of_finding)
            states[entity_key] = state.encode()
            metrics.PROCESSING_SECONDS.labels("join").observe(time.perf_counter() - started)
        except Exception as exc:  # anything unforeseen: keep the parts, say why, go on
            for n, (event, _) in enumerate(parts):
                if n not in dropped:
                    await self._dead_letter(event.message, "bus", join.entity, "join", "internal_error", exc)

    async def _contribute(
        self,
        part: str,
        contributor: str,
        agency: str,
        version: int,
        occurred_at: dt.datetime,
        now: tuple[str, dict[str, Any]] | None,
        before: str | None,
    ) -> str | None:
        """Send a person's or incident's current counts to its kelurahan (and their removal to the kelurahan it
        left); returns the kelurahan it now contributes to."""

        def change(code: str, data: dict[str, Any] | None) -> dict[str, Any]:
            event_id = f"{contributor}@{version}"
            return PartChange(
                "region", code, part, contributor, agency, part, event_id, version, occurred_at, data
            ).to_avro()

        region = None if now is None else now[0]
        if before is not None and before != region:
            await self.region_parts.send(key=before.encode(), value=change(before, None))
        if now is not None:
            await self.region_parts.send(key=now[0].encode(), value=change(now[0], now[1]))
        return region

    async def _send_finding(self, record: Any) -> None:
        await self.findings.send(key=record.finding_id.encode(), value=record.model_dump())
        metrics.FINDINGS.labels(record.kind, record.status).inc()

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


async def _ack(stream: faust.StreamT[bytes], event: Any) -> None:
    """Done with ``event``: its offset may be committed."""
    await cast(faust.Stream[bytes], stream).ack(event)


def _make_current(event: Any) -> None:
    """Attribute table writes to ``event``: a faust Table writes a key's change to the changelog partition of the
    task's current event, which in a batch is otherwise the last event taken. Only the task-local variable is set:
    the stream's own ``current_event`` is what its take buffer reads for the next event."""
    _current_event.set(weakref.ref(event))


def _is_replay(message: Any) -> bool:
    """Sent by ``satubus dlq replay`` after a fix: it must be normalized again, not dropped as seen before."""
    headers = message.headers or ()
    names = headers.keys() if isinstance(headers, dict) else (name for name, _ in headers)
    return REPLAY_HEADER in names
