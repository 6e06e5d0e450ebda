"""The errors of asyncpg and librdkafka sorted into the bus's family (satubus/errors.py): PostgreSQL or Kafka
unavailable is an ``InfrastructureError`` (retry later); a statement or a row the database refuses is not.

asyncpg has no single class for "the server went away": refused or reset connections are ``OSError`` (a connect
timeout is ``TimeoutError``, an ``OSError`` too), a connection lost under a query is ``ConnectionDoesNotExistError``,
a server starting or stopping answers ``CannotConnectNowError`` or ``AdminShutdownError``, and a connection found
closed afterwards is a bare ``InterfaceError``, the class asyncpg also uses for misuse; that one counts only when the
connection is indeed closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import asyncpg
from confluent_kafka import KafkaError, KafkaException

from satubus.errors import BrokerUnavailable, DatabaseUnavailable
from satubus.retry import Backoff, retry_async

T = TypeVar("T")

# A consumer waits for an unavailable service without end, at most 10 s between tries, each failure logged. One that
# gave up would exit, be restarted into the same outage and lose its assignment and metrics meanwhile; nothing is
# gained by exiting, since no offset moves past a batch that is not committed, and its lag (and the warnings) say
# that it waits. A stop request ends the waiting before the next try.
UNTIL_AVAILABLE = Backoff(first=0.5, factor=2.0, longest=10.0, attempts=None)

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, ConnectionDoesNotExistError among them
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)

# Brokers that do not answer, or not yet for a partition (a topic just created or a leader moving). librdkafka sets
# KafkaError.retriable() only on some of its errors, so these count whatever the flag says.
_BROKER_DOWN = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
        KafkaError._MSG_TIMED_OUT,
        KafkaError._WAIT_COORD,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
)


class Stopped(Exception):
    """A stop was requested while a service was unavailable: the consumer ends without waiting for it."""


async def until_available(
    operation: Callable[[], Awaitable[T]], *, what: str, stop: asyncio.Event, backoff: Backoff = UNTIL_AVAILABLE
) -> T:
    """``operation()``, tried again while a service it needs is unavailable (an ``InfrastructureError``); an error
    in the data or a bug is raised at once, and a stop request ends the waiting with ``Stopped``."""
    tried = False

    async def attempt() -> T:
        nonlocal tried
        if tried and stop.is_set():
            raise Stopped(what)
        tried = True
        return await operation()

    return await retry_async(attempt, backoff=backoff, what=what)


def database_unavailable(error: BaseException, conn: Any = None) -> bool:
    """Whether ``error`` (or what it was raised from) means PostgreSQL is unavailable, rather than that the
    statement or its data is wrong; ``conn``, when given, is the connection the error came from."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, CONNECTION_ERRORS):
            return True
        cause = cause.__cause__ or cause.__context__
    return type(error) is asyncpg.InterfaceError and conn is not None and conn.is_closed()


def broker_unavailable(error: BaseException) -> bool:
    """Whether ``error`` is librdkafka saying that the brokers do not answer (not a fatal or a usage error)."""
    if not isinstance(error, KafkaException) or not error.args or not isinstance(error.args[0], KafkaError):
        return False
    kafka_error: KafkaError = error.args[0]
    return not kafka_error.fatal() and (kafka_error.retriable() or kafka_error.code() in _BROKER_DOWN)


@contextlib.contextmanager
def database_errors(conn: Any = None) -> Iterator[None]:
    """Raise ``DatabaseUnavailable`` for an error of PostgreSQL being unavailable; let every other error through."""
    try:
        yield
    except DatabaseUnavailable:
        raise
    except Exception as exc:
        if database_unavailable(exc, conn):
            raise DatabaseUnavailable(f"PostgreSQL is unavailable: {exc!r}") from exc
        raise


@contextlib.contextmanager
def kafka_errors() -> Iterator[None]:
    """Raise ``BrokerUnavailable`` for a librdkafka error of brokers that do not answer."""
    try:
        yield
    except KafkaException as exc:
        if broker_unavailable(exc):
            raise BrokerUnavailable(f"Kafka is unavailable: {exc.args[0]}") from exc
        raise


@contextlib.asynccontextmanager
async def connection(pool: Any) -> AsyncIterator[Any]:
    """A connection of ``pool``; PostgreSQL unavailable (when connecting or during the block) raises
    ``DatabaseUnavailable``."""
    with database_errors():
        async with pool.acquire() as conn:
            with database_errors(conn):
                yield conn


@contextlib.asynccontextmanager
async def transaction(pool: Any) -> AsyncIterator[Any]:
    """A connection of ``pool`` in a transaction, committed at the end of the block unless it raises; PostgreSQL
    unavailable (when connecting, during the block or at the commit) raises ``DatabaseUnavailable``."""
    async with connection(pool) as conn, conn.transaction():
        yield conn
