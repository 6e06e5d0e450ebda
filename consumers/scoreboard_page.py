"""The integration scoreboard as a live web page, for anyone to open (no key: the scoreboard holds no personal data).

- ``GET /``: one self-contained page (consumers/static/scoreboard.html: inline CSS and JavaScript, nothing fetched
  from elsewhere, no build step) in Bahasa Indonesia with an English toggle: how many of the 52 agencies are
  integrated, and each agency's status, last valid event and datasets. It follows the stream below and, when that
  fails, polls ``GET /v1/scoreboard``. Its Content-Security-Policy allows its own inline script and style (by hash)
  and requests to the API itself, nothing else.
- ``GET /v1/scoreboard/stream``: Server-Sent Events. The scoreboard, exactly as ``GET /v1/scoreboard`` answers it,
  as a ``scoreboard`` event: at once, then whenever it changes (``as_of``, the time of reading, aside); a
  ``: keep-alive`` comment after 15 s without one. While the scoreboard cannot be read (PostgreSQL unavailable), one
  ``unavailable`` event, ``data`` ``{"detail": ...}``, and the stream stays open: the scoreboard comes again once
  it can be read. Not named ``error`` like the end of ``/v1/changes``: a browser's EventSource reports its own
  connection errors under that name, and this one ends nothing.

One task per API process reads the scoreboard every ``POLL_SECONDS`` while at least one client listens, and shares
each change with every listener: a hundred open pages cost PostgreSQL what one does (the API's pool holds four
connections).

No ``from __future__ import annotations`` here: FastAPI reads the parameter annotations at run time.
"""

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel

from satubus.errors import InfrastructureError

log = logging.getLogger(__name__)

PAGE_FILE = Path(__file__).parent / "static" / "scoreboard.html"
POLL_SECONDS = 1.5  # how often the scoreboard is read while someone listens
READ_TIMEOUT = 10.0  # seconds a read may take before listeners are told the scoreboard is unavailable
KEEP_ALIVE_SECONDS = 15.0  # a comment after this long without an event, as /v1/changes sends
STREAM_PATH = "/v1/scoreboard/stream"

Board = dict[str, Any]  # the scoreboard as GET /v1/scoreboard's JSON
UNAVAILABLE = "unavailable"  # the fingerprint of an outage (a board's is JSON: they never meet)


def fingerprint(board: Board) -> str:
    """What tells two scoreboards apart for a reader: everything but ``as_of``, the time it was read."""
    return json.dumps({k: v for k, v in board.items() if k != "as_of"}, sort_keys=True, default=str)


def scoreboard_event(board: Board) -> str:
    # json.dumps escapes newlines inside strings: the data is one line, as SSE needs it.
    return f"event: scoreboard\ndata: {json.dumps(board, default=str)}\n\n"


