"""Bounds on what one message may make the Avro decoder do, so that no message can stall or crash its reader.

fastavro reads an array block by looping over the item count the block claims. When the items take no bytes (null,
an empty record, a record of nulls), nothing but that count ends the loop: a 9-byte message claiming 2^40 nulls
stalls its reader and fills its memory. And it reads nested values by recursing in C: a recursive schema (a record
that holds itself, through a union) lets a message of a few thousand bytes overflow the C stack, killing the
process. Every other claim is held back by the bytes that are there: an item that takes bytes cannot outnumber
them, a map entry has a key, and fastavro checks a claimed string or bytes length against the bytes left before it
reads any (a claim of 2^62 bytes fails at once, allocating nothing). So decoding takes time and memory in
proportion to the message, and a bounded stack, when:

- the message is at most ``MAX_MESSAGE_BYTES`` long;
- its arrays of items that take no bytes hold at most ``MAX_ITEMS_WITHOUT_BYTES`` items in all;
- its values nest at most ``MAX_DEPTH`` deep.

The last two are checked by walking the message here, in Python, which costs about as much as decoding it: only for
the writer schemas that could break them (``scan_needed``, decided once per schema). No contract of the bus is one.

Pure: works on schemas as ``fastavro.parse_schema`` returns them (named types inline where first defined, by their
full name after that, and all of them under ``__named_schemas``).
"""

from __future__ import annotations

from typing import Any

MAX_MESSAGE_BYTES = 1_048_588  # Kafka's default message.max.bytes: no topic of the bus takes a larger value
MAX_ITEMS_WITHOUT_BYTES = 10_000
MAX_DEPTH = 100  # values nested in values; fastavro's own recursion overflows the C stack at some thousands

_RECORDS = ("record", "error")
_FIXED_SIZE = {"null": 0, "boolean": 1, "float": 4, "double": 8}


class OverLimit(Exception):
    """The message claims more than ``MAX_ITEMS_WITHOUT_BYTES`` items that take no bytes, or nests deeper than
    ``MAX_DEPTH``."""


def scan_needed(parsed: Any) -> bool:
    """Whether messages of this writer schema must be scanned before fastavro reads them: it has an array whose items
    take no bytes, or it is recursive."""
    named = _named(parsed)
    on_path: set[str] = set()
    done: set[str] = set()

    def needed(schema: Any) -> bool:
        if isinstance(schema, str):
            if schema in on_path:
                return True  # recursive
            return schema in named and schema not in done and needed(named[schema])
        if isinstance(schema, list):
            return any(needed(branch) for branch in schema)
        kind = schema["type"]
        if kind in _RECORDS:
            name = schema["name"]
            if name in on_path:
                return True
            if name in done:
                return False
            on_path.add(name)
            found = any(needed(f["type"]) for f in schema["fields"])
            on_path.discard(name)
            done.add(name)
            return found
        if kind == "array":
            return takes_no_bytes(schema["items"], named) or needed(schema["items"])
        if kind == "map":
            return needed(schema["values"])
        return isinstance(kind, dict | list) and needed(kind)

    return needed(parsed)


def takes_no_bytes(schema: Any, named: dict[str, Any], seen: frozenset[str] = frozenset()) -> bool:
    """Whether every value of ``schema`` is written in no bytes: null, a fixed of size 0, a record of such fields."""
    if isinstance(schema, str):
        if schema == "null":
            return True
        return schema in named and schema not in seen and takes_no_bytes(named[schema], named, seen)
    if isinstance(schema, list):
        return False  # a union writes its branch's index
    kind = schema["type"]
    if kind in _RECORDS:
        inner = seen | {schema["name"]}
        return all(takes_no_bytes(f["type"], named, inner) for f in schema["fields"])
    if kind == "fixed":
        return bool(schema["size"] == 0)
    if kind in ("array", "map", "enum"):
        return False
    return takes_no_bytes(kind, named, seen)  # a logical type, or a primitive written as {"type": ...}


def scan(parsed: Any, data: bytes, start: int) -> None:
    """Walk the Avro body ``data[start:]`` of writer schema ``parsed`` without decoding it: ``OverLimit`` when it
    breaks a limit, ``ValueError`` when it does not follow the schema. Takes time in proportion to the bytes."""
    _Scan(data, start, _named(parsed)).value(parsed, 0)


class _Scan:
    def __init__(self, data: bytes, start: int, named: dict[str, Any]) -> None:
        self.data = data
        self.pos = start
        self.named = named
        self.items_without_bytes = 0
        self._takes_no_bytes: dict[int, bool] = {}  # by the id of an array's item schema

    def value(self, schema: Any, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise OverLimit(f"values nest more than {MAX_DEPTH} deep")
        if isinstance(schema, str):
            if schema in _FIXED_SIZE:
                self.skip(_FIXED_SIZE[schema])
            elif schema in ("int", "long"):
                self.long()
            elif schema in ("bytes", "string"):
                self.skip(self.long())
            else:
                self.value(self.named[schema], depth)
        elif isinstance(schema, list):
            index = self.long()
            if not 0 <= index < len(schema):
                raise ValueError(f"union branch {index} of {len(schema)}")
            self.value(schema[index], depth)  # the value itself, not one inside it
        else:
            kind = schema["type"]
            if kind in _RECORDS:
                for f in schema["fields"]:
                    self.value(f["type"], depth + 1)
            elif kind == "enum":
                self.long()
            elif kind == "fixed":
                self.skip(schema["size"])
            elif kind == "array":
                self.blocks(schema["items"], depth + 1, keyed=False)
            elif kind == "map":
                self.blocks(schema["values"], depth + 1, keyed=True)
            else:
                self.value(kind, depth)

    def blocks(self, items: Any, depth: int, *, keyed: bool) -> None:
        empty = not keyed and self._empty(items)
        while count := self.long():
            if count < 0:  # a block that also gives its size in bytes
                count = -count
                self.long()
            if empty:
                self.items_without_bytes += count
                if self.items_without_bytes > MAX_ITEMS_WITHOUT_BYTES:
                    raise OverLimit(
                        f"arrays claim over {MAX_ITEMS_WITHOUT_BYTES} items that take no bytes "
                        f"({self.items_without_bytes} so far)"
                    )
                continue
            for _ in range(count):  # each item takes a byte at least: the bytes left end a false count
                if keyed:
                    self.skip(self.long())
                self.value(items, depth)

    def _empty(self, items: Any) -> bool:
        known = self._takes_no_bytes.get(id(items))
        if known is None:
            known = self._takes_no_bytes[id(items)] = takes_no_bytes(items, self.named)
        return known

    def long(self) -> int:
        """A zig-zag varint, as Avro writes int and long."""
        result = shift = 0
        while self.pos < len(self.data):
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return (result >> 1) ^ -(result & 1)
            shift += 7
            if shift > 63:
                raise ValueError("a varint longer than 10 bytes")
        raise ValueError("the body ends inside a number")

    def skip(self, size: int) -> None:
        if size < 0 or size > len(self.data) - self.pos:
            raise ValueError(f"{size} bytes claimed, {len(self.data) - self.pos} left")
        self.pos += size


def _named(parsed: Any) -> dict[str, Any]:
    return parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
