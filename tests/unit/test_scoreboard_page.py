"""The scoreboard's web page and its live stream (consumers/scoreboard_page.py), without services: the stream sends
the scoreboard when it changed and only then, shares one reader among its listeners, says when the scoreboard cannot
be read and comes back after; the page is self-contained, in Bahasa Indonesia with an English toggle, readable on a
phone, and its Content-Security-Policy lets its own inline script and style run."""

from __future__ import annotations

import asyncio
import datetime as dt
import fnmatch
import json
import logging
import re
import socket
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from satubus.consumers import changes, scoreboard_page
from satubus.consumers.api import create_app
from satubus.consumers.api_keys import Keys
from satubus.consumers.scoreboard import Activity, Block, Rules, assess
from satubus.consumers.scoreboard_page import PAGE_FILE, Feed, events, fingerprint, inline_hashes
from satubus.errors import DatabaseUnavailable
from satubus.schemas.catalogue import load_catalogue
from satubus.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
HTML = PAGE_FILE.read_text(encoding="utf-8")


def board(integrated: int = 40, as_of: str = "2026-11-30T10:00:00Z", **statuses: str) -> dict[str, Any]:
    agencies = [{"code": code, "status": status} for code, status in sorted(statuses.items())]
    return {"integrated": integrated, "total": 52, "as_of": as_of, "agencies": agencies}


class Reader:
    """A scoreboard that answers what the test says, counting its reads and the tasks that made them."""

    def __init__(self, *answers: dict[str, Any] | Exception) -> None:
        self.answers = list(answers)
        self.reads = 0
        self.tasks: set[asyncio.Task[Any] | None] = set()

    async def __call__(self) -> dict[str, Any]:
        self.reads += 1
        self.tasks.add(asyncio.current_task())
        answer = self.answers[0] if len(self.answers) == 1 else self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def never_disconnected() -> Callable[[], Awaitable[bool]]:
    async def disconnected() -> bool:
        return False

    return disconnected


async def take(stream: AsyncIterator[str], count: int) -> list[str]:
    async with asyncio.timeout(5):
        return [await anext(stream) for _ in range(count)]


def data_of(event: str) -> str:
    return next(line.removeprefix("data: ") for line in event.splitlines() if line.startswith("data: "))


# --- change detection ---------------------------------------------------------------------------------------------


def test_the_time_of_reading_alone_is_no_change() -> None:
    first = board(dukcapil="integrated", setdprd="silent")
    assert fingerprint(first) == fingerprint({**first, "as_of": "2026-11-30T10:00:07Z"})
    assert fingerprint(first) != fingerprint(board(41, dukcapil="integrated", setdprd="integrated"))


def test_a_feed_keeps_a_board_only_when_it_changed() -> None:
    feed = Feed(Reader(board()))
    assert feed.offer(board(setdprd="silent"))
    assert feed.latest is not None and feed.latest.seq == 1
    assert not feed.offer(board(setdprd="silent", as_of="2026-11-30T10:00:02Z"))
    assert feed.latest.seq == 1
    assert feed.offer(board(41, setdprd="integrated"))
    assert feed.latest.seq == 2
    assert feed.latest.event.startswith("event: scoreboard\ndata: {")
    assert '"setdprd"' in data_of(feed.latest.event)


def test_an_outage_is_told_once_and_the_board_is_sent_again_after_it() -> None:
    feed = Feed(Reader(board()))
    assert feed.offer(board(setdprd="silent"))
    assert feed.offer_failure("PostgreSQL is unavailable; retry later")
    assert not feed.offer_failure("PostgreSQL is unavailable: connection refused; retry later")
    assert feed.latest is not None and feed.latest.event.startswith("event: unavailable\n")
    assert feed.offer(board(setdprd="silent"))  # the same board as before the outage: the page must hear it again
    assert feed.latest.seq == 3


# --- the stream ---------------------------------------------------------------------------------------------------


