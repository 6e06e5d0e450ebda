"""``satubus stream``: run the faust worker."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import logging
from pathlib import Path

import faust
import uvloop

from satubus import health, metrics
from satubus.settings import Settings
from satubus.streams import live_config
from satubus.streams.app import build_app

WORKER = "stream worker"  # how its /health names the worker while it starts


def main(args: argparse.Namespace, settings: Settings) -> int:
    faulthandler.enable()  # a crash in native code (RocksDB, librdkafka) leaves the Python stacks in the log
    # uvloop: faust's per-message machinery (tasks, futures, callbacks) costs about a third less on it.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    # Served first, so that /health answers while the worker waits for the registry or the broker at start.
    health.STATE.starting(WORKER, "not yet assigned its partitions and recovered its tables")
    metrics.serve(settings.metrics_host, settings.stream_metrics_port, "SATUBUS_STREAM_METRICS_PORT", process="stream")
    app = build_app(settings)
    app.task(_started)
    # The worker makes its data directory (under SATUBUS_STATE_DIR) but not the parents: a fresh clone has none.
    Path(app.conf.datadir).mkdir(parents=True, exist_ok=True)
    if args.loglevel:  # instead of SATUBUS_LOG_LEVEL; the worker leaves the logging that satubus set up alone
        logging.getLogger().setLevel(args.loglevel)
    worker = faust.Worker(app, override_logging=False)
    try:
        worker.execute_from_commandline()  # exits the process (SystemExit) when the worker stops
    finally:
        if live_config.RESTART.requested:  # stopped to take up new configuration: run again, same pid
            live_config.restart()
    return 0


async def _started() -> None:
    """An app task: faust starts them once the worker has been assigned its partitions (none, too, is an
    assignment) and has recovered its tables."""
    health.STATE.started(WORKER)
