"""The stream processor's decisions, as pure functions over a batch: no faust, no Kafka, no database.

``Normalizer.process(batch, state, now)`` takes agency events and returns a ``Result``: the records to send (to
``canonical.<entity>``, ``unified.<entity>.v1``, ``restricted.person_nik.v1``, ``bus.dlq``, ``bus.activity``), the
per-key state to keep (merged: the last write of each key in the batch) and what became of each event. For each
event, in order: decode (a failure is dead-lettered with its reason), drop it if it was dead-lettered before (unless
``satubus dlq replay`` sent it back), normalize it through its dataset's mapping (a rejection is dead-lettered, and an
unknown kelurahan raises a finding), drop it if it is a redelivery or older than what its key already had, then send
a whole entity to its unified topic, or a part of a joined entity to the entity's key on ``canonical.<entity>``
(and its removal to the key it left, when a corrected NIK moved it); the civil registry's identity also sends the
clear NIK to the restricted topic; persons and incidents contribute to their kelurahan. Each batch also reports its
counts per dataset to ``bus.activity`` for the integration scoreboard. An erasure (a person_id on ``bus.erasure``,
sent to every partition by ``satubus erase``) forgets, in its partition, which agency records were routed to that
person.

``Joiner.process(batch, state)`` takes parts of ``canonical.<entity>`` and folds each entity's parts of the batch
into its join state (streams/joins.py), then sends the unified record (or a tombstone) once per entity, its
contribution to its kelurahan and the findings that opened or resolved.

Errors: an error in the data is dead-lettered here. A retriable error (``SatuBusError.retriable``: the registry did
not answer while decoding) propagates: nothing of the batch was decided, and the caller runs it again later. Any
other exception is a fault of ours; the records it touched are dead-lettered (reason ``internal_error``) so that
nothing is lost, and ``satubus dlq replay`` re-drives them once it is fixed.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, get_args

from pydantic import BaseModel

from satubus.errors import SatuBusError
from satubus.schemas import activity
from satubus.schemas.activity import Status
from satubus.schemas.dead_letters import REPLAY_HEADER, DeadLetter
from satubus.schemas.errors import (
    DecodeError,
    ForeignSchemaId,
    LimitExceeded,
    MalformedBody,
    NotWireFormat,
    Origin,
    UnknownSchemaId,
)
from satubus.schemas.models import Finding, FindingKind
from satubus.schemas.pseudonym import pseudonymize
from satubus.schemas.regions import Regions
from satubus.schemas.topics import (
    ACTIVITY,
    DEAD_LETTERS,
    ERASURES,
    PERSON_NIK,
    TopicName,
    canonical_topic,
    unified_topic,
)
from satubus.streams.errors import Rejected
from satubus.streams.findings import finding, finding_id, unknown_region
from satubus.streams.joins import (
    ERASURE_AGENCY,
    ERASURE_PART,
    FindingChange,
    Join,
    JoinState,
    PartChange,
    merge,
    track_findings,
)
from satubus.streams.mapping import DatasetMapping, Deletion
from satubus.streams.ordering import KeyState, admit, dead_lettered_before, remember, remember_rejected
from satubus.streams.regions import COUNTED, Contributor, RegionState, compose_region, contribution, contributor_key

# Decodes a Confluent-framed Avro value (resolved to ``reader`` when given); raises DecodeError for bad bytes and a
# retriable error when the registry does not answer.
Decode = Callable[[bytes, Origin, dict[str, Any] | None], dict[str, Any]]
StateView = Callable[[str, int], bytes | None]  # (key, partition) -> the state kept before the batch
StateScan = Callable[[int], Iterable[tuple[str, bytes]]]  # partition -> each (key, state) it kept before the batch


@dataclass(frozen=True, slots=True)
class Input:
    """One message read from Kafka (``topic``: its Kafka name, in the bus's namespace)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def origin(self) -> Origin:
        return Origin(self.topic, self.partition, self.offset)

    def is_replay(self) -> bool:
        """Sent back by ``satubus dlq replay`` after a fix: normalized again, not dropped as seen before."""
        return any(name == REPLAY_HEADER for name, _ in self.headers)


@dataclass(frozen=True, slots=True)
class Output:
    """One record to send to a contract topic (the caller puts it in the bus's namespace). ``value``: a record of
    the topic's Avro contract, the original bytes (a dead letter), or None (a tombstone)."""

    topic: TopicName
    key: bytes | None
    value: dict[str, Any] | bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class StateWrite:
    """The new state of ``key`` (None: forgotten), kept in the state partition of the input that changed it last."""

    partition: int
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one input: ``source`` is ``<agency>.<dataset>`` for agency events, the entity for parts."""

    source: str
    status: Status
    reason: str | None = None  # why it was dropped or dead-lettered
    stage: str | None = None  # where it was dead-lettered


@dataclass
class Result:
    outputs: list[Output] = field(default_factory=list)
    state: dict[str, StateWrite] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)  # one per input, in order

    def send(self, topic: TopicName, key: str | bytes | None, value: dict[str, Any] | bytes | None) -> None:
        self.outputs.append(Output(topic, key.encode() if isinstance(key, str) else key, value))

    def dead_letter(
        self, message: Input, agency: str, stage: str, reason: str, error: Exception, event_id: str = ""
    ) -> None:
        letter = DeadLetter(stage, reason, error, message.topic, message.partition, message.offset, agency, event_id)
        headers = tuple(letter.headers(message.value))
        self.outputs.append(Output(DEAD_LETTERS.name, message.key, message.value, headers))

    def send_finding(self, record: Finding) -> None:
        self.send(unified_topic("finding"), record.finding_id, record.model_dump())


def _retriable(error: Exception) -> bool:
    return isinstance(error, SatuBusError) and error.retriable


class _Overlay:
    """The state as the batch has changed it so far, over the state kept before the batch."""

    def __init__(self, before: StateView, scan: StateScan, result: Result) -> None:
        self._before = before
        self._scan = scan
        self._writes = result.state

    def get(self, key: str, partition: int) -> bytes | None:
        write = self._writes.get(key)
        return write.value if write is not None else self._before(key, partition)

    def items(self, partition: int) -> Iterator[tuple[str, bytes]]:
        for key, value in self._scan(partition):
            if key not in self._writes:
                yield key, value
        for key, write in list(self._writes.items()):
            if write.partition == partition and write.value is not None:
                yield key, write.value

    def put(self, key: str, partition: int, value: bytes) -> None:
        self._writes[key] = StateWrite(partition, value)


@dataclass
class Normalizer:
    mappings: Mapping[str, DatasetMapping]  # by the Kafka name of the agency topic
    regions: Regions
    pseudonym_key: bytes
    decode: Decode
    erasures: str = ERASURES.name  # the Kafka name of the erasures topic

    def process(self, batch: Sequence[Input], state: StateView, scan: StateScan, now: dt.datetime) -> Result:
        result = Result()
        overlay = _Overlay(state, scan, result)
        counts: dict[tuple[str, str, int], dict[int, Status]] = {}  # (agency, dataset, partition) -> offsets
        for message in batch:
            if message.topic == self.erasures:
                status, reason = _forget_routes(message, overlay, result)
                result.outcomes.append(Outcome(ERASURES.name, status, reason, "normalize" if reason else None))
                continue
            mapping = self.mappings[message.topic]
            try:
                status, reason = self._event(message, mapping, overlay, result, now)
                stage = "decode" if reason in _DECODE_REASONS else "normalize"
            except Exception as exc:
                if _retriable(exc):
                    raise
                result.dead_letter(message, mapping.agency, "normalize", "internal_error", exc)
                status, reason, stage = "invalid", "internal_error", "normalize"
            source = f"{mapping.agency}.{mapping.dataset}"
            result.outcomes.append(Outcome(source, status, reason, stage if status == "invalid" else None))
            counts.setdefault((mapping.agency, mapping.dataset, message.partition), {})[message.offset] = status
        for (agency, dataset, partition), statuses in counts.items():
            record = activity.record(agency, dataset, partition, statuses, now)
            result.send(ACTIVITY.name, f"{agency}.{dataset}", record)
        return result

    def _event(
        self, message: Input, mapping: DatasetMapping, state: _Overlay, result: Result, now: dt.datetime
    ) -> tuple[Status, str | None]:
        agency = mapping.agency
        if message.value is None:
            error = DecodeError("an agency event has no value (a tombstone is not a change event)", b"")
            result.dead_letter(message, agency, "decode", "NotWireFormat", error)
            return "invalid", "NotWireFormat"
        try:
            envelope = self.decode(message.value, message.origin, mapping.envelope)
        except DecodeError as exc:
            result.dead_letter(message, agency, "decode", type(exc).__name__, exc)
            return "invalid", type(exc).__name__
        # Keyed by a keyed hash of the agency's key: the state's changelog must not carry clear NIKs either.
        state_key = f"{agency}.{mapping.dataset}:{pseudonymize(self.pseudonym_key, 'state', str(envelope['key']))}"
        before = KeyState.decode(state.get(state_key, message.partition))
        event_id = str(envelope["event_id"])
        if dead_lettered_before(before, event_id) and not message.is_replay():
            return "dropped", "duplicate"
        try:
            record = mapping.apply(envelope, regions=self.regions, pseudonym_key=self.pseudonym_key, now=now)
        except Rejected as exc:
            result.dead_letter(message, agency, "normalize", exc.reason, exc, event_id)
            if exc.reason == "unknown_region" and exc.value is not None:
                result.send_finding(unknown_region(agency, mapping.dataset, exc.value, envelope["occurred_at"]))
            state.put(state_key, message.partition, remember_rejected(before, event_id).encode())
            return "invalid", exc.reason
        verdict = admit(before, event_id, envelope["version"], message.offset)
        if verdict == "superseded":  # valid in its topic's order, read late: already replaced by a newer version
            linked = mapping.spec.part is None or (before is not None and before.routed_to is not None)
            return ("accepted", None) if linked else ("dropped", "unlinked")
        if verdict != "new":
            return "dropped", verdict
        previous = before.routed_to if before else None
        if mapping.spec.part is not None:
            routed_to = self._part(mapping, envelope, record, state_key, previous, result)
            status: Status = "accepted" if routed_to is not None or previous is not None else "dropped"
        else:
            routed_to = self._entity(mapping, envelope, record, previous, result)
            status = "accepted"
        remembered = remember(before, event_id, envelope["version"], routed_to, message.offset)
        state.put(state_key, message.partition, remembered.encode())
        return status, None if status == "accepted" else "unlinked"

    def _part(
        self,
        mapping: DatasetMapping,
        envelope: dict[str, Any],
        record: BaseModel | Deletion,
        state_key: str,
        previous: str | None,
        result: Result,
    ) -> str | None:
        """Send the part to its entity key; if the record moved to another key (a corrected NIK), the entity it
        left gets the part's removal. Returns the key the record now belongs to (None: a part of no entity, e.g. an
        enrolment without NIK)."""
        entity = mapping.spec.entity
        key = None if isinstance(record, Deletion) else getattr(record, mapping.spec.key)

        def part(entity_key: str, data: dict[str, Any] | None) -> dict[str, Any]:
            return PartChange(
                entity,
                entity_key,
                str(mapping.spec.part),
                f"{mapping.agency}.{mapping.dataset}:{state_key.rsplit(':', 1)[1][:32]}",
                mapping.agency,
                mapping.dataset,
                str(envelope["event_id"]),
                envelope["version"],
                envelope["occurred_at"],
                data,
            ).to_avro()

        topic = canonical_topic(entity)
        if previous is not None and previous != key:
            result.send(topic, previous, part(previous, None))
        if key is not None and not isinstance(record, Deletion):
            result.send(topic, key, part(key, record.model_dump(mode="json")))
        if mapping.spec.restricted_nik is not None:
            _send_nik(result, mapping.spec.restricted_nik, envelope, key, previous)
        return key

    def _entity(
        self,
        mapping: DatasetMapping,
        envelope: dict[str, Any],
        record: BaseModel | Deletion,
        previous: str | None,
        result: Result,
    ) -> str | None:
        """Send a whole entity (or its tombstone); a counted one also contributes to its kelurahan, whose code
        this returns."""
        entity = mapping.entity
        whole = None if isinstance(record, Deletion) else record
        entity_key = str(record.key if isinstance(record, Deletion) else getattr(record, mapping.spec.key))
        result.send(unified_topic(entity), entity_key, None if whole is None else whole.model_dump())
        if entity not in COUNTED:
            return None
        return _contribute(
            result,
            entity,
            entity_key,
            mapping.agency,
            envelope["version"],
            envelope["occurred_at"],
            contribution(whole),
            previous,
        )


def _forget_routes(message: Input, state: _Overlay, result: Result) -> tuple[Status, str | None]:
    """An erasure: the agency records of the message's partition that were routed to the erased person forget it.
    Their versions and event ids stay, so that a redelivery of what was erased is still dropped; a newer version
    of a record routes it again (README: "Personal data")."""
    subject = message.value or b""
    if not _PERSON_ID.fullmatch(subject):
        error = DecodeError(f"an erasure is a person_id (64 hex digits), not {len(subject)} bytes", subject)
        result.dead_letter(message, ERASURE_AGENCY, "normalize", "invalid_erasure", error)
        return "invalid", "invalid_erasure"
    person = subject.decode()
    for key, value in list(state.items(message.partition)):
        if subject in value and (kept := KeyState.decode(value)) is not None and kept.routed_to == person:
            state.put(key, message.partition, replace(kept, routed_to=None).encode())
    return "accepted", None


_PERSON_ID = re.compile(rb"[0-9a-f]{64}")

_DECODE_REASONS = frozenset(
    error.__name__ for error in (NotWireFormat, UnknownSchemaId, ForeignSchemaId, MalformedBody, LimitExceeded)
)


def _send_nik(
    result: Result, field_name: str, envelope: dict[str, Any], person_id: str | None, previous: str | None
) -> None:
    """The clear NIK behind ``person_id`` to the restricted topic; the person the record left loses it."""
    if previous is not None and previous != person_id:
        result.send(PERSON_NIK.name, previous, None)
    if person_id is not None:
        nik = re.sub(r"\D", "", str(envelope["after"][field_name]))
        value = {
            "person_id": person_id,
            "nik": nik,
            "version": envelope["version"],
            "updated_at": envelope["occurred_at"],
        }
        result.send(PERSON_NIK.name, person_id, value)


def _contribute(
    result: Result,
    part: str,
    contributor: str,
    agency: str,
    version: int,
    occurred_at: dt.datetime,
    now: tuple[str, dict[str, Any]] | None,
    before: str | None,
) -> str | None:
    """Send a person's or incident's current counts to its kelurahan (and their removal to the kelurahan it left);
    returns the kelurahan it now contributes to."""

    def change(code: str, data: dict[str, Any] | None) -> dict[str, Any]:
        event_id = f"{contributor}@{version}"
        return PartChange(
            "region", code, part, contributor, agency, part, event_id, version, occurred_at, data
        ).to_avro()

    region = None if now is None else now[0]
    if before is not None and before != region:
        result.send(canonical_topic("region"), before, change(before, None))
    if now is not None:
        result.send(canonical_topic("region"), now[0], change(now[0], now[1]))
    return region


class Joiner:
    """Reads ``canonical.<entity>.v2`` and folds each entity's parts of a batch into its state once."""

    entity: str
    decode: Decode

    def process(self, batch: Sequence[Input], state: StateView) -> Result:
        """Each input holds a batch of parts; the outcomes are one per part, in order, and one per input that does
        not decode."""
        result = Result()
        entity = self.entity
        outcomes: list[Outcome | None] = []
        by_entity: dict[str, list[tuple[int, Input, PartChange]]] = {}
        for message in batch:
            try:
                if message.value is None:
                    raise DecodeError("a batch of parts has no value", b"")
                decoded = [PartChange.from_avro(p) for p in self.decode(message.value, message.origin, None)["parts"]]
            except Exception as exc:
                if _retriable(exc):
                    raise
                reason = type(exc).__name__ if isinstance(exc, DecodeError) else "internal_error"
                result.dead_letter(message, "bus", "join", reason, exc)
                outcomes.append(Outcome(entity, "invalid", reason, "join"))
                continue
            for part in decoded:
                by_entity.setdefault(part.entity_key, []).append((len(outcomes), message, part))
                outcomes.append(None)
        lettered: set[tuple[int, int]] = set()
        for entity_key, parts in by_entity.items():
            try:
                for n, verdict in self._fold(entity_key, parts, state, result).items():
                    outcomes[n] = Outcome(entity, *verdict)
            except Exception as exc:
                if _retriable(exc):
                    raise
                for n, message, _ in parts:  # the inputs holding them go to the dead letters, each once
                    if (message.partition, message.offset) not in lettered:
                        lettered.add((message.partition, message.offset))
                        result.dead_letter(message, "bus", "join", "internal_error", exc)
                    outcomes[n] = Outcome(entity, "invalid", "internal_error", "join")
        result.outcomes = [outcome for outcome in outcomes if outcome is not None]
        return result

    def _fold(
        self, entity_key: str, parts: list[tuple[int, Input, PartChange]], state: StateView, result: Result
    ) -> dict[int, tuple[Status, str | None]]:
        raise NotImplementedError


