"""The generated part of deploy/k8s is what the code generates now (`satubus k8s generate --check`), and it says
what the code says: every contract topic with its configuration, every principal with exactly its ACLs, the alert
rules and the dashboards unchanged."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

from satubus import access, database
from satubus.consumers.run import DATASETS
from satubus.consumers.tables import MATERIALIZED
from satubus.deploy import kubernetes
from satubus.kafka import topic_config
from satubus.schemas import catalogue
from satubus.schemas.topics import all_contracts


def _documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((kubernetes.K8S / name).read_text(encoding="utf-8")) if d]


def test_the_generated_files_are_what_the_code_generates() -> None:
    stale = kubernetes.differences()
    assert not stale, f"run `satubus k8s generate`: {', '.join(stale)} differ from what the code generates"


def test_the_check_command_agrees(capsys: pytest.CaptureFixture[str]) -> None:
    settings = kubernetes.production_settings()
    assert kubernetes.main(argparse.Namespace(action="generate", check=True), settings) == 0
    assert "up to date" in capsys.readouterr().out


def test_an_agency_added_to_the_catalogue_without_generating_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    agencies = catalogue.load_catalogue()
    newcomer = dataclasses.replace(agencies[0], code=catalogue.AgencyCode("dinas-baru"))
    for module in ("satubus.access", "satubus.schemas.topics"):
        monkeypatch.setattr(f"{module}.load_catalogue", lambda *root: (*agencies, newcomer))
    stale = kubernetes.differences()
    assert {"base/generated/kafka-users.yaml", "base/generated/topics.yaml"} <= set(stale)


def test_an_edited_file_is_caught(tmp_path: Path) -> None:
    kubernetes.write(tmp_path)
    users = tmp_path / "base/generated/kafka-users.yaml"
    users.write_text(users.read_text(encoding="utf-8").replace("- Write", "- All", 1), encoding="utf-8")
    assert kubernetes.differences(tmp_path) == ["base/generated/kafka-users.yaml"]
    assert kubernetes.write(tmp_path) == ["base/generated/kafka-users.yaml"]
    assert kubernetes.differences(tmp_path) == []


def test_every_kafka_user_has_exactly_the_acls_of_the_catalogue() -> None:
    operations = {strimzi: ours for ours, strimzi in kubernetes.OPERATIONS.items()}
    patterns = {strimzi: ours for ours, strimzi in kubernetes.PATTERNS.items()}
    found = set()
    for user in _documents("base/generated/kafka-users.yaml"):
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        for acl in user["spec"].get("authorization", {}).get("acls", []):
            resource = acl["resource"]
            found |= {
                access.Grant(
                    user["metadata"]["name"],
                    resource["type"].upper(),
                    resource["name"],
                    patterns[resource["patternType"]],
                    operations[operation],
                )
                for operation in acl["operations"]
            }
    assert found == access.grants(kubernetes.NAMESPACE)


def test_every_principal_has_a_user_and_the_bus_reads_its_own_passwords_from_its_secrets() -> None:
    users = {u["metadata"]["name"]: u for u in _documents("base/generated/kafka-users.yaml")}
    assert set(users) == {access.ADMIN, *access.principals(kubernetes.NAMESPACE)}
    for name in kubernetes.RUN_BY_THE_BUS:
        secret = users[name]["spec"]["authentication"]["password"]["valueFrom"]["secretKeyRef"]
        assert secret == {"name": kubernetes.kafka_secret(name), "key": "password"}
    assert "password" not in users["agency-dukcapil"]["spec"]["authentication"]  # the User Operator makes it
    assert "authorization" not in users[access.ADMIN]["spec"]  # a super user of the cluster


def test_every_contract_topic_has_its_configuration() -> None:
    settings = kubernetes.production_settings()
    topics = {
        d["spec"]["topicName"]: d["spec"] for d in _documents("base/generated/topics.yaml") if d["kind"] == "KafkaTopic"
    }
    contracts = {c.name: c for c in all_contracts(kubernetes.NAMESPACE)}
    assert set(topics) == set(contracts)
    for name, spec in topics.items():
        assert spec["partitions"] == kubernetes.PARTITIONS
        assert spec["replicas"] == kubernetes.REPLICAS
        assert spec["config"] == topic_config(settings, name, contracts[name].compacted)
    assert topics["unified.person.v1"]["config"]["cleanup.policy"] == "compact"
    assert topics["bus.dlq"]["config"]["retention.ms"] == str(14 * 86_400_000)
    assert topics["agency.dukcapil.penduduk.v1"]["config"]["min.insync.replicas"] == "2"


def test_the_processes_are_told_the_topics_partition_count() -> None:
    (settings,) = [d for d in _documents("base/generated/topics.yaml") if d["kind"] == "ConfigMap"]
    assert settings["data"]["SATUBUS_TOPIC_PARTITIONS"] == str(kubernetes.PARTITIONS)
    assert settings["data"]["SATUBUS_TOPIC_REPLICATION_FACTOR"] == str(kubernetes.REPLICAS)


def test_rules_and_dashboards_are_the_files_of_deploy() -> None:
    (rule,) = _documents("base/generated/prometheus-rules.yaml")
    assert rule["spec"] == yaml.safe_load(kubernetes.RULES.read_text(encoding="utf-8"))
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    maps = _documents("base/generated/dashboards.yaml")
    dashboards = sorted(kubernetes.DASHBOARDS.glob("*.json"))
    assert len(maps) == len(dashboards)
    for config_map, path in zip(maps, dashboards, strict=True):
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["data"] == {path.name: path.read_text(encoding="utf-8")}
        json.loads(config_map["data"][path.name])


def test_each_folder_of_the_mappings_is_a_config_map_of_its_files() -> None:
    maps = {m["metadata"]["name"]: m["data"] for m in _documents("base/generated/mappings/config-maps.yaml")}
    folders = kubernetes.mapping_folders()
    assert {"common", "dukcapil"} <= {folder.name for folder in folders}
    assert set(maps) == {kubernetes.mapping_config_map(folder.name) for folder in folders}
    for folder in folders:
        shipped = [path for path in folder.iterdir() if path.suffix in kubernetes.MAPPING_SUFFIXES]
        files = {path.name: path.read_text(encoding="utf-8") for path in shipped}
        assert maps[kubernetes.mapping_config_map(folder.name)] == files
    assert "penduduk.mapping.yaml" in maps["satubus-mappings-dukcapil"]


def test_a_config_map_per_folder_with_files_and_only_the_packages_files(tmp_path: Path) -> None:
    for name in ("dinkes/kunjungan.avsc", "dinkes/kunjungan.mapping.yaml", "dinkes/.kunjungan.avsc.new", "dlh/x.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("{}", encoding="utf-8")
    (tmp_path / "empty").mkdir()
    (config_map,) = kubernetes.mapping_config_maps(tmp_path)
    assert config_map["metadata"]["name"] == "satubus-mappings-dinkes"
    assert set(config_map["data"]) == {"kunjungan.avsc", "kunjungan.mapping.yaml"}  # not a half-installed file


def test_the_mappings_are_mounted_whole_at_their_folder_where_the_processes_look() -> None:
    """``<SATUBUS_MAPPINGS_DIR>/<agency>/<dataset>.*``, as streams/mapping.py reads it; no ``items`` nor ``subPath``,
    which would hide a dataset added to a ConfigMap until the pods restart."""
    (component,) = _documents("base/generated/mappings/kustomization.yaml")
    assert (component["kind"], component["resources"]) == ("Component", ["config-maps.yaml"])
    (patch,) = component["patches"]
    assert patch["target"] == {"labelSelector": f"{kubernetes.READS_MAPPINGS}=true"}
    operations = yaml.safe_load(patch["patch"])
    pod = "/spec/template/spec"
    added = {(op["op"], op["path"], json.dumps(op["value"], sort_keys=True)) for op in operations}
    setting = {"name": "SATUBUS_MAPPINGS_DIR", "value": kubernetes.MAPPINGS_DIR}
    expected = {("add", f"{pod}/containers/0/env/-", json.dumps(setting, sort_keys=True))}
    for folder in kubernetes.mapping_folders():
        name = f"mappings-{folder.name}"
        volume = {"name": name, "configMap": {"name": kubernetes.mapping_config_map(folder.name)}}
        mount = {"name": name, "mountPath": f"{kubernetes.MAPPINGS_DIR}/{folder.name}", "readOnly": True}
        expected.add(("add", f"{pod}/volumes/-", json.dumps(volume, sort_keys=True)))
        expected.add(("add", f"{pod}/containers/0/volumeMounts/-", json.dumps(mount, sort_keys=True)))
    assert added == expected
    assert len(operations) == len(expected)
    base = yaml.safe_load((kubernetes.K8S / "base/kustomization.yaml").read_text(encoding="utf-8"))
    assert base["components"] == ["generated/mappings"]


def test_the_datasets_have_a_materializer_that_follows_them() -> None:
    deployments = {d["metadata"]["name"]: d for d in _documents("base/generated/materializers.yaml")}
    assert set(deployments) == {
        f"satubus-materializer-{kubernetes.object_name(entity)}" for entity in [*MATERIALIZED, DATASETS]
    }
    pod = deployments["satubus-materializer-datasets"]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["args"] == ["materialize", "--entity", DATASETS]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "metrics"}
    env = {e["name"]: e for e in container["env"]}
    assert env["SATUBUS_KAFKA_USERNAME"]["valueFrom"]["secretKeyRef"]["name"] == "satubus-kafka-materializer"
    assert env["SATUBUS_DATABASE_URL"]["value"].startswith(f"postgresql://{database.MATERIALIZER}:")
    for deployment in deployments.values():  # every materializer reads the mappings (the datasets it knows)
        assert deployment["metadata"]["labels"][kubernetes.READS_MAPPINGS] == "true"


def test_the_materializer_principal_may_read_every_dataset() -> None:
    """A dataset's records are on ``unified.<agency>.<dataset>.v1``, its group ``satubus-materializer-<entity>``:
    the materializer's prefixed ACLs cover a dataset applied later, with no new KafkaUser."""
    grants = {g for g in access.grants(kubernetes.NAMESPACE) if g.principal == access.MATERIALIZER}
    assert access.Grant(access.MATERIALIZER, "TOPIC", "unified.", "PREFIXED", "READ") in grants
    assert access.Grant(access.MATERIALIZER, "GROUP", access.MATERIALIZER_GROUPS, "PREFIXED", "READ") in grants


def test_the_image_is_the_package_version() -> None:
    base = yaml.safe_load((kubernetes.K8S / "base/kustomization.yaml").read_text(encoding="utf-8"))
    (image,) = base["images"]
    assert (image["name"], image["newTag"]) == (kubernetes.IMAGE, version("satubus"))


def test_no_generated_file_holds_a_nik_or_a_password() -> None:
    for name in kubernetes.generated():
        text = (kubernetes.K8S / name).read_text(encoding="utf-8")
        assert not re.search(r"(?<!\d)\d{16}(?!\d)", text), f"{name} holds a 16-digit number"
        assert not re.search(r"password:\s*['\"]?\w", text.replace("password:\n", "")), name
