"""The scoreboard's web page (``GET /`` of the live API, consumers/scoreboard_page.py) in a real browser: headless
Chromium, from Debian's ``chromium`` and ``chromium-driver`` packages, driven by selenium, on a real ``satubus api``
over the pipeline's view of a simulated city (test_api.py's fixtures). The headline counts what ``GET
/v1/scoreboard`` counts; a silent agency's first valid event, published through the real pipeline (its Kafka
identity, the stream processor, the materializer), turns its row integrated without a reload of the page; the English
toggle relabels the page and is remembered. The page is kept as a screenshot in .stack/screenshots/scoreboard.png.

Without chromium or chromedriver the test fails, saying what to install (.ci/run installs both): it is never
skipped."""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from satubus.producers.publisher import AgencyPublisher
from satubus.registry import registry_client
from satubus.schemas.catalogue import load_catalogue
from satubus.schemas.code_lists import code_lists_of
from satubus.serde import AvroSerde
from satubus.settings import Settings
from tests.integration.test_api import api, simulation  # noqa: F401  fixtures: the pipeline's view, the API over it

INSTALL = "install Debian's packages as .ci/run does: apt-get install chromium chromium-driver"
PAGE_WAIT = 30.0  # seconds for the page to show a scoreboard
LIVE_WAIT = 150.0  # seconds for an event to go through the pipeline and reach the open page


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: {INSTALL}", pytrace=False)
    return found


@contextlib.contextmanager
def headless_chromium(settings: Settings) -> Iterator[WebDriver]:
    """Headless Chromium, started in the test itself (not a fixture): without it the test fails, rather than
    erring in its setup. It quits before the API stops: a page left open would hold the API's stream."""
    chromium, chromedriver = _binary("chromium"), _binary("chromedriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium  # with both paths given, selenium looks for (and downloads) nothing
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,2000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})  # the page's errors, read at the end
    logs = settings.state_dir.resolve() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    service = Service(
        executable_path=chromedriver,
        service_args=["--log-level=WARNING"],
        log_output=str(logs / f"{settings.namespace}-chromedriver.log"),
    )
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except WebDriverException as exc:
        pytest.fail(f"headless Chromium did not start ({exc.msg}); see {logs}. Or: {INSTALL}", pytrace=False)
    try:
        yield driver
    finally:
        driver.quit()


def _screenshots(settings: Settings) -> Path:
    directory = settings.state_dir.resolve() / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


# The page draws its rows again with each change (every few seconds while agencies publish): a row is read in one
# script, never through an element found earlier, which may be gone by the time it is read.
ROWS = """return Array.from(document.querySelectorAll('tr[data-agency]'), (row) => {
    const label = row.querySelector('.status .label');
    return {code: row.dataset.agency, status: row.dataset.status, label: label ? label.textContent : null};
});"""


CONNECTION = """const shown = document.getElementById('connection');
return shown ? `${shown.dataset.state} ${shown.title}`.trim() : 'no page';"""


def _rows(driver: WebDriver) -> dict[str, dict[str, str | None]]:
    """What the page shows of each agency: its status (the row's data-status) and the words of its status badge."""
    return {row["code"]: row for row in driver.execute_script(ROWS)}


def _row(driver: WebDriver, code: str) -> dict[str, str | None]:
    return _rows(driver).get(code, {"status": None, "label": None})


def _shown_count(driver: WebDriver) -> int | None:
    value = driver.find_element(By.ID, "integrated-count").get_attribute("data-value")
    return int(value) if value else None


def _board(client: httpx.Client) -> dict[str, Any]:
    answer = client.get("/v1/scoreboard")
    assert answer.status_code == 200, answer.text
    board: dict[str, Any] = answer.json()
    return board


def _wait(
    driver: WebDriver, settings: Settings, seconds: float, check: Callable[[], bool], failure: Callable[[], str]
) -> None:
    """Wait until ``check()`` holds, at most ``seconds``; else fail with ``failure()``, what the page showed, and a
    screenshot of it."""
    with contextlib.suppress(TimeoutException):
        WebDriverWait(driver, seconds, poll_frequency=0.25).until(lambda _: check())
        return
    shot = _screenshots(settings) / "scoreboard-failure.png"
    driver.save_screenshot(str(shot))
    state = driver.execute_script(CONNECTION)
    pytest.fail(f"{failure()} within {seconds:.0f} s (connection: {state}; screenshot: {shot})", pytrace=False)


