"""No coroutine blocks its event loop: a blocking call lexically inside an ``async def`` (not inside a nested plain
``def`` or ``lambda``, which may well run in a thread) stops every other task on the loop. Blocking calls belong
in a thread (``asyncio.to_thread``, ``loop.run_in_executor``).

Checked: ``time.sleep``, ``subprocess.run/call/check_call/check_output``, ``urllib.request.urlopen``, anything of
``requests``, and methods named like confluent-kafka's blocking calls (``flush``, ``poll``, ``consume``,
``list_topics``, ``get_watermark_offsets``), in every module under ``satubus/`` (the symlinked component folders
included).
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "satubus"
BLOCKING_FUNCTIONS = {
    "time.sleep",
    "subprocess.run",
    "subprocess.call",
    "subprocess.check_call",
    "subprocess.check_output",
    "urllib.request.urlopen",
}
BLOCKING_MODULES = ("requests",)
BLOCKING_METHODS = {"flush", "poll", "consume", "list_topics", "get_watermark_offsets"}


def _imported_names(tree: ast.AST) -> dict[str, str]:
    """Local name -> the dotted name it stands for, from every import in the module."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    top = alias.name.split(".", 1)[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.expr, names: dict[str, str]) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(names.get(node.id, node.id))
    return ".".join(reversed(parts))


def _blocking(call: ast.Call, names: dict[str, str]) -> str | None:
    """What makes ``call`` blocking, or None."""
    dotted = _dotted(call.func, names)
    if dotted in BLOCKING_FUNCTIONS:
        return dotted
    if dotted is not None and dotted.split(".", 1)[0] in BLOCKING_MODULES:
        return dotted
    if isinstance(call.func, ast.Attribute) and call.func.attr in BLOCKING_METHODS:
        return f".{call.func.attr}()"
    return None


def _on_the_loop(function: ast.AsyncFunctionDef) -> list[ast.Call]:
    """The calls lexically in ``function`` that run on its event loop: not in a nested ``def``, ``lambda`` or
    ``async def`` (checked on its own)."""
    calls: list[ast.Call] = []
    pending: list[ast.AST] = [*function.args.defaults, *function.body]
    pending += [default for default in function.args.kw_defaults if default is not None]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(node, ast.Call):
            calls.append(node)
        pending.extend(ast.iter_child_nodes(node))
    return calls


def blocking_calls(source: str, filename: str = "<source>") -> list[str]:
    """``file:line: call in async def name`` for each blocking call on an event loop in ``source``."""
    tree = ast.parse(source, filename)
    names = _imported_names(tree)
    found = []
    for function in ast.walk(tree):
        if isinstance(function, ast.AsyncFunctionDef):
            for call in _on_the_loop(function):
                if (what := _blocking(call, names)) is not None:
                    found.append((call.lineno, f"{filename}:{call.lineno}: {what} in async def {function.name}"))
    return [message for _, message in sorted(found)]


def modules() -> list[Path]:
    found = []
    for directory, subdirectories, files in os.walk(PACKAGE, followlinks=True):
        subdirectories.sort()
        found += [Path(directory) / name for name in sorted(files) if name.endswith(".py")]
    return found


def test_no_coroutine_makes_a_blocking_call() -> None:
    paths = modules()
    assert any(path.parent.name == "producers" for path in paths), "the symlinked folders were not followed"
    found = []
    for path in paths:
        found += blocking_calls(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE.parent)))
    assert found == [], "blocking calls on an event loop; run them in a thread:\n" + "\n".join(found)


def test_the_check_finds_blocking_calls_and_only_on_the_loop() -> None:
    source = """
import time, subprocess as sp
import urllib.request
from time import sleep as nap
import requests
import asyncio

async def bad(producer, consumer):
    time.sleep(1)
    nap(1)
    sp.run(["true"])
    urllib.request.urlopen("http://x")
    requests.get("http://x")
    producer.flush(10)
    consumer.poll(1.0)
    await other(consumer.consume(5))
    x = [consumer.list_topics() for _ in range(2)]
    consumer.get_watermark_offsets(None)

async def good(producer, consumer):
    await asyncio.sleep(1)
    await asyncio.to_thread(producer.flush, 10)
    await loop.run_in_executor(None, consumer.poll, 1.0)
    callback = lambda: producer.flush()
    def in_a_thread():
        time.sleep(1)
        producer.poll(0)
    async def inner():
        producer.flush()
    producer.produce("t", b"v")
"""
    found = blocking_calls(source, "sample.py")
    assert [line.split(": ", 1)[1] for line in found] == [
        "time.sleep in async def bad",
        "time.sleep in async def bad",
        "subprocess.run in async def bad",
        "urllib.request.urlopen in async def bad",
        "requests.get in async def bad",
        ".flush() in async def bad",
        ".poll() in async def bad",
        ".consume() in async def bad",
        ".list_topics() in async def bad",
        ".get_watermark_offsets() in async def bad",
        ".flush() in async def inner",
    ]
    assert found[0].startswith("sample.py:9: ")
