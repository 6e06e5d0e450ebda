"""``satubus dlq inspect | replay``: look at dead letters, and re-drive them once the cause is fixed.

``inspect`` shows each letter's facts and, when its value decodes, the record field by field, with personal data
masked (satubus/schemas/personal_data.py); a value that does not decode is shown as its masked preview.

``replay`` sends each selected letter's original key and bytes back to its original topic, with a header naming
the letter. Replaying is safe to repeat: the stream processor drops an event whose event_id it already applied,
and a record that still fails is dead-lettered again. A letter's headers are only what was written to ``bus.dlq``,
so a letter is replayed only to a topic of its own agency (``<namespace>.agency.<agency>.<dataset>``): never to a
unified, canonical or restricted topic, nor to another agency's. Every other letter is refused, and the command
then exits 1.

Both take each rejected event once: ``bus.dlq`` is written at least once, and a letter that repeats another of the
same event is left out.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException, Producer

from satubus import access
from satubus.errors import BrokerUnavailable, RegistryUnavailable
from satubus.kafka import producer_config, read_to_end
from satubus.registry import registry_client
from satubus.schemas.dead_letters import REPLAY_HEADER, facts_of
from satubus.schemas.envelope import AGENCIES_DIR
from satubus.schemas.errors import DecodeError
from satubus.schemas.mapping_spec import MappingError
from satubus.schemas.masking import mask_payload, mask_text
from satubus.schemas.personal_data import mask_record
from satubus.schemas.topics import DEAD_LETTERS, value_subject
from satubus.serde import AvroSerde
from satubus.settings import Settings
from satubus.streams.mapping import discover_mappings

log = logging.getLogger(__name__)

_AGENCY_CODE = re.compile(r"[A-Za-z0-9_-]+")
_DATASET_TOPIC = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")  # dataset[.vN], in Kafka's topic characters
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]")


@dataclass(frozen=True, slots=True)
class Letter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    facts: dict[str, str]  # stage, reason, class, message, topic, partition, offset, agency, preview

    def matches(self, args: argparse.Namespace) -> bool:
        return all(
            wanted is None or self.facts.get(name) == wanted
            for name, wanted in (
                ("reason", args.reason),
                ("agency", args.agency),
                ("stage", args.stage),
                ("topic", args.topic),
            )
        )

    @classmethod
    def of(cls, message: Any) -> Letter:
        """The letter a message of ``bus.dlq`` holds."""
        return cls(
            message.partition() or 0, message.offset() or 0, message.key(), message.value(), facts_of(message.headers())
        )

    def shown_facts(self) -> dict[str, str]:
        """The facts, masked again as today's masking would: letters written by an older version carry a preview
        with names in it."""
        return {
            name: mask_payload(value) if name == "preview" else mask_text(value) for name, value in self.facts.items()
        }


def read_letters(settings: Settings) -> list[Letter]:
    """Every dead letter, from the beginning of ``bus.dlq`` to its current end."""
    try:
        messages = read_to_end(settings, settings.topic(DEAD_LETTERS.name))
    except KafkaException as exc:
        raise BrokerUnavailable(f"{exc.args[0].str()}; is Kafka up?") from exc
    return [Letter.of(message) for message in messages]


def once_per_event(letters: list[Letter]) -> tuple[list[Letter], int]:
    """The first letter of each rejected event, and how many letters repeated one. A batch that ran again (a stream
    worker killed after sending its letters, before recording its state) letters its rejections again: the topic is
    written at least once. A repeat is the same letter again: the same bytes, read at the same place (topic,
    partition, offset), rejected at the same stage for the same reason."""
    seen: set[tuple[object, ...]] = set()
    first: list[Letter] = []
    for letter in letters:
        same = (letter.key, letter.value, *sorted(letter.facts.items()))  # a repeat differs in nothing
        if "topic" not in letter.facts or same not in seen:
            seen.add(same)
            first.append(letter)
    return first, len(letters) - len(first)


def main(args: argparse.Namespace, settings: Settings) -> int:
    letters, repeated = once_per_event([letter for letter in read_letters(settings) if letter.matches(args)])
    if repeated:
        print(
            f"{repeated} letters repeat a letter of the same event (a batch that ran again) and are left out",
            file=sys.stderr,
        )
    if args.action == "inspect":
        return _inspect(settings, letters, args)
    return _replay(settings, letters, dry_run=args.dry_run)


def replay_refusal(topic: str | None, agency: str | None, agency_topics: str) -> str | None:
    """Why a letter must not be replayed to ``topic``, or None when it may be: ``topic`` must be
    ``<agency_topics><agency>.<dataset>``, where ``agency_topics`` is the namespace's ``agency.`` prefix and
    ``agency`` the letter's own agency."""
    if not topic:
        return "it names no original topic"
    if not agency or not _AGENCY_CODE.fullmatch(agency):
        return f"its agency {agency!r} is not an agency code"
    if not topic.startswith(agency_topics):
        return f"{topic!r} is not an agency topic ({agency_topics}<agency>.<dataset>)"
    dataset = topic[len(agency_topics) :].removeprefix(f"{agency}.")
    if dataset == topic[len(agency_topics) :] or not _DATASET_TOPIC.fullmatch(dataset):
        return f"{topic!r} is not a topic of its agency {agency!r}"
    return None


