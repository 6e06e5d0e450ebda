from __future__ import annotations

from satubus.errors import SatuBusError


class Rejected(SatuBusError):
    """A record that cannot be normalized. ``reason`` is a short code (a metric label); the message is for people
    and never contains a clear NIK."""

    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = reason
