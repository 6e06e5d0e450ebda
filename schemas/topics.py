"""Topic names and the schema each topic carries: the contract between every stage.

Subjects follow the TopicNameStrategy (``<topic>-value``), so any Confluent-compatible client can read them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NewType

from schemas.envelope import agency_event_schema, unified_schema
from schemas.errors import SchemaError

TopicName = NewType("TopicName", str)

DLQ = TopicName("bus.dlq")


def agency_topic(agency: str, dataset: str, major: int = 1) -> TopicName:
    return TopicName(f"agency.{agency}.{dataset}.v{major}")


def unified_topic(entity: str, major: int = 1) -> TopicName:
    return TopicName(f"unified.{entity}.v{major}")


def value_subject(topic: str) -> str:
    return f"{topic}-value"


@dataclass(frozen=True, slots=True)
class TopicContract:
    name: TopicName
    schema: Callable[[], dict[str, Any]] | None
    compacted: bool = False

    @property
    def subject(self) -> str:
        return value_subject(self.name)

    def value_schema(self) -> dict[str, Any]:
        if self.schema is None:
            raise SchemaError(f"topic {self.name} has no Avro contract")
        return self.schema()


DUKCAPIL_PENDUDUK = TopicContract(
    agency_topic("dukcapil", "penduduk"), lambda: agency_event_schema("dukcapil", "penduduk")
)
UNIFIED_PERSON = TopicContract(unified_topic("person"), lambda: unified_schema("person"), compacted=True)
DEAD_LETTERS = TopicContract(DLQ, None)

CONTRACTS: tuple[TopicContract, ...] = (DUKCAPIL_PENDUDUK, UNIFIED_PERSON, DEAD_LETTERS)
