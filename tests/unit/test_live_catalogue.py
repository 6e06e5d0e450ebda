"""The catalogue and the topic contracts follow the mappings directory (``settings.mappings_dir``), where ``satubus
dataset apply`` installs a dataset, and a long-running reader sees a change there without a restart. No service: a
copy of the package's ``schemas/agencies/`` in a temporary directory, with the worked example's dataset added under a
name the package never has (``satubus dataset apply``'s integration test installs ``ritase`` into the package's)."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest

from satubus import registry
from satubus.cli import main
from satubus.schemas import configuration
from satubus.schemas.catalogue import Agency, agency, load_catalogue, read_catalogue
from satubus.schemas.configuration import Watched, current_catalogue, fingerprint
from satubus.schemas.envelope import AGENCIES_DIR
from satubus.schemas.topics import TopicContract, all_contracts
from satubus.settings import get_settings
from satubus.streams import live_config

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "dlh-ritase"
NEW = "ritase_baru"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A mappings directory as the bus's: a copy of the package's."""
    root = tmp_path / "mappings"
    shutil.copytree(AGENCIES_DIR, root, ignore=shutil.ignore_patterns("ritase.*"))
    return root


def install_new(root: Path) -> None:
    """What ``satubus dataset apply dlh ritase_baru`` installs: the schema, the metadata, the mapping."""
    (root / "dlh").mkdir(exist_ok=True)
    for suffix in ("avsc", "metadata.yaml", "mapping.yaml"):
        shutil.copy(EXAMPLE / f"ritase.{suffix}", root / "dlh" / f"{NEW}.{suffix}")


def datasets_of(code: str, catalogue: tuple[Agency, ...]) -> tuple[str, ...]:
    return next(a.datasets for a in catalogue if a.code == code)


def test_the_catalogue_of_a_mappings_directory_lists_the_datasets_installed_there(root: Path) -> None:
    install_new(root)
    assert NEW in datasets_of("dlh", load_catalogue(root))
    assert NEW in agency("dlh", root).datasets
    assert NEW not in datasets_of("dlh", load_catalogue())  # the package's directory has no such file
    assert NEW not in agency("dlh").datasets
    # Everything else is the same catalogue.
    assert [(a.code, a.datasets) for a in load_catalogue(root) if a.code != "dlh"] == [
        (a.code, a.datasets) for a in load_catalogue() if a.code != "dlh"
    ]


def test_the_contracts_of_a_mappings_directory_carry_its_datasets_and_their_schemas(root: Path) -> None:
    install_new(root)
    contracts = {c.name: c for c in all_contracts("kota", root)}
    agency_topic, unified = contracts["kota.agency.dlh.ritase_baru.v1"], contracts["kota.unified.dlh.ritase_baru.v1"]
    assert agency_topic.value_schema()["name"] == "RitaseChanged"  # its schema, read from the directory
    assert unified.compacted and unified.compatibility == "FULL_TRANSITIVE"
    assert "kota.agency.dlh.ritase_baru.v1" not in {c.name for c in all_contracts("kota")}  # the default: the package's


def test_a_watch_looks_again_only_after_its_interval_or_when_asked_fresh(root: Path) -> None:
    now = [0.0]
    watch = Watched(root, every=5.0, clock=lambda: now[0])
    before = watch.mark()
    install_new(root)
    now[0] = 4.9
    assert watch.mark() == before  # not looked at again yet: no read of the files
    assert watch.mark(fresh=True) == fingerprint(root) != before
    (root / "dlh" / f"{NEW}.mapping.yaml").unlink()
    now[0] = 9.8
    assert watch.mark() != fingerprint(root)  # 4.9 s after the fresh look
    now[0] = 9.9
    assert watch.mark() == fingerprint(root)


def test_the_current_catalogue_follows_the_directory_without_a_restart(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(configuration, "LOOK_SECONDS", 3600.0)
    assert NEW not in datasets_of("dlh", current_catalogue(root))
    install_new(root)
    assert NEW not in datasets_of("dlh", current_catalogue(root))  # looked at less than LOOK_SECONDS ago
    assert NEW in datasets_of("dlh", current_catalogue(root, fresh=True))

    monkeypatch.setattr(configuration, "LOOK_SECONDS", 0.0)
    read: list[Path] = []
    monkeypatch.setattr(configuration, "read_catalogue", lambda r: read.append(r) or read_catalogue(r))
    assert current_catalogue(root) is current_catalogue(root)  # unchanged: kept, not read again
    assert read == []
    (root / "dlh" / f"{NEW}.avsc").unlink()  # a dataset is the agency's while its schema is there
    assert NEW not in datasets_of("dlh", current_catalogue(root))
    assert read == [root]


def test_the_stream_workers_and_the_readers_share_one_fingerprint() -> None:
    assert live_config.fingerprint is configuration.fingerprint
    assert live_config.LOOK_SECONDS == configuration.LOOK_SECONDS


def test_the_schemas_command_checks_the_datasets_of_the_mappings_directory(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``satubus schemas check|register|diff`` on SATUBUS_MAPPINGS_DIR: the subjects of the datasets installed there,
    with their schemas there (a stand-in registry)."""
    checked: list[str] = []

    def check(client: object, contract: TopicContract) -> registry.SubjectReport:
        contract.value_schema()
        checked.append(contract.subject)
        return registry.SubjectReport(contract.subject, "unchanged")

    monkeypatch.setattr(registry, "require_registry", lambda settings: None)
    monkeypatch.setattr(registry, "registry_client", lambda settings, admin=False: contextlib.nullcontext())
    monkeypatch.setattr(registry, "check_contract", check)
    install_new(root)
    command = ["schemas", "check", "--subject", f"*.dlh.{NEW}.*"]
    get_settings.cache_clear()
    try:
        assert main(command) == 2  # the package's directory has no such dataset
        monkeypatch.setenv("SATUBUS_MAPPINGS_DIR", str(root))
        get_settings.cache_clear()
        assert main(command) == 0
    finally:
        get_settings.cache_clear()
    agency_subject, unified_subject = checked
    assert agency_subject.endswith(f"agency.dlh.{NEW}.v1-value")
    assert unified_subject.endswith(f"unified.dlh.{NEW}.v1-value")
    assert "2 subjects: 2 unchanged" in capsys.readouterr().out
