"""deploy/compose: valid against the compose specification, and in step with the bus it runs."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from satubus import access, database
from satubus.cli import build_parser
from satubus.deploy.compose.users import PROCESS_ROLES
from satubus.deploy.local.stack import APICURIO_VERSION, KAFKA_VERSION
from satubus.settings import NOT_SETTINGS, PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE = COMPOSE_DIR / "compose.yaml"
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")

# The long-running processes of the bus, and the port each one answers /health on (satubus/health.py).
PROCESS_PORTS = {
    "stream": "stream_metrics_port",
    "materialize": "materializer_metrics_port",
    "api": "api_port",
    "gateway": "gateway_port",
}


def load() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def our_image() -> str:
    image: str = load()["x-satubus"]["image"]
    return image


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def make_secrets_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_secrets", COMPOSE_DIR / "make_secrets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_compose_file_is_valid() -> None:
    result = validate(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ('ports: ["127.0.0.1:19120:19120"]', 'ports: "not-a-list"'),
        ("{condition: service_completed_successfully}", "{condition: service_completed}"),
        ("  kafka:\n    image: apache/kafka", "  kafka:\n    imagee: apache/kafka"),
    ],
    ids=["ports-not-a-list", "unknown-condition", "misspelt-key"],
)
def test_a_broken_field_fails_the_check(tmp_path: Path, before: str, after: str) -> None:
    text = COMPOSE.read_text()
    assert before in text
    broken = tmp_path / "compose.yaml"
    broken.write_text(text.replace(before, after, 1))
    result = validate(broken)
    assert result.returncode == 1, result.stdout + result.stderr


def test_every_process_of_the_bus_runs_from_our_image_with_its_health_port() -> None:
    services = load()["services"]
    ours = {name: service for name, service in services.items() if service.get("image") == our_image()}
    assert {"init", "stream", "materializer", "api", "gateway"} <= set(ours)
    running = {
        tuple(service["command"]): service
        for name, service in ours.items()
        if name != "init" and "profiles" not in service
    }
    assert {command[0] for command in running} == set(PROCESS_PORTS)
    defaults = Settings(_env_file=None)
    for command, service in running.items():
        build_parser().parse_args(list(command))  # a real sub-command
        port = service["environment"]["HEALTHCHECK_PORT"]
        assert int(port) == getattr(defaults, PROCESS_PORTS[command[0]]), command
    for name, service in services.items():
        if name not in ours:
            assert "build" not in service and ":" in service["image"], name


def test_the_official_images_are_pinned_to_the_versions_the_local_stack_runs() -> None:
    images = {name: service["image"] for name, service in load()["services"].items() if "build" not in service}
    assert images["kafka"] == f"apache/kafka:{KAFKA_VERSION}"
    assert images["registry"] == f"apicurio/apicurio-registry:{APICURIO_VERSION}"
    assert re.fullmatch(r"postgres:15\.\d+(-bookworm)?", images["postgres"])
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", images["prometheus"])
    assert re.fullmatch(r"grafana/grafana:\d+\.\d+\.\d+", images["grafana"])


def test_the_init_service_sets_up_the_bus_before_the_processes_start() -> None:
    services = load()["services"]
    script = services["init"]["command"][0]
    steps = [step.strip() for step in script.split("&&")]
    assert steps == [
        "satubus migrate",
        "python -m satubus.deploy.compose.users",
        "satubus topics",
        "satubus acl apply",
        "satubus schemas register",
    ]
    for command in (step.split()[1:] for step in steps if step.startswith("satubus ")):
        build_parser().parse_args(command)
    for name in ("stream", "materializer", "api", "gateway"):
        assert services[name]["depends_on"]["init"] == {"condition": "service_completed_successfully"}
        for infrastructure in ("kafka", "registry", "postgres"):
            assert services[name]["depends_on"][infrastructure] == {"condition": "service_healthy"}


def test_no_secret_is_written_in_the_compose_file() -> None:
    document = load()
    for name, service in document["services"].items():
        for variable, value in (service.get("environment") or {}).items():
            if any(word in variable for word in ("PASSWORD", "SECRET", "KEY")) and not variable.endswith(
                ("_FILE", "__FILE")
            ):
                pytest.fail(f"{name}: {variable}={value} belongs in a secret file")
            if variable == "SATUBUS_DATABASE_URL":
                assert re.fullmatch(r"postgresql://\w+@[\w.]+:\d+/\w+", value), "no password in the URL"
    for secret in document["secrets"].values():
        assert secret["file"].startswith("./secrets/"), "made by make_secrets.py, ignored by git and the build"
    assert "secrets/" in (COMPOSE_DIR / ".gitignore").read_text().split()


def test_the_processes_set_only_real_settings() -> None:
    fields = {PREFIX + field.upper() for field in Settings.model_fields} | NOT_SETTINGS
    for name, service in load()["services"].items():
        if service.get("image") == our_image():
            names = {variable for variable in service["environment"] if variable.startswith(PREFIX)}
            assert names <= fields, name


def test_make_secrets_knows_the_principals_and_logins_of_the_code() -> None:
    secrets = make_secrets_module()
    assert set(secrets.KAFKA_PROCESS_USERS) == {access.principal("", role) for role in PROCESS_ROLES}
    assert set(secrets.KAFKA_SERVER_USERS) == {access.ADMIN, access.BROKER, access.CONTROLLER}
    assert set(secrets.POSTGRES_LOGINS) == set(database.LOGINS)
    logins = (COMPOSE_DIR / "postgres" / "logins.sh").read_text()
    groups = dict(re.findall(r"^\s+\[(\w+)\]=(\w+)$", logins, re.MULTILINE))
    assert groups == database.GROUPS


@pytest.mark.skipif(shutil.which("openssl") is None, reason="make_secrets.py needs openssl")
def test_make_secrets_makes_every_file_the_compose_file_names_and_keeps_them(tmp_path: Path) -> None:
    secrets = make_secrets_module()
    folder = tmp_path / "secrets"
    assert secrets.main([str(folder)]) == 0
    first = {path.name: path.read_bytes() for path in folder.iterdir()}
    for secret in load()["secrets"].values():
        assert (folder / Path(secret["file"]).name).is_file(), secret["file"]
    assert folder.stat().st_mode & 0o777 == 0o700
    assert (folder / "passwords.json").stat().st_mode & 0o777 == 0o600
    assert (folder / "ca-key.pem").stat().st_mode & 0o777 == 0o600
    stream = json.loads((folder / "stream.json").read_text())
    assert set(stream) == {"kafka"} and set(stream["kafka"]) == {access.STREAMS}
    materializer = json.loads((folder / "materializer.json").read_text())
    assert set(materializer["postgres"]) == {database.MATERIALIZER, database.NIK_MATERIALIZER}
    assert len((folder / "pseudonym-key").read_text().strip()) >= 32
    assert secrets.main([str(folder)]) == 0
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == first, "a second run changes nothing"


def test_prometheus_scrapes_the_jobs_of_the_local_configuration_and_mounts_its_rules() -> None:
    local = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    compose = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())

    def jobs(config: dict[str, Any]) -> dict[str, tuple[str, str]]:
        return {
            job["job_name"]: (job["static_configs"][0]["targets"][0].rsplit(":", 1)[1], job.get("metrics_path", ""))
            for job in config["scrape_configs"]
        }

    ours = jobs(compose)
    for job, port_and_path in jobs(local).items():
        if job != "satubus-simulator":  # a batch job, not part of a deployment
            assert ours[job] == port_and_path, job
    assert compose["rule_files"] == local["rule_files"]
    configs = load()["configs"]
    assert configs["prometheus-rules"]["file"] == "../prometheus/rules.yml"
    assert "../grafana:/var/lib/grafana/dashboards/satubus:ro" in load()["services"]["grafana"]["volumes"]
