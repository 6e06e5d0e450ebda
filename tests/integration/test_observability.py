"""deploy/prometheus and deploy/grafana against the running pipeline: promtool accepts the configuration and the
rules, and a real Prometheus (Debian's package, as the local stack runs it) scraping the stream processor, the
materializer and the API evaluates every rule and every dashboard panel's query to a non-empty result."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from satubus.deploy.local.stack import PROMETHEUS_CONFIG, Stack
from satubus.producers.simulate import simulate
from satubus.settings import Settings
from satubus.streams.mapping import discover_mappings
from tests.integration.conftest import PORTS, Pipeline
from tests.integration.test_streams_against_truth import consumed_so_far

DEPLOY = PROMETHEUS_CONFIG.parent.parent
RULES = PROMETHEUS_CONFIG.parent / "rules.yml"
DASHBOARDS = sorted((DEPLOY / "grafana").glob("*.json"))
PORT = 19091  # not the stack's own Prometheus: this one scrapes every second
COMPARISON = re.compile(r"\s(>|<|==|!=|>=|<=)\s")


@pytest.fixture(scope="module")
def pipeline_env() -> dict[str, str]:
    return {"SATUBUS_SCOREBOARD_REFRESH_SECONDS": "1"}


@pytest.fixture(scope="module")
def running(bus: Settings, pipeline: Pipeline) -> Pipeline:
    agencies = {m.agency for m in discover_mappings()}
    simulation = simulate(bus, residents=300, seed=5, dirty=0.05, agencies=agencies)
    deadline = time.monotonic() + 300
    while consumed_so_far(bus) < len(simulation.published):
        pipeline.assert_running()
        assert time.monotonic() < deadline, "the stream processor did not consume the simulation"
        time.sleep(0.5)
    pipeline.start("api")
    return pipeline


@pytest.fixture(scope="module")
def prometheus(
    stack: Stack, bus: Settings, running: Pipeline, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(RULES)]
    defaults, ours = Settings(), bus
    for job in config["scrape_configs"]:  # the suite's processes listen on its own ports
        for targets in job["static_configs"]:
            targets["targets"] = [_our_port(target, defaults, ours) for target in targets["targets"]]
    directory = tmp_path_factory.mktemp("prometheus")
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (directory / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            str(stack.prometheus.binary),
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{PORT}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    url = f"http://127.0.0.1:{PORT}"
    try:
        deadline = time.monotonic() + 60
        while not _targets_up(url):
            assert process.poll() is None, (directory / "prometheus.log").read_text()[-2000:]
            running.assert_running()
            assert time.monotonic() < deadline, f"targets not up: {_query(url, 'up')}"
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_promtool_accepts_the_configuration_and_the_rules(stack: Stack) -> None:
    for args in (["check", "config", str(PROMETHEUS_CONFIG)], ["check", "rules", str(RULES)]):
        result = subprocess.run([str(stack.prometheus.promtool), *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_evaluates_and_every_signal_has_data(prometheus: str) -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert {r["alert"] for r in rules if "alert" in r} >= {
        "SatubusAgencyStale",
        "SatubusDeadLetterSpike",
        "SatubusConsumerLagGrowing",
        "SatubusComponentDown",
    }
    queries = {}
    for rule in rules:
        expr = " ".join(rule["expr"].split())
        if "record" in rule:
            queries[rule["record"]] = expr
        else:  # an alert is silent while all is well: its signal, left of the threshold, must have data
            _query(prometheus, expr)  # raises on a PromQL error
            queries[f"{rule['alert']} signal"] = COMPARISON.split(expr, maxsplit=1)[0]
    assert _empty_after_waiting(prometheus, queries) == []
    health = _get(prometheus, "/api/v1/rules")["data"]["groups"]
    assert [(r["name"], r.get("lastError")) for g in health for r in g["rules"] if r["health"] != "ok"] == []


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=[d.stem for d in DASHBOARDS])
def test_every_panel_query_returns_data(prometheus: str, dashboard: Path) -> None:
    board = json.loads(dashboard.read_text())
    agency = _an_agency_with_every_series(prometheus)
    queries = {
        f"{panel['title']} [{target['refId']}]": target["expr"].replace("$agency", agency)
        for panel in board["panels"]
        for target in panel["targets"]
    }
    assert queries, f"{dashboard.name} has no queries"
    assert _empty_after_waiting(prometheus, queries) == []


def test_the_integration_gauge_reaches_prometheus(prometheus: str, bus: Settings) -> None:
    board = httpx.get(f"http://127.0.0.1:{bus.api_port}/v1/scoreboard", timeout=30).json()
    deadline = time.monotonic() + 30
    while (got := _query(prometheus, "satubus_agencies_integrated")) != [board["integrated"]]:
        assert time.monotonic() < deadline, f"Prometheus has {got}, the scoreboard {board['integrated']}"
        time.sleep(1)


def _an_agency_with_every_series(url: str) -> str:
    expr = "count by (agency) (satubus_events_invalid_total) and count by (agency) (satubus_events_dropped_total)"
    result = _get(url, "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))["data"]["result"]
    assert result, "no agency has both rejected and dropped events: the simulation is too clean"
    return str(sorted(r["metric"]["agency"] for r in result)[0])


def _empty_after_waiting(url: str, queries: dict[str, str], timeout: float = 90) -> list[str]:
    """The names of the queries still empty after ``timeout`` (rates and derivatives need a few scrapes)."""
    deadline = time.monotonic() + timeout
    while True:
        empty = [name for name, expr in queries.items() if not _query(url, expr)]
        if not empty or time.monotonic() > deadline:
            return empty
        time.sleep(2)


def _our_port(target: str, defaults: Settings, ours: Settings) -> str:
    host, port = target.rsplit(":", 1)
    for name in PORTS:
        if int(port) == getattr(defaults, name):
            return f"{host}:{getattr(ours, name)}"
    return target


def _targets_up(url: str) -> bool:
    try:
        up = _get(url, "/api/v1/query?" + urllib.parse.urlencode({"query": 'up{job!="satubus-simulator"}'}))
    except OSError:
        return False
    values = [float(r["value"][1]) for r in up["data"]["result"]]
    return len(values) == 3 and all(v == 1 for v in values)


def _query(url: str, expr: str) -> list[float]:
    body = _get(url, "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    return [float(r["value"][1]) for r in body["data"]["result"]]


def _get(url: str, path: str) -> Any:
    try:
        with urllib.request.urlopen(url + path, timeout=30) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{path}: {exc.read().decode()}") from exc
