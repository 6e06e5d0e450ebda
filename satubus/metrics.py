"""The process-wide Prometheus registry; every metric is named ``satubus_*``.

Each component declares its own metrics against ``REGISTRY`` and calls ``serve`` once at start. The one family
shared by components is declared here: dead letters, which the stream processor and the materializer both send
(a labelled family exports nothing until a component uses it).
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, start_http_server

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


def serve(host: str, port: int, setting: str) -> None:
    """Expose ``/metrics`` on host:port in a background thread; ``setting`` names the variable that sets the port."""
    try:
        start_http_server(port, addr=host, registry=REGISTRY)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve metrics on {host}:{port} ({exc.strerror}): another process holds the port. "
            f"Stop it, or set {setting} to a free port."
        ) from exc
    log.info("metrics at http://%s:%d/metrics", host, port)
