"""``satubus dataset init | test | apply``: a new dataset onboarded from a sample file, without Python.

- ``init`` drafts, in a directory of drafts, the agency's Avro schema, a mapping and the Satu Data metadata from a
  sample (CSV, XLSX or JSON), guesses marked REVIEW and texts to write marked ISI:;
- ``test`` runs a mapping over a sample and prints, per row, the record it becomes or why it is rejected (no
  Kafka, no database);
- ``apply`` checks the reviewed draft and puts the dataset on the bus, each step done only if not done yet: schema
  subjects, topics, ACLs, the table of a record of its own, and last its files, installed where the running
  pipeline reads them (streams/live_config.py): nothing half-made reaches a worker.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import secrets
import sys
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from satubus.errors import ConfigurationError, DataError
from satubus.producers.sheets import Limits, read_rows, write_report
from satubus.producers.upload import as_mapped, columns_of, to_record
from satubus.schemas.catalogue import CATALOGUE_FILE, Agency, load_catalogue
from satubus.schemas.dataset_records import check_aggregates
from satubus.schemas.drafting import REVIEW, TO_FILL, draft
from satubus.schemas.envelope import AGENCIES_DIR, agency_record_schema
from satubus.schemas.mapping_spec import MappingError
from satubus.schemas.metadata import load_metadata
from satubus.schemas.record_models import RecordRejected, model_for, validate_json
from satubus.schemas.regions import load_regions
from satubus.schemas.topics import TopicContract, agency_contract, record_contract
from satubus.settings import Settings
from satubus.streams.errors import Rejected
from satubus.streams.mapping import DatasetMapping, Deletion, load_mapping

SUFFIXES = ("avsc", "metadata.yaml", "mapping.yaml")  # a dataset's files, in the order they are installed


@dataclass(frozen=True)
class RowOutcome:
    number: int  # the row's number in the sample: a spreadsheet's row (the header is 1), a JSON document's index
    record: dict[str, Any] | None  # what the row becomes, as JSON
    problems: tuple[str, ...] = ()  # why it is rejected: "field: reason [code]"


def read_sample(path: Path, settings: Settings) -> list[tuple[int, dict[str, Any]]]:
    """(number, {column: cell}) of each row of a CSV, XLSX or JSON file (an array of objects, or one per line)."""
    if not path.is_file():
        raise ConfigurationError(f"{path}: no such file")
    if path.suffix.lower() not in (".json", ".jsonl", ".ndjson"):
        return list(read_rows(path, Limits.of(settings)))
    text = path.read_text(encoding="utf-8")
    try:
        parsed = json.loads(text) if text.lstrip().startswith("[") else [json.loads(s) for s in text.splitlines() if s]
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not JSON ({exc}): give an array of objects or one object per line") from None
    if not all(isinstance(row, dict) for row in parsed):
        raise DataError(f"{path}: every row must be a JSON object of field: value")
    return list(enumerate(parsed, start=1))


def dry_run(
    mapping: DatasetMapping,
    schema: dict[str, Any],
    rows: list[tuple[int, dict[str, Any]]],
    *,
    key: bytes,
    now: dt.datetime,
) -> list[RowOutcome]:
    """Each row as the bus would take it: fitted to the agency's schema (as ``satubus upload`` does), then through
    the mapping."""
    columns, model, regions = as_mapped(columns_of(schema), mapping.spec), model_for(schema), load_regions()
    name = f"{mapping.agency}.{mapping.dataset}"
    key_source = (mapping.spec.fields[mapping.spec.key].sources or [mapping.spec.key])[0]
    outcomes = []
    for number, row in rows:
        try:
            after = validate_json(model, json.dumps(to_record(row, columns, {})), name)
            envelope = {
                "event_id": uuid.uuid4(),
                "op": "c",
                "occurred_at": now,
                "key": str(after.get(key_source, "")),
                "version": 1,
                "after": after,
            }
            record = mapping.apply(envelope, regions=regions, pseudonym_key=key, now=now)
        except RecordRejected as exc:
            outcomes.append(RowOutcome(number, None, tuple(f"{e.field}: {e.reason} [schema]" for e in exc.errors)))
        except Rejected as exc:
            outcomes.append(RowOutcome(number, None, (f"{exc} [{exc.reason}]",)))
        else:
            assert not isinstance(record, Deletion)
            outcomes.append(RowOutcome(number, record.model_dump(mode="json")))
    return outcomes


def main(args: argparse.Namespace, settings: Settings) -> int:
    step = {"init": init, "test": test, "apply": apply}[args.step]
    return step(args, settings)


def init(args: argparse.Namespace, settings: Settings) -> int:
    folder = args.dir / args.agency
    schema_path, mapping_path = folder / f"{args.dataset}.avsc", folder / f"{args.dataset}.mapping.yaml"
    metadata_path = folder / f"{args.dataset}.metadata.yaml"
    existing = [p for p in (schema_path, mapping_path, metadata_path) if p.exists()]
    if existing and not args.force:
        raise ConfigurationError(f"{', '.join(map(str, existing))} exist(s): give --force to draft them again")
    rows = [row for _, row in read_sample(args.sample, settings)]
    try:
        drafted = draft(args.agency, args.dataset, rows, load_regions(), dt.date.today())
    except ValueError as exc:
        raise DataError(f"{args.sample}: {exc}") from None
    folder.mkdir(parents=True, exist_ok=True)
    schema_path.write_text(drafted.schema_text, encoding="utf-8")
    mapping_path.write_text(drafted.mapping, encoding="utf-8")
    metadata_path.write_text(drafted.metadata, encoding="utf-8")
    print(f"drafted {schema_path} ({len(drafted.columns)} fields), {mapping_path} and {metadata_path}")
    for column in drafted.columns:
        if column.notes:
            print(f"  REVIEW {column.name}: {'; '.join(column.notes)}")
    print(
        "next: write each ISI: text of the schema and the metadata, check each line marked REVIEW and delete its "
        f"mark, try it with `satubus dataset test {mapping_path} --sample {args.sample}`, then "
        f"`satubus dataset apply {args.agency} {args.dataset} --dir {args.dir}`"
    )
    return 0


def test(args: argparse.Namespace, settings: Settings) -> int:
    path: Path = args.mapping
    if not path.name.endswith(".mapping.yaml"):
        raise ConfigurationError(f"{path}: a mapping file is named <dataset>.mapping.yaml")
    root, agency, dataset = path.parent.parent, path.parent.name, path.name.removesuffix(".mapping.yaml")
    mapping = load_mapping(agency, dataset, root)
    if mapping.record is not None:
        check_aggregates(mapping.record)
    try:
        key = _pseudonym_key(settings)
    except ConfigurationError:
        key = secrets.token_bytes(32)
        print("note: no pseudonym key configured; pseudonyms below differ from the bus's", file=sys.stderr)
    schema = agency_record_schema(agency, dataset, root)
    outcomes = dry_run(mapping, schema, read_sample(args.sample, settings), key=key, now=dt.datetime.now(dt.UTC))
    for outcome in outcomes:
        if args.json:
            print(json.dumps({"row": outcome.number, "record": outcome.record, "problems": list(outcome.problems)}))
        elif outcome.record is not None:
            print(f"row {outcome.number}: ok {json.dumps(outcome.record, ensure_ascii=False)}")
        else:
            print(f"row {outcome.number}: REJECTED {'; '.join(outcome.problems)}")
    rejected = sum(o.record is None for o in outcomes)
    print(f"{len(outcomes)} row(s): {len(outcomes) - rejected} ok, {rejected} rejected", file=sys.stderr)
    if args.report is not None:
        write_report(args.report, ["row", "problem"], [(o.number, p) for o in outcomes for p in o.problems])
    return 1 if rejected else 0


def _pseudonym_key(settings: Settings) -> bytes:
    from satubus import pseudonym_key

    return pseudonym_key.load(settings).secret


def apply(args: argparse.Namespace, settings: Settings) -> int:
    """Put the reviewed draft of ``args.agency``'s ``args.dataset`` (in ``args.dir``) on the bus. Its files are
    installed last, into the directory the running pipeline reads: it takes the dataset up once everything it
    needs exists."""
    drafts = args.dir
    live = settings.mappings_dir or AGENCIES_DIR
    files = [drafts / args.agency / f"{args.dataset}.{suffix}" for suffix in SUFFIXES]
    for path in files:
        _reviewed(path)
    known: dict[str, Agency] = {a.code: a for a in load_catalogue()}
    if args.agency not in known:
        raise ConfigurationError(f"no agency {args.agency!r} in the catalogue ({CATALOGUE_FILE}): check the code")
    mapping = load_mapping(args.agency, args.dataset, drafts)
    if mapping.record is not None:
        check_aggregates(mapping.record)
    metadata = load_metadata(args.agency, args.dataset, drafts)
    print(f"[1/6] checked: schema, mapping and metadata ({metadata.classification}) in {drafts / args.agency}")
    # The agency topic's contract, with the schema of the draft (the package's schemas/agencies has none yet).
    contracts = [replace(agency_contract(args.agency, args.dataset), schema=lambda: mapping.envelope)]
    if mapping.record is not None:
        contracts.append(record_contract(mapping.record))
    _register(settings, [c.within(settings.namespace) for c in contracts])
    from satubus.kafka import ensure_topics

    created = ensure_topics(settings, [(c.within(settings.namespace).name, c.compacted) for c in contracts])
    print(f"[3/6] topics: {', '.join(created) if created else 'all existed'}")
    from satubus import acl

    print(f"[4/6] ACLs: {acl.apply(settings)}")
    table = asyncio.run(_ensure_table(settings, mapping)) if mapping.record is not None else "none (a joined entity)"
    print(f"[5/6] table: {table}")
    installed = _install(files, live / args.agency)
    print(f"[6/6] installed into {live / args.agency}: {', '.join(installed) or 'unchanged'}")
    print(
        f"done: {known[args.agency].name} may publish {args.dataset} on agency.{args.agency}.{args.dataset}.v1; "
        "the running stream workers, materializer and API take it up by themselves within seconds"
    )
    return 0


def _install(files: list[Path], folder: Path) -> list[str]:
    """Copy ``files`` into ``folder``, the schema first and the mapping last: a worker that looks in between sees
    no mapping yet. Returns the names that changed."""
    folder.mkdir(parents=True, exist_ok=True)
    changed = []
    for path in files:
        target = folder / path.name
        text = path.read_text(encoding="utf-8")
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            staged = target.with_name(f".{target.name}.new")
            staged.write_text(text, encoding="utf-8")
            staged.replace(target)  # atomic: a reader sees the old file or the new one, never half of it
            changed.append(path.name)
    return changed


def _reviewed(path: Path) -> None:
    """Refuse a draft that still has a guess to check (# REVIEW) or a text to write (ISI)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise MappingError(f"{path}: cannot read ({exc}): draft it with `satubus dataset init`") from None
    marked = [str(n) for n, line in enumerate(lines, 1) if REVIEW in line]
    if marked:
        raise MappingError(
            f"{path}: line(s) {', '.join(marked)} still carry {REVIEW}: check the guess there, then delete the mark"
        )
    blank = [str(n) for n, line in enumerate(lines, 1) if TO_FILL in line]
    if blank:
        raise MappingError(f"{path}: line(s) {', '.join(blank)} still hold an {TO_FILL!r} text: write what it asks")


def _register(settings: Settings, contracts: list[TopicContract]) -> None:
    from satubus.registry import register_contract, registry_client, require_registry

    require_registry(settings)
    with registry_client(settings, admin=True) as registry:
        reports = [register_contract(registry, contract) for contract in contracts]
    print(f"[2/6] schemas: {'; '.join(str(r) for r in reports)}")
    if not all(r.ok for r in reports):
        raise MappingError("the registry refused a schema: see above")


async def _ensure_table(settings: Settings, mapping: DatasetMapping) -> str:
    import asyncpg

    from satubus import database
    from satubus.consumers import faults
    from satubus.consumers.dataset_tables import ensure_tables

    assert mapping.record is not None
    with faults.database_errors():
        conn = await asyncpg.connect(database.dsn(settings))
        try:
            (spec,) = await ensure_tables(conn, (mapping.record,))
        finally:
            await conn.close()
    return f"{spec.table} up to date"
