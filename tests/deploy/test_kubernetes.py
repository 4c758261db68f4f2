"""The project's own rules for deploy/kubernetes: what neither the API schemas nor
checkov know (``make lint`` runs both, through scripts/kubernetes_manifests.py).

Both overlays are rendered with ``kubectl kustomize`` (their secrets from the committed
secrets.env.example), and each must hold:

- every resource valid against the API schemas of the pinned Kubernetes version (strict);
- every pod: non-root as the Dockerfile's user, read-only root file system with its
  writable places on size-limited emptyDirs, no privilege escalation, every capability
  dropped, the RuntimeDefault seccomp profile, no service account token, no service
  links, requests and limits for CPU and memory, the image at the project's version;
- the API: startup, liveness (/health/live) and readiness (/health/ready) probes whose
  Host the settings allow, rolling updates that never go below the desired count, an
  autoscaler on CPU that owns the replica count (2 to 10 in production), a disruption
  budget that keeps one pod up, a spread over nodes;
- the migration Job: `app db upgrade`, one per release (named after the version);
- the NetworkPolicy: every pod; in, only the API's port; out, only DNS, PostgreSQL,
  Redis and SMTP, including the ports the settings name;
- the configuration: every ConfigMap and Secret key a setting the application knows, no
  secret in the ConfigMap, and all of it accepted by the application's Settings;
- every checkov skip with its reason.

Without kubectl these are skipped (with the reason), unless TEST_REQUIRE_KUBECTL=1 (CI).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from entrypoints.settings import Settings
from scripts import kubernetes_manifests as kubernetes
from tests.unit.test_docker_policies import excluded, final_stage, instructions

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
OVERLAYS = kubernetes.OVERLAYS
WORKLOADS = ("Deployment", "Job")
# The settings that are secrets: never in the ConfigMap.
SECRET_SETTINGS = {
    "SECRET_KEY",
    "DATABASE_URL",
    "RATE_LIMIT_STORAGE_URI",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
}
NAMESPACES = {"development": "backend-template-dev", "production": "backend-template"}
EGRESS = {(53, "UDP"), (53, "TCP"), (5432, "TCP"), (6379, "TCP"), (587, "TCP"), (465, "TCP")}
API_PORT = 8000
SKIP_ANNOTATION = re.compile(r"^(CKV2?_K8S_\d+)=(.{20,})$")
Resource = dict[str, Any]


# --- Rendering ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Resource]]:
    try:
        command = kubernetes.kubectl()
    except kubernetes.KubectlUnavailable as exc:
        if os.environ.get(kubernetes.REQUIRE_KUBECTL) == "1":
            pytest.fail(f"{exc} ({kubernetes.REQUIRE_KUBECTL}=1)", pytrace=False)
        pytest.skip(f"{exc}: deploy/kubernetes is not rendered")
    return {
        overlay: kubernetes.documents(kubernetes.render(overlay, command)) for overlay in OVERLAYS
    }


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def resources(rendered: dict[str, list[Resource]], overlay: str) -> list[Resource]:
    return rendered[overlay]


def one(resources: list[Resource], kind: str, name: str | None = None) -> Resource:
    found = [
        r
        for r in resources
        if r["kind"] == kind and (name is None or r["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def workloads(resources: list[Resource]) -> list[Resource]:
    return [r for r in resources if r["kind"] in WORKLOADS]


def pod_spec(workload: Resource) -> dict[str, Any]:
    return dict(workload["spec"]["template"]["spec"])


def containers(workload: Resource) -> Iterator[dict[str, Any]]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def data_of(resources: list[Resource], kind: str) -> dict[str, str]:
    """The one ConfigMap's (or Secret's) data as text."""
    resource = one(resources, kind)
    if kind == "Secret":
        return {k: base64.b64decode(v).decode() for k, v in resource.get("data", {}).items()}
    return dict(resource.get("data", {}))


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@cache
def project_version() -> str:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return str(tomllib.loads(text)["project"]["version"])


@cache
def dockerfile_user() -> tuple[int, int]:
    users = [ins.args for ins in final_stage() if ins.keyword == "USER"]
    assert users, "docker/Dockerfile's final stage has no USER"
    uid, _, gid = users[-1].partition(":")
    return int(uid), int(gid or uid)


def quantity(value: str | int | float) -> float:
    """A CPU or memory quantity as a number: 250m, 1, 256Mi, 1G."""
    text = str(value)
    units = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in sorted(units.items(), key=lambda item: -len(item[0])):
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    return float(text)


# --- The API schemas --------------------------------------------------------------------


def test_every_resource_is_valid_against_the_pinned_kubernetes_api(
    resources: list[Resource],
) -> None:
    assert kubernetes.schema_errors(resources) == []


def test_each_overlay_deploys_the_whole_service_in_its_own_namespace(
    resources: list[Resource], overlay: str
) -> None:
    namespace = NAMESPACES[overlay]

    def named(resource: Resource) -> tuple[str, str]:
        kind, name = resource["kind"], resource["metadata"]["name"]
        if kind in ("ConfigMap", "Secret"):
            name = name.rsplit("-", 1)[0]  # the generator's hash of the content
        return kind, name

    assert sorted(named(r) for r in resources) == sorted(
        [
            ("ConfigMap", "settings"),
            ("Deployment", "api"),
            ("Deployment", "jobs"),
            ("HorizontalPodAutoscaler", "api"),
            ("Job", f"migrate-{project_version()}"),
            ("Namespace", namespace),
            ("NetworkPolicy", "backend-template"),
            ("PodDisruptionBudget", "api"),
            ("Secret", "secrets"),
            ("Service", "api"),
        ]
    )
    # The namespace enforces what every pod here meets.
    labels = one(resources, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for resource in resources:
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == namespace, resource["kind"]


# --- Every pod ------------------------------------------------------------------------


def test_every_pod_runs_as_the_image_s_non_root_user_without_privileges(
    resources: list[Resource],
) -> None:
    uid, gid = dockerfile_user()
    assert uid >= 10000  # no clash with a host user's id
    for workload in workloads(resources):
        spec = pod_spec(workload)
        name = workload["metadata"]["name"]
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["enableServiceLinks"] is False, name
        assert spec.get("hostNetwork", False) is False, name
        assert spec.get("hostPID", False) is False, name
        assert spec.get("hostIPC", False) is False, name
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (
            uid,
            gid,
            gid,
        ), name
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in containers(workload):
            own = container["securityContext"]
            where = f"{name}/{container['name']}"
            assert own["allowPrivilegeEscalation"] is False, where
            assert own["readOnlyRootFilesystem"] is True, where
            assert own.get("privileged", False) is False, where
            assert own["capabilities"] == {"drop": ["ALL"]}, where
            assert own.get("runAsUser", uid) == uid, where
            assert own.get("runAsNonRoot", True) is True, where


def test_the_only_writable_places_are_size_limited_empty_dirs(resources: list[Resource]) -> None:
    for workload in workloads(resources):
        spec = pod_spec(workload)
        volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
        for volume in volumes.values():
            assert set(volume) == {"name", "emptyDir"}, volume
            assert "sizeLimit" in volume["emptyDir"], volume
        for container in containers(workload):
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            # Temporary files (large request bodies) go to /tmp.
            assert "/tmp" in mounts, container["name"]
            assert set(mounts.values()) <= set(volumes)


def test_the_image_writes_nothing_outside_them() -> None:
    """A read-only root file system needs an image that writes nothing at run time: no
    .pyc (compiled at build time), and a SECRET_KEY (checked below) so that no key file
    is made in the working directory."""
    final = final_stage()
    env = " ".join(ins.args for ins in final if ins.keyword == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    every_run = "\n".join(ins.args for ins in instructions() if ins.keyword == "RUN")
    assert "compileall" in every_run


def test_every_container_has_requests_and_limits_of_cpu_and_memory(
    resources: list[Resource],
) -> None:
    for workload in workloads(resources):
        for container in containers(workload):
            resources_of = container["resources"]
            for kind in ("cpu", "memory"):
                request = quantity(resources_of["requests"][kind])
                limit = quantity(resources_of["limits"][kind])
                assert 0 < request <= limit, (container["name"], kind)


def test_every_image_is_the_project_s_version(resources: list[Resource]) -> None:
    version = project_version()
    for workload in workloads(resources):
        for container in containers(workload):
            name, _, tag = container["image"].rpartition(":")
            assert name.rsplit("/", 1)[-1] == "backend-template", container["image"]
            assert tag == version, container["image"]


# --- The API --------------------------------------------------------------------------


def test_the_api_has_its_three_probes_on_its_own_port_with_an_allowed_host(
    resources: list[Resource],
) -> None:
    [container] = pod_spec(one(resources, "Deployment", "api"))["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["http"] == API_PORT
    assert container["command"][:2] == ["app", "serve"]
    assert container["command"][container["command"].index("--port") + 1] == str(API_PORT)
    allowed = json.loads(data_of(resources, "ConfigMap").get("ALLOWED_HOSTS", '["*"]'))
    for probe, path in (
        ("startupProbe", "/health/live"),
        ("livenessProbe", "/health/live"),
        ("readinessProbe", "/health/ready"),
    ):
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert get["port"] in ("http", API_PORT), probe
        host = {h["name"].lower(): h["value"] for h in get.get("httpHeaders", [])}.get("host")
        assert allowed == ["*"] or host in allowed, (probe, host, allowed)


def test_the_api_rolls_out_without_going_below_its_desired_count(
    resources: list[Resource],
) -> None:
    for name in ("api", "jobs"):
        strategy = one(resources, "Deployment", name)["spec"]["strategy"]
        assert strategy["type"] == "RollingUpdate"
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0, name
        assert strategy["rollingUpdate"]["maxSurge"] in (1, "25%"), name


def test_the_autoscaler_owns_the_api_s_replica_count(
    resources: list[Resource], overlay: str
) -> None:
    api = one(resources, "Deployment", "api")
    # A count in the Deployment would be reset by each `kubectl apply`.
    assert "replicas" not in api["spec"]
    autoscaler = one(resources, "HorizontalPodAutoscaler", "api")["spec"]
    assert autoscaler["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "api",
    }
    [metric] = autoscaler["metrics"]
    assert metric["resource"]["name"] == "cpu"
    if overlay == "production":
        assert (autoscaler["minReplicas"], autoscaler["maxReplicas"]) == (2, 10)


def test_a_disruption_keeps_an_api_pod_up(resources: list[Resource]) -> None:
    api = one(resources, "Deployment", "api")
    budget = one(resources, "PodDisruptionBudget", "api")["spec"]
    assert matches(budget["selector"]["matchLabels"], api["spec"]["template"]["metadata"]["labels"])
    least = one(resources, "HorizontalPodAutoscaler", "api")["spec"]["minReplicas"]
    kept = budget.get("minAvailable", least - budget.get("maxUnavailable", least))
    # With a single replica (development) a drain may take it: nothing to keep up.
    assert kept >= 1 or least == 1


def test_the_api_s_pods_spread_over_nodes(resources: list[Resource], overlay: str) -> None:
    api = one(resources, "Deployment", "api")
    labels = api["spec"]["template"]["metadata"]["labels"]
    spread = {c["topologyKey"]: c for c in pod_spec(api)["topologySpreadConstraints"]}
    nodes = spread["kubernetes.io/hostname"]
    assert nodes["maxSkew"] == 1
    assert matches(nodes["labelSelector"]["matchLabels"], labels)
    if overlay == "production":
        assert nodes["whenUnsatisfiable"] == "DoNotSchedule"


def test_the_service_and_every_selector_find_their_pods(resources: list[Resource]) -> None:
    api = one(resources, "Deployment", "api")
    labels = api["spec"]["template"]["metadata"]["labels"]
    service = one(resources, "Service", "api")["spec"]
    assert matches(service["selector"], labels)
    [port] = service["ports"]
    assert port["targetPort"] in ("http", API_PORT)
    for workload in workloads(resources):
        if workload["kind"] == "Deployment":
            selector = workload["spec"]["selector"]["matchLabels"]
            assert matches(selector, workload["spec"]["template"]["metadata"]["labels"])
    # No two Deployments select each other's pods.
    jobs = one(resources, "Deployment", "jobs")
    assert not matches(
        api["spec"]["selector"]["matchLabels"], jobs["spec"]["template"]["metadata"]["labels"]
    )


# --- The migration Job ----------------------------------------------------------------


def test_the_migration_job_upgrades_the_schema_once_per_release(
    resources: list[Resource],
) -> None:
    job = one(resources, "Job")
    assert job["metadata"]["name"] == f"migrate-{project_version()}"
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "Never"
    [container] = spec["containers"]
    assert container["command"] == ["app", "db", "upgrade"]
    assert job["spec"]["backoffLimit"] >= 1
    assert job["spec"]["activeDeadlineSeconds"] > 0


def test_every_process_reads_the_same_configuration(resources: list[Resource]) -> None:
    config = one(resources, "ConfigMap")["metadata"]["name"]
    secret = one(resources, "Secret")["metadata"]["name"]
    for workload in workloads(resources):
        for container in containers(workload):
            sources = container["envFrom"]
            assert {"configMapRef": {"name": config}} in sources, container["name"]
            assert {"secretRef": {"name": secret}} in sources, container["name"]
            # Nothing set past the two, where no test would see it.
            assert "env" not in container, container["name"]


# --- The NetworkPolicy ----------------------------------------------------------------


def test_the_network_policy_covers_every_pod(resources: list[Resource]) -> None:
    policy = one(resources, "NetworkPolicy")["spec"]
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    for workload in workloads(resources):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert matches(policy["podSelector"]["matchLabels"], labels), workload["metadata"]


def test_the_network_policy_lets_in_only_the_api_s_port(resources: list[Resource]) -> None:
    [rule] = one(resources, "NetworkPolicy")["spec"]["ingress"]
    assert rule["ports"] == [{"port": API_PORT, "protocol": "TCP"}]


def test_the_network_policy_lets_out_only_dns_postgresql_redis_and_smtp(
    resources: list[Resource],
) -> None:
    egress = one(resources, "NetworkPolicy")["spec"]["egress"]
    allowed = {(p["port"], p["protocol"]) for rule in egress for p in rule["ports"]}
    assert allowed == EGRESS
    # The ports the settings name are among them.
    settings = data_of(resources, "ConfigMap") | data_of(resources, "Secret")
    named = {
        urlsplit(settings["DATABASE_URL"]).port or 5432,
        urlsplit(settings["RATE_LIMIT_STORAGE_URI"]).port or 6379,
        int(settings.get("SMTP_PORT", 587)),
    }
    assert {(port, "TCP") for port in named} <= allowed


# --- The configuration ----------------------------------------------------------------


def setting_names() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        names.add(name.upper())
        for alias in (field.alias, field.validation_alias):
            if isinstance(alias, str):
                names.add(alias.upper())
    return names


def test_every_configuration_key_is_a_setting_the_application_knows(
    resources: list[Resource],
) -> None:
    config = data_of(resources, "ConfigMap")
    secret = data_of(resources, "Secret")
    assert set(config) - setting_names() == set()
    assert set(secret) - setting_names() == set()
    assert set(config) & SECRET_SETTINGS == set()
    assert set(config) & set(secret) == set()
    # Without a SECRET_KEY the application writes a key file, which a read-only root
    # file system refuses.
    assert "SECRET_KEY" in secret


def test_the_application_accepts_the_configuration(
    resources: list[Resource], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    for name in list(os.environ):
        if name.upper() in setting_names():
            monkeypatch.delenv(name)
    values = data_of(resources, "ConfigMap") | data_of(resources, "Secret")
    # The examples leave the key to the operator.
    assert values["SECRET_KEY"] == ""
    values["SECRET_KEY"] = secrets.token_urlsafe(48)
    for name, value in values.items():
        monkeypatch.setenv(name, value)

    settings = Settings(_env_file=None)  # type: ignore[call-arg]

    assert settings.environment in ("development", "production")
    assert settings.metrics_port != API_PORT


def test_the_secrets_file_is_ignored_and_its_example_committed() -> None:
    for overlay in OVERLAYS:
        folder = DEPLOY / "overlays" / overlay
        assert (folder / f"{kubernetes.SECRETS}.example").is_file()
        # Nor does it reach a Docker build context.
        assert excluded(f"deploy/kubernetes/overlays/{overlay}/{kubernetes.SECRETS}")
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("no git, or not a git checkout")
    paths = [f"deploy/kubernetes/overlays/{o}/{kubernetes.SECRETS}" for o in OVERLAYS]
    done = subprocess.run(
        [git, "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.stdout.split() == paths


# --- checkov --------------------------------------------------------------------------


def test_every_checkov_skip_says_why(resources: list[Resource]) -> None:
    skipped = 0
    for resource in resources:
        for key, value in resource["metadata"].get("annotations", {}).items():
            if key.startswith("checkov.io/skip"):
                assert SKIP_ANNOTATION.match(value), (resource["metadata"]["name"], value)
                skipped += 1
    assert skipped


# --- Without kubectl ------------------------------------------------------------------


def test_without_kubectl_the_lint_step_says_so_and_only_ci_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no kubectl
    monkeypatch.delenv(kubernetes.REQUIRE_KUBECTL, raising=False)
    assert kubernetes.main([str(tmp_path / "out")]) == 0
    assert "kubectl is not on PATH: deploy/kubernetes is neither rendered nor checked" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()

    monkeypatch.setenv(kubernetes.REQUIRE_KUBECTL, "1")
    assert kubernetes.main([str(tmp_path / "out")]) == 1


def test_a_kubectl_whose_kustomize_is_too_old_counts_as_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # kubectl 1.26 and older embed a kustomize before 5, which cannot render these.
    fake = tmp_path / "kubectl"
    fake.write_text('#!/bin/sh\necho \'{"clientVersion": {}, "kustomizeVersion": "v4.5.7"}\'\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(kubernetes.KubectlUnavailable, match=r"has kustomize v4\.5\.7"):
        kubernetes.kubectl()
