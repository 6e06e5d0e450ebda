"""Pseudonymous identifiers: a keyed HMAC, because a plain hash of a 16-digit number is brute-forced in minutes."""

from __future__ import annotations

import hashlib
import hmac
from typing import NewType

PersonId = NewType("PersonId", str)


def pseudonymize(key: bytes, domain: str, value: str) -> str:
    """Hex HMAC-SHA256 of ``value``; ``domain`` keeps ids of different kinds (NIK, KK) unrelated."""
    if not key:
        raise ValueError("the pseudonym key is empty")
    return hmac.new(key, f"{domain}:{value}".encode(), hashlib.sha256).hexdigest()


def person_id(key: bytes, nik: str) -> PersonId:
    return PersonId(pseudonymize(key, "nik", nik))


def household_id(key: bytes, family_card_number: str) -> str:
    return pseudonymize(key, "kk", family_card_number)
