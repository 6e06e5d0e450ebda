"""The PostgreSQL tables of the datasets that are records of their own (schemas/dataset_records.py): typed columns
derived from each dataset's Avro schema, made (and given the fields a newer schema adds) as the database's owner.

Avro → PostgreSQL: string → text, int → integer, long → bigint, float → real, double → double precision,
boolean → boolean, bytes → bytea, date → date, timestamps → timestamptz, arrays of plain values → arrays of
them, records and maps → jsonb. A field that may be null is a nullable column; the others are NOT NULL. The
aggregates a mapping declares are views of the table.
"""

from __future__ import annotations

from typing import Any

from satubus.consumers.tables import TableSpec, record_table
from satubus.schemas.dataset_records import DatasetRecord, check_aggregates

_PLAIN = {
    "string": "text",
    "int": "integer",
    "long": "bigint",
    "float": "real",
    "double": "double precision",
    "boolean": "boolean",
    "bytes": "bytea",
    "enum": "text",
}
_LOGICAL = {"date": "date", "timestamp-millis": "timestamptz", "timestamp-micros": "timestamptz"}


def column_type(avro_type: Any) -> str:
    """The PostgreSQL type of a column holding ``avro_type``'s values (null aside)."""
    if isinstance(avro_type, list):
        branches = [t for t in avro_type if t != "null"]
        return column_type(branches[0]) if len(branches) == 1 else "jsonb"
    if isinstance(avro_type, dict):
        if avro_type.get("logicalType") in _LOGICAL:
            return _LOGICAL[avro_type["logicalType"]]
        kind = avro_type["type"]
        if kind == "array":
            items = column_type(avro_type["items"])
            return "jsonb" if items == "jsonb" else f"{items}[]"
        if kind in ("record", "map"):
            return "jsonb"
        return column_type(kind)
    return _PLAIN.get(avro_type, "jsonb")


def table_ddl(record: DatasetRecord) -> list[str]:
    """Statements that make the dataset's table, or give an existing one the columns it lacks; run again, they
    change nothing."""
    spec = record_table(record)
    columns = []
    for field in record.schema["fields"]:
        nullable = isinstance(field["type"], list) and "null" in field["type"]
        columns.append(f"{field['name']} {column_type(field['type'])}{'' if nullable else ' NOT NULL'}")
    statements = [
        f"CREATE TABLE IF NOT EXISTS {spec.table} (\n    "
        + ",\n    ".join([*columns, "committed_at timestamptz NOT NULL DEFAULT clock_timestamp()"])
        + f",\n    PRIMARY KEY ({spec.key})\n)",
        f"COMMENT ON TABLE {spec.table} IS {_literal(record.schema.get('doc', ''))}",
    ]
    # A column a newer schema adds (FULL_TRANSITIVE: with a default, so nullable here).
    statements += [
        f"ALTER TABLE {spec.table} ADD COLUMN IF NOT EXISTS {column.split(' NOT NULL')[0]}" for column in columns
    ]
    if "kelurahan_code" in spec.columns:
        index = f"{spec.table.split('.', 1)[1]}_kelurahan_idx"
        statements.append(f"CREATE INDEX IF NOT EXISTS {index} ON {spec.table} (kelurahan_code)")
    return statements


def aggregate_view(record: DatasetRecord, name: str) -> str:
    """The view of the dataset's aggregate ``name``: ``datasets.<agency>__<dataset>__<name>``."""
    return f"{record_table(record).table}__{name}"


def aggregate_ddl(record: DatasetRecord) -> list[str]:
    """Statements that make the views of the aggregates the dataset's mapping declares (schemas/mapping_spec.py): per
    kelurahan and per day or month (in the mapping's time zone) of a time, the records and the sums of fields.
    A view is dropped and made again, so that a changed aggregate has its new columns."""
    check_aggregates(record)
    table = record_table(record).table
    types = {f["name"]: column_type(f["type"]) for f in record.schema["fields"]}
    zone = _literal(record.spec.timezone)
    statements = []
    for name, aggregate in record.spec.aggregates.items():
        dated = types[aggregate.time] == "date"
        local = aggregate.time if dated else f"({aggregate.time} AT TIME ZONE {zone})"
        sums = "".join(f", sum({field}) AS {field}" for field in aggregate.sum)
        view = aggregate_view(record, name)
        statements += [
            f"DROP VIEW IF EXISTS {view}",
            f"CREATE VIEW {view} AS SELECT kelurahan_code, date_trunc('{aggregate.per}', {local})::date AS period, "
            f"count(*) AS records{sums} FROM {table} "
            f"WHERE kelurahan_code IS NOT NULL AND {aggregate.time} IS NOT NULL GROUP BY 1, 2",
        ]
    return statements


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def ensure_tables(conn: Any, records: tuple[DatasetRecord, ...]) -> list[TableSpec]:
    """Make (or complete) the tables of ``records`` over ``conn``, the owner's connection, in one transaction."""
    async with conn.transaction():
        for record in records:
            for statement in [*table_ddl(record), *aggregate_ddl(record)]:
                await conn.execute(statement)
    return [record_table(record) for record in records]
