"""Stand-ins for the broker and the registry, so the publishing paths run in unit tests without services.

``install(monkeypatch)`` replaces ``confluent_kafka.Producer`` in the publisher with ``FakeProducer``, which
answers each message as the test says (acknowledged, failed with a Kafka error, never answered, or refused by the
client), and returns a ``Fakes`` with a ``FakeSerde`` (real encoders, no registry). Both note any call made on a
running event loop: they are blocking calls in the real clients.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from confluent_kafka import KafkaError, KafkaException
from pydantic import BaseModel

from satubus.errors import RegistryUnavailable
from satubus.serde import Encoder

SILENT: Literal["silent"] = "silent"  # a message the broker never answers
Fate = KafkaError | KafkaException | Literal["silent"] | None  # None: acknowledged; KafkaException: produce raises


@dataclass
class Fakes:
    fates: dict[int, Fate] = field(default_factory=dict)  # by the message's number, across producers, from 0
    attempts: int = 0  # messages offered to a producer, refused ones included
    produced: list[tuple[str, bytes, bytes]] = field(default_factory=list)  # (topic, key, value) of each sent
    subjects: list[str] = field(default_factory=list)  # asked of the registry
    registry_down: bool = False
    on_the_loop: list[str] = field(default_factory=list)  # blocking calls made on a running event loop
    producers: list[FakeProducer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, call: str) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self.on_the_loop.append(call)

    def serde(self, *args: Any) -> FakeSerde:
        return FakeSerde(self)


class FakeProducer:
    def __init__(self, fakes: Fakes, config: dict[str, Any]) -> None:
        self.fakes = fakes
        self.config = config
        self._answers: list[tuple[Any, KafkaError | None]] = []
        self._silent = 0
        fakes.producers.append(self)

    def produce(self, topic: str, *, value: bytes, key: bytes, on_delivery: Any) -> None:
        with self.fakes.lock:
            fate = self.fakes.fates.get(self.fakes.attempts)
            self.fakes.attempts += 1
            if isinstance(fate, KafkaException):
                raise fate
            self.fakes.produced.append((topic, key, value))
        if isinstance(fate, str):  # SILENT (KafkaError.__eq__ fails on a str)
            self._silent += 1
        else:
            self._answers.append((on_delivery, fate if isinstance(fate, KafkaError) else None))

    def poll(self, timeout: float = 0) -> int:
        self.fakes.note("poll")
        answers, self._answers = self._answers, []
        for callback, error in answers:
            callback(error, None)
        if not answers and timeout:
            time.sleep(min(timeout, 0.01))
        return len(answers)

    def flush(self, timeout: float = 0) -> int:
        self.fakes.note("flush")
        self.poll(0)
        return self._silent


class FakeSerde:
    def __init__(self, fakes: Fakes) -> None:
        self.fakes = fakes

    def encoder(self, subject: str, schema: dict[str, Any]) -> Encoder:
        self.fakes.note("registry lookup")
        if self.fakes.registry_down:
            raise RegistryUnavailable("the schema registry does not answer")
        self.fakes.subjects.append(subject)
        return Encoder(1, schema)

    def close(self) -> None:
        pass

    def __enter__(self) -> FakeSerde:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def install(monkeypatch: pytest.MonkeyPatch) -> Fakes:
    fakes = Fakes()
    monkeypatch.setattr("satubus.producers.publisher.Producer", lambda config: FakeProducer(fakes, config))
    return fakes


def failed(code: int = KafkaError._MSG_TIMED_OUT) -> KafkaError:
    return KafkaError(code)


def refused(code: int = KafkaError.MSG_SIZE_TOO_LARGE) -> KafkaException:
    return KafkaException(KafkaError(code))


def count_validations(monkeypatch: pytest.MonkeyPatch, model: type[BaseModel]) -> list[str]:
    """Every validation of a record of ``model`` from now on (each record must be validated once)."""
    calls: list[str] = []
    for name in ("model_validate", "model_validate_json"):
        original = getattr(model, name)

        def counted(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(model, name, counted)
    return calls