def test_the_stream_sends_the_board_then_keep_alives_then_each_change() -> None:
    reader = Reader(board(setdprd="silent"))

    async def scenario() -> None:
        feed = Feed(reader, poll=0.01)
        stream = events(feed, never_disconnected(), keep_alive=0.2)
        connected, first = await take(stream, 2)
        assert connected == ": connected\n\n"
        assert first.startswith("event: scoreboard\n") and first.endswith("\n\n")
        assert '"silent"' in data_of(first)
        assert await take(stream, 1) == [": keep-alive\n\n"]  # read again and again, unchanged: nothing sent
        assert reader.reads > 3
        reader.answers = [board(41, setdprd="integrated")]
        (changed,) = await take(stream, 1)
        assert changed.startswith("event: scoreboard\n")
        assert '"integrated"' in data_of(changed)
        await stream.aclose()
        assert feed.listeners == 0

    asyncio.run(scenario())


def test_listeners_share_one_reader_and_the_last_one_leaving_stops_it() -> None:
    reader = Reader(board(setdprd="silent"))

    async def scenario() -> None:
        feed = Feed(reader, poll=0.01)
        one = events(feed, never_disconnected(), keep_alive=5)
        two = events(feed, never_disconnected(), keep_alive=5)
        first_one, first_two = await take(one, 2), await take(two, 2)
        assert first_one == first_two
        assert feed.listeners == 2
        await asyncio.sleep(0.1)
        assert len(reader.tasks) == 1  # one task reads for both
        await one.aclose()
        reads = reader.reads
        await asyncio.sleep(0.05)
        assert reader.reads > reads  # still reading for the other
        await two.aclose()
        assert feed.listeners == 0
        await asyncio.sleep(0)  # the cancelled reader ends
        reads = reader.reads
        await asyncio.sleep(0.1)
        assert reader.reads == reads, "the scoreboard is still read with nobody listening"

    asyncio.run(scenario())


def test_a_scoreboard_that_cannot_be_read_is_told_and_the_stream_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    outage = DatabaseUnavailable("PostgreSQL is unavailable")
    reader = Reader(board(setdprd="silent"), outage, outage, outage, board(41, setdprd="integrated"))

    async def scenario() -> None:
        stream = events(Feed(reader, poll=0.01), never_disconnected(), keep_alive=5)
        _, before, unavailable, after = await take(stream, 4)
        await stream.aclose()
        assert before.startswith("event: scoreboard\n")
        assert unavailable == 'event: unavailable\ndata: {"detail": "PostgreSQL is unavailable; retry later"}\n\n'
        assert after.startswith("event: scoreboard\n") and '"integrated"' in data_of(after)

    with caplog.at_level(logging.INFO, logger=scoreboard_page.__name__):
        asyncio.run(scenario())
    logged = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert logged == [  # the outage once, not at each of its three failed reads
        ("WARNING", "scoreboard stream: the scoreboard cannot be read (PostgreSQL is unavailable); trying again"),
        ("INFO", "scoreboard stream: the scoreboard is read again"),
    ]


def test_a_read_that_hangs_is_told_as_unavailable() -> None:
    async def hangs() -> dict[str, Any]:
        await asyncio.sleep(60)
        raise AssertionError("not reached")

    async def scenario() -> None:
        stream = events(Feed(hangs, poll=0.01, timeout=0.05), never_disconnected(), keep_alive=5)
        _, unavailable = await take(stream, 2)
        await stream.aclose()
        assert unavailable.startswith("event: unavailable\n") and "not read within" in unavailable

    asyncio.run(scenario())


