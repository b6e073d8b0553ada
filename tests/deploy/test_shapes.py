"""The deployment files say what the guides promise: a scalable worker and exactly one beat in compose, every
long-running service with a healthcheck, restart policy and limits; in Kubernetes, non-root pods with probes on
the health endpoints and resource requests and limits. (Their schemas are checked by `make deploy-check`.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
LONG_RUNNING = ("postgres", "redis", "api", "worker", "beat")
APP_SERVICES = ("api", "worker", "beat")


def load(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / name).read_text()))


def test_compose_production_shape() -> None:
    services = load("docker-compose.yml")["services"]
    assert set(services) >= {"postgres", "redis", "migrate", *APP_SERVICES}
    for name in LONG_RUNNING:
        service = services[name]
        assert "test" in service["healthcheck"], name
        assert service["restart"] == "unless-stopped", name
        limits = service["deploy"]["resources"]["limits"]
        assert set(limits) == {"cpus", "memory"}, name
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["command"] == ["annotation-platform", "db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert services[name]["image"] == services["api"]["image"], "one image for api, worker and beat"
    assert services["api"]["command"] == ["annotation-platform", "serve", "--prod"]
    # `--scale worker=N` needs no fixed name and no host port; beat must stay one.
    assert "container_name" not in services["worker"]
    assert "ports" not in services["worker"]
    assert services["beat"]["deploy"]["replicas"] == 1
    assert "--appendonly" in services["redis"]["command"]
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "backups:/backups" in services["worker"]["volumes"]
    assert services["worker"]["environment"]["BACKUP_DIR"] == "/backups"


def test_compose_development_override() -> None:
    services = load("docker-compose.dev.yml")["services"]
    assert "./src:/app/src" in services["api"]["volumes"]
    assert "debugpy" in services["api"]["command"]
    assert "--reload" in services["api"]["command"]
    assert services["tools"]["profiles"] == ["tools"]
    assert services["tools"]["build"]["target"] == "dev"
    assert "PGHOST" in services["tools"]["environment"]


def test_env_example_names_every_secret_compose_requires() -> None:
    """`${NAME:?}` refuses an empty value too, so each needs a (placeholder) value for `config` to pass."""
    compose = (REPO / "docker-compose.yml").read_text()
    example = dict(
        line.split("=", 1)
        for line in (REPO / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for name in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "SECRET_KEY", "ENCRYPTION_KEYS"):
        assert f"${{{name}:?" in compose
        assert example.get(name), name


def kubernetes_documents() -> list[dict[str, Any]]:
    documents = []
    for path in sorted((REPO / "deploy" / "kubernetes").glob("*.yaml")):
        documents += [document for document in yaml.safe_load_all(path.read_text()) if document]
    return documents


def pod_specs() -> dict[str, dict[str, Any]]:
    return {
        document["metadata"]["name"]: document["spec"]["template"]["spec"]
        for document in kubernetes_documents()
        if document["kind"] in ("Deployment", "Job")
    }


@pytest.mark.parametrize(
    "name",
    [
        "annotation-platform-api",
        "annotation-platform-worker",
        "annotation-platform-beat",
        "annotation-platform-migrate",
    ],
)
def test_kubernetes_pods_run_non_root_with_requests_and_limits(name: str) -> None:
    spec = pod_specs()[name]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    for container in spec["containers"]:
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert set(container["resources"]) == {"requests", "limits"}
        env_from = {next(iter(source.values()))["name"] for source in container["envFrom"]}
        assert env_from == {"annotation-platform"}  # the ConfigMap and the Secret


def test_kubernetes_api_probes_and_the_rest_of_the_set() -> None:
    api = pod_specs()["annotation-platform-api"]["containers"][0]
    assert api["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert api["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    kinds = {(document["kind"], document["metadata"]["name"]) for document in kubernetes_documents()}
    for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget"):
        assert (kind, "annotation-platform-api") in kinds
        assert (kind, "annotation-platform-worker") in kinds
    assert ("Service", "annotation-platform-api") in kinds
    assert ("ConfigMap", "annotation-platform") in kinds
    assert ("Secret", "annotation-platform") in kinds
    beat = next(document for document in kubernetes_documents() if document["metadata"]["name"].endswith("-beat"))
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_every_alert_links_to_a_runbook_section() -> None:
    rules = [rule for group in load("deploy/prometheus/alerts.yml")["groups"] for rule in group["rules"]]
    anchors = heading_anchors((REPO / "docs" / "operations.md").read_text())
    assert len(rules) >= 9
    for rule in rules:
        document, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert document == "docs/operations.md", rule["alert"]
        assert anchor in anchors, (rule["alert"], anchor)
