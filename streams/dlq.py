"""``satubus dlq inspect | replay``: look at dead letters, and re-drive them once the cause is fixed.

``replay`` sends each selected letter's original key and bytes back to its original topic, with a header naming
the letter. Replaying is safe to repeat: the stream processor drops an event whose event_id it already applied,
and a record that still fails is dead-lettered again.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException, Producer

from satubus import access
from satubus.errors import BrokerUnavailable
from satubus.kafka import producer_config, read_to_end
from satubus.schemas.dead_letters import HEADER_PREFIX, REPLAY_HEADER
from satubus.schemas.topics import DEAD_LETTERS
from satubus.settings import Settings


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

    def summary(self) -> dict[str, Any]:
        return {"dlq": f"{self.partition}@{self.offset}", **{k: v for k, v in self.facts.items()}}


def read_letters(settings: Settings) -> list[Letter]:
    """Every dead letter, from the beginning of ``bus.dlq`` to its current end."""
    try:
        messages = read_to_end(settings, settings.topic(DEAD_LETTERS.name))
    except KafkaException as exc:
        raise BrokerUnavailable(f"{exc.args[0].str()}; is Kafka up?") from exc
    return [Letter(m.partition() or 0, m.offset() or 0, m.key(), m.value(), _facts(m.headers())) for m in messages]


def _facts(headers: Any) -> dict[str, str]:
    facts = {}
    for name, value in headers or []:
        if name.startswith(HEADER_PREFIX) and value is not None:
            facts[name.removeprefix(HEADER_PREFIX)] = (
                value.decode(errors="replace") if isinstance(value, bytes) else value
            )
    return facts


def main(args: argparse.Namespace, settings: Settings) -> int:
    letters = [letter for letter in read_letters(settings) if letter.matches(args)]
    if args.action == "inspect":
        return _inspect(letters, args)
    return _replay(settings, letters, dry_run=args.dry_run)


def _inspect(letters: list[Letter], args: argparse.Namespace) -> int:
    shown = letters if args.limit == 0 else letters[-args.limit :]
    for letter in shown:
        if args.json:
            print(json.dumps(letter.summary(), sort_keys=True))
        else:
            f = letter.facts
            print(
                f"{letter.partition}@{letter.offset}  {f.get('stage', '?')}/{f.get('reason', '?')}  "
                f"{f.get('topic', '?')}:{f.get('partition', '?')}@{f.get('offset', '?')}  {f.get('message', '')}\n"
                f"    preview: {f.get('preview', '')[:120]}"
            )
    counts = Counter((letter.facts.get("agency") or "-", letter.facts.get("reason", "?")) for letter in letters)
    print(
        f"{len(letters)} dead letters match"
        + (f"; showing the last {len(shown)}" if len(shown) < len(letters) else ""),
        file=sys.stderr,
    )
    for (agency, reason), n in counts.most_common():
        print(f"  {n:>7}  {agency}  {reason}", file=sys.stderr)
    return 0


def _replay(settings: Settings, letters: list[Letter], *, dry_run: bool) -> int:
    replayable = [letter for letter in letters if letter.facts.get("topic") and letter.value is not None]
    if dry_run:
        for letter in replayable:
            print(f"would replay {letter.partition}@{letter.offset} to {letter.facts['topic']}")
        print(f"{len(replayable)} of {len(letters)} matching letters would be replayed")
        return 0
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
    print(f"replayed {len(replayable)} dead letters to their original topics")
    return 0
