"""The process-wide Prometheus registry; every metric is named ``satubus_*``.

Each component declares its own metrics against ``REGISTRY`` and calls ``serve`` once at start.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)
NAMESPACE = "satubus"

log = logging.getLogger(__name__)


def serve(host: str, port: int) -> None:
    """Expose ``/metrics`` on host:port in a background thread."""
    try:
        start_http_server(port, addr=host, registry=REGISTRY)
    except OSError as exc:
        raise OSError(
            f"cannot serve metrics on {host}:{port} ({exc.strerror}); "
            "another process holds the port: stop it or choose another port in the settings"
        ) from exc
    log.info("metrics at http://%s:%d/metrics", host, port)
