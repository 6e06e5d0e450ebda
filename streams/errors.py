from __future__ import annotations

from satubus.errors import DataError


class Rejected(DataError):
    """A record that cannot be normalized. ``reason`` is a short code (a metric label); the message is for people
    and never contains a clear NIK. ``value`` keeps the offending value where it is not personal data (an unknown
    region as written), for the finding it raises."""

    def __init__(self, field: str, reason: str, message: str, value: str | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = reason
        self.value = value
