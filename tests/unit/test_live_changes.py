"""The live change stream (consumers/changes.py) when its consumer cannot recover: it retries a bounded number of
times, then says so to every subscriber, to new ones and to /health, instead of serving keep-alives over a dead
thread. No service: the broker is an address nothing listens on."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from satubus.consumers import changes
from satubus.consumers.changes import Changes, ChangesStopped
from satubus.retry import Backoff
from satubus.schemas.topics import UNIFIED_PERSON
from satubus.settings import Settings


def _unanswered_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> Backoff:
    backoff = Backoff(first=0.05, longest=0.1, attempts=3)
    monkeypatch.setattr(changes, "BACKOFF", backoff)
    monkeypatch.setattr(changes, "METADATA_TIMEOUT", 0.5)
    return backoff


def test_a_broker_that_never_answers_ends_the_stream_with_an_error(
    quick_retries: Backoff, caplog: pytest.LogCaptureFixture
) -> None:
    live = Changes(Settings(kafka_bootstrap=_unanswered_address(), namespace="unit"), [UNIFIED_PERSON])

    async def scenario() -> None:
        live.start(asyncio.get_running_loop())
        assert live.failure is None  # retrying is not dead
        with live.subscribe() as queue:
            change = await asyncio.wait_for(queue.get(), timeout=30)  # before the fix: keep-alives forever
        assert (change.entity, change.record) == ("error", None)
        assert live.failure is not None and "BrokerUnavailable" in live.failure
        with pytest.raises(ChangesStopped, match="stopped"), live.subscribe():
            pass
        await asyncio.to_thread(live.stop)

    with caplog.at_level(logging.WARNING, logger=changes.__name__):
        asyncio.run(scenario())
    retries = [r for r in caplog.records if "resuming in" in r.getMessage()]
    assert len(retries) == quick_retries.attempts - 1  # bounded: then it gives up
    assert any("live changes stopped" in r.getMessage() for r in caplog.records)


def test_a_stopped_stream_is_not_reported_dead(quick_retries: Backoff) -> None:
    live = Changes(Settings(kafka_bootstrap=_unanswered_address()), [UNIFIED_PERSON])

    async def scenario() -> None:
        live.start(asyncio.get_running_loop())
        await asyncio.to_thread(live.stop)

    asyncio.run(scenario())
    assert live.failure is None
