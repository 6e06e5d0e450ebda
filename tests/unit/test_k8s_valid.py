"""Every overlay of deploy/k8s renders, and kubeconform finds every object valid against its kind's JSON schema:
core kinds from the kubernetes-validate package, custom resources from deploy/k8s/schemas/. A broken field fails.

Needs kubeconform and kubectl (or kustomize): `make deploy-tools` installs them. No cluster is needed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

K8S = Path(__file__).parents[2] / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
KUBERNETES = "1.32.0"  # the oldest Kubernetes the manifests target (kubectl 1.32 renders them here)
SUMMARY_OK = re.compile(r"Invalid: 0, Errors: 0, Skipped: 0")

Document = dict[str, Any]


def _tool(name: str) -> str | None:
    beside_python = Path(sys.executable).with_name(name)
    return str(beside_python) if beside_python.is_file() else shutil.which(name)


@pytest.fixture(scope="session")
def kubeconform() -> str:
    found = _tool("kubeconform")
    if found is None:
        pytest.fail("kubeconform is missing: run `make deploy-tools` (it installs it into .venv/bin with Go)")
    return found


@pytest.fixture(scope="session")
def kustomize() -> list[str]:
    if (kubectl := shutil.which("kubectl")) is not None:
        return [kubectl, "kustomize"]
    if (standalone := _tool("kustomize")) is not None:
        return [standalone, "build"]
    pytest.fail("neither kubectl nor kustomize is installed: run `make deploy-tools`")


@pytest.fixture(scope="session")
def core_schemas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The core kinds' strict schemas, each pointing at its sibling _definitions.json: as shipped, they name it by
    the kubernetes.io URL of their ``$id``, which kubeconform would fetch from the network."""
    shipped = resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{KUBERNETES}-local-strict"
    target = tmp_path_factory.mktemp("core-schemas")
    for entry in shipped.iterdir():
        text = entry.read_text(encoding="utf-8")
        if entry.name != "_definitions.json":
            schema = json.loads(text)
            schema.pop("$id", None)
            text = json.dumps(schema).replace('"/api/_definitions.json#', '"_definitions.json#')
        (target / entry.name).write_text(text, encoding="utf-8")
    return target


def render(kustomize: list[str], overlay: str) -> str:
    result = subprocess.run([*kustomize, str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="session")
def rendered(kustomize: list[str]) -> dict[str, str]:
    return {overlay: render(kustomize, overlay) for overlay in OVERLAYS}


@pytest.fixture(scope="session")
def validate(kubeconform: str, core_schemas: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """kubeconform's verdict on a stream of documents: its output, or a failed assertion with it."""
    folder = tmp_path_factory.mktemp("manifests")

    def run(text: str, *, expect_valid: bool = True) -> str:
        manifest = folder / "manifest.yaml"
        manifest.write_text(text, encoding="utf-8")
        command = [
            kubeconform,
            "-strict",
            "-summary",
            "-kubernetes-version",
            KUBERNETES,
            "-schema-location",
            str(core_schemas / "{{.ResourceKind}}{{.KindSuffix}}.json"),
            "-schema-location",
            str(K8S / "schemas" / "{{.Group}}" / "{{.ResourceKind}}_{{.ResourceAPIVersion}}.json"),
            str(manifest),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        output = result.stdout + result.stderr
        if expect_valid:
            assert result.returncode == 0 and SUMMARY_OK.search(output), output
        else:
            assert result.returncode != 0, f"kubeconform accepted a broken document:\n{output}"
        return output

    return run


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_of_the_overlay_is_valid(overlay: str, rendered: dict[str, str], validate: Any) -> None:
    output = validate(rendered[overlay])
    assert re.search(r"Valid: [1-9]\d+", output), output


def _documents(text: str) -> list[Document]:
    return [d for d in yaml.safe_load_all(text) if d]


def _one(documents: list[Document], kind: str, name: str) -> Document:
    return next(d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name)


def _replicas_as_words(documents: list[Document]) -> str:
    _one(documents, "Deployment", "satubus-api")["spec"]["replicas"] = "two"
    return "satubus-api"


def _regex_acl(documents: list[Document]) -> str:
    _one(documents, "KafkaUser", "satubus-streams")["spec"]["authorization"]["acls"][0]["resource"]["patternType"] = (
        "regex"
    )
    return "satubus-streams"


def _unknown_acl_operation(documents: list[Document]) -> str:
    _one(documents, "KafkaUser", "agency-dukcapil")["spec"]["authorization"]["acls"][0]["operations"] = ["Publish"]
    return "agency-dukcapil"


def _partitions_as_words(documents: list[Document]) -> str:
    _one(documents, "KafkaTopic", "unified.person.v1")["spec"]["partitions"] = "twelve"
    return "unified.person.v1"


def _misspelt_field(documents: list[Document]) -> str:
    _one(documents, "StatefulSet", "satubus-stream")["spec"]["replica"] = 1
    return "satubus-stream"


def _instances_as_words(documents: list[Document]) -> str:
    _one(documents, "Cluster", "satubus-pg")["spec"]["instances"] = "three"
    return "satubus-pg"


def _listener_without_port(documents: list[Document]) -> str:
    del _one(documents, "Kafka", "satubus")["spec"]["kafka"]["listeners"][0]["port"]
    return "satubus"


def _scaled_beyond_what_keda_knows(documents: list[Document]) -> str:
    _one(documents, "ScaledObject", "satubus-stream")["spec"]["maxReplicas"] = 12
    return "satubus-stream"


def _misspelt_mapping_volume(documents: list[Document]) -> str:
    pod = _one(documents, "Deployment", "satubus-materializer-datasets")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"].startswith("mappings-"))
    volume["configmap"] = volume.pop("configMap")
    return "satubus-materializer-datasets"


@pytest.mark.parametrize(
    "breaking",
    [
        _replicas_as_words,
        _regex_acl,
        _unknown_acl_operation,
        _partitions_as_words,
        _misspelt_field,
        _instances_as_words,
        _listener_without_port,
        _scaled_beyond_what_keda_knows,
        _misspelt_mapping_volume,
    ],
)
def test_a_broken_field_fails_the_check(
    breaking: Callable[[list[Document]], str], rendered: dict[str, str], validate: Any
) -> None:
    documents = _documents(rendered["prod"])
    name = breaking(documents)
    output = validate(yaml.safe_dump_all(documents, sort_keys=False), expect_valid=False)
    assert name in output, output


def test_a_kind_without_a_schema_fails_the_check(rendered: dict[str, str], validate: Any) -> None:
    unknown = {"apiVersion": "example.org/v1", "kind": "Gadget", "metadata": {"name": "x"}}
    output = validate(rendered["dev"] + "---\n" + yaml.safe_dump(unknown), expect_valid=False)
    assert "Gadget" in output, output
