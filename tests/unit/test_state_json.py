"""The tables' JSON values take the memory of their length (orjson's own output keeps a buffer of 4 KiB or more)."""

from __future__ import annotations

import tracemalloc

import orjson

from satubus.streams import state_json

VALUE = {"b": "x" * 600, "a": [1, 2, 3]}


def held(make: object, n: int = 200) -> float:
    """Bytes of memory each of ``n`` values made by ``make`` holds."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        values = [make() for _ in range(n)]  # type: ignore[operator]
        return (tracemalloc.get_traced_memory()[0] - before) / len(values)
    finally:
        tracemalloc.stop()


def test_a_value_holds_about_its_length_in_memory_where_orjsons_output_holds_several_times_more() -> None:
    length = len(state_json.dumps(VALUE))
    assert held(lambda: state_json.dumps(VALUE)) < 1.5 * length
    assert held(lambda: orjson.dumps(VALUE)) > 3 * length  # why state_json exists: if this fails, it may go


def test_the_json_is_orjsons_and_keys_can_be_sorted() -> None:
    assert state_json.dumps(VALUE) == orjson.dumps(VALUE)
    assert state_json.dumps(VALUE, sort_keys=True).startswith(b'{"a":[1,2,3]')
