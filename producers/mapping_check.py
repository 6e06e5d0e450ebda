"""Each event through its dataset's mapping before it is acknowledged (the gateway, ``satubus upload``, the outbox
relay, an SDK client that asks for it): an event that the stream processor would reject is refused to its sender
with the same reason, instead of being accepted and dead-lettered later, where the agency does not see it.

The mapping is the one the stream processor applies (streams/mapping.py, pure: no Kafka, no database). Pseudonyms
are made with a key of the check's own: what it maps is thrown away, so the bus's key is not needed here.
``LiveMappingCheck`` follows the mapping as ``satubus dataset apply`` changes it, for the publishers that run long.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from pathlib import Path
from typing import Any

from satubus.schemas.configuration import Watched, watched
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
        try:
            return cls.load(agency, dataset, root)
        except MappingError as exc:  # the stream processor refuses it too: its events are dead-lettered there
            log.error("%s.%s: events are not checked against a mapping that does not load: %s", agency, dataset, exc)
            return None

    @classmethod
    def load(cls, agency: str, dataset: str, root: Path) -> MappingCheck | None:
        """Like ``of``, but raises ``MappingError`` for a mapping that does not load."""
        if not (root / agency / f"{dataset}.mapping.yaml").exists():
            return None
        return cls(load_mapping(agency, dataset, root))

    def __call__(self, envelope: dict[str, Any]) -> None:
        try:
            self.mapping.apply(envelope, regions=self._regions, pseudonym_key=self._key, now=dt.datetime.now(dt.UTC))
        except Rejected as exc:
            dataset = f"{self.mapping.agency}.{self.mapping.dataset}"
            raise RecordRejected(
                dataset, [FieldError(exc.field, f"{exc.args[0].split(': ', 1)[-1]} [{exc.reason}]")]
            ) from None


class LiveMappingCheck:
    """The dataset's ``MappingCheck`` as its mapping is now, for a publisher that runs long (the gateway, the outbox
    relay, an SDK client): read again once the mappings directory's fingerprint changed, looked at no more often
    than every few seconds (``watch``, by default the process's watch of ``root``), so that a mapping changed by
    ``satubus dataset apply`` is applied without a restart, at no cost per event.

    A changed mapping that does not load is refused, as the stream workers refuse it: events are still checked with
    the last one that loaded (``apply`` checks a mapping before installing it, so this is rare)."""

    def __init__(self, agency: str, dataset: str, root: Path, watch: Watched | None = None) -> None:
        self.agency = agency
        self.dataset = dataset
        self.root = root
        self._watch = watch or watched(root)
        self._current: tuple[str, MappingCheck | None] | None = None  # (fingerprint, check): replaced whole

    def current(self) -> MappingCheck | None:
        """The check of the mapping as it is now; None while the dataset has no mapping of its own."""
        mark, current = self._watch.mark(), self._current
        if current is None:
            current = self._current = (mark, MappingCheck.of(self.agency, self.dataset, self.root))
        elif current[0] != mark:
            current = self._current = (mark, self._reload(current[1]))
        return current[1]

    def _reload(self, previous: MappingCheck | None) -> MappingCheck | None:
        try:
            return MappingCheck.load(self.agency, self.dataset, self.root)
        except MappingError as exc:
            log.error(
                "%s.%s: the changed mapping does not load; events are checked with the one before: %s",
                self.agency,
                self.dataset,
                exc,
            )
            return previous

    def __call__(self, envelope: dict[str, Any]) -> None:
        if (check := self.current()) is not None:
            check(envelope)
