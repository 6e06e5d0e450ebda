"""Configuration taken up while running: the mappings, the agencies' schemas and code lists, and the catalogue.

A stream worker notes the fingerprint of these files when it starts and looks at them again every few seconds.
When they change and the new files load (every mapping checked against its schema), the worker stops cleanly and
starts again in the same process (``os.execv``: same pid, same arguments), subscribed to the new datasets and with
the new mappings: nobody restarts it. New files that do not load are refused: the worker keeps its configuration,
logs why and counts it (``satubus_configuration_refused_total``); ``satubus dataset apply`` checks the same before it
puts a dataset on the bus, so that a bad mapping never reaches the workers. Every worker reading the same directory
(a shared volume, a Kubernetes ConfigMap) takes up the same version; each shows the fingerprint it runs with in
``satubus_configuration_info``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The fingerprint is the schemas' (schemas/configuration.py): the gateway and the API follow the same files.
from satubus.schemas.configuration import LOOK_SECONDS as LOOK_SECONDS
from satubus.schemas.configuration import fingerprint as fingerprint
from satubus.streams.metrics import CONFIGURATION_REFUSED

log = logging.getLogger(__name__)


class ConfigurationWatch:
    """Decides when a worker must take up new configuration; ``load`` checks a candidate (raises if it is bad)."""

    def __init__(self, root: Path, running: str, load: Callable[[Path], Any]) -> None:
        self.root = root
        self.running = running  # the fingerprint of the configuration loaded at start
        self._load = load
        self._refused: str | None = None  # the last fingerprint refused, so that it is logged once

    def changed(self) -> bool:
        """True once the files differ from the running configuration and load."""
        now = fingerprint(self.root)
        if now in (self.running, self._refused):
            return False
        try:
            self._load(self.root)
        except Exception as exc:
            self._refused = now
            CONFIGURATION_REFUSED.inc()
            log.error("new configuration %s refused, still running %s: %s", now, self.running, exc)
            return False
        return True

    async def look(self) -> None:
        """Stop the worker cleanly (as SIGTERM does) once the configuration changed; ``restart`` then runs it again."""
        if not RESTART.requested and self.changed():
            RESTART.requested = True
            log.warning("configuration changed (%s): restarting the worker to take it up", self.root)
            os.kill(os.getpid(), signal.SIGTERM)


class _Restart:
    requested = False  # set once a watch stopped the worker for new configuration


RESTART = _Restart()


def restart() -> None:
    """Run this process again from the start, same arguments: the new configuration is read as at any start."""
    logging.shutdown()
    os.execv(sys.executable, [sys.executable, *sys.argv])
