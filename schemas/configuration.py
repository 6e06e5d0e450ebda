"""The configuration files of a mappings directory while the bus runs: their fingerprint, and the catalogue they make.

``satubus dataset apply`` installs a dataset's files into the directory the running bus reads
(``settings.mappings_dir``, by default the package's ``schemas/agencies/``). A stream worker restarts when the
directory's fingerprint changes (streams/live_config.py); a long-running process that answers requests (the gateway,
the outbox relay, the API) reads the changed files again instead. A fingerprint reads every file, a few milliseconds:
too much for every request or every event. ``Watched`` computes it again at most every ``LOOK_SECONDS``, so such a
reader sees a change within that time, as the workers do, and meanwhile pays a clock reading.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from satubus.schemas.catalogue import CATALOGUE_FILE, Agency, read_catalogue
from satubus.schemas.envelope import AGENCIES_DIR

PATTERNS = ("*/*.avsc", "*/*.mapping.yaml", "*/*.codes.csv")
LOOK_SECONDS = 5.0


def fingerprint(root: Path, catalogue: Path = CATALOGUE_FILE) -> str:
    """A digest of every configuration file under ``root`` and of the catalogue: their names and contents."""
    digest = hashlib.sha256()
    for path in sorted({p for pattern in PATTERNS for p in root.glob(pattern)} | {catalogue}):
        digest.update(str(path.relative_to(root) if path.is_relative_to(root) else path.name).encode())
        try:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        except OSError:  # removed while looked at: the next look sees it gone
            digest.update(b"-")
    return digest.hexdigest()[:16]


class Watched:
    """The fingerprint of ``root``, computed again once ``every`` seconds (default ``LOOK_SECONDS``) have passed
    since the last time, or at once when asked ``fresh``. Safe from several threads: at worst two compute it."""

    def __init__(self, root: Path, every: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.root = root
        self.every = every
        self._clock = clock
        self._last: tuple[float, str] | None = None  # (when, fingerprint), replaced whole: never seen half-made

    def mark(self, *, fresh: bool = False) -> str:
        now, last = self._clock(), self._last
        every = LOOK_SECONDS if self.every is None else self.every
        if fresh or last is None or now - last[0] >= every:
            last = self._last = (now, fingerprint(self.root))
        return last[1]


_WATCHED: dict[Path, Watched] = {}


def watched(root: Path) -> Watched:
    """The process's watch of ``root``, shared by its readers: one fingerprint per look, however many ask."""
    if (watch := _WATCHED.get(root)) is None:
        watch = _WATCHED.setdefault(root, Watched(root))
    return watch


def current_catalogue(root: Path = AGENCIES_DIR, *, fresh: bool = False) -> tuple[Agency, ...]:
    """The catalogue with the datasets under ``root`` as they are now: a change is seen within ``LOOK_SECONDS`` (at
    once when ``fresh``). Read again only when the fingerprint changed, so that a call usually costs a look-up: for
    the readers that live long and ask often (the gateway at each request, the API at each scoreboard)."""
    return _catalogue_at(root, watched(root).mark(fresh=fresh))


@lru_cache(maxsize=8)
def _catalogue_at(root: Path, mark: str) -> tuple[Agency, ...]:
    return read_catalogue(root)
