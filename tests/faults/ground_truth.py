"""What a fault scenario left behind, compared with the simulator's ground truth.

- **lost**: what the truth has and the bus does not: a unified record missing or behind (persons, parcels,
  incidents, kelurahan aggregates), an open finding missing, a dead letter missing, or valid events the scoreboard
  did not count.
- **duplicated**: an event's effect applied twice (or a record that should not exist): a record with more items or a
  higher count than the truth, an extra record or finding, an event dead-lettered more than once, or valid events
  the scoreboard counted twice.
- **wrongly dead-lettered**: events the truth calls valid that went to ``bus.dlq``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from satubus.database import dsn as owner_dsn
from satubus.producers.simulate import Simulation
from satubus.registry import registry_client
from satubus.schemas import activity
from satubus.schemas.topics import ACTIVITY, DEAD_LETTERS, agency_topic, value_subject
from satubus.serde import AvroSerde
from satubus.settings import Settings
from satubus.streams.dlq import Letter, once_per_event
from tests.integration.test_dukcapil_end_to_end import read_topic
from tests.integration.test_streams_against_truth import MAPPED, expected_rows, floored, table

ENTITIES = ("person", "parcel", "incident", "region")


@dataclass
class Compared:
    lost: int = 0
    duplicated: int = 0
    wrongly_dead_lettered: int = 0
    repeated_letters: int = 0  # letters of bus.dlq repeating one of the same read: not an event lettered twice
    details: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.wrongly_dead_lettered)


Read = tuple[str, int, int]  # where a message was read: Kafka topic, partition, offset


def compare(settings: Settings, simulation: Simulation, poison: Collection[Read] = ()) -> Compared:
    """``poison``: messages sent to agency topics besides the simulator's, each to be dead-lettered."""
    result = Compared()
    truth = simulation.truth
    expected = expected_rows(truth)
    for entity in ENTITIES:
        got = asyncio.run(table(settings, entity))
        if entity == "region":
            got = floored(got, expected["region"])
        _rows(result, entity, got, expected[entity])
    _findings(result, settings, simulation)
    _dead_letters(result, settings, simulation, set(poison))
    _scoreboard(result, settings, simulation, [contract_name(settings, topic) for topic, _, _ in poison])
    return result


def _rows(result: Compared, entity: str, got: dict[str, Any], want: dict[str, Any]) -> None:
    missing, extra = want.keys() - got.keys(), got.keys() - want.keys()
    ahead = [k for k in want.keys() & got.keys() if got[k] != want[k] and _ahead(got[k], want[k])]
    behind = [k for k in want.keys() & got.keys() if got[k] != want[k] and not _ahead(got[k], want[k])]
    result.lost += len(missing) + len(behind)
    result.duplicated += len(extra) + len(ahead)
    for name, keys in (("missing", missing), ("behind", behind), ("extra", extra), ("ahead", ahead)):
        if keys:
            first = sorted(keys)[0]
            result.details.append(
                f"{entity}: {len(keys)} {name}, e.g. {first[:16]}: {got.get(first)} vs {want.get(first)}"
            )


def _ahead(got: dict[str, Any], want: dict[str, Any]) -> bool:
    """A row holding more than the truth: a list with more items, or a count above it."""
    for name, expected in want.items():
        have = got.get(name)
        if isinstance(expected, list) and isinstance(have, list) and len(have) > len(expected):
            return True
        counted = isinstance(expected, int) and not isinstance(expected, bool) and name != "version"
        if counted and isinstance(have, int) and have > expected:
            return True
    return False


def _findings(result: Compared, settings: Settings, simulation: Simulation) -> None:
    rows = asyncio.run(table(settings, "finding")).values()
    got = {(f["kind"], f["subject_id"]) for f in rows if f["status"] == "OPEN"}
    want = simulation.truth.findings
    result.lost += len(want - got)
    result.duplicated += len(got - want)
    if got != want:
        result.details.append(f"findings: {len(want - got)} missing, {len(got - want)} extra")


