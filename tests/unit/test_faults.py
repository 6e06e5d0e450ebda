"""asyncpg's and librdkafka's errors sorted into the bus's family (consumers/faults.py): a service unavailable is a
retriable ``InfrastructureError``, a row or a statement the database refuses is not."""

from __future__ import annotations

import asyncpg
import pytest
from confluent_kafka import KafkaError, KafkaException

from satubus.consumers import faults
from satubus.errors import BrokerUnavailable, DatabaseUnavailable


class Closed:
    def __init__(self, closed: bool) -> None:
        self.closed = closed

    def is_closed(self) -> bool:
        return self.closed


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    ],
    ids=type,
)
def test_a_database_that_does_not_answer_is_unavailable(error: Exception) -> None:
    with pytest.raises(DatabaseUnavailable) as raised, faults.database_errors():
        raise error
    assert raised.value.retriable and raised.value.__cause__ is error


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.DataError("invalid input for query argument $1"),
        asyncpg.UniqueViolationError("duplicate key value violates unique constraint"),
        asyncpg.UndefinedTableError('relation "unified.nothing" does not exist'),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    ],
    ids=type,
)
def test_a_refused_row_or_statement_is_not_unavailability(error: Exception) -> None:
    with pytest.raises(type(error)), faults.database_errors(Closed(False)):
        raise error


def test_a_connection_found_closed_is_unavailability() -> None:
    closed = asyncpg.InterfaceError("cannot call Transaction.__aexit__(): the underlying connection is closed")
    with pytest.raises(DatabaseUnavailable), faults.database_errors(Closed(True)):
        raise closed
    with pytest.raises(DatabaseUnavailable), faults.database_errors():  # raised while handling a lost connection
        try:
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
        except asyncpg.ConnectionDoesNotExistError:
            raise closed from None


@pytest.mark.parametrize(
    "code",
    [KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN, KafkaError.NOT_LEADER_FOR_PARTITION],
)
def test_brokers_that_do_not_answer_are_unavailable(code: int) -> None:
    with pytest.raises(BrokerUnavailable), faults.kafka_errors():
        raise KafkaException(KafkaError(code))


def test_other_kafka_errors_are_raised_as_they_are() -> None:
    with pytest.raises(KafkaException), faults.kafka_errors():
        raise KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    with pytest.raises(KafkaException), faults.kafka_errors():
        raise KafkaException(KafkaError(KafkaError._TRANSPORT, fatal=True))
