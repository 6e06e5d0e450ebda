"""Gateway tokens: ``sdb.<token id>.<secret>``, shown once when issued and kept only as a SHA-256 digest.

The secret is 32 random bytes, so a fast digest is enough (a slow password hash protects guessable secrets; nothing
here is guessable). The id finds the stored digest without scanning; the comparison is constant-time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

PREFIX = "sdb"


@dataclass(frozen=True)
class Issued:
    token_id: str
    token: str  # the whole bearer token; never stored

    @property
    def digest(self) -> bytes:
        parsed = parse(self.token)
        assert parsed is not None
        return digest(parsed[1])


def issue() -> Issued:
    token_id = secrets.token_hex(6)
    return Issued(token_id, f"{PREFIX}.{token_id}.{secrets.token_urlsafe(32)}")


def parse(token: str) -> tuple[str, str] | None:
    """``(token id, secret)``, or None when ``token`` is not one of ours."""
    prefix, _, rest = token.partition(".")
    token_id, _, secret = rest.partition(".")
    if prefix != PREFIX or not token_id or not secret:
        return None
    return token_id, secret


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def matches(secret: str, stored: bytes) -> bool:
    return hmac.compare_digest(digest(secret), stored)


class Stored(Protocol):
    @property
    def digest(self) -> bytes: ...

    @property
    def expires_at(self) -> dt.datetime | None: ...


S = TypeVar("S", bound=Stored)


def live(token: str, stored: Mapping[str, S], now: dt.datetime | None = None) -> tuple[str, S] | None:
    """``(token id, what is stored of it)`` when ``token`` is one of ``stored`` (by id), its secret matches and it
    has not expired; else None."""
    parsed = parse(token)
    found = None if parsed is None else stored.get(parsed[0])
    if parsed is None or found is None or not matches(parsed[1], found.digest):
        return None
    if found.expires_at is not None and found.expires_at <= (now or dt.datetime.now(dt.UTC)):
        return None
    return parsed[0], found