Verdicts = dict[int, tuple["Status", "str | None"]]


@dataclass
class EntityJoiner(Joiner):
    """A joined entity (person, parcel): its parts' latest versions, composed into its unified record."""

    join: Join
    decode: Decode

    @property
    def entity(self) -> str:  # type: ignore[override]
        return self.join.entity

    def _fold(
        self, entity_key: str, parts: list[tuple[int, Input, PartChange]], state: StateView, result: Result
    ) -> Verdicts:
        """Fold one entity's parts of the batch into its state, then publish the entity once. An erasure forgets
        what came before it; the parts after it start a new state."""
        partition = parts[-1][1].partition
        erasures = [n for n, (_, _, part) in enumerate(parts) if part.part == ERASURE_PART]
        if not erasures:
            return self._join(entity_key, parts, JoinState.decode(state(entity_key, partition)), result)
        last = erasures[-1]
        verdicts: Verdicts = {n: ("dropped", "erased") for n, _, _ in parts[:last]}
        verdicts[parts[last][0]] = ("accepted", None)
        self._erase(entity_key, JoinState.decode(state(entity_key, partition)), parts[last][2], partition, result)
        if last + 1 < len(parts):
            verdicts |= self._join(entity_key, parts[last + 1 :], JoinState(), result)
        return verdicts

    def _erase(self, entity_key: str, before: JoinState, erasure: PartChange, partition: int, result: Result) -> None:
        """Forget the entity: tombstones for its unified record, its clear NIK and every finding it could be the
        subject of, its counts withdrawn from its kelurahan, and its state deleted."""
        entity = self.join.entity
        result.send(unified_topic(entity), entity_key, None)
        if entity == "person":
            result.send(PERSON_NIK.name, entity_key, None)
        for kind in get_args(FindingKind):
            result.send(unified_topic("finding"), finding_id(kind, entity_key), None)
        if before.region is not None:
            at = erasure.occurred_at
            _contribute(result, entity, entity_key, ERASURE_AGENCY, before.version + 1, at, None, before.region)
        result.state[entity_key] = StateWrite(partition, None)

    def _join(
        self, entity_key: str, parts: list[tuple[int, Input, PartChange]], joined: JoinState, result: Result
    ) -> Verdicts:
        join = self.join
        verdicts: dict[int, tuple[Status, str | None]] = {}
        # Findings are tracked after every part, not once per batch: a batch that runs again after a crash may hold
        # more parts than the run whose outputs went out, and must still send every finding that run sent.
        changed: dict[FindingKind, FindingChange] = {}
        for n, _, part in parts:
            verdict = merge(joined, part)
            verdicts[n] = ("accepted", None) if verdict == "new" else ("dropped", verdict)
            if verdict == "new":
                detected = join.findings(joined)
                if detected.keys() != joined.open_findings.keys():
                    now = joined.latest.occurred_at
                    changed |= {change.kind: change for change in track_findings(joined, detected, now)}
        if all(status == "dropped" for status, _ in verdicts.values()):
            return verdicts
        record = join.compose(entity_key, joined)
        # A deletion in the batch: a run of it that crashed may have published the record the deletion removes.
        if record is not None or joined.published or any(part.data is None for _, _, part in parts):
            result.send(unified_topic(join.entity), entity_key, None if record is None else record.model_dump())
            joined.published = record is not None
        version, latest = joined.version, joined.latest  # latest: a pass over the parts, once per entity
        if join.entity in COUNTED:
            joined.region = _contribute(
                result,
                join.entity,
                entity_key,
                latest.agency,
                version,
                latest.occurred_at,
                contribution(record),
                joined.region,
            )
        for _, found in sorted(changed.items()):  # each finding's last change: where it stands after the batch
            result.send_finding(
                finding(
                    found.kind,
                    entity_key,
                    status=found.status,
                    detected_at=found.detected_at,
                    evidence=found.evidence,
                    agencies=found.agencies,
                    version=version,
                    updated_at=latest.occurred_at,
                )
            )
        result.state[entity_key] = StateWrite(parts[-1][1].partition, joined.encode())
        return verdicts


