"""The local stack's generated secrets: one JSON file in the state folder, readable by its owner only.

``satubus stack up`` (and the test suite, for its namespace) writes the passwords it generates here, and
``satubus agency credentials`` updates an agency's, so that ``make demo`` and ``make test`` need nothing typed by
hand; processes find their own password here when ``SATUBUS_KAFKA_PASSWORD`` (and its siblings) are not set. Never
in the repository: the state folder is ignored by git. A deployment either sets a process's secrets in its
environment (one identity per process) or mounts a file of the same form at ``<SATUBUS_STATE_DIR>/secrets/`` from
its secret store: a process with two identities (the materializer logs in to Kafka as ``satubus-materializer`` and
``satubus-restricted``, the API to PostgreSQL as ``satubus_api`` and ``satubus_nik_api``) needs the file.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

FILE = "local-secrets.json"


class LocalSecrets:
    """``{system: {name: secret}}``, e.g. ``kafka`` -> ``satubus-streams`` -> password."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / FILE

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            data: dict[str, dict[str, str]] = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return data

    def get(self, system: str, name: str) -> str | None:
        return self._load().get(system, {}).get(name)

    def ensure(self, system: str, name: str) -> str:
        """The secret of ``name``, generated (and kept) if there is none yet."""
        existing = self.get(system, name)
        return existing if existing is not None else self.put(system, name, secrets.token_urlsafe(24))

    def put(self, system: str, name: str, secret: str) -> str:
        data = self._load()
        data.setdefault(system, {})[name] = secret
        self._write(data)
        return secret

    def remove(self, system: str, name: str) -> None:
        data = self._load()
        if data.get(system, {}).pop(name, None) is not None:
            self._write(data)

    def _write(self, data: dict[str, dict[str, str]]) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        partial.replace(self.path)