def _publish_first_valid_event(settings: Settings, agency: str) -> str:
    """One service request of ``agency`` (common/layanan.avsc, with a status code of the agency's own list), sent
    with the agency's own Kafka identity, as its system would; returns its ticket."""
    opened = next(code for code, meaning in code_lists_of(agency, "layanan")["status"].items() if meaning == "OPEN")
    ticket = f"{agency.upper()}-PAPAN-{uuid.uuid4().hex[:8]}"
    record = {
        "no_tiket": ticket,
        "kanal": "JAKI",
        "kategori": f"{agency.upper()}-01",
        "uraian": "Permohonan uji papan skor",
        "kelurahan": "31.71.06.1001",
        "status": opened,
        "waktu_lapor": dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1),
        "waktu_selesai": None,
        "nik_pelapor": None,
    }
    with (
        AvroSerde(registry_client(settings)) as serde,
        AgencyPublisher(settings, serde, agency=agency, dataset="layanan", system="scoreboard-page-test") as publisher,
    ):
        publisher.publish(ticket, record, version=1)
    return ticket


def test_the_page_counts_as_the_api_and_shows_an_agency_integrated_live(
    bus: Settings,
    api: httpx.Client,  # noqa: F811  test_api's fixture, imported above
) -> None:
    with headless_chromium(bus) as browser:
        _follow_the_page(bus, api, browser)


def _follow_the_page(bus: Settings, client: httpx.Client, browser: WebDriver) -> None:
    browser.get(f"http://127.0.0.1:{bus.api_port}/")
    _wait(browser, bus, PAGE_WAIT, lambda: _shown_count(browser) is not None, lambda: "the page showed no scoreboard")

    _wait(
        browser,
        bus,
        PAGE_WAIT,
        lambda: _shown_count(browser) == _board(client)["integrated"],
        lambda: f"the page counts {_shown_count(browser)} integrated, the API {_board(client)['integrated']}",
    )
    board = _board(client)
    assert browser.find_element(By.ID, "total-count").text == str(board["total"]) == "52"
    assert set(_rows(browser)) == {a["code"] for a in board["agencies"]}
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "id"
    assert "dari" in browser.find_element(By.ID, "headline").text
    _wait(
        browser,
        bus,
        PAGE_WAIT,
        lambda: browser.find_element(By.ID, "connection").get_attribute("data-state") == "live",
        lambda: "the page did not follow the live stream (/v1/scoreboard/stream)",
    )

    # A silent agency, one of those not integrated at the start (the catalogue's), sends its first valid event.
    not_yet = {a.code for a in load_catalogue() if not a.integrated and "layanan" in a.datasets}
    silent = sorted(a["code"] for a in board["agencies"] if a["status"] == "silent" and a["code"] in not_yet)
    assert silent, f"no silent agency among {sorted(not_yet)}: {[(a['code'], a['status']) for a in board['agencies']]}"
    agency = silent[0]
    assert _row(browser, agency)["status"] == "silent"
    before = board["integrated"]
    browser.execute_script("window.scoreboardTestMark = 'not reloaded';")  # gone if the page were loaded again

    _publish_first_valid_event(bus, agency)

    def api_says() -> str:
        status = next(a for a in _board(client)["agencies"] if a["code"] == agency)
        return f"{status['status']} ({status['reason']})"

    _wait(
        browser,
        bus,
        LIVE_WAIT,
        lambda: _row(browser, agency)["status"] == "integrated",
        lambda: f"{agency}'s row shows {_row(browser, agency)['status']}, not integrated (the API says {api_says()})",
    )
    assert browser.execute_script("return window.scoreboardTestMark;") == "not reloaded", "the page was reloaded"
    _wait(
        browser,
        bus,
        PAGE_WAIT,
        lambda: _shown_count(browser) == _board(client)["integrated"] >= before + 1,
        lambda: f"the page counts {_shown_count(browser)}, the API {_board(client)['integrated']}, {before} before",
    )
    assert _row(browser, agency)["label"] == "Terintegrasi"
    browser.save_screenshot(str(_screenshots(bus) / "scoreboard.png"))

    # English, on the same page, and remembered when it is loaded again.
    label = browser.find_element(By.ID, "integrated-label")
    assert label.text == "instansi terintegrasi"
    browser.find_element(By.ID, "lang-toggle").click()
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    assert label.text == "agencies integrated"
    assert _row(browser, agency)["label"] == "Integrated"
    assert browser.find_element(By.ID, "lang-toggle").text == "Bahasa Indonesia"
    browser.refresh()
    _wait(browser, bus, PAGE_WAIT, lambda: _shown_count(browser) is not None, lambda: "the page showed nothing again")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    assert browser.find_element(By.ID, "integrated-label").text == "agencies integrated"
    errors = browser.get_log("browser")  # a script error, a request the page's policy refused...
    assert not errors, f"the page logged errors: {errors}"