@dataclass
class RegionJoiner(Joiner):
    """The live aggregates of a kelurahan (streams/regions.py): the sums of its contributors, kept incrementally."""

    regions: Regions
    decode: Decode
    entity = "region"

    def _fold(
        self, entity_key: str, parts: list[tuple[int, Input, PartChange]], state: StateView, result: Result
    ) -> Verdicts:
        partition = parts[-1][1].partition  # every part of a key comes through the same partition
        region = RegionState.decode(state(entity_key, partition))
        verdicts: Verdicts = {}
        for n, _, part in parts:
            key = contributor_key(entity_key, part.part, part.part_key)
            before = Contributor.decode(_written(result, key) or state(key, partition))
            now = region.apply(part, before)
            if now is None:
                verdicts[n] = ("dropped", "duplicate" if before and before.event_id == part.event_id else "stale")
                continue
            # An erased contributor is forgotten: its key (a person_id) is personal data too.
            erased = part.agency == ERASURE_AGENCY and part.data is None
            result.state[key] = StateWrite(partition, None if erased else now.encode())
            verdicts[n] = ("accepted", None)
        if all(status == "dropped" for status, _ in verdicts.values()):
            return verdicts
        record = compose_region(entity_key, region, regions=self.regions)
        if record is not None or region.published:
            result.send(unified_topic("region"), entity_key, None if record is None else record.model_dump())
            region.published = record is not None
        result.state[entity_key] = StateWrite(partition, region.encode())
        return verdicts


def _written(result: Result, key: str) -> bytes | None:
    """What the batch so far wrote for ``key`` (a contributor may change twice in one batch)."""
    write = result.state.get(key)
    return None if write is None else write.value
