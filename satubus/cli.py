"""``satubus``: one command line for every part of the bus. Sub-commands import their module only when run.

Configuration comes from ``SATUBUS_*`` environment variables (see satubus/settings.py) or the dotenv file named
by ``SATUBUS_ENV_FILE``. Exit codes: 0 success, 1 a failure the message explains, 2 bad usage, 3 not ready.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from importlib import import_module

from pydantic import ValidationError

from satubus.errors import ConfigurationError, SatuBusError
from satubus.settings import Settings, get_settings

Handler = Callable[[argparse.Namespace, Settings], int]


def _lazy(module: str, function: str) -> Handler:
    def handler(args: argparse.Namespace, settings: Settings) -> int:
        result: int = getattr(import_module(module), function)(args, settings)
        return result

    return handler


def _stack(args: argparse.Namespace, settings: Settings) -> int:
    from satubus.deploy.local.stack import main

    return main(args.action, settings)


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from satubus.schemas.topics import create_topics

    created = create_topics(settings)
    print(f"created {len(created)} topic(s): {', '.join(created) or 'all existed'}")
    return 0


def _schemas(args: argparse.Namespace, settings: Settings) -> int:
    from fnmatch import fnmatch

    from satubus.schemas.registry import (
        check_contract,
        diff_contract,
        register_contract,
        registry_client,
        require_registry,
    )
    from satubus.schemas.topics import all_contracts

    action = {"check": check_contract, "register": register_contract, "diff": diff_contract}[args.action]
    contracts = [c for c in all_contracts() if c.schema is not None and fnmatch(c.subject, args.subject)]
    if not contracts:
        print(f"no subject matches {args.subject!r}", file=sys.stderr)
        return 2
    require_registry(settings)
    with registry_client(settings) as registry:
        reports = [action(registry, contract) for contract in contracts]
    for report in reports:
        if args.verbose or report.details or not report.ok:
            print(report)
    counts: dict[str, int] = {}
    for report in reports:
        counts[report.status] = counts.get(report.status, 0) + 1
    print(f"{len(reports)} subjects: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    return 0 if all(r.ok for r in reports) else 1


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
    stack.set_defaults(handler=_stack)

    topics = commands.add_parser(
        "topics", help="create the bus's topics", description="Create every contract topic that is missing."
    )
    topics.set_defaults(handler=_topics)

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

    migrate = commands.add_parser(
        "migrate", help="apply the SQL migrations", description="Apply pending consumers/migrations/*.sql."
    )
    migrate.set_defaults(handler=_lazy("satubus.consumers.run", "run_migrations"))

    from satubus.producers.simulate import add_arguments as simulate_arguments

    simulate = commands.add_parser(
        "simulate",
        help="publish simulated agency events",
        description="The 40 integrated agencies publish a simulated city, deterministically for a seed and --as-of; "
        "the 12 others stay silent. --truth writes the expected unified view, dead letters and counts.",
    )
    simulate_arguments(simulate)
    simulate.set_defaults(handler=_lazy("satubus.producers.simulate", "main"))

    from satubus.producers.outbox import add_arguments as outbox_arguments

    outbox = commands.add_parser(
        "outbox",
        help="relay an agency database's outbox to Kafka",
        description="install: add the outbox table to an agency database; relay: publish its rows as they come.",
    )
    outbox_arguments(outbox)
    outbox.set_defaults(handler=_lazy("satubus.producers.outbox", "main"))

    from satubus.producers.gateway import add_arguments as gateway_arguments

    gateway = commands.add_parser(
        "gateway",
        help="run the HTTP ingest gateway",
        description="Serve POST /v1/agencies/{agency}/datasets/{dataset}/events for agencies without a Kafka client "
        "(OpenAPI at /docs). Tokens: SATUBUS_GATEWAY_TOKENS.",
    )
    gateway_arguments(gateway)
    gateway.set_defaults(handler=_lazy("satubus.producers.gateway", "main"))

    from satubus.producers.upload import add_arguments as upload_arguments

    upload = commands.add_parser(
        "upload",
        help="publish a CSV or XLSX file of an agency dataset",
        description="Publish each row of a spreadsheet, or report it (row, field, reason) in an error report. "
        "Exit 1 when any row was rejected.",
    )
    upload_arguments(upload)
    upload.set_defaults(handler=_lazy("satubus.producers.upload", "main"))

    stream = commands.add_parser(
        "stream", help="run the stream processor", description="Run the faust worker that normalizes events."
    )
    stream.add_argument("--loglevel", default="info", help="log level of the worker (default info)")
    stream.set_defaults(handler=_lazy("satubus.streams.run", "main"))

    from satubus.streams.dlq import add_arguments as dlq_arguments

    dlq = commands.add_parser(
        "dlq",
        help="inspect or replay dead letters",
        description="inspect: list dead letters (NIKs masked) with counts by agency and reason; "
        "replay: send the selected letters back to their original topics after the cause is fixed.",
    )
    dlq_arguments(dlq)
    dlq.set_defaults(handler=_lazy("satubus.streams.dlq", "main"))

    materialize = commands.add_parser(
        "materialize",
        help="run the materializer",
        description="Apply pending migrations, then upsert a unified topic into PostgreSQL, exactly once.",
    )
    materialize.add_argument(
        "--entity",
        default="all",
        choices=("all", "person", "parcel", "region", "incident", "finding", "activity", "person_nik"),
        help="entity to materialize (default all; activity: the agencies' counts behind the scoreboard; "
        "person_nik: the clear NIKs, into the restricted schema)",
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
    level = logging.DEBUG if args.verbose else os.environ.get("SATUBUS_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("httpx", "httpx2"):  # one line per registry request otherwise
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        settings = get_settings()
    except ValidationError as exc:
        print(f"satubus: invalid configuration (SATUBUS_* variables):\n{exc}", file=sys.stderr)
        return 2
    try:
        return args.handler(args, settings)  # type: ignore[no-any-return]
    except ConfigurationError as exc:
        print(f"satubus {args.command}: {exc}", file=sys.stderr)
        return 2
    except SatuBusError as exc:
        print(f"satubus {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
