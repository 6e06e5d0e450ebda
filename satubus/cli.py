"""``satubus``: one command line for every part of the bus. Sub-commands import their module only when run.

Configuration comes from ``SATUBUS_*`` environment variables (see satubus/settings.py) or the dotenv file named
by ``SATUBUS_ENV_FILE``, read before the sub-command runs; an unknown ``SATUBUS_*`` name or an invalid value ends
the command with exit code 2. The log level is ``SATUBUS_LOG_LEVEL`` (default INFO); ``-v`` forces DEBUG.
Exit codes: 0 success, 1 a failure the message explains, 2 bad usage or configuration, 3 a service the command
needs is unavailable (see satubus/errors.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import get_args

from satubus import log_masking
from satubus.errors import ConfigurationError, SatuBusError, exit_code
from satubus.settings import LogLevel, Settings, get_settings

Handler = Callable[[argparse.Namespace, Settings], int]


@dataclass(frozen=True)
class Lazy:
    """A sub-command's handler ``module.function(args, settings)``, imported only when run; the names say which
    without importing it (tests/unit/test_cli.py checks that each one exists)."""

    module: str
    function: str

    def __call__(self, args: argparse.Namespace, settings: Settings) -> int:
        result: int = getattr(import_module(self.module), self.function)(args, settings)
        return result


def _lazy(module: str, function: str) -> Handler:
    return Lazy(module, function)


def _stack(args: argparse.Namespace, settings: Settings) -> int:
    from satubus.deploy.local.stack import main

    if args.brokers is not None:
        replicas = min(3, args.brokers)
        settings = settings.model_copy(update={"kafka_brokers": args.brokers, "topic_replication_factor": replicas})
    return main(args.action, settings)


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from satubus.kafka import create_topics

    created = create_topics(settings)
    print(f"created {len(created)} topic(s): {', '.join(created) or 'all existed'}")
    return 0


def _schemas(args: argparse.Namespace, settings: Settings) -> int:
    from fnmatch import fnmatch

    from satubus.registry import (
        check_contract,
        diff_contract,
        register_contract,
        registry_client,
        require_registry,
    )
    from satubus.schemas.envelope import AGENCIES_DIR
    from satubus.schemas.topics import all_contracts

    action = {"check": check_contract, "register": register_contract, "diff": diff_contract}[args.action]
    every = all_contracts(settings.namespace, settings.mappings_dir or AGENCIES_DIR)  # with the applied datasets
    contracts = [c for c in every if c.schema is not None and fnmatch(c.subject, args.subject)]
    if not contracts:
        print(f"no subject matches {args.subject!r}", file=sys.stderr)
        return 2
    require_registry(settings)
    with registry_client(settings, admin=args.action == "register") as registry:
        reports = [action(registry, contract) for contract in contracts]
    for report in reports:
        if args.verbose or report.details or not report.ok:
            print(report)
    counts: dict[str, int] = {}
    for report in reports:
        counts[report.status] = counts.get(report.status, 0) + 1
    print(f"{len(reports)} subjects: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    return 0 if all(r.ok for r in reports) else 1


def _instant(text: str) -> dt.datetime:
    try:
        instant = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time, e.g. 2026-11-01T08:00:00+07:00") from None
    return instant.astimezone(dt.UTC) if instant.tzinfo else instant.replace(tzinfo=dt.UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="satubus", description="Satu Data Bus: Jakarta's real-time data integration bus."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stack = commands.add_parser(
        "stack",
        help="run the local Kafka, schema registry, PostgreSQL and Prometheus",
        description="Obtain and run the local stack natively (state in .stack/).",
    )
    stack.add_argument("action", choices=("up", "down", "status"), help="up: start and wait; down: stop; status")
    stack.add_argument(
        "--brokers",
        type=int,
        choices=(1, 3),
        help="Kafka brokers to run (default SATUBUS_KAFKA_BROKERS, 1); the processes need the same setting",
    )
    stack.set_defaults(handler=_stack)

    topics = commands.add_parser(
        "topics", help="create the bus's topics", description="Create every contract topic that is missing."
    )
    topics.set_defaults(handler=_topics)

    acl = commands.add_parser(
        "acl",
        help="show or apply the Kafka ACLs of the bus's namespace",
        description=(
            "The ACLs are generated from the agency catalogue (satubus/access.py), never typed by hand. "
            "plan: print what differs between them and the cluster (exit 2 when anything does); "
            "apply: make the cluster match (idempotent). Runs as the Kafka administrator."
        ),
    )
    acl.add_argument("action", choices=("plan", "apply"))
    acl.set_defaults(handler=_lazy("satubus.acl", "main"))

    agency = commands.add_parser(
        "agency",
        help="issue, rotate or revoke an agency's credentials; block or unblock it",
        description=(
            "An agency's credentials: its Kafka user (agency-<code>, which may write only its own topics) and its "
            "gateway tokens, printed once when issued and kept only as digests. block: the province's switch, "
            "which removes the agency's ACLs, makes the gateway refuse its tokens and shows it as blocked on the "
            "scoreboard; unblock undoes it."
        ),
    )
    groups = agency.add_subparsers(dest="command_group", required=True, metavar="ACTION")
    credentials = groups.add_parser(
        "credentials",
        help="issue|rotate|revoke|list an agency's credentials",
        description=(
            "issue: a new Kafka password (the user is created if needed) and a new gateway token; rotate: the same, "
            "and the older tokens expire after --old-valid-for hours (the old Kafka password stops at once); "
            "revoke: every token and the Kafka user, or only --token; list: the tokens, without secrets."
        ),
    )
    credentials.add_argument("action", choices=("issue", "rotate", "revoke", "list"))
    credentials.add_argument("code", help="the agency's code in the catalogue, e.g. dukcapil")
    credentials.add_argument("--expires-in", type=float, metavar="DAYS", help="the new token expires after this")
    credentials.add_argument(
        "--old-valid-for", type=float, default=24.0, metavar="HOURS", help="rotate: the older tokens' overlap (24)"
    )
    credentials.add_argument("--token", metavar="ID", help="revoke only this token (default: all, and the Kafka user)")
    credentials.add_argument("--by", help="who does this (default: the current user)")
    onboard = groups.add_parser(
        "onboard",
        help="issue an agency's credentials and print its onboarding sheet (Bahasa Indonesia)",
        description="Issue the agency's Kafka password and a gateway token, apply its ACLs, and print, in Bahasa "
        "Indonesia, what its IT staff need: the credentials (shown once), the addresses, its topics and the first "
        "commands.",
    )
    onboard.add_argument("code", help="the agency's code in the catalogue, e.g. dlh")
    onboard.add_argument("--by", help="who does this (default: the current user)")
    for action, text in (("block", "cut an agency off the bus"), ("unblock", "let a blocked agency back in")):
        switch = groups.add_parser(action, help=text, description=text)
        switch.add_argument("code", help="the agency's code in the catalogue")
        switch.add_argument("--by", help="who does this (default: the current user)")
        if action == "block":
            switch.add_argument("--reason", required=True, help="why (shown on the scoreboard)")
        switch.set_defaults(action=action)
    agency.set_defaults(handler=_lazy("satubus.credentials", "main"))

    schemas = commands.add_parser(
        "schemas",
        help="check, register or diff the contract schemas",
        description=(
            "check: validate every schema (docs on every field) and its compatibility with what the registry holds; "
            "register: set each subject's compatibility level and register its schema; "
            "diff: show field changes against the registry's latest version. Exit 1 if anything is incompatible."
        ),
    )
    schemas.add_argument("action", choices=("check", "register", "diff"))
    schemas.add_argument("--subject", default="*", help="only subjects matching this glob (default all)")
    schemas.set_defaults(handler=_schemas)

    catalogue = commands.add_parser(
        "catalogue",
        help="export the catalogue's publik datasets for an open-data portal (CKAN or DCAT-AP)",
        description=(
            "export: the Satu Data Indonesia metadata (schemas/agencies/<agency>/<dataset>.metadata.yaml) of every "
            "dataset classified publik, as the bodies of CKAN's organization_create and package_create (ckan) or a "
            "DCAT-AP catalogue in JSON-LD (dcat); sorted, so that two exports can be diffed. Terbatas and rahasia "
            "datasets are never exported: stderr says how many were left out and why."
        ),
    )
    catalogue.add_argument("action", choices=("export",))
    catalogue.add_argument("--format", required=True, choices=("ckan", "dcat"), help="ckan or dcat (DCAT-AP JSON-LD)")
    catalogue.add_argument("--output", type=Path, metavar="FILE", help="write into FILE (default: stdout)")
    catalogue.add_argument(
        "--catalogue-url",
        metavar="URL",
        help="the portal the datasets are published in: their pages and IRIs are URL/dataset/<name> "
        "(default https://data.jakarta.go.id)",
    )
    catalogue.add_argument(
        "--api-url",
        metavar="URL",
        help="the live API as its users reach it (default http://SATUBUS_API_HOST:SATUBUS_API_PORT)",
    )
    catalogue.set_defaults(handler=_lazy("satubus.catalogue_export", "main"))

    dataset = commands.add_parser(
        "dataset",
        help="onboard a new dataset from a sample file, without Python",
        description=(
            "init drafts the agency's Avro schema, a mapping and the metadata from a sample (CSV, XLSX or JSON); "
            "test shows what each sample row becomes, or why it is rejected (no Kafka needed); apply checks the draft "
            "and puts the dataset on the bus (schemas, topics, ACLs, its table, its files), where the running "
            "pipeline takes it up. See docs/onboarding.md."
        ),
    )
    steps = dataset.add_subparsers(dest="step", required=True, metavar="STEP")
    init = steps.add_parser(
        "init",
        help="draft the schema and the mapping from a sample",
        description="Draft DIR/<agency>/<dataset>.avsc, .mapping.yaml and .metadata.yaml from a sample file: the "
        "fields taken for a kelurahan, a NIK, a date or a time are marked # REVIEW, the texts to write ISI:.",
    )
    init.add_argument("agency", help="the agency's code in the catalogue, e.g. dlh")
    init.add_argument("dataset", help="the dataset's name: lower case, words joined by _, e.g. ritase")
    init.add_argument("--sample", type=Path, required=True, metavar="FILE", help="a .csv, .xlsx or .json sample")
    init.add_argument("--dir", type=Path, default=Path("drafts"), help="the directory of drafts (default ./drafts)")
    init.add_argument("--force", action="store_true", help="draft again over existing files")
    trial = steps.add_parser(
        "test",
        help="dry-run a mapping over a sample",
        description="Print, per sample row, the record the mapping makes of it or each reason it is rejected. "
        "Exit code 1 when a row is rejected.",
    )
    trial.add_argument("mapping", type=Path, help="the mapping file, <agency>/<dataset>.mapping.yaml")
    trial.add_argument("--sample", type=Path, required=True, metavar="FILE", help="a .csv, .xlsx or .json sample")
    trial.add_argument("--json", action="store_true", help="one JSON object per row")
    trial.add_argument("--report", type=Path, metavar="FILE", help="also write the rejections into a CSV file")
    put = steps.add_parser(
        "apply",
        help="put a dataset on the bus (idempotent)",
        description="Check the reviewed draft (no # REVIEW or ISI: left; schema, mapping and metadata valid), "
        "register its schemas, create its topics, apply the ACLs, make its table, and install its files where the "
        "running pipeline takes them up (SATUBUS_MAPPINGS_DIR, default the package's schemas/agencies); a step "
        "already done changes nothing.",
    )
    put.add_argument("agency", help="the agency's code in the catalogue")
    put.add_argument("dataset", help="the dataset's name")
    put.add_argument("--dir", type=Path, default=Path("drafts"), help="the directory of drafts (default ./drafts)")
    dataset.set_defaults(handler=_lazy("satubus.dataset", "main"))

    migrate = commands.add_parser(
        "migrate", help="apply the SQL migrations", description="Apply pending consumers/migrations/*.sql."
    )
    migrate.set_defaults(handler=_lazy("satubus.consumers.run", "run_migrations"))

    simulate = commands.add_parser(
        "simulate",
        help="publish simulated agency events",
        description="The 40 integrated agencies publish a simulated city, deterministically for a seed and --as-of; "
        "the 12 others stay silent. --truth writes the expected unified view, dead letters and counts.",
    )
    simulate.add_argument("--residents", type=int, default=10_000, help="size of the city (default 10000 residents)")
    simulate.add_argument("--seed", type=int, default=1, help="random seed; the same seed gives the same data")
    simulate.add_argument("--dirty", type=float, default=0.02, help="share of events followed by a dirty one (0.02)")
    simulate.add_argument("--rate", type=float, default=0, help="events per second; 0 = as fast as possible")
    simulate.add_argument(
        "--duration", type=float, default=0, help="stop after this many seconds; 0 = the whole script"
    )
    simulate.add_argument(
        "--as-of",
        type=_instant,
        help="the simulated city's clock, ISO 8601, UTC unless it names an offset (default: the start of the current "
        "hour); the same seed and --as-of give the same records",
    )
    simulate.add_argument("--agencies", help="comma-separated agency codes to simulate (default: all integrated)")
    simulate.add_argument("--truth", type=Path, help="write the ground truth into this folder")
    simulate.add_argument("--metrics", action="store_true", help="serve Prometheus metrics while publishing")
    simulate.set_defaults(handler=_lazy("satubus.producers.simulate", "main"))

    outbox = commands.add_parser(
        "outbox",
        help="relay an agency database's outbox to Kafka",
        description="install: add the outbox table to an agency database; relay: publish its rows as they come.",
    )
    outbox.add_argument("action", choices=("install", "relay"), help="install: create the outbox table; relay: run")
    outbox.add_argument("--dsn", required=True, help="the agency database, e.g. postgresql://user@host/db")
    outbox.add_argument("--agency", help="catalogue code of the agency (relay)")
    outbox.add_argument("--dataset", help="dataset whose rows to relay; rows' aggregatetype (relay)")
    outbox.add_argument("--system", default="outbox", help="name of the agency system (default outbox)")
    outbox.set_defaults(handler=_lazy("satubus.producers.outbox", "main"))

    gateway = commands.add_parser(
        "gateway",
        help="run the HTTP ingest gateway",
        description="Serve POST /v1/agencies/{agency}/datasets/{dataset}/events for agencies without a Kafka client "
        "(OpenAPI at /docs). Tokens: `satubus agency credentials issue <code>`.",
    )
    gateway.add_argument("--host", help="listen address (default SATUBUS_GATEWAY_HOST, 127.0.0.1)")
    gateway.add_argument("--port", type=int, help="listen port (default SATUBUS_GATEWAY_PORT, 19110)")
    gateway.set_defaults(handler=_lazy("satubus.producers.gateway", "main"))

    upload = commands.add_parser(
        "upload",
        help="publish a CSV or XLSX file of an agency dataset",
        description="Publish each row of a spreadsheet, or report it (row, field, reason) in an error report. "
        "Exit 1 when any row was rejected.",
    )
    upload.add_argument("file", type=Path, help="a .csv (UTF-8) or .xlsx file with a header row")
    upload.add_argument("--agency", required=True, help="catalogue code of the agency")
    upload.add_argument("--dataset", required=True, help="the dataset the rows belong to")
    upload.add_argument("--key", required=True, help="the column (or field) holding each row's natural key")
    upload.add_argument(
        "--map", action="append", default=[], metavar="COLUMN=FIELD", help="map a column to a schema field"
    )
    upload.add_argument("--report", type=Path, help="where to write rejected rows (default FILE.errors.csv)")
    upload.add_argument(
        "--timeout", type=float, default=60, help="seconds to wait for the broker's acknowledgements (default 60)"
    )
    upload.set_defaults(handler=_lazy("satubus.producers.upload", "main"))

    stream = commands.add_parser(
        "stream", help="run the stream processor", description="Run the faust worker that normalizes events."
    )
    stream.add_argument(
        "--loglevel",
        type=str.upper,
        choices=get_args(LogLevel),
        help="log level of this process (default SATUBUS_LOG_LEVEL, INFO)",
    )
    stream.set_defaults(handler=_lazy("satubus.streams.run", "main"))

    dlq = commands.add_parser(
        "dlq",
        help="inspect or replay dead letters",
        description="inspect: list dead letters (NIKs masked) with counts by agency and reason; "
        "replay: send the selected letters back to their original topics after the cause is fixed.",
    )
    dlq.add_argument("action", choices=("inspect", "replay"))
    dlq.add_argument("--reason", help="only letters with this reason (e.g. unknown_region)")
    dlq.add_argument("--agency", help="only letters of this agency")
    dlq.add_argument("--stage", choices=("decode", "normalize", "materialize"), help="only letters of this stage")
    dlq.add_argument("--topic", help="only letters from this original topic")
    dlq.add_argument("--limit", type=int, default=50, help="inspect: letters to print (default 50; 0 = all)")
    dlq.add_argument("--json", action="store_true", help="inspect: one JSON object per line")
    dlq.add_argument("--dry-run", action="store_true", help="replay: say what would be replayed, send nothing")
    dlq.set_defaults(handler=_lazy("satubus.streams.dlq", "main"))

    materialize = commands.add_parser(
        "materialize",
        help="run the materializer",
        description=(
            "Upsert unified topics into PostgreSQL, exactly once. The database must be migrated first "
            "(`satubus migrate`, as its owner); each entity's consumer logs in as the materializer, clear NIKs "
            "(person_nik) as their own principal and login."
        ),
    )
    materialize.add_argument(
        "--entity",
        default="all",
        help="what to materialize: all (the default), person, parcel, region, incident, finding, activity (the "
        "agencies' counts behind the scoreboard), person_nik (the clear NIKs, into the restricted schema), datasets "
        "(every dataset that is a record of its own, those applied while it runs included) or one of them, as "
        "<agency>.<dataset>",
    )
    materialize.set_defaults(handler=_lazy("satubus.consumers.run", "materialize"))

    api = commands.add_parser(
        "api",
        help="run the live API",
        description="Serve the integration scoreboard, lookups of the unified view, findings and live changes "
        "(Server-Sent Events) over HTTP; OpenAPI at /docs, metrics at /metrics.",
    )
    # Not imported from satubus.consumers.api: every satubus process would then register (and export) the API's metrics.
    api.add_argument("--host", help="address to listen on (default: SATUBUS_API_HOST, 127.0.0.1)")
    api.add_argument("--port", type=int, help="port to listen on (default: SATUBUS_API_PORT, 19120)")
    api.set_defaults(handler=_lazy("satubus.consumers.api", "main"))

    api_key = commands.add_parser(
        "api-key",
        help="issue, revoke or list the live API's keys",
        description=(
            "A key belongs to one calling application (the principal the audit log names) and carries scopes: "
            "read:person (persons, parcels, findings), read:aid, read:health (those fields of a person), "
            "read:restricted (the clear NIK lookup). Printed once when issued; only its digest is kept."
        ),
    )
    api_key.add_argument("action", choices=("issue", "revoke", "list"))
    api_key.add_argument("caller", nargs="?", help="the calling application, e.g. dinsos-bansos-app")
    api_key.add_argument("--scope", action="append", default=[], help="issue: a scope of the key (repeat it)")
    api_key.add_argument("--expires-in", type=float, metavar="DAYS", help="issue: the key expires after this")
    api_key.add_argument(
        "--agency", metavar="CODE", help="issue: the key is this agency's, and reads its own rejections"
    )
    api_key.add_argument("--key", metavar="ID", help="revoke only this key (default: every key of the caller)")
    api_key.add_argument("--by", help="who does this (default: the current user)")
    api_key.set_defaults(handler=_lazy("satubus.consumers.api_keys", "main"))

    audit = commands.add_parser(
        "audit",
        help="verify the audit log, or report who read a person's data",
        description=(
            "verify: recompute the hash chain of the audit log and name the first broken row (exit 1 then); "
            "report: every read of one person's data (who, what, why, when, from where), for a data subject's "
            "access request (UU PDP Pasal 32). Runs as the auditor's login."
        ),
    )
    audit.add_argument("action", choices=("verify", "report"))
    subject = audit.add_mutually_exclusive_group()
    subject.add_argument("--person", metavar="PERSON_ID", help="report: the person's person_id")
    subject.add_argument("--nik", help="report: the person's NIK (turned into the person_id; never printed)")
    audit.add_argument("--json", action="store_true", help="report: one JSON object per line")
    audit.set_defaults(handler=_lazy("satubus.audit", "main"))

    erase = commands.add_parser(
        "erase",
        help="erase a person from the bus (UU PDP)",
        description=(
            "Remove a person from the unified view, the restricted NIKs, the findings and the stream processor's "
            "state, and tombstone them on the unified and restricted topics (Kafka drops the values within "
            "SATUBUS_ERASURE_BOUND_HOURS). Audited. Runs as the restricted principal; waits for the pipeline to "
            "apply it (exit 1 if it did not within --wait)."
        ),
    )
    erase.add_argument("--nik", required=True, help="the person's NIK (16 digits; never printed or logged)")
    erase.add_argument("--reason", required=True, help="the request's reference, e.g. a ticket number")
    erase.add_argument("--by", help="who does this (default: the current user)")
    erase.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the pipeline (default 120)")
    erase.set_defaults(handler=_lazy("satubus.erasure", "main"))

    rebuild = commands.add_parser(
        "rebuild",
        help="rebuild the view from the agency topics (e.g. under a new pseudonym key)",
        description=(
            "Delete the stream processor's state and the derived topics (canonical.*, unified.*, restricted.*, "
            "bus.activity), create them empty and empty the view's tables, so that the stream workers started next "
            "rebuild everything from the retained agency topics. Keeps the agency topics, the dead letters and the "
            "audit log. Every stream worker, materializer and API must be stopped first."
        ),
    )
    rebuild.add_argument("--yes", action="store_true", help="do it (without it, say what it would do)")
    rebuild.add_argument(
        "--wait", type=float, default=90.0, help="seconds to wait for the stopped consumers to leave (default 90)"
    )
    rebuild.set_defaults(handler=_lazy("satubus.rebuild", "main"))

    k8s = commands.add_parser(
        "k8s",
        help="generate the Kubernetes manifests that follow from the code",
        description=(
            "Write the generated part of deploy/k8s/ (KafkaTopics from the topic contracts, KafkaUsers and their "
            "ACLs from the agency catalogue, a materializer per entity, the alert rules as a PrometheusRule, the "
            "dashboards as ConfigMaps, the KEDA scaling of the prod overlay), for the production bus whatever the "
            "settings say. --check writes nothing and exits 1 listing the files that differ."
        ),
    )
    k8s.add_argument("action", choices=("generate",))
    k8s.add_argument("--check", action="store_true", help="only compare the files with what the code generates")
    k8s.set_defaults(handler=_lazy("satubus.deploy.kubernetes", "main"))

    demo = commands.add_parser(
        "demo",
        help="run the whole pipeline with simulated agencies",
        description="Start the stack and every process, publish simulated data, and show where to look.",
    )
    demo.add_argument("--residents", type=int, default=20_000, help="residents to simulate (default 20000)")
    demo.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    demo.add_argument("--rate", type=float, default=0, help="events per second; 0 = as fast as possible")
    demo.add_argument("--exit", action="store_true", help="stop the pipeline once the view is complete")
    demo.set_defaults(handler=_lazy("satubus.deploy.local.demo", "main"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except ConfigurationError as exc:
        print(f"satubus: {exc}", file=sys.stderr)
        return exit_code(exc)
    level = logging.DEBUG if args.verbose else settings.log_level
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log_masking.install()  # no clear NIK in any log line
    for chatty in ("httpx", "httpx2"):  # one line per registry request otherwise
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        return args.handler(args, settings)  # type: ignore[no-any-return]
    except SatuBusError as exc:
        print(f"satubus {args.command}: {exc}", file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