def _inspect(settings: Settings, letters: list[Letter], args: argparse.Namespace) -> int:
    shown = letters if args.limit == 0 else letters[-args.limit :]
    with AvroSerde(registry_client(settings)) as serde:
        records = _Records(serde, _identity_fields(settings))
        for letter in shown:
            facts, record = letter.shown_facts(), records.of(letter)
            if args.json:
                print(json.dumps({"dlq": f"{letter.partition}@{letter.offset}", **facts, "record": record}))
            else:
                print(_printable(_heading(letter, facts)))
                for line in _field_lines(record) if record is not None else [f"preview: {facts.get('preview', '')}"]:
                    print("    " + _printable(line[:240]))
    counts = Counter((letter.facts.get("agency") or "-", letter.facts.get("reason", "?")) for letter in letters)
    print(
        f"{len(letters)} dead letters match"
        + (f"; showing the last {len(shown)}" if len(shown) < len(letters) else ""),
        file=sys.stderr,
    )
    for (agency, reason), n in counts.most_common():
        print(_printable(f"  {n:>7}  {agency}  {reason}"), file=sys.stderr)
    return 0


class _Records:
    """Letters' values decoded and masked; once the registry has failed, values are no longer decoded (each would
    wait for it again) and letters are shown by their preview."""

    def __init__(self, serde: AvroSerde, identity_fields: frozenset[str]) -> None:
        self._serde = serde
        self._identity_fields = identity_fields
        self._registry_down = False

    def of(self, letter: Letter) -> dict[str, Any] | None:
        topic = letter.facts.get("topic")
        if letter.value is None or not topic or self._registry_down:
            return None
        try:
            record = self._serde.decode(letter.value, value_subject(topic))
        except DecodeError:
            return None
        except RegistryUnavailable as exc:
            log.warning("%s: showing previews instead of records", exc)
            self._registry_down = True
            return None
        return mask_record(record, identity_fields=self._identity_fields)


def _identity_fields(settings: Settings) -> frozenset[str]:
    """The agency fields the mappings say hold a NIK or KK, masked as such whatever their names."""
    try:
        mappings = discover_mappings(settings.mappings_dir or AGENCIES_DIR)
    except (MappingError, OSError, ValueError) as exc:
        log.warning("the mappings do not load (%s): personal fields are known by their names only", exc)
        return frozenset()
    return frozenset(
        source
        for mapping in mappings
        for source in [
            *(s for f in mapping.spec.fields.values() if f.nik or f.pseudonym for s in f.sources),
            *(check.nik_matches.nik for check in mapping.spec.checks if check.nik_matches),
            *([mapping.spec.restricted_nik] if mapping.spec.restricted_nik else []),
        ]
        if not source.startswith("$")
    )


def _heading(letter: Letter, facts: dict[str, str]) -> str:
    f = facts
    return (
        f"{letter.partition}@{letter.offset}  {f.get('stage', '?')}/{f.get('reason', '?')}  "
        f"{f.get('topic', '?')}:{f.get('partition', '?')}@{f.get('offset', '?')}  {f.get('message', '')}"
    )


def _field_lines(record: dict[str, Any], path: str = "") -> list[str]:
    """One line per field, nested records' fields named by their path (after.nama_lgkp: "S*** R****")."""
    lines = []
    for name, value in record.items():
        if isinstance(value, dict):
            lines += _field_lines(value, f"{path}{name}.")
        else:
            lines.append(f"{path}{name}: {json.dumps(value, ensure_ascii=False)}")
    return lines


def _printable(text: str) -> str:
    """A header is whatever was written to bus.dlq: no control character of it reaches the terminal."""
    return _NOT_PRINTABLE.sub("?", text)


def _replay(settings: Settings, letters: list[Letter], *, dry_run: bool) -> int:
    agency_topics = settings.topic("agency.")
    replayable, refused, empty = [], 0, 0
    for letter in letters:
        why = replay_refusal(letter.facts.get("topic"), letter.facts.get("agency"), agency_topics)
        if why is not None:
            refused += 1
            print(_printable(mask_text(f"refused {letter.partition}@{letter.offset}: {why}")), file=sys.stderr)
        elif letter.value is None:
            empty += 1  # a tombstone: nothing to re-drive
        else:
            replayable.append(letter)
    refusals = f"; {refused} refused (not a topic of their agency)" if refused else ""
    empties = f"; {empty} without a value, not replayed" if empty else ""
    if dry_run:
        for letter in replayable:
            print(f"would replay {letter.partition}@{letter.offset} to {letter.facts['topic']}")
        print(f"{len(replayable)} of {len(letters)} matching letters would be replayed{refusals}{empties}")
        return 1 if refused else 0
    producer = Producer(producer_config(settings, "satubus-dlq-replay", access.ADMIN))
    for letter in replayable:
        while len(producer) > 50_000:  # keep the local queue bounded
            producer.poll(0.1)
        producer.produce(
            letter.facts["topic"],
            key=letter.key,
            value=letter.value,
            headers=[
                (REPLAY_HEADER, f"{settings.topic(DEAD_LETTERS.name)}:{letter.partition}@{letter.offset}".encode())
            ],
        )
        producer.poll(0)
    if producer.flush(60):
        raise BrokerUnavailable("the broker did not acknowledge every replayed letter within 60s; run it again")
    print(f"replayed {len(replayable)} dead letters to their original topics{refusals}{empties}")
    return 1 if refused else 0