def test_the_stream_ends_when_the_client_disconnects() -> None:
    reader = Reader(board(setdprd="silent"))
    gone = asyncio.Event()

    async def disconnected() -> bool:
        return gone.is_set()

    async def scenario() -> list[str]:
        feed = Feed(reader, poll=0.01)
        sent = []
        async with asyncio.timeout(5):
            async for event in events(feed, disconnected, keep_alive=0.05):
                sent.append(event)
                if len(sent) == 3:
                    gone.set()
        assert feed.listeners == 0
        return sent

    sent = asyncio.run(scenario())
    assert sent[0] == ": connected\n\n" and len(sent) == 3


# --- the routes ---------------------------------------------------------------------------------------------------


class FakeBoard(BaseModel):
    integrated: int
    total: int
    as_of: dt.datetime
    agencies: list[dict[str, Any]]


def test_the_page_is_served_with_a_policy_that_lets_its_own_script_and_style_run_and_nothing_else() -> None:
    async def scoreboard() -> FakeBoard:
        return FakeBoard(integrated=0, total=52, as_of=dt.datetime.now(dt.UTC), agencies=[])

    app = FastAPI()
    scoreboard_page.register(app, scoreboard)
    with TestClient(app) as client:
        page = client.get("/")
        paths = client.get("/openapi.json").json()["paths"]
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.text == HTML
    policy = dict(part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
    scripts, styles = inline_hashes(HTML, "script"), inline_hashes(HTML, "style")
    assert len(scripts) == len(styles) == 1
    assert policy["script-src"].split() == scripts
    assert policy["style-src"].split() == styles
    assert "/" not in paths  # the page is not part of the API's contract; its stream is
    assert "text/event-stream" in paths["/v1/scoreboard/stream"]["get"]["responses"]["200"]["content"]


def _unanswered_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_api_serves_the_page_and_streams_its_own_scoreboard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wiring in consumers/api.py, with PostgreSQL and Kafka nowhere: the page needs neither; the stream reads
    the scoreboard where GET /v1/scoreboard does, and says so when it cannot, as that one does."""
    monkeypatch.setattr(changes, "METADATA_TIMEOUT", 0.5)  # the live changes' consumer stops sooner
    settings = Settings(
        namespace="unit",
        state_dir=tmp_path,
        kafka_bootstrap=f"127.0.0.1:{_unanswered_port()}",
        database_url=f"postgresql://satubus_api:unit@127.0.0.1:{_unanswered_port()}/satubus",
    )
    with TestClient(create_app(settings, keys=Keys()), base_url="http://127.0.0.1") as client:
        page = client.get("/")
        assert (page.status_code, page.text) == (200, HTML)
        board = client.get("/v1/scoreboard")
        assert board.status_code == 503
        with client.stream("GET", "/v1/scoreboard/stream") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            assert next(lines) == ": connected"
            event = [next(lines) for _ in range(3)][1:]
        assert "/v1/scoreboard/stream" in client.get("/openapi.json").json()["paths"]
    assert event[0] == "event: unavailable"
    assert json.loads(data_of("\n".join(event)))["detail"] == board.json()["detail"]


def test_inline_hashes_are_those_the_browser_computes() -> None:
    # The sha256 of "alert(1)", as a CSP hash source (base64 of the digest).
    assert inline_hashes("<p><script>alert(1)</script></p>", "script") == [
        "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='"
    ]


# --- the page -----------------------------------------------------------------------------------------------------


class Attributes(HTMLParser):
    """Every tag of the page with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags() -> list[tuple[str, dict[str, str | None]]]:
    parser = Attributes()
    parser.feed(HTML)
    return parser.tags


def test_the_page_is_in_bahasa_indonesia_with_an_english_toggle() -> None:
    html = next(attrs for tag, attrs in tags() if tag == "html")
    assert html["lang"] == "id"
    toggle = next(attrs for tag, attrs in tags() if attrs.get("id") == "lang-toggle")
    assert toggle["type"] == "button" and toggle["lang"] == "en"
    assert "localStorage" in HTML and "documentElement.lang" in HTML
    assert re.search(r"<title>[^<]*Integrasi[^<]*</title>", HTML)
    assert "instansi terintegrasi" in HTML and "agencies integrated" in HTML


def test_the_page_is_readable_on_a_phone() -> None:
    viewport = next(attrs for tag, attrs in tags() if tag == "meta" and attrs.get("name") == "viewport")
    assert "width=device-width" in (viewport["content"] or "")
    assert re.search(r"@media \(max-width: [\d.]+rem\)", HTML)  # rows become cards


def test_the_page_loads_nothing_from_elsewhere() -> None:
    assert not re.findall(r"https?://", HTML), "an absolute URL in the page"
    for tag, attrs in tags():
        for name in ("src", "href", "action", "srcset", "poster", "data"):
            value = attrs.get(name)
            if value is None:
                continue
            assert not value.startswith("//"), f"<{tag} {name}={value}> is on another host"
            assert not re.match(r"^[a-z][a-z0-9+.-]*:", value) or value.startswith("data:"), f"<{tag} {name}={value}>"
        assert not (tag == "script" and "src" in attrs), "a script from a file"
        assert not (tag == "link" and attrs.get("rel") == "stylesheet"), "a stylesheet from a file"
    assert "@import" not in HTML and not re.search(r"url\(\s*['\"]?(?!data:)", HTML)


def test_the_page_gives_tests_and_screen_readers_something_to_hold() -> None:
    ids = {attrs.get("id") for _, attrs in tags()}
    assert {"integrated-count", "total-count", "agencies", "agency-rows", "connection", "lang-toggle"} <= ids
    assert "'data-agency': agency.code, 'data-status': agency.status" in HTML
    table = next(attrs for tag, attrs in tags() if tag == "table")
    assert table["id"] == "agencies"
    assert any(tag == "caption" for tag, _ in tags())
    assert all(attrs.get("scope") == "col" for tag, attrs in tags() if tag == "th")
    # Colour is not the only signal: each status has its own icon and its words, in both languages.
    statuses = ("integrated", "stale", "silent", "blocked")
    icons = re.findall(r"var ICONS = \{([^}]*)\}", HTML)
    words = re.findall(r"\bstatus: \{([^}]*)\}", HTML)  # one per language
    assert len(icons) == 1 and len(words) == 2
    assert all(f"{status}: '" in text for text in icons + words for status in statuses)


def test_the_pages_indonesian_covers_every_reason_the_scoreboard_gives() -> None:
    """The API explains statuses in English (consumers/scoreboard.py); the page translates the sentences it knows."""
    patterns = [re.compile(p.replace("[\\s\\S]", "(?s:.)")) for p in re.findall(r"/(\^.*?\$)/\.exec\(reason\)", HTML)]
    literals = re.findall(r"reason === '([^']*)'", HTML)
    assert patterns and literals
    agency, now, rules = load_catalogue()[0], dt.datetime(2026, 11, 30, 10, tzinfo=dt.UTC), Rules()
    activities = [
        None,  # silent
        Activity(now - dt.timedelta(minutes=5), 10, 100, 1),  # integrated
        Activity(now - dt.timedelta(hours=3), 0, 100, 1),  # stale: too old
        Activity(now - dt.timedelta(minutes=5), 10, 100, 40),  # stale: too many invalid
    ]
    reasons = [assess(agency, activity, now, rules).reason for activity in activities]
    reasons.append(assess(agency, None, now, rules, Block(now, "ops", "kunci bocor")).reason)
    for reason in reasons:
        assert reason in literals or any(p.fullmatch(reason) for p in patterns), f"no translation of {reason!r}"


def test_the_page_ships_in_the_wheel() -> None:
    assert PAGE_FILE.is_file()
    assert PAGE_FILE.parent.parent == Path(scoreboard_page.__file__).parent
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["*"]
    assert any(fnmatch.fnmatch(PAGE_FILE.name, pattern) for pattern in patterns), "add *.html to package-data"
