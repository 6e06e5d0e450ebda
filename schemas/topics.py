"""Topic names and the schema each topic carries: the contract between every stage.

Subjects follow the TopicNameStrategy (``<topic>-value``), so any Confluent-compatible client can read them.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, NewType

from satubus.schemas.catalogue import load_catalogue
from satubus.schemas.compatibility import Level
from satubus.schemas.dataset_records import DatasetRecord, dataset_records
from satubus.schemas.envelope import (
    AGENCIES_DIR,
    activity_schema,
    agency_event_schema,
    part_batch_schema,
    person_nik_schema,
    unified_schema,
)
from satubus.schemas.errors import SchemaError

TopicName = NewType("TopicName", str)


def agency_topic(agency: str, dataset: str, major: int = 1) -> TopicName:
    return TopicName(f"agency.{agency}.{dataset}.v{major}")


def canonical_topic(entity: str) -> TopicName:
    """v2: records are batches of parts (v1 carried one part per record)."""
    return TopicName(f"canonical.{entity}.v2")


def unified_topic(entity: str, major: int = 1) -> TopicName:
    return TopicName(f"unified.{entity}.v{major}")


def value_subject(topic: str) -> str:
    return f"{topic}-value"


@dataclass(frozen=True, slots=True)
class TopicContract:
    """A topic, the schema of its values and the compatibility its subject keeps.

    Agency topics are read by the bus alone, which upgrades its readers first, and a replay or a rebuild reads every
    retained event again, whatever version wrote it: BACKWARD_TRANSITIVE. Unified topics are
    compacted (old records stay) and read by downstream apps on any version: FULL_TRANSITIVE.
    """

    name: TopicName
    schema: Callable[[], dict[str, Any]] | None
    compacted: bool = False
    compatibility: Level = "BACKWARD_TRANSITIVE"
    # Each record holds a batch of items (``{"parts": [...]}``) for one partition, chosen by ``partition_of`` the
    # items' keys, instead of one keyed item.
    batched: bool = False
    # Its records carry pseudonyms: each says which pseudonym key made them (header satubus-key-id).
    pseudonymous: bool = False

    @property
    def subject(self) -> str:
        return value_subject(self.name)

    def within(self, namespace: str) -> TopicContract:
        """This contract on a bus running in ``namespace``: the topic (and so the subject) is prefixed."""
        return replace(self, name=TopicName(f"{namespace}.{self.name}")) if namespace else self

    def value_schema(self) -> dict[str, Any]:
        if self.schema is None:
            raise SchemaError(f"topic {self.name} has no Avro contract")
        return self.schema()


def agency_contract(agency: str, dataset: str, major: int = 1, root: Path = AGENCIES_DIR) -> TopicContract:
    """The topic of an agency dataset, its schema read from ``root`` (the mappings directory)."""
    return TopicContract(agency_topic(agency, dataset, major), partial(agency_event_schema, agency, dataset, root))


def unified_contract(entity: str, major: int = 1) -> TopicContract:
    return TopicContract(
        unified_topic(entity, major), partial(unified_schema, entity), compacted=True, compatibility="FULL_TRANSITIVE"
    )


def record_contract(record: DatasetRecord) -> TopicContract:
    """The unified topic of a dataset that is a record of its own: ``unified.<agency>.<dataset>.v1``."""
    return TopicContract(
        unified_topic(record.name),
        lambda: record.schema,
        compacted=True,
        compatibility="FULL_TRANSITIVE",
        pseudonymous=record.pseudonymous,
    )


def canonical_contract(entity: str) -> TopicContract:
    """The internal topic of an entity's parts, partitioned by entity key so that one joiner sees all of them."""
    return TopicContract(canonical_topic(entity), part_batch_schema, batched=True)


def partition_of(key: bytes, partitions: int) -> int:
    """The partition of a batched topic that holds ``key``'s items: the same for a key whatever the producer."""
    return zlib.crc32(key) % partitions


DUKCAPIL_PENDUDUK = agency_contract("dukcapil", "penduduk")
UNIFIED_PERSON = unified_contract("person")
UNIFIED_ENTITIES = ("person", "parcel", "region", "incident", "finding")
JOINED_ENTITIES = ("person", "parcel", "region")
DEAD_LETTERS = TopicContract(TopicName("bus.dlq"), None)
ACTIVITY = TopicContract(
    TopicName("bus.activity"), activity_schema
)  # counts of each processed batch, for the scoreboard
# Clear NIKs by person_id: personal data, restricted like the agency topics (never a unified topic).
PERSON_NIK = TopicContract(
    TopicName("restricted.person_nik.v1"), person_nik_schema, compacted=True, compatibility="FULL_TRANSITIVE"
)

# Erasures (satubus erase) to every partition, as the bare person_id: the stream processor's normalizer reads it
# with the agency topics (co-partitioned, so each worker forgets the routing to the person that it keeps).
ERASURES = TopicContract(TopicName("bus.erasure"), None)

# Topics whose records carry person_ids to consumers: each record says which pseudonym key made them.
PSEUDONYMOUS = frozenset({UNIFIED_PERSON.name, unified_contract("finding").name, PERSON_NIK.name})


def all_contracts(namespace: str = "", root: Path = AGENCIES_DIR) -> tuple[TopicContract, ...]:
    """Every topic of the bus (in ``namespace``): each catalogue agency's datasets, the canonical parts of the joined
    entities, the unified entities and datasets, the dead letters, the activity counts, the erasures and the
    restricted NIKs. The datasets are those of the mappings directory ``root`` (``settings.mappings_dir``, by default
    the package's ``schemas/agencies/``), with their schemas there: ``satubus dataset apply`` puts new ones there."""
    agencies = tuple(agency_contract(a.code, d, root=root) for a in load_catalogue(root) for d in a.datasets)
    canonical = tuple(canonical_contract(e) for e in JOINED_ENTITIES)
    unified = (*(unified_contract(e) for e in UNIFIED_ENTITIES), *map(record_contract, dataset_records(root)))
    bus = (DEAD_LETTERS, ACTIVITY, ERASURES, PERSON_NIK)
    return tuple(c.within(namespace) for c in (*agencies, *canonical, *unified, *bus))
