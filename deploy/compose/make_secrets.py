"""Make the compose stack's secrets: ``python3 deploy/compose/make_secrets.py [FOLDER]`` (default: ``secrets/`` next
to this file, which git and the image's build context ignore).

Needs only Python 3 and openssl. Makes what is missing and keeps what exists, so running it again changes nothing;
delete a file to have it made again (a password changed here must also change in the running service: the Kafka
users of the processes are set again by the init service at every start, the PostgreSQL logins and the Kafka
administrator only when their data volume is new).

- ``passwords.json``: every generated password, the source of the files below; never mounted in a container;
- ``ca.pem`` (trusted by every Kafka client) and ``ca-key.pem`` (never mounted): the stack's certificate authority;
  ``kafka-broker.pem`` and ``kafka-broker-key.pem`` (PKCS#8; for ``kafka``, ``localhost`` and ``127.0.0.1``);
- ``kafka-server.env``: the broker's, controller's and administrator's passwords, for deploy/compose/kafka/start.sh;
- ``postgres-owner-password``, ``postgres-logins`` (``<login> <password>`` per line, deploy/compose/postgres/logins.sh);
- ``registry.properties``: the registry's administrator and its database login (read by Quarkus);
- ``grafana-admin-password``; ``pseudonym-key``: the key that turns a NIK into a person_id (48 random bytes, base64);
- ``<process>.json``, one per process of the bus: only that process's Kafka and PostgreSQL passwords, in the format
  of satubus/secrets.py, mounted as the process's ``<state dir>/secrets/local-secrets.json``.

The folder is mode 0700; the files in it are 0644, because each is bind-mounted into a container whose user is not
the owner of the file (compose's file secrets cannot change ownership); the folder keeps them from other users of
the host.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

DAYS = 825
BROKER_NAMES = "DNS:kafka,DNS:localhost,IP:127.0.0.1"

# Names as satubus/access.py and satubus/database.py define them (tests/unit/test_compose.py compares them).
KAFKA_SERVER_USERS = ("admin", "broker", "controller")
KAFKA_PROCESS_USERS = (
    "satubus-streams",
    "satubus-materializer",
    "satubus-restricted",
    "satubus-api",
    "satubus-gateway",
    "satubus-downstream",
)
POSTGRES_OWNER = "satubus"
POSTGRES_LOGINS = (
    "satubus_materializer",
    "satubus_nik_materializer",
    "satubus_api",
    "satubus_nik_api",
    "satubus_gateway",
    "satubus_auditor",
    "satubus_registry",
)
REGISTRY_ADMIN = "admin"

# What each process of the bus may log in as: {process: {system: [names]}} (systems as in satubus/secrets.py).
PROCESS_SECRETS: dict[str, dict[str, list[str]]] = {
    "init": {
        "kafka": ["admin", *KAFKA_PROCESS_USERS],
        "postgres": [POSTGRES_OWNER],
        "registry": [REGISTRY_ADMIN],
    },
    "stream": {"kafka": ["satubus-streams"]},
    "materializer": {
        "kafka": ["satubus-materializer", "satubus-restricted"],
        "postgres": ["satubus_materializer", "satubus_nik_materializer"],
    },
    "api": {"kafka": ["satubus-api"], "postgres": ["satubus_api", "satubus_nik_api"]},
    "gateway": {"kafka": ["satubus-gateway"], "postgres": ["satubus_gateway"]},
    "admin": {
        "kafka": ["admin", "satubus-restricted"],
        "postgres": [POSTGRES_OWNER, "satubus_auditor"],
        "registry": [REGISTRY_ADMIN],
    },
}


def _password() -> str:
    return secrets.token_urlsafe(24)  # letters, digits, "-" and "_": safe in shell, JAAS, SQL and properties


def _write(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.chmod(0o644)
    partial.replace(path)


def _openssl(folder: Path, *args: str) -> None:
    result = subprocess.run(["openssl", *args], cwd=folder, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"openssl {args[0]} failed (exit {result.returncode}):\n{result.stderr[-2000:]}")


def certificates(folder: Path) -> None:
    ca, ca_key = folder / "ca.pem", folder / "ca-key.pem"
    cert, key = folder / "kafka-broker.pem", folder / "kafka-broker-key.pem"
    if not (ca.exists() and ca_key.exists()):
        _openssl(folder, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", ca_key.name)
        ca_key.chmod(0o600)
        _openssl(
            folder, "req", "-x509", "-new", "-key", ca_key.name, "-out", ca.name, "-days", str(DAYS), "-sha256",
            "-subj", "/O=Satu Data Bus/CN=Satu Data Bus compose CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        cert.unlink(missing_ok=True)  # signed by a CA that is gone
    if not (cert.exists() and key.exists()):
        _openssl(folder, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key.name)
        with tempfile.TemporaryDirectory(dir=folder) as scratch:
            csr, ext = Path(scratch) / "broker.csr", Path(scratch) / "broker.ext"
            _openssl(folder, "req", "-new", "-key", key.name, "-out", str(csr), "-subj", "/CN=kafka")
            ext.write_text(
                f"subjectAltName={BROKER_NAMES}\nextendedKeyUsage=serverAuth,clientAuth\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
            )
            _openssl(
                folder, "x509", "-req", "-in", str(csr), "-CA", ca.name, "-CAkey", ca_key.name,
                "-CAserial", str(Path(scratch) / "ca.srl"), "-CAcreateserial",
                "-out", cert.name, "-days", str(DAYS), "-sha256", "-extfile", str(ext),
            )  # fmt: skip
    for public in (ca, cert, key):
        public.chmod(0o644)


def passwords(folder: Path) -> dict[str, dict[str, str]]:
    """Every password, those already made kept."""
    path = folder / "passwords.json"
    kept: dict[str, dict[str, str]] = json.loads(path.read_text()) if path.exists() else {}
    wanted = {
        "kafka": [*KAFKA_SERVER_USERS, *KAFKA_PROCESS_USERS],
        "postgres": [POSTGRES_OWNER, *POSTGRES_LOGINS],
        "registry": [REGISTRY_ADMIN],
        "grafana": ["admin"],
    }
    for system, names in wanted.items():
        for name in names:
            kept.setdefault(system, {}).setdefault(name, _password())
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(kept, indent=1, sort_keys=True))
    partial.chmod(0o600)
    partial.replace(path)
    return kept


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else Path(__file__).resolve().parent / "secrets"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    certificates(folder)
    known = passwords(folder)
    kafka, postgres = known["kafka"], known["postgres"]
    _write(
        folder / "kafka-server.env",
        "".join(f"{user.upper()}_PASSWORD={kafka[user]}\n" for user in KAFKA_SERVER_USERS),
    )
    _write(folder / "postgres-owner-password", postgres[POSTGRES_OWNER] + "\n")
    _write(folder / "postgres-logins", "".join(f"{login} {postgres[login]}\n" for login in POSTGRES_LOGINS))
    _write(
        folder / "registry.properties",
        f"quarkus.security.users.embedded.users.{REGISTRY_ADMIN}={known['registry'][REGISTRY_ADMIN]}\n"
        f"apicurio.datasource.password={postgres['satubus_registry']}\n",
    )
    _write(folder / "grafana-admin-password", known["grafana"]["admin"] + "\n")
    key = folder / "pseudonym-key"
    if not key.exists():  # never replaced: a new key changes every person_id (`satubus rebuild`)
        _write(key, base64.b64encode(secrets.token_bytes(48)).decode() + "\n")
    for process, systems in PROCESS_SECRETS.items():
        own = {system: {name: known[system][name] for name in names} for system, names in systems.items()}
        _write(folder / f"{process}.json", json.dumps(own, indent=1, sort_keys=True))
    print(f"secrets of the compose stack in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
