"""``satubus simulate`` publishes in batches and counts each event's outcome; the ground truth holds exactly the
events the broker acknowledged (stand-in broker and registry: tests/unit/fake_kafka.py)."""

from __future__ import annotations

import argparse
import io

import pytest
from pydantic import SecretStr

from satubus.producers import simulate
from satubus.settings import Settings
from tests.unit.fake_kafka import Fakes, failed, install


def _settings() -> Settings:
    """Made in the test, after conftest.py has given it a Kafka identity."""
    return Settings(namespace="kota", env="local", pseudonym_key=SecretStr("unit-test-key-of-at-least-32-bytes"))


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Fakes:
    fakes = install(monkeypatch)
    monkeypatch.setattr(simulate, "AvroSerde", fakes.serde)
    return fakes


def test_counts_reconcile_and_the_truth_leaves_out_what_was_not_acknowledged(fakes: Fakes) -> None:
    fakes.fates = {0: failed(), 7: failed()}
    run = simulate.simulate(
        _settings(), residents=60, seed=3, dirty=0.05, agencies={"dukcapil", "bpbd"}, progress=io.StringIO()
    )
    assert run.outcomes == {"published": len(fakes.produced) - 2, "failed": 2}
    assert len(run.published) == len(fakes.produced) - 2
    assert sum(c["in"] for c in run.truth.counts.values()) == len(run.published)
    assert "failed: <broker>: Local: Message timed out" in run.first_problem
    topics = {"agency.dukcapil.penduduk.v1", "agency.bpbd.kejadian.v1", "agency.bpbd.layanan.v1"}
    assert {topic for topic, _, _ in fakes.produced} == {f"kota.{topic}" for topic in topics}
    assert set(run.truth.counts) == topics  # the truth names contract topics, whatever the namespace


def test_each_dataset_gets_its_events_in_the_scripts_order(fakes: Fakes) -> None:
    run = simulate.simulate(_settings(), residents=40, seed=4, dirty=0.05, agencies={"bpbd"}, progress=io.StringIO())
    for dataset in ("kejadian", "layanan"):
        sent = [key.decode() for topic, key, _ in fakes.produced if topic == f"kota.agency.bpbd.{dataset}.v1"]
        assert sent == [p.planned.key for p in run.published if p.planned.dataset == dataset]
        assert sent


def test_the_exit_code_says_some_events_were_not_acknowledged(fakes: Fakes, capsys: pytest.CaptureFixture[str]) -> None:
    fakes.fates = {3: failed()}
    args = argparse.Namespace(
        metrics=False, agencies="bpbd", residents=20, seed=1, dirty=0.0, rate=0, duration=0, as_of=None, truth=None
    )
    assert simulate.main(args, _settings()) == 3
    assert "0 events rejected, 1 not acknowledged by the broker" in capsys.readouterr().err
    fakes.fates = {}
    assert simulate.main(args, _settings()) == 0
