"""What a long-running process is waiting for: its ``/health`` answer and its retry metrics.

Readiness, ``GET /health``: 200 ``{"status": "ok", "process": ..., "problems": []}`` while the process works; 503
``{"status": "unhealthy", "process": ..., "problems": [...]}`` while it starts (a worker not yet assigned its
partitions) or waits for a service of the bus to answer again (``satubus.retry``: Kafka, the schema registry or
PostgreSQL unavailable). Each problem names what is wrong (``name``: ``broker``, ``registry``, ``database`` or
``starting``), what waits (``what``), why (``detail``), for how long (``seconds``) and after how many retries.

Liveness, ``GET /health/live``: 200 whenever the process answers at all. A process that waits for a dependency is
alive: it resumes by itself once the service is back, and a restart would only start it into the same wait (and
lose its partitions meanwhile). A liveness probe (Kubernetes' ``livenessProbe``) therefore asks ``/health/live``,
never ``/health``; a readiness probe asks ``/health``.

``STATE`` is the process's own; ``satubus.retry`` reports every retry to it, the components their start. Pure: no
client of any service, no metrics library (satubus/metrics.py exports the counts).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from satubus.errors import InfrastructureError
from satubus.schemas.masking import mask_text

DEPENDENCIES = ("broker", "registry", "database")  # exported even when never waited for
STARTING = "starting"  # the name of a problem that is no dependency's: the process has not started yet
OTHER = "other"  # a retriable error that names no dependency
RETRY_AFTER_SECONDS = 5
DETAIL_CHARS = 500  # of an error's message in a problem


def dependency_of(error: BaseException) -> str:
    """The service whose unavailability ``error`` reports (``InfrastructureError.dependency``)."""
    return error.dependency if isinstance(error, InfrastructureError) else OTHER


@dataclass(frozen=True, slots=True)
class Problem:
    name: str  # a dependency (DEPENDENCIES, OTHER) or STARTING
    what: str  # what waits: an operation or a component of the process
    detail: str
    since: float  # on the state's clock
    retries: int = 0

    def as_json(self, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "what": self.what,
            "detail": self.detail,
            "seconds": round(max(0.0, now - self.since), 1),
            "retries": self.retries,
        }


class Health:
    """The problems of one process, written by its event loop and executor threads, read by its HTTP server's."""

    def __init__(self, process: str = "satubus", *, clock: Callable[[], float] = time.monotonic) -> None:
        self.process = process  # the sub-command: stream, materialize, gateway...
        self._clock = clock
        self._lock = threading.Lock()
        self._problems: dict[Hashable, Problem] = {}
        self._retries: Counter[str] = Counter(dict.fromkeys(DEPENDENCIES, 0))

    def starting(self, what: str, detail: str) -> None:
        """``what`` (a component) is not ready until ``started(what)``."""
        with self._lock:
            self._problems[("starting", what)] = Problem(STARTING, what, detail, self._clock())

    def started(self, what: str) -> None:
        with self._lock:
            self._problems.pop(("starting", what), None)

    def waiting(self, token: Hashable, what: str, error: BaseException) -> None:
        """A retriable ``error``: ``what`` will try again, and waits for the error's dependency until
        ``recovered(token)``. Counts a retry of that dependency."""
        name = dependency_of(error)
        detail = mask_text(str(error) or type(error).__name__)[:DETAIL_CHARS]
        with self._lock:
            earlier = self._problems.get(token)
            same = earlier is not None and earlier.name == name
            since = earlier.since if earlier is not None and same else self._clock()
            retries = earlier.retries + 1 if earlier is not None and same else 1
            self._problems[token] = Problem(name, what, detail, since, retries)
            self._retries[name] += 1

    def recovered(self, token: Hashable) -> None:
        """What waited under ``token`` succeeded, gave up or was cancelled: it waits no more."""
        with self._lock:
            self._problems.pop(token, None)

    def problems(self) -> list[Problem]:
        with self._lock:
            return sorted(self._problems.values(), key=lambda p: (p.since, p.name, p.what))

    def retries(self) -> dict[str, int]:
        """Retries so far per dependency (every dependency in DEPENDENCIES, even at 0)."""
        with self._lock:
            return dict(self._retries)

    def waiting_on(self) -> dict[str, int]:
        """Operations waiting now per dependency (every dependency in DEPENDENCIES, even at 0)."""
        counts = Counter(dict.fromkeys(DEPENDENCIES, 0))
        counts.update(p.name for p in self.problems() if p.name != STARTING)
        return dict(counts)

    def readiness(self, more: Iterable[Problem] = ()) -> tuple[int, dict[str, Any]]:
        """The status code and body of ``GET /health``, with ``more`` problems found by the caller's own checks."""
        problems = [*self.problems(), *more]
        now = self._clock()
        body = {
            "status": "unhealthy" if problems else "ok",
            "process": self.process,
            "problems": [p.as_json(now) for p in problems],
        }
        return (503 if problems else 200), body

    def liveness(self) -> tuple[int, dict[str, Any]]:
        """The status code and body of ``GET /health/live``: the process answers."""
        return 200, {"status": "alive", "process": self.process}

    def problem(self, name: str, what: str, detail: str) -> Problem:
        """A problem found now (by a check of the caller's, for ``readiness``)."""
        return Problem(name, what, mask_text(detail)[:DETAIL_CHARS], self._clock())


STATE = Health()


def wsgi(fallback: WSGIApplication, state: Health = STATE) -> WSGIApplication:
    """``fallback`` (the Prometheus exposition) with ``/health`` and ``/health/live`` in front of it."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == "/health":
            status, body = state.readiness()
        elif path == "/health/live":
            status, body = state.liveness()
        else:
            return fallback(environ, start_response)
        payload = json.dumps(body).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        if status == HTTPStatus.SERVICE_UNAVAILABLE:
            headers.append(("Retry-After", str(RETRY_AFTER_SECONDS)))
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [payload]

    return app
