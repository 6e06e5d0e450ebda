"""The local stack: Kafka (KRaft), Apicurio Registry, PostgreSQL and Prometheus, obtained and run natively, no Docker.

``up`` downloads what is missing (Maven Central, cached in ~/.m2 and the state folder; Prometheus as Debian's
package, unpacked into the state folder, never installed), starts what is not running and waits for real
readiness: a Kafka metadata request, HTTP 200 from the registry and from Prometheus, ``pg_isready``.
A second ``up`` is a no-op. ``down`` stops every process it started. All state lives in one folder (``.stack/``).
Ports come from the same settings the pipeline uses (``SATUBUS_KAFKA_BOOTSTRAP``, ``SATUBUS_REGISTRY_URL``,
``SATUBUS_DATABASE_URL``, ...), so the two cannot disagree.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from confluent_kafka.admin import AdminClient

from satubus import access, database
from satubus.acl import provision_local
from satubus.deploy.local.tls import ensure_certificates
from satubus.errors import ConfigurationError, SatuBusError
from satubus.kafka import client_config
from satubus.registry import registry_admin
from satubus.secrets import LocalSecrets
from satubus.settings import Settings

HERE = Path(__file__).resolve().parent
KAFKA_VERSION = "3.9.1"
APICURIO_VERSION = "3.3.3"
REGISTRY_JAVA = 25  # the JDK the registry is preferably run on; any of 21 or newer will do
PG_BIN = Path(os.environ.get("SATUBUS_PG_BIN", "/usr/lib/postgresql/15/bin"))
READY_TIMEOUT = 120.0
PROMETHEUS_CONFIG = HERE.parent / "prometheus" / "prometheus.yml"


class StackError(SatuBusError):
    """Something the user must fix; the message says what."""


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    def service(self, name: str) -> Path:
        return self.root / name

    def pidfile(self, name: str) -> Path:
        return self.service(name) / f"{name}.pid"

    def logfile(self, name: str) -> Path:
        return self.service(name) / f"{name}.log"


# --------------------------------------------------------------------------------------------- processes


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by a parent that is us) is not alive.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _read_pid(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if alive(pid) else None


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _require_free(port: int, service: str, setting: str) -> None:
    if _port_open(port):
        raise StackError(
            f"port {port} on 127.0.0.1 is already in use, so {service} cannot start. Find the process with "
            f"`ss -ltnp 'sport = :{port}'` and stop it, or choose another port with {setting}."
        )


def _spawn(
    cmd: list[str], *, log: Path, pidfile: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> int:
    """Start ``cmd`` as a daemon in its own session (it outlives this process); returns its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    daemonize = 'setsid "$@" >>"$0" 2>&1 </dev/null & echo $!'
    started = subprocess.run(
        ["sh", "-c", daemonize, str(log), *cmd],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
    pid = int(started.stdout)
    pidfile.write_text(f"{pid}\n")
    return pid


def _terminate(pid: int, name: str, timeout: float = 45.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after ``timeout``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            break
        time.sleep(0.2)
    else:
        print(f"  {name} did not stop within {timeout:.0f}s; killing it", file=sys.stderr)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # whatever is left of the group


def _wait(what: str, check: Callable[[], bool], *, pid: int | None, log: Path, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if pid is not None and not alive(pid):
            raise StackError(f"{what} exited during start-up. Last lines of {log}:\n{_tail(log)}")
        time.sleep(0.25)
    raise StackError(f"{what} was not ready after {timeout:.0f}s. Last lines of {log}:\n{_tail(log)}")


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _run(cmd: list[str], what: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-3000:]
        if cmd[0] == "unshare" and "Operation not permitted" in output:
            output += (
                "\nAs root, PostgreSQL runs inside a user namespace, and this machine does not allow one "
                "(see sysctl user.max_user_namespaces); run the stack as a non-root user instead."
            )
        raise StackError(f"{what} failed (exit {result.returncode}):\n{output}")
    return result  # type: ignore[no-any-return]


def _property(pem: str) -> str:
    """A PEM block as one line of a Java properties file (its \\n escapes are read back as line breaks)."""
    return pem.strip().replace("\n", "\\n")


# --------------------------------------------------------------------------------------------- Java and Maven


def _java_major(java: str) -> int | None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)', out)
    return int(match.group(1)) if match else None


def find_java(*, minimum: int, prefer: int | None, override_env: str, install: str) -> str:
    """A java binary of at least ``minimum`` (``prefer`` if present); ``override_env`` names one explicitly;
    ``install`` says what to install when there is none."""
    override = os.environ.get(override_env)
    if override:
        if (_java_major(override) or 0) < minimum:
            raise StackError(f"{override_env}={override} is not a Java {minimum}+ binary")
        return override
    candidates = [str(p) for p in sorted(Path("/usr/lib/jvm").glob("*/bin/java"))]
    if os.environ.get("JAVA_HOME"):
        candidates.insert(0, str(Path(os.environ["JAVA_HOME"]) / "bin" / "java"))
    if shutil.which("java"):
        candidates.append(str(shutil.which("java")))
    found = {c: v for c in dict.fromkeys(candidates) if (v := _java_major(c)) is not None and v >= minimum}
    if not found:
        raise StackError(
            f"no Java {minimum} or newer found (looked in JAVA_HOME, /usr/lib/jvm and PATH). Install {install}, "
            f"or point {override_env} at the java binary of one."
        )
    exact = [c for c, v in found.items() if v == prefer]
    return exact[0] if exact else max(found, key=lambda c: found[c])


def kafka_java() -> str:
    """The JDK that Kafka and its Java tools run on."""
    return find_java(
        minimum=17,
        prefer=17,
        override_env="SATUBUS_KAFKA_JAVA",
        install="one (`apt-get install openjdk-17-jdk-headless`)",
    )


def mvn(args: list[str], what: str) -> None:
    """Run Maven quietly; a failure says what to check."""
    binary = shutil.which("mvn")
    if binary is None:
        raise StackError(f"Maven (mvn) is needed to fetch the {what} jars: `apt-get install maven`.")
    result = subprocess.run([binary, "-q", "-B", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(
            f"downloading {what} from Maven Central failed. Check that Maven Central is reachable (or that "
            f"~/.m2/settings.xml names a working mirror), then run the command again.\n"
            f"{(result.stdout + result.stderr)[-2000:]}"
        )


# --------------------------------------------------------------------------------------------- services


class Kafka:
    """The local Kafka cluster: one node, or three (``SATUBUS_KAFKA_BROKERS``), each broker and controller (one
    KRaft quorum of all nodes). Node n listens on the first node's ports plus 100 x (n - 1); the jars are shared."""

    name = "kafka"

    def __init__(self, settings: Settings, layout: Layout) -> None:
        self.settings = settings
        self.port = settings.kafka_port
        self.controller_port = settings.kafka_controller_port
        self.dir = layout.service(self.name)
        self.secrets = layout.root / "secrets"
        self.libs = self.dir / "libs"
        self.nodes = [KafkaNode(self, layout, n) for n in range(1, settings.kafka_brokers + 1)]

    @property
    def log(self) -> Path:
        return self.nodes[0].log

    def pid(self) -> int | None:
        return _read_pid(self.nodes[0].pidfile)

    def obtain(self) -> None:
        if (self.libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
            return
        print(f"  fetching Kafka {KAFKA_VERSION} jars (first run only)...", flush=True)
        staging = self.dir / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        mvn(
            [
                "-f",
                str(HERE / "kafka-pom.xml"),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}",
                "-DincludeScope=runtime",
            ],
            f"Kafka {KAFKA_VERSION}",
        )
        shutil.rmtree(self.libs, ignore_errors=True)
        staging.rename(self.libs)

    def java_command(self, main: str, *args: str) -> list[str]:
        java = kafka_java()
        heap = "768m" if len(self.nodes) == 1 else "512m"
        return [
            java,
            "-Xms256m",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{HERE / 'kafka-log4j.properties'}",
            f"-Dkafka.logs.dir={self.dir / 'logs'}",
            "-cp",
            f"{self.libs}/*",
            main,
            *args,
        ]

    def cluster_id(self) -> str:
        """The cluster's id, made once and kept beside the first node's data (every node is formatted with it)."""
        stored = self.nodes[0].dir / "cluster.id"
        if not stored.exists():
            stored.parent.mkdir(parents=True, exist_ok=True)
            # May start with "-": passed as --cluster-id=... so the tool does not read it as an option.
            stored.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=") + "\n")
        return stored.read_text().strip()

    def start(self) -> int | None:
        """Start the nodes that are not running; returns the first pid started (None: all were running)."""
        started = [node.start() for node in self.nodes]
        return next((pid for pid in started if pid is not None), None)

    def ready(self) -> bool:
        try:
            admin = AdminClient(client_config(self.settings, access.ADMIN) | {"log_level": 0})
        except ConfigurationError:  # no password or CA yet
            return False
        try:
            metadata = admin.list_topics(timeout=2)
        except Exception:  # any failure means "not yet"
            return False
        return len(metadata.brokers) == len(self.nodes) and metadata.controller_id >= 0

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class KafkaNode:
    """One node of the local cluster: its configuration, storage, process and log."""

    def __init__(self, kafka: Kafka, layout: Layout, number: int) -> None:
        self.kafka = kafka
        self.number = number
        self.port = kafka.port + 100 * (number - 1)
        self.controller_port = kafka.controller_port + 100 * (number - 1)
        self.name = kafka.name if kafka.settings.kafka_brokers == 1 else f"kafka-{self.port}"
        self.dir = layout.service(self.name)
        self.pidfile = layout.pidfile(self.name)
        self.log = layout.logfile(self.name)

    def _configure(self) -> Path:
        """Render server.properties (mode 0600: it holds the broker's key and passwords) and format the storage
        on first start, with the administrator's and the broker's SCRAM users (every other user is made through
        the Admin API: `satubus acl`)."""
        kafka = self.kafka
        ca, certificate, key = ensure_certificates(kafka.secrets)
        secrets = LocalSecrets(kafka.secrets)
        passwords = {user: secrets.ensure("kafka", user) for user in (access.ADMIN, access.BROKER, access.CONTROLLER)}
        config = self.dir / "server.properties"
        template = (HERE / "kafka-server.properties").read_text()
        replicas = len(kafka.nodes)
        text = template.format(
            node_id=self.number,
            voters=",".join(f"{n.number}@127.0.0.1:{n.controller_port}" for n in kafka.nodes),
            port=self.port,
            controller_port=self.controller_port,
            data=self.dir / "data",
            replicas=replicas,
            min_isr=2 if replicas >= 3 else 1,
            ca=ca,
            certificate=_property(certificate.read_text()),
            key=_property(key.read_text()),
            broker_password=passwords[access.BROKER],
            controller_password=passwords[access.CONTROLLER],
        )
        config.parent.mkdir(parents=True, exist_ok=True)
        config.touch(mode=0o600)
        config.chmod(0o600)
        config.write_text(text)
        secured = self.dir / "data" / "secured"  # written once the storage was formatted with the SCRAM users
        if (self.dir / "data" / "meta.properties").exists() and not secured.exists():
            raise StackError(
                f"Kafka's storage in {self.dir / 'data'} was made before the stack had users and ACLs. Stop the "
                f"stack (`satubus stack down`), remove that folder (its topics are lost) and start again."
            )
        if not secured.exists():
            scram = [
                f"--add-scram=SCRAM-SHA-512=[name={user},password={passwords[user]}]"
                for user in (access.ADMIN, access.BROKER)
            ]
            storage = ("kafka.tools.StorageTool", "format", f"--cluster-id={kafka.cluster_id()}", "-c", str(config))
            _run(kafka.java_command(*storage, *scram), "formatting Kafka's storage")
            secured.write_text("SCRAM-SHA-512 users admin and broker\n")
        return config

    def start(self) -> int | None:
        if _read_pid(self.pidfile) is not None:
            return None
        _require_free(self.port, f"Kafka (node {self.number})", "SATUBUS_KAFKA_BOOTSTRAP")
        _require_free(self.controller_port, f"Kafka's controller (node {self.number})", "SATUBUS_KAFKA_CONTROLLER_PORT")
        config = self._configure()
        return _spawn(self.kafka.java_command("kafka.Kafka", str(config)), log=self.log, pidfile=self.pidfile)

    def stop(self) -> None:
        pid = _read_pid(self.pidfile)
        if pid is not None:
            _terminate(pid, self.name)
        self.pidfile.unlink(missing_ok=True)


class Registry:
    name = "registry"

    def __init__(self, settings: Settings, layout: Layout) -> None:
        self.url = settings.registry_url.rstrip("/")
        self.settings = settings
        self.secrets = LocalSecrets(layout.root / "secrets")
        self.port = settings.registry_port
        self.management_port = settings.registry_management_port
        parts = urlsplit(settings.database_url)
        self.jdbc_url = f"jdbc:postgresql://127.0.0.1:{parts.port}/apicurio"
        self.dir = layout.service(self.name)
        self.app = self.dir / f"apicurio-registry-{APICURIO_VERSION}"
        self.downloads = layout.downloads
        self.pidfile = layout.pidfile(self.name)
        self.log = layout.logfile(self.name)

    def obtain(self) -> None:
        if (self.app / "quarkus-run.jar").exists():
            return
        archive = self.downloads / f"apicurio-registry-app-{APICURIO_VERSION}-all.tar.gz"
        if not archive.exists():
            print(f"  fetching Apicurio Registry {APICURIO_VERSION} (~160 MB, first run only)...", flush=True)
            mvn(
                [
                    "dependency:copy",
                    f"-Dartifact=io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all",
                    f"-DoutputDirectory={self.downloads}",
                ],
                f"Apicurio Registry {APICURIO_VERSION}",
            )
        staging = self.dir / "app.partial"
        shutil.rmtree(staging, ignore_errors=True)
        with tarfile.open(archive) as tar:
            tar.extractall(staging, filter="data")
        shutil.rmtree(self.app, ignore_errors=True)
        staging.rename(self.app)
        archive.unlink()  # Maven's local repository keeps a copy

    def start(self) -> int | None:
        if _read_pid(self.pidfile) is not None:
            return None
        _require_free(self.port, "the schema registry", "SATUBUS_REGISTRY_URL")
        _require_free(self.management_port, "the registry's management port", "SATUBUS_REGISTRY_MANAGEMENT_PORT")
        java = find_java(
            minimum=21,
            prefer=REGISTRY_JAVA,
            override_env="SATUBUS_REGISTRY_JAVA",
            install=f"a JDK 21 or newer under /usr/lib/jvm (the registry is run on Temurin {REGISTRY_JAVA} here)",
        )
        admin = self.settings.registry_admin_username
        env = {
            "QUARKUS_HTTP_HOST": "127.0.0.1",
            "QUARKUS_HTTP_PORT": str(self.port),
            "QUARKUS_MANAGEMENT_HOST": "127.0.0.1",
            "QUARKUS_MANAGEMENT_PORT": str(self.management_port),
            "APICURIO_RULES_GLOBAL_COMPATIBILITY": "BACKWARD",
            # Durable storage: schema ids must outlive a restart, or Kafka's retained messages stop decoding.
            "APICURIO_STORAGE_KIND": "sql",
            "APICURIO_STORAGE_SQL_KIND": "postgresql",
            "APICURIO_DATASOURCE_URL": self.jdbc_url,
            "APICURIO_DATASOURCE_USERNAME": database.REGISTRY,
            "APICURIO_DATASOURCE_PASSWORD": self.secrets.ensure("postgres", database.REGISTRY),
            # Anyone may read schemas; only the administrator (HTTP basic, a user embedded in the registry, no
            # identity server) may register or delete them or change rules.
            "QUARKUS_OIDC_TENANT_ENABLED": "false",
            "APICURIO_AUTHN_ENABLED": "true",
            "QUARKUS_HTTP_AUTH_BASIC": "true",
            "APICURIO_AUTH_ROLE_BASED_AUTHORIZATION": "true",
            "APICURIO_AUTH_ANONYMOUS_READ_ACCESS_ENABLED": "true",
            "QUARKUS_SECURITY_USERS_EMBEDDED_ENABLED": "true",
            "QUARKUS_SECURITY_USERS_EMBEDDED_PLAIN_TEXT": "true",
            f"QUARKUS_SECURITY_USERS_EMBEDDED_USERS_{admin.upper()}": self.secrets.ensure("registry", admin),
            f"QUARKUS_SECURITY_USERS_EMBEDDED_ROLES_{admin.upper()}": "sr-admin",
        }
        cmd = [java, "-Xms128m", "-Xmx512m", "-jar", str(self.app / "quarkus-run.jar")]
        return _spawn(cmd, log=self.log, pidfile=self.pidfile, env=env, cwd=self.dir)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/config", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def enforce_compatibility(self) -> None:
        """Apicurio enforces compatibility only under a rule: set the global one (as the administrator) and read
        it back."""
        login = base64.b64encode(":".join(registry_admin(self.settings)).encode()).decode()
        request = urllib.request.Request(
            f"{self.url}/config",
            method="PUT",
            data=json.dumps({"compatibility": "BACKWARD"}).encode(),
            headers={"Content-Type": "application/vnd.schemaregistry.v1+json", "Authorization": f"Basic {login}"},
        )
        with urllib.request.urlopen(request, timeout=10):
            pass
        with urllib.request.urlopen(f"{self.url}/config", timeout=10) as response:
            level = json.load(response).get("compatibilityLevel")
        if level != "BACKWARD":
            raise StackError(f"the registry reports compatibility {level!r} after setting BACKWARD")

    def stop(self) -> None:
        pid = _read_pid(self.pidfile)
        if pid is not None:
            _terminate(pid, self.name)
        self.pidfile.unlink(missing_ok=True)


class Postgres:
    name = "postgres"

    def __init__(self, settings: Settings, layout: Layout) -> None:
        parts = urlsplit(settings.database_url)
        self.port = settings.database_port
        self.user = parts.username or "satubus"
        self.database = parts.path.lstrip("/") or "satubus"
        self.secrets = LocalSecrets(layout.root / "secrets")
        self.dir = layout.service(self.name)
        self.data = self.dir / "data"
        self.log = layout.logfile(self.name)

    def _as_server_user(self, cmd: list[str]) -> list[str]:
        """PostgreSQL refuses to run as root. As root, run it as 'nobody' inside a user namespace, where the
        state folder (owned by root outside) appears as its own - no chown, no extra system user."""
        if os.geteuid() != 0:
            return cmd
        if shutil.which("unshare") is None:
            raise StackError(
                "PostgreSQL refuses to run as root, and `unshare` is missing: `apt-get install util-linux`."
            )
        return ["unshare", "--user", "--map-user=65534", "--map-group=65534", *cmd]

    def obtain(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise StackError(
                f"PostgreSQL server binaries not found in {PG_BIN}: `apt-get install postgresql-15` "
                "(or set SATUBUS_PG_BIN to the folder holding initdb and pg_ctl)."
            )
        if (self.data / "PG_VERSION").exists():
            if re.search(r"^\s*host.*\btrust\b", (self.data / "pg_hba.conf").read_text(), re.MULTILINE):
                raise StackError(
                    f"PostgreSQL's data in {self.data} lets anyone in (trust): it was made before the stack had "
                    f"logins. Stop the stack (`satubus stack down`), remove that folder (its databases are lost) "
                    f"and start again."
                )
            return
        shutil.rmtree(self.data, ignore_errors=True)
        self.data.mkdir(parents=True)
        password_file = self.dir / "owner-password"  # read by initdb, then removed
        password_file.touch(mode=0o600)
        password_file.write_text(self.secrets.ensure("postgres", self.user) + "\n")
        try:
            self._initdb(password_file)
        finally:
            password_file.unlink(missing_ok=True)

    def _initdb(self, password_file: Path) -> None:
        """Every connection, local or over TCP, authenticates with SCRAM-SHA-256; the owner's password is set."""
        _run(
            self._as_server_user(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    self.user,
                    "--auth=scram-sha-256",
                    f"--pwfile={password_file}",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            ),
            "initdb",
        )

    def pid(self) -> int | None:
        return _read_pid(self.data / "postmaster.pid")

    def start(self) -> int | None:
        if self.pid() is not None:
            return None
        _require_free(self.port, "PostgreSQL", "SATUBUS_DATABASE_URL")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        _run(
            self._as_server_user(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            f"starting PostgreSQL (see {self.log})",
        )
        return self.pid()

    def ready(self) -> bool:
        result = subprocess.run([str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)])
        return result.returncode == 0

    def create_logins(self) -> None:
        """One login per process (satubus/database.py), each a member of its group role; passwords generated into
        the local secrets. Idempotent: run at every start, it also sets each password to the kept one."""
        statements = []
        for group in sorted(set(database.GROUPS.values())):
            statements.append(
                f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{group}') THEN "
                f"CREATE ROLE {group} NOLOGIN; END IF; END $$;"
            )
        for login in database.LOGINS:
            password = self.secrets.ensure("postgres", login)
            statements.append(
                f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{login}') THEN "
                f"CREATE ROLE {login} LOGIN; END IF; END $$;"
            )
            statements.append(
                f"ALTER ROLE {login} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{password}';"
            )
            if login in database.GROUPS:
                statements.append(f"GRANT {database.GROUPS[login]} TO {login};")
        # stdin, not the command line, where other users of the machine could read the passwords
        _run(
            self._psql("postgres", None), "creating the PostgreSQL logins", input="\n".join(statements), env=self._env()
        )

    def create_databases(self) -> None:
        owners = {self.database: self.user, "apicurio": database.REGISTRY}
        for name, owner in owners.items():
            exists = _run(
                self._psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"),
                "querying PostgreSQL",
                env=self._env(),
            ).stdout.strip()
            if not exists:
                _run(
                    self._psql("postgres", f'CREATE DATABASE "{name}" OWNER {owner}'),
                    f"creating database {name}",
                    env=self._env(),
                )

    def _env(self) -> dict[str, str]:
        return {**os.environ, "PGPASSWORD": self.secrets.ensure("postgres", self.user)}

    def _psql(self, database: str, sql: str | None) -> list[str]:
        """psql as the owner, running ``sql`` (or its standard input), stopping at the first error."""
        return [
            str(PG_BIN / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-tA",
            *(["-c", sql] if sql is not None else ["-f", "-"]),
        ]

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl's shutdown ``mode``: "fast" (clients disconnected, a clean checkpoint) or "immediate" (as if the
        power went: recovery at the next start)."""
        if self.pid() is not None:
            _run(
                self._as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]),
                "stopping PostgreSQL",
            )


class Prometheus:
    """Debian's package, unpacked (``apt-get download``, ``dpkg-deb -x``) rather than installed: installing it would
    start a system service listening on every interface."""

    name = "prometheus"

    def __init__(self, settings: Settings, layout: Layout) -> None:
        self.port = settings.prometheus_port
        self.dir = layout.service(self.name)
        self.binary = self.dir / "pkg" / "usr" / "bin" / "prometheus"
        self.downloads = layout.downloads
        self.pidfile = layout.pidfile(self.name)
        self.log = layout.logfile(self.name)

    @property
    def promtool(self) -> Path:
        return self.binary.with_name("promtool")

    def obtain(self) -> None:
        if self.binary.exists():
            return
        print("  fetching Prometheus (Debian's package, first run only)...", flush=True)
        self.downloads.mkdir(parents=True, exist_ok=True)
        for old in self.downloads.glob("prometheus_*.deb"):
            old.unlink()
        if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
            raise StackError("Prometheus comes from Debian's package: this needs apt-get and dpkg-deb")
        try:
            _run(["apt-get", "download", "prometheus"], "downloading Debian's prometheus package", cwd=self.downloads)
        except StackError as exc:
            raise StackError(f"{exc}\nIf apt cannot find the package, run `apt-get update` and try again.") from exc
        package = next(self.downloads.glob("prometheus_*.deb"))
        staging = self.dir / "pkg.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        _run(["dpkg-deb", "-x", str(package), str(staging)], "unpacking Debian's prometheus package")
        shutil.rmtree(self.dir / "pkg", ignore_errors=True)
        staging.rename(self.dir / "pkg")
        package.unlink()

    def start(self) -> int | None:
        if _read_pid(self.pidfile) is not None:
            return None
        _require_free(self.port, "Prometheus", "SATUBUS_PROMETHEUS_PORT")
        cmd = [
            str(self.binary),
            f"--config.file={PROMETHEUS_CONFIG}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
        ]
        return _spawn(cmd, log=self.log, pidfile=self.pidfile, cwd=self.dir)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        pid = _read_pid(self.pidfile)
        if pid is not None:
            _terminate(pid, self.name)
        self.pidfile.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------- commands


@dataclass
class Stack:
    postgres: Postgres
    kafka: Kafka
    registry: Registry
    prometheus: Prometheus

    @classmethod
    def from_settings(cls, settings: Settings) -> Stack:
        servers = [f"//{server}" for server in settings.kafka_servers]
        for url in (*servers, settings.registry_url, settings.database_url):
            host = urlsplit(url).hostname
            if host not in ("127.0.0.1", "localhost"):
                raise StackError(f"the local stack listens on loopback only; {url!r} points at {host}")
        layout = Layout(settings.state_dir.resolve())
        return cls(
            postgres=Postgres(settings, layout),
            kafka=Kafka(settings, layout),
            registry=Registry(settings, layout),
            prometheus=Prometheus(settings, layout),
        )

    def up(self) -> float:
        started = time.monotonic()
        for service in (self.postgres, self.kafka, self.registry, self.prometheus):
            service.obtain()
        if self.postgres.start() is not None:
            print(f"  postgres  started on 127.0.0.1:{self.postgres.port}", flush=True)
        _wait("PostgreSQL", self.postgres.ready, pid=self.postgres.pid(), log=self.postgres.log)
        self.postgres.create_logins()
        self.postgres.create_databases()
        # Kafka, the registry and Prometheus start in parallel; each is then awaited on its own readiness check.
        started_pids = [(s, s.start()) for s in (self.kafka, self.registry, self.prometheus)]
        for service, pid in started_pids:
            if pid is not None:
                print(f"  {service.name:<9} starting on 127.0.0.1:{service.port} (pid {pid})...", flush=True)
        _wait("Kafka", self.kafka.ready, pid=self.kafka.pid(), log=self.kafka.log)
        created, acls = provision_local(self.kafka.settings)
        if created or not acls.empty:
            print(f"  kafka     {len(created)} user(s) issued, {len(acls.add)} ACL(s) added", flush=True)
        _wait(
            "the schema registry",
            self.registry.ready,
            pid=_read_pid(self.registry.pidfile),
            log=self.registry.log,
        )
        self.registry.enforce_compatibility()
        _wait("Prometheus", self.prometheus.ready, pid=_read_pid(self.prometheus.pidfile), log=self.prometheus.log)
        return time.monotonic() - started

    def down(self) -> None:
        """Stop every service, and the nodes of any other local Kafka cluster in the state folder (a three-broker
        one started with other ports, as the fault suite does)."""
        for service in (self.prometheus, self.registry, self.kafka):
            service.stop()
        for pidfile in sorted(self.kafka.dir.parent.glob("kafka-*/kafka-*.pid")):
            pid = _read_pid(pidfile)
            if pid is not None:
                _terminate(pid, pidfile.stem)
            pidfile.unlink(missing_ok=True)
        self.postgres.stop()

    def status(self) -> list[tuple[str, int, int | None, str]]:
        rows = []
        for name, port, pid, ready in (
            ("kafka", self.kafka.port, self.kafka.pid(), self.kafka.ready),
            ("registry", self.registry.port, _read_pid(self.registry.pidfile), self.registry.ready),
            ("postgres", self.postgres.port, self.postgres.pid(), self.postgres.ready),
            ("prometheus", self.prometheus.port, _read_pid(self.prometheus.pidfile), self.prometheus.ready),
        ):
            state = "stopped" if pid is None else ("ready" if ready() else "starting")
            rows.append((name, port, pid, state))
        return rows


def main(command: str, settings: Settings) -> int:
    stack = Stack.from_settings(settings)
    if command == "up":
        elapsed = stack.up()
        print(f"stack ready in {elapsed:.1f}s (state in {settings.state_dir.resolve()})")
        brokers = ",".join(settings.kafka_servers)
        if settings.kafka_brokers > 1:
            print(
                f"  {settings.kafka_brokers} brokers: "
                f"run the bus's processes with SATUBUS_KAFKA_BROKERS={settings.kafka_brokers}"
            )
        print(
            f"  Kafka     {brokers}\n  registry  {settings.registry_url}\n"
            f"  postgres  {settings.database_url}\n  metrics   http://127.0.0.1:{settings.prometheus_port} (Prometheus)"
        )
    elif command == "down":
        stack.down()
        print("stack stopped")
    elif command == "status":
        rows = stack.status()
        print(f"{'service':<10}{'port':>7}  {'pid':>8}  state")
        for name, port, pid, state in rows:
            print(f"{name:<10}{port:>7}  {pid or '-':>8}  {state}")
        print(f"\n{'process':<12}{'port':>5}  /health")
        for name, port, health in process_health(settings):
            print(f"{name:<12}{port:>5}  {health}")
        return 0 if all(state == "ready" for *_, state in rows) else 3
    return 0


def process_health(settings: Settings) -> list[tuple[str, int, str]]:
    """What the ``/health`` of each of the bus's processes on this machine says: ready, or its first problem, or
    that nothing answers (not running). The exit code of ``status`` is the services' alone: the processes are the
    bus's, started by ``satubus demo`` or by hand."""
    processes = (
        ("stream", settings.metrics_host, settings.stream_metrics_port),
        ("materialize", settings.metrics_host, settings.materializer_metrics_port),
        ("api", settings.api_host, settings.api_port),
        ("gateway", settings.gateway_host, settings.gateway_port),
    )
    return [(name, port, _health(host, port)) for name, host, port in processes]


def _health(host: str, port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=2) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:  # 503: not ready, and why
        with exc:
            try:
                body = json.load(exc)
            except ValueError:
                return f"HTTP {exc.code}"
    except (OSError, ValueError):
        return "not running"
    problems = body.get("problems") or []
    if not problems:
        return str(body.get("status", "ok"))
    first = problems[0]
    return f"{body.get('status', 'unhealthy')}: {first.get('detail', first) if isinstance(first, dict) else first}"
