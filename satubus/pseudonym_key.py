"""The pseudonym key: the secret of the HMAC that turns a NIK into a person_id (satubus/schemas/pseudonym.py).

It is read from a file (``SATUBUS_PSEUDONYM_KEY_FILE``: a Kubernetes secret or a secret store's agent mounts one),
and must be at least ``MIN_BYTES`` long: with a short or guessable key, person_id is reversible by brute force over
the 16-digit NIK space. The value given inline (``SATUBUS_PSEUDONYM_KEY``) and the keys published in this
repository are accepted only on the local stack (``SATUBUS_ENV=local``).

Its id (``key_id``: derived from the key, so it cannot disagree with it) travels with every record that carries a
person_id to consumers (the ``KEY_ID_HEADER`` header), so that they can tell ids made with an old key from new ones
after a rotation (README: "Rotating the pseudonym key").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from satubus.errors import ConfigurationError
from satubus.settings import Settings

MIN_BYTES = 32
KEY_ID_HEADER = "satubus.pseudonym.key-id"
# Keys anyone can read (deploy/local/dev.env, the integration suite): their person_ids are not pseudonymous.
PUBLIC_KEYS = frozenset({b"local-development-key-not-a-secret-0001", b"integration-test-key-public-not-a-secret"})


@dataclass(frozen=True)
class PseudonymKey:
    secret: bytes
    key_id: str

    def __repr__(self) -> str:
        return f"PseudonymKey(key_id={self.key_id!r})"


def key_id(secret: bytes) -> str:
    return hashlib.sha256(b"satubus.pseudonym.key-id:" + secret).hexdigest()[:16]


def load(settings: Settings) -> PseudonymKey:
    """The key this process must use; ``ConfigurationError`` saying what to do when there is none fit for use."""
    local = settings.env == "local"
    make_one = "make one with `openssl rand -base64 48 > key` and set SATUBUS_PSEUDONYM_KEY_FILE to its path"
    if settings.pseudonym_key_file is not None:
        try:
            secret = settings.pseudonym_key_file.read_bytes().strip()
        except OSError as exc:
            raise ConfigurationError(f"cannot read SATUBUS_PSEUDONYM_KEY_FILE ({exc.strerror}): {make_one}") from exc
    elif settings.pseudonym_key is not None:
        if not local:
            raise ConfigurationError(
                "SATUBUS_PSEUDONYM_KEY (a key in the environment) is for the local stack only "
                f"(SATUBUS_ENV=local): {make_one}"
            )
        secret = settings.pseudonym_key.get_secret_value().encode()
    else:
        raise ConfigurationError(f"no pseudonym key (the secret that turns NIKs into person_ids): {make_one}")
    if len(secret) < MIN_BYTES:
        raise ConfigurationError(f"the pseudonym key has {len(secret)} bytes, fewer than {MIN_BYTES}: {make_one}")
    if secret in PUBLIC_KEYS and not local:
        raise ConfigurationError(f"the pseudonym key is a public one, for the local stack only: {make_one}")
    return PseudonymKey(secret, key_id(secret))
