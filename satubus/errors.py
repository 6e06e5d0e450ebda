"""The root of the project's exceptions; each package raises subclasses of it."""


class SatuBusError(Exception):
    """Base class for every error the bus raises on purpose."""


class ConfigurationError(SatuBusError):
    """A setting is missing or wrong; the message says which and how to fix it."""
