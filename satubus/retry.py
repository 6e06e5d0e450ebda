"""Bounded exponential backoff for operations that fail with a retriable error (``SatuBusError.retriable``).

An error in the data is not retried: it is raised at once. A retriable one is retried with a growing, jittered
delay; after ``attempts`` tries (``None``: until it succeeds) the last error is raised. While it waits, the
process's health (satubus/health.py) names what waits and for which service, and counts the retry.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from satubus import health
from satubus.errors import SatuBusError

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    first: float = 0.2  # seconds before the second try
    factor: float = 2.0
    longest: float = 10.0  # no wait is longer than this
    attempts: int | None = 8  # tries in all; None: until it succeeds

    def delay(self, attempt: int) -> float:
        """The wait after the ``attempt``-th failure (0-based), with up to 20 % jitter."""
        base = min(self.longest, self.first * self.factor**attempt)
        return base * (0.8 + 0.2 * random.random())


def _give_up(error: Exception, attempt: int, backoff: Backoff) -> bool:
    if not (isinstance(error, SatuBusError) and error.retriable):
        return True
    return backoff.attempts is not None and attempt + 1 >= backoff.attempts


def retry(operation: Callable[[], T], *, backoff: Backoff = Backoff(), what: str = "operation") -> T:
    """Call ``operation`` until it returns, retrying retriable errors (blocking; never on an event loop)."""
    attempt, waiting = 0, object()  # this call's entry in the process's health
    try:
        while True:
            try:
                return operation()
            except Exception as error:
                if _give_up(error, attempt, backoff):
                    raise
                wait = backoff.delay(attempt)
                log.warning("%s failed (%s); retrying in %.1fs", what, error, wait)
                health.STATE.waiting(waiting, what, error)
                time.sleep(wait)
                attempt += 1
    finally:
        health.STATE.recovered(waiting)


async def retry_async(
    operation: Callable[[], Awaitable[T]], *, backoff: Backoff = Backoff(), what: str = "operation"
) -> T:
    """Await ``operation()`` until it returns, retrying retriable errors."""
    attempt, waiting = 0, object()
    try:
        while True:
            try:
                return await operation()
            except Exception as error:
                if _give_up(error, attempt, backoff):
                    raise
                wait = backoff.delay(attempt)
                log.warning("%s failed (%s); retrying in %.1fs", what, error, wait)
                health.STATE.waiting(waiting, what, error)
                await asyncio.sleep(wait)
                attempt += 1
    finally:
        health.STATE.recovered(waiting)
