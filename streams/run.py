"""``satubus stream``: run the faust worker."""

from __future__ import annotations

import argparse

import faust

from satubus import metrics
from satubus.settings import Settings
from satubus.streams.app import build_app


def main(args: argparse.Namespace, settings: Settings) -> int:
    app = build_app(settings)
    metrics.serve(settings.metrics_host, settings.stream_metrics_port, "SATUBUS_STREAM_METRICS_PORT")
    worker = faust.Worker(app, loglevel=args.loglevel, override_logging=False)
    worker.execute_from_commandline()  # exits the process (SystemExit) when the worker stops
    return 0
