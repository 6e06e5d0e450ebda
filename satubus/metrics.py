"""The process-wide Prometheus registry; every metric is named ``satubus_*``.

Each component declares its own metrics against ``REGISTRY`` and calls ``serve`` once at start. The families
shared by components are declared here: dead letters, which the stream processor and the materializer both send
(a labelled family exports nothing until a component uses it), and the retries of an operation waiting for a
service (``satubus_retries_total`` and ``satubus_waiting_on``, read from the process's health, satubus/health.py).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

from satubus import health
from satubus.errors import ConfigurationError

REGISTRY = CollectorRegistry(auto_describe=True)
NAMESPACE = "satubus"

DEAD_LETTERED = Counter(
    "dead_letters",
    "Records sent to the dead-letter topic",
    ["stage", "reason"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)

log = logging.getLogger(__name__)


class _Waits(Collector):
    """The retries of the process's health, per dependency (every one of health.DEPENDENCIES, even at 0)."""

    def __init__(self, state: health.Health) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        process = self.state.process
        retries = CounterMetricFamily(
            f"{NAMESPACE}_retries",
            "Retries of an operation that failed because a service (broker, registry, database) was unavailable",
            labels=["process", "dependency"],
        )
        for dependency, count in self.state.retries().items():
            retries.add_metric([process, dependency], count)
        waiting = GaugeMetricFamily(
            f"{NAMESPACE}_waiting_on",
            "Operations waiting now for a service (broker, registry, database) to answer again",
            labels=["process", "dependency"],
        )
        for dependency, count in self.state.waiting_on().items():
            waiting.add_metric([process, dependency], count)
        yield retries
        yield waiting


REGISTRY.register(_Waits(health.STATE))


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """No line per scrape or probe."""


def serve(host: str, port: int, setting: str, *, process: str | None = None) -> None:
    """Expose ``/metrics``, ``/health`` (readiness) and ``/health/live`` (liveness) on host:port in a background
    thread; ``setting`` names the variable that sets the port, ``process`` names the process in both."""
    if process is not None:
        health.STATE.process = process

    class Server(ThreadingWSGIServer):  # of the host's address family (prometheus_client's start_http_server too)
        address_family = socket.AF_INET

    try:
        Server.address_family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        server = make_server(host, port, health.wsgi(make_wsgi_app(REGISTRY)), Server, handler_class=_Quiet)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve metrics on {host}:{port} ({exc.strerror}): another process holds the port. "
            f"Stop it, or set {setting} to a free port."
        ) from exc
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics at http://%s:%d/metrics, health at /health", host, port)
