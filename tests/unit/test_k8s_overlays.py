"""What each rendered overlay promises: the sizes of the dev and prod buses, replication that matches the topics,
scaling bounded by the partitions, probes on /health, a budget for every workload, and no pod left open."""

from __future__ import annotations

import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from satubus.consumers.run import DATASETS
from satubus.consumers.tables import MATERIALIZED
from satubus.deploy import kubernetes

Document = dict[str, Any]


@cache
def rendered(overlay: str) -> tuple[Document, ...]:
    kubectl = shutil.which("kubectl")
    standalone = Path(sys.executable).with_name("kustomize")
    if kubectl is not None:
        command = [kubectl, "kustomize"]
    elif standalone.is_file():
        command = [str(standalone), "build"]
    else:
        pytest.fail("neither kubectl nor kustomize is installed: run `make deploy-tools`")
    result = subprocess.run(
        [*command, str(kubernetes.K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def of_kind(overlay: str, kind: str) -> dict[str, Document]:
    return {d["metadata"]["name"]: d for d in rendered(overlay) if d["kind"] == kind}


@pytest.mark.parametrize(("overlay", "nodes", "instances", "replicas"), [("dev", 1, 1, 1), ("prod", 3, 3, 3)])
def test_the_size_of_the_bus(overlay: str, nodes: int, instances: int, replicas: int) -> None:
    pools = of_kind(overlay, "KafkaNodePool")
    assert {name: (p["spec"]["roles"], p["spec"]["replicas"]) for name, p in pools.items()} == {
        "controllers": (["controller"], nodes),
        "brokers": (["broker"], nodes),
    }
    assert of_kind(overlay, "Cluster")["satubus-pg"]["spec"]["instances"] == instances
    config = of_kind(overlay, "Kafka")["satubus"]["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == replicas
    assert config["min.insync.replicas"] == (2 if replicas >= 3 else 1)
    for topic in of_kind(overlay, "KafkaTopic").values():
        assert topic["spec"]["replicas"] == replicas
        assert topic["spec"]["config"]["min.insync.replicas"] == str(2 if replicas >= 3 else 1)
    topics = of_kind(overlay, "ConfigMap")["satubus-topics"]["data"]
    assert topics["SATUBUS_TOPIC_REPLICATION_FACTOR"] == str(replicas)


def test_kafka_speaks_tls_and_scram_and_authorizes() -> None:
    kafka = of_kind("prod", "Kafka")["satubus"]["spec"]["kafka"]
    assert kafka["version"].startswith("3.9.")
    assert kafka["authorization"] == {"type": "simple", "superUsers": ["admin"]}
    for listener in kafka["listeners"]:
        assert listener["tls"] is True
        assert listener["authentication"] == {"type": "scram-sha-512"}


def test_workers_scale_on_lag_never_beyond_the_partitions() -> None:
    scaled = of_kind("prod", "ScaledObject")
    targets = {s["spec"]["scaleTargetRef"]["name"] for s in scaled.values()}
    workloads = set(of_kind("prod", "StatefulSet")) | {
        name for name in of_kind("prod", "Deployment") if name.startswith("satubus-materializer-")
    }
    assert targets == workloads
    for scaled_object in scaled.values():
        assert scaled_object["spec"]["maxReplicaCount"] <= kubernetes.PARTITIONS
        assert scaled_object["spec"]["minReplicaCount"] >= 1
    for name in targets:  # KEDA owns their replicas
        kind = "StatefulSet" if name == "satubus-stream" else "Deployment"
        assert "replicas" not in of_kind("prod", kind)[name]["spec"]
    assert "ScaledObject" not in {d["kind"] for d in rendered("dev")}


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_process_of_the_bus_is_probed_and_budgeted(overlay: str) -> None:
    workloads = {**of_kind(overlay, "Deployment"), **of_kind(overlay, "StatefulSet")}
    budgets = [b["spec"]["selector"]["matchLabels"] for b in of_kind(overlay, "PodDisruptionBudget").values()]
    for name, workload in workloads.items():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert any(selector.items() <= labels.items() for selector in budgets), f"{name} has no disruption budget"
        for container in workload["spec"]["template"]["spec"]["containers"]:
            assert container["resources"]["requests"], name
            assert container["resources"]["limits"]["memory"], name
            if name == "satubus-registry":
                continue  # Apicurio's own health endpoints (Quarkus)
            assert container["readinessProbe"]["httpGet"]["path"] == "/health", name
            assert container["livenessProbe"]["httpGet"]["path"] == "/health/live", name


def test_the_stream_workers_keep_their_names_and_state() -> None:
    worker = of_kind("prod", "StatefulSet")["satubus-stream"]["spec"]
    container = worker["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["SATUBUS_INSTANCE_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert worker["volumeClaimTemplates"][0]["metadata"]["name"] == "state"
    assert {"name": "state", "mountPath": "/var/lib/satubus"} in container["volumeMounts"]


def materializer_name(entity: str) -> str:
    return f"satubus-materializer-{kubernetes.object_name(entity)}"


def test_each_materializer_has_its_own_identity() -> None:
    materializers = {
        name: d for name, d in of_kind("prod", "Deployment").items() if name.startswith("satubus-materializer-")
    }
    assert set(materializers) == {materializer_name(entity) for entity in [*MATERIALIZED, DATASETS]}
    restricted = {materializer_name(s.entity) for s in MATERIALIZED.values() if kubernetes.is_restricted(s)}
    assert "satubus-materializer-person-nik" in restricted
    for name, deployment in materializers.items():
        env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        kafka = env["SATUBUS_KAFKA_USERNAME"]["valueFrom"]["secretKeyRef"]["name"]
        url = env["SATUBUS_DATABASE_URL"]["value"]
        if name in restricted:
            assert (kafka, url.split(":")[1]) == ("satubus-kafka-restricted", "//satubus_nik_materializer")
        else:
            assert (kafka, url.split(":")[1]) == ("satubus-kafka-materializer", "//satubus_materializer")


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_one_materializer_follows_every_dataset(overlay: str) -> None:
    deployment = of_kind(overlay, "Deployment")[materializer_name(DATASETS)]
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["args"] == ["materialize", "--entity", DATASETS]
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "satubus-materializer"  # its budget, policy, monitor
    assert {"satubus/kafka-client", "satubus/database-client"} <= set(pod["metadata"]["labels"])


def test_the_datasets_materializer_scales_on_the_lag_of_every_dataset() -> None:
    (trigger,) = of_kind("prod", "ScaledObject")[materializer_name(DATASETS)]["spec"]["triggers"]
    assert trigger["metadata"]["query"] == 'sum(satubus_consumer_lag_messages{entity=~".+[.].+"}) or vector(0)'
    assert all("." not in entity for entity in MATERIALIZED)  # the pattern matches the datasets' entities only


READERS = ("satubus-stream", "satubus-api", "satubus-gateway", "satubus-migrate", "satubus-schemas")


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_process_that_reads_the_mappings_mounts_them(overlay: str) -> None:
    """The stream workers, the API, the gateway, the materializers and the jobs read the agencies' files in
    SATUBUS_MAPPINGS_DIR: each folder there is its ConfigMap, mounted whole so that a change shows in place."""
    config_maps = of_kind(overlay, "ConfigMap")
    folders = [folder.name for folder in kubernetes.mapping_folders()]
    workloads = {**of_kind(overlay, "Deployment"), **of_kind(overlay, "StatefulSet"), **of_kind(overlay, "Job")}
    readers = {name for name in workloads if name in READERS or name.startswith("satubus-materializer-")}
    assert set(READERS) | {materializer_name(DATASETS)} <= readers
    for name, workload in workloads.items():
        pod = workload["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        if name not in readers:
            assert "SATUBUS_MAPPINGS_DIR" not in env, name
            continue
        assert env["SATUBUS_MAPPINGS_DIR"] == kubernetes.MAPPINGS_DIR, name
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        for folder in folders:
            mount = mounts[f"{kubernetes.MAPPINGS_DIR}/{folder}"]
            assert mount["readOnly"] is True and "subPath" not in mount, name
            config_map = volumes[mount["name"]]["configMap"]
            assert config_map == {"name": kubernetes.mapping_config_map(folder)}, name  # whole: no items
            assert config_map["name"] in config_maps
        assert len([path for path in mounts if path.startswith(kubernetes.MAPPINGS_DIR)]) == len(folders), name


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_pod_is_closed_by_default(overlay: str) -> None:
    policies = of_kind(overlay, "NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    egress = policies["satubus-default-deny-egress"]["spec"]
    workloads = [*of_kind(overlay, "Deployment").values(), *of_kind(overlay, "StatefulSet").values()]
    workloads += of_kind(overlay, "Job").values()
    for workload in workloads:
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert egress["podSelector"]["matchLabels"].items() <= labels.items(), workload["metadata"]["name"]


def test_monitors_and_rules_are_found_by_kube_prometheus_stack() -> None:
    for kind in ("PodMonitor", "PrometheusRule"):
        for document in of_kind("prod", kind).values():
            assert document["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    jobs = {
        m["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/name")
        for m in of_kind("prod", "PodMonitor").values()
    }
    assert {"satubus-stream", "satubus-materializer", "satubus-api"} <= jobs  # the jobs the alert rules name
