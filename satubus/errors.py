"""The root of the project's exceptions; each package raises subclasses of these.

Two kinds matter to every caller, and they decide by the class's ``retriable`` flag, never by the message:

- a ``DataError`` is an error in a record (an agency's event, a row of a file): retrying changes nothing; the record
  is rejected with its reason (dead letter, HTTP 422, a row in the error report) and the agency is told;
- an ``InfrastructureError`` (``retriable = True``) is a service of the bus (Kafka, the schema registry, PostgreSQL)
  unavailable or too slow: wait and try again with bounded backoff; never dead-letter, never blame an agency. Its
  ``dependency`` names the service (``broker``, ``registry``, ``database``) for /health and the retry metrics.

At the edges: the CLI exits 2 on a ``ConfigurationError``, 3 on an ``InfrastructureError`` and 1 on any other;
the HTTP APIs answer 422 for a ``DataError`` and 503 (with ``Retry-After``) for an ``InfrastructureError``.
"""


class SatuBusError(Exception):
    """Base class for every error the bus raises on purpose."""

    retriable: bool = False


class ConfigurationError(SatuBusError):
    """A setting is missing or wrong; the message says which and how to fix it."""


class DataError(SatuBusError):
    """A record is wrong: the same record fails the same way every time."""


class InfrastructureError(SatuBusError):
    """A service the bus needs is unavailable or timed out; the same operation may succeed later."""

    retriable = True
    dependency = "other"  # the service that is unavailable, as /health and satubus_retries_total name it


class BrokerUnavailable(InfrastructureError):
    """Kafka did not answer or acknowledge in time."""

    dependency = "broker"


class RegistryUnavailable(InfrastructureError):
    """The schema registry did not answer, or answered with a server error."""

    dependency = "registry"


class DatabaseUnavailable(InfrastructureError):
    """PostgreSQL refused the connection or the connection broke."""

    dependency = "database"


EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


def exit_code(error: SatuBusError) -> int:
    """The process exit code for an error that ends a command."""
    if isinstance(error, ConfigurationError):
        return EXIT_USAGE
    if error.retriable:
        return EXIT_UNAVAILABLE
    return EXIT_FAILURE
