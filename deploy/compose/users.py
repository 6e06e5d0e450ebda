"""``python -m satubus.deploy.compose.users``: the Kafka users of the bus's processes, as the administrator.

Run by the compose stack's init service before ``satubus acl apply``. Each user gets the password kept for it in
this container's secrets file (``<state dir>/secrets/local-secrets.json``, made by deploy/compose/make_secrets.py),
whose other copies are the processes' own files; setting it again is harmless, so the service may run at every
start. The agencies' users are not made here: ``satubus agency credentials issue <code>`` does, printing the
password once.
"""

from __future__ import annotations

import sys

from satubus import access
from satubus.acl import existing_users, set_password
from satubus.errors import ConfigurationError, exit_code
from satubus.kafka import admin_client
from satubus.secrets import LocalSecrets
from satubus.settings import Settings, get_settings

PROCESS_ROLES = (
    access.STREAMS,
    access.MATERIALIZER,
    access.RESTRICTED,
    access.API,
    access.GATEWAY,
    access.DOWNSTREAM,
)


def provision(settings: Settings) -> list[str]:
    """Create or update the user of every process role; returns the users that did not exist before."""
    secrets = LocalSecrets(settings.secrets_dir)
    passwords = {}
    for role in PROCESS_ROLES:
        user = access.principal(settings.namespace, role)
        password = secrets.get("kafka", user)
        if password is None:
            raise ConfigurationError(
                f"no Kafka password for {user} in {secrets.path}: run deploy/compose/make_secrets.py again"
            )
        passwords[user] = password
    admin = admin_client(settings)
    before = existing_users(admin)
    for user, password in passwords.items():
        set_password(admin, user, password)
    return sorted(set(passwords) - before)


def main() -> int:
    try:
        created = provision(get_settings())
    except ConfigurationError as exc:
        print(f"users: {exc}", file=sys.stderr)
        return exit_code(exc)
    print(f"{len(PROCESS_ROLES)} Kafka user(s) of the bus's processes set; new: {', '.join(created) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
