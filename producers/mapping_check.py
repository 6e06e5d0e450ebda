"""Each event through its dataset's mapping before it is acknowledged (the gateway, ``satubus upload``): an event
that the stream processor would reject is refused to its sender with the same reason, instead of being accepted and
dead-lettered later, where the agency does not see it.

The mapping is the one the stream processor applies (streams/mapping.py, pure: no Kafka, no database). Pseudonyms
are made with a key of the check's own: what it maps is thrown away, so the bus's key is not needed here.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from pathlib import Path
from typing import Any

from satubus.schemas.mapping_spec import MappingError
from satubus.schemas.record_models import FieldError, RecordRejected
from satubus.schemas.regions import load_regions
from satubus.streams.errors import Rejected
from satubus.streams.mapping import DatasetMapping, load_mapping

log = logging.getLogger(__name__)


class MappingCheck:
    """Raises ``RecordRejected`` for an event (a decoded envelope) that the dataset's mapping rejects."""

    def __init__(self, mapping: DatasetMapping) -> None:
        self.mapping = mapping
        self._regions = load_regions()
        self._key = secrets.token_bytes(32)

    @classmethod
    def of(cls, agency: str, dataset: str, root: Path) -> MappingCheck | None:
        """The check of the dataset's own mapping; None for a dataset without one (a common dataset's is checked
        by the stream processor alone)."""
        if not (root / agency / f"{dataset}.mapping.yaml").exists():
            return None
        try:
            return cls(load_mapping(agency, dataset, root))
        except MappingError as exc:  # the stream processor refuses it too: its events are dead-lettered there
            log.error("%s.%s: events are not checked against a mapping that does not load: %s", agency, dataset, exc)
            return None

    def __call__(self, envelope: dict[str, Any]) -> None:
        try:
            self.mapping.apply(envelope, regions=self._regions, pseudonym_key=self._key, now=dt.datetime.now(dt.UTC))
        except Rejected as exc:
            dataset = f"{self.mapping.agency}.{self.mapping.dataset}"
            raise RecordRejected(
                dataset, [FieldError(exc.field, f"{exc.args[0].split(': ', 1)[-1]} [{exc.reason}]")]
            ) from None