def unavailable_event(detail: str) -> str:
    return f"event: unavailable\ndata: {json.dumps({'detail': detail})}\n\n"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The latest event of the stream; ``seq`` grows by one with each change."""

    seq: int
    event: str


class Feed:
    """The scoreboard as the stream sends it: read by one task while anyone listens, each change shared by all.

    ``offer`` and ``offer_failure`` take what a read gave and keep it only when it differs from the last thing
    kept; the listeners are woken then, and only then."""

    def __init__(
        self, read: Callable[[], Awaitable[Board]], *, poll: float = POLL_SECONDS, timeout: float = READ_TIMEOUT
    ) -> None:
        self._read = read
        self._poll = poll
        self._timeout = timeout
        self._latest: Snapshot | None = None
        self._fingerprint: str | None = None
        self._changed = asyncio.Event()
        self._listeners = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def latest(self) -> Snapshot | None:
        return self._latest

    @property
    def listeners(self) -> int:
        return self._listeners

    def offer(self, board: Board) -> bool:
        """Keep ``board`` if it changed since the last thing kept; True when it did."""
        return self._keep(fingerprint(board), scoreboard_event(board))

    def offer_failure(self, detail: str) -> bool:
        """The scoreboard could not be read: kept (and sent) once per outage, whatever each failed read said."""
        return self._keep(UNAVAILABLE, unavailable_event(detail))

    def _keep(self, mark: str, event: str) -> bool:
        if mark == self._fingerprint:
            return False
        seq = self._latest.seq + 1 if self._latest is not None else 1
        self._fingerprint, self._latest = mark, Snapshot(seq, event)
        woken, self._changed = self._changed, asyncio.Event()
        woken.set()
        return True

    async def next(self, after: int) -> Snapshot:
        """The latest snapshot, once it is newer than ``after``."""
        while self._latest is None or self._latest.seq <= after:
            await self._changed.wait()
        return self._latest

    @contextlib.contextmanager
    def listening(self) -> Iterator[None]:
        """While a client listens: the first one starts the reading, the last one to leave stops it (and the next
        first listener waits for a fresh read, not the last one kept)."""
        self._listeners += 1
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name="scoreboard-feed")
        try:
            yield
        finally:
            self._listeners -= 1
            if self._listeners == 0 and self._task is not None:
                self._task.cancel()
                self._task = None
                self._latest = self._fingerprint = None
                self._changed = asyncio.Event()

    async def _follow(self) -> None:
        """Read every ``poll`` seconds until cancelled. An outage is logged when it starts and when it ends, not at
        each failed read."""
        while True:
            try:
                async with asyncio.timeout(self._timeout):
                    board = await self._read()
            except InfrastructureError as exc:
                if self.offer_failure(f"{exc}; retry later"):
                    log.warning("scoreboard stream: the scoreboard cannot be read (%s); trying again", exc)
            except TimeoutError:
                if self.offer_failure(f"the scoreboard was not read within {self._timeout:.0f} s; retry later"):
                    log.warning("scoreboard stream: no scoreboard within %.0f s; trying again", self._timeout)
            except Exception:  # the listeners keep their stream: the next read may succeed
                if self.offer_failure("the scoreboard could not be read; retry later"):
                    log.exception("scoreboard stream: the scoreboard could not be read; trying again")
            else:
                if self._fingerprint == UNAVAILABLE:
                    log.info("scoreboard stream: the scoreboard is read again")
                self.offer(board)
            await asyncio.sleep(self._poll)


async def events(
    feed: Feed, disconnected: Callable[[], Awaitable[bool]], *, keep_alive: float = KEEP_ALIVE_SECONDS
) -> AsyncIterator[str]:
    """The stream of one client: the scoreboard now, then each change, until ``disconnected()``."""
    with feed.listening():
        yield ": connected\n\n"
        seen = 0
        while not await disconnected():
            try:
                async with asyncio.timeout(keep_alive):
                    snapshot = await feed.next(after=seen)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            seen = snapshot.seq
            yield snapshot.event


@dataclass(frozen=True, slots=True)
class Page:
    html: str
    headers: dict[str, str]


def inline_hashes(html: str, tag: str) -> list[str]:
    """The CSP source of each inline ``<tag>`` element's text (its exact characters, as the browser hashes them)."""
    found = re.findall(rf"<{tag}\b[^>]*>(.*?)</{tag}>", html, flags=re.DOTALL | re.IGNORECASE)
    return [f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'" for text in found]


def content_security_policy(html: str) -> str:
    """Only the page's own inline script and style run, and it talks only to the API that served it."""
    scripts = " ".join(inline_hashes(html, "script")) or "'none'"
    styles = " ".join(inline_hashes(html, "style")) or "'none'"
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src {scripts}",
            f"style-src {styles}",
            "connect-src 'self'",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def load_page(path: Path = PAGE_FILE) -> Page:
    html = path.read_text(encoding="utf-8")
    headers = {
        "Content-Security-Policy": content_security_policy(html),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }
    return Page(html, headers)


def register(app: FastAPI, scoreboard: Callable[[], Awaitable[BaseModel]]) -> None:
    """Serve the page at ``/`` and its stream at ``/v1/scoreboard/stream``. ``scoreboard`` reads the scoreboard as
    ``GET /v1/scoreboard`` answers it (the API passes that endpoint itself)."""
    page = load_page()

    async def read() -> Board:
        return (await scoreboard()).model_dump(mode="json")

    feed = Feed(read)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def get_page() -> HTMLResponse:
        return HTMLResponse(page.html, headers=page.headers)

    @app.get(
        STREAM_PATH,
        summary="The integration scoreboard, live (Server-Sent Events)",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def get_scoreboard_stream(request: Request) -> StreamingResponse:
        """The scoreboard as ``GET /v1/scoreboard`` answers it, as a ``scoreboard`` event at once and then each time
        it changes (``as_of`` aside); a ``: keep-alive`` comment after 15 s without an event. While the scoreboard
        cannot be read, one ``unavailable`` event (``data``: ``{"detail": ...}``); the stream stays open and the
        scoreboard comes again once it can be read."""
        return StreamingResponse(
            events(feed, request.is_disconnected),
            media_type="text/event-stream",
            # X-Accel-Buffering: a proxy in front (nginx) passes each event on at once instead of buffering it.
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