def _dead_letters(result: Compared, settings: Settings, simulation: Simulation, poison: set[Read]) -> None:
    """Each rejected event dead-lettered as often as the truth has it published; a letter that repeats another of
    the same read (topic, partition, offset, stage), from a batch that ran again, is counted apart: ``bus.dlq`` is
    at least once, and ``satubus dlq`` takes such a letter once."""
    want = Counter(d["event_id"] for d in simulation.truth.dead_letters if d["topic"] in MAPPED)
    letters = [Letter.of(message) for message in read_topic(settings, DEAD_LETTERS.name)]
    first, result.repeated_letters = once_per_event(letters)
    got = Counter[str]()
    with AvroSerde(registry_client(settings)) as serde:
        for letter in first:
            read = (
                letter.facts.get("topic", ""),
                int(letter.facts.get("partition", -1)),
                int(letter.facts.get("offset", -1)),
            )
            if read in poison:
                poison.discard(read)  # dead-lettered once: a letter repeating it was left out by once_per_event
                continue
            if letter.facts.get("stage") not in ("decode", "normalize"):
                got[f"{letter.facts.get('stage')}:{letter.offset}"] += 1
                continue
            event = serde.decode(letter.value or b"", value_subject(letter.facts["topic"]))
            got[str(event["event_id"])] += 1
    wrong = got.keys() - want.keys()
    missing = sum((want - got).values()) + len(poison)
    twice = sum(n - want[event_id] for event_id, n in got.items() if event_id in want and n > want[event_id])
    result.wrongly_dead_lettered += len(wrong)
    result.lost += missing
    result.duplicated += twice
    if wrong or missing or twice or result.repeated_letters:
        result.details.append(
            f"dead letters: {len(wrong)} wrong (e.g. {sorted(wrong)[:3]}), {missing} missing, {twice} twice, "
            f"{result.repeated_letters} letters repeated by a batch that ran again"
        )


def _scoreboard(result: Compared, settings: Settings, simulation: Simulation, poisoned: list[str]) -> None:
    """The scoreboard's counts of valid and invalid events per dataset against the truth's (and the poison's:
    ``poisoned`` names the contract topic of each)."""
    want: Counter[str] = Counter()
    for topic in poisoned:
        _, agency, dataset, _ = topic.split(".")
        want[f"{agency}.{dataset}:invalid"] += 1
    for topic, counts in simulation.truth.counts.items():
        if topic in MAPPED:
            _, agency, dataset, _ = topic.split(".")
            want[f"{agency}.{dataset}:accepted"] += counts["unified"]
            want[f"{agency}.{dataset}:invalid"] += counts["dlq"]
    got = Counter(asyncio.run(_activity(settings)))
    for key in want.keys() | got.keys():
        if got[key] > want[key]:
            result.duplicated += got[key] - want[key]
        elif got[key] < want[key]:
            result.lost += want[key] - got[key]
    if got != want:
        differ = {k: (got[k], want[k]) for k in want.keys() | got.keys() if got[k] != want[k]}
        result.details.append(f"scoreboard (counted, truth): {dict(sorted(differ.items())[:4])}")
        short = sorted({key.split(":")[0] for key in differ if got[key] < want[key]})
        result.details.extend(uncounted(settings, short))


def uncounted(settings: Settings, datasets: list[str], shown: int = 10) -> list[str]:
    """Why the scoreboard is short for ``datasets`` (``agency.dataset``): each offset of their topics that no batch
    counted as accepted or invalid, with every letter ``bus.activity`` gave it in order ('' if none) and the event
    there (its key's digest, version, event id)."""
    letters: dict[tuple[str, int, int], str] = {}
    with AvroSerde(registry_client(settings)) as serde:
        for message in read_topic(settings, ACTIVITY.name):
            record = serde.decode(message.value(), value_subject(settings.topic(ACTIVITY.name)))
            source = f"{record['agency']}.{record['dataset']}"
            if source in datasets and activity.has_offsets(record):
                for offset, status in activity.outcomes(record):
                    where = (source, record["partition"], offset)
                    letters[where] = letters.get(where, "") + (activity.LETTERS[status] if status else "-")
        lines = []
        for source in datasets:
            agency, dataset = source.split(".")
            for message in read_topic(settings, agency_topic(agency, dataset)):
                where = (source, message.partition(), message.offset())
                seen = letters.get(where, "")
                if seen.replace("-", "")[:1] in ("a", "i"):  # the first letter is the one counted
                    continue
                event = serde.decode(message.value(), value_subject(settings.topic(agency_topic(agency, dataset))))
                digest = hashlib.sha256(str(event["key"]).encode()).hexdigest()[:8]
                lines.append(f"{where}: letters {seen!r}, key {digest} v{event['version']} id {event['event_id']}")
    return [f"not counted as accepted or invalid: {len(lines)}", *lines[:shown]]


def contract_name(settings: Settings, kafka_topic: str) -> str:
    """The contract name of a topic of the settings' namespace."""
    return kafka_topic.removeprefix(settings.topic(""))


async def _activity(settings: Settings) -> dict[str, int]:
    connection = await asyncpg.connect(owner_dsn(settings))
    try:
        rows = await connection.fetch(
            "SELECT agency, dataset, sum(accepted) AS accepted, sum(invalid) AS invalid FROM bus.agency_activity "
            "GROUP BY agency, dataset"
        )
    finally:
        await connection.close()
    counts = {}
    for row in rows:
        counts[f"{row['agency']}.{row['dataset']}:accepted"] = int(row["accepted"])
        counts[f"{row['agency']}.{row['dataset']}:invalid"] = int(row["invalid"])
    return counts
