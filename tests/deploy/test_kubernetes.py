"""deploy/kubernetes: every object is valid against the Kubernetes schemas (offline, from
kubernetes-validate), the ServiceMonitor against its CRD's structure, the config in the
ConfigMap passes ``switchback check`` with exactly the environment the Deployment gives it,
and the pieces agree with each other (ports, paths, names, the image's user)."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.dockerfile import stages
from tests.deploy.kustomize import Object, build
from tests.deploy.servicemonitor_schema import SERVICE_MONITOR

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "kubernetes"
SERVICE_MONITOR_COMPONENT = BASE / "servicemonitor"
# The oldest release the manifests support (the preStop sleep action) and the newest whose
# schemas kubernetes-validate ships.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
CONFIG_MOUNT = "/etc/switchback"


def one(objects: list[Object], kind: str, name: str | None = None) -> Object:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def container(pod: Object, name: str) -> Object:
    (found,) = [c for c in pod["containers"] if c["name"] == name]
    return dict(found)


def pod_spec(objects: list[Object]) -> Object:
    spec: Object = one(objects, "Deployment")["spec"]["template"]["spec"]
    return spec


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def switchback_config(objects: list[Object]) -> Any:
    return yaml.safe_load(one(objects, "ConfigMap")["data"]["config.yaml"])


@pytest.fixture(scope="module")
def base() -> list[Object]:
    return build(BASE)


@pytest.fixture(scope="module")
def with_monitor() -> list[Object]:
    return build(BASE, components=[SERVICE_MONITOR_COMPONENT])


# -- the schemas --


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_is_valid_for_kubernetes(base: list[Object], version: str) -> None:
    assert {o["kind"] for o in base} == {"Deployment", "Service", "ConfigMap"}
    for obj in base:
        kubernetes_validate.validate(obj, version, strict=True)  # raises with the path


def test_the_validator_refuses_a_misspelt_field(base: list[Object]) -> None:
    """The check above can fail: strict validation refuses a field Kubernetes does not know."""
    deployment = yaml.safe_load(yaml.safe_dump(one(base, "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_the_service_monitor_component_adds_a_valid_service_monitor(
    base: list[Object], with_monitor: list[Object]
) -> None:
    monitor = one(with_monitor, "ServiceMonitor")
    assert [o for o in with_monitor if o is not monitor] == base
    jsonschema.validate(monitor, SERVICE_MONITOR)
    wrong = yaml.safe_load(yaml.safe_dump(monitor))
    wrong["spec"]["endpoints"][0]["bearerToken"] = "x"  # not a field of the CRD
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, SERVICE_MONITOR)


def test_the_service_monitor_scrapes_the_admin_port_with_the_read_token(
    with_monitor: list[Object],
) -> None:
    monitor = one(with_monitor, "ServiceMonitor")["spec"]
    admin = one(with_monitor, "Service", "api-switchback-admin")
    labels = admin["metadata"]["labels"]
    assert monitor["selector"]["matchLabels"].items() <= labels.items()
    api = one(with_monitor, "Service", "api")
    assert not monitor["selector"]["matchLabels"].items() <= api["metadata"]["labels"].items()
    (endpoint,) = monitor["endpoints"]
    assert endpoint["port"] in [p["name"] for p in admin["spec"]["ports"]]
    assert endpoint["path"] == "/metrics"
    credentials = endpoint["authorization"]["credentials"]
    env = container(pod_spec(with_monitor), "switchback")["env"]
    read = [e for e in env if e["name"] == "SWITCHBACK_ADMIN_READ_TOKEN"]
    assert read[0]["valueFrom"]["secretKeyRef"] | {"optional": False} == credentials | {
        "optional": False
    }


# -- the config in the ConfigMap --


def environment(switchback: Object) -> dict[str, str]:
    """The container's environment: its values, and a fresh secret for each secretKeyRef."""
    env = {}
    for entry in switchback["env"]:
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref and ref.get("optional"):
            continue  # may be absent from the Secret: the config must do without it
        env[entry["name"]] = entry["value"] if "value" in entry else secrets.token_hex(32)
    return env


def switchback_check(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={"PATH": os.environ.get("PATH", ""), **env},
    )


def test_switchback_check_accepts_the_config_with_the_pods_environment(
    base: list[Object], tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(one(base, "ConfigMap")["data"]["config.yaml"])
    env = environment(container(pod_spec(base), "switchback"))
    result = switchback_check(path, env)
    assert result.returncode == 0, result.stderr
    assert "ok (releases blue, green" in result.stdout

    # And the environment is what makes it pass: without the Secret's values it is refused.
    refused = switchback_check(path, {})
    assert refused.returncode == 1
    assert f"{path}: admin.token: ${{SWITCHBACK_ADMIN_TOKEN}} is not set" in refused.stderr


def test_the_config_is_mounted_where_switchback_reads_it_and_can_be_updated(
    base: list[Object],
) -> None:
    pod = pod_spec(base)
    switchback = container(pod, "switchback")
    args = switchback["args"]
    assert args[args.index("--config") + 1] == f"{CONFIG_MOUNT}/config.yaml"
    cmd = stages(REPO / "Dockerfile")[-1].last("CMD")
    assert "command" not in switchback and cmd is not None
    assert args == cmd.words(), "the image has no ENTRYPOINT: args are the whole command"
    (mount,) = [m for m in switchback["volumeMounts"] if m["mountPath"] == CONFIG_MOUNT]
    assert "subPath" not in mount, "a subPath mount never sees ConfigMap updates"
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == one(base, "ConfigMap")["metadata"]["name"]
    assert "items" not in volume["configMap"]


def test_ports_agree_between_config_containers_probes_services_and_annotations(
    base: list[Object],
) -> None:
    config = switchback_config(base)
    pod = pod_spec(base)
    switchback = container(pod, "switchback")
    ports = {p["name"]: p["containerPort"] for p in switchback["ports"]}
    assert ports == {"http": port_of(config["listen"]), "admin": port_of(config["admin"]["listen"])}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert switchback[probe]["httpGet"]["port"] == "admin"
    assert switchback["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert switchback["readinessProbe"]["httpGet"]["path"] == "/readyz"
    annotations = one(base, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ports["admin"])
    assert annotations["prometheus.io/path"] == "/metrics"

    for release, settings in config["releases"].items():
        url = re.fullmatch(r"http://127\.0\.0\.1:(\d+)", settings["url"])
        assert url, settings["url"]
        (port,) = container(pod, release)["ports"]
        assert port["containerPort"] == int(url.group(1))

    labels = one(base, "Deployment")["spec"]["template"]["metadata"]["labels"]
    for service in (o for o in base if o["kind"] == "Service"):
        assert service["spec"]["selector"].items() <= labels.items()
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports
    traffic = one(base, "Service", "api")
    assert [p["targetPort"] for p in traffic["spec"]["ports"]] == ["http"]


def test_state_lives_on_a_volume_of_its_own(base: list[Object]) -> None:
    pod = pod_spec(base)
    mounts = {m["mountPath"]: m["name"] for m in container(pod, "switchback")["volumeMounts"]}
    state = mounts[switchback_config(base)["state_dir"]]
    (volume,) = [v for v in pod["volumes"] if v["name"] == state]
    assert "emptyDir" in volume
    assert "/tmp" in mounts, "SQLite needs a writable temporary directory"


def test_every_container_is_unprivileged_with_a_read_only_root(base: list[Object]) -> None:
    pod = pod_spec(base)
    user = stages(REPO / "Dockerfile")[-1].last("USER")
    assert user is not None
    uid, _, gid = user.args.partition(":")
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    assert (security["runAsUser"], security["runAsGroup"]) == (int(uid), int(gid))
    assert security["fsGroup"] == int(gid), "the state volume must be writable by that user"
    assert pod["automountServiceAccountToken"] is False
    for c in pod["containers"]:
        context = c["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, c["name"]
        assert context["readOnlyRootFilesystem"] is True, c["name"]
        assert context.get("privileged", False) is False, c["name"]
        assert context["capabilities"] == {"drop": ["ALL"]}, c["name"]
        assert "memory" in c["resources"]["limits"], c["name"]
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]), c["name"]


def test_shutdown_drains_within_the_grace_period_while_the_releases_still_serve(
    base: list[Object],
) -> None:
    pod = pod_spec(base)
    drain = switchback_config(base)["server"]["drain_timeout"]
    switchback = container(pod, "switchback")
    sleep = switchback["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert sleep + drain < pod["terminationGracePeriodSeconds"]
    for release in switchback_config(base)["releases"]:
        assert container(pod, release)["lifecycle"]["preStop"]["sleep"]["seconds"] >= (
            sleep + drain
        ), release


# -- the renderer against kustomize itself --

KUBECTL = shutil.which("kubectl")


@pytest.mark.skipif(KUBECTL is None, reason="kubectl (with its kustomize) is not installed")
@pytest.mark.parametrize("components", [[], [SERVICE_MONITOR_COMPONENT]])
def test_kustomize_renders_what_the_tests_check(tmp_path: Path, components: list[Path]) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    relative = [os.path.relpath(p, overlay) for p in components]
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": [os.path.relpath(BASE, overlay)], "components": relative})
    )
    assert KUBECTL is not None
    result = subprocess.run(
        [KUBECTL, "kustomize", str(overlay)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr

    def key(o: Object) -> tuple[str, str]:
        return o["kind"], o["metadata"]["name"]

    kustomized = sorted(yaml.safe_load_all(result.stdout), key=key)
    assert kustomized == sorted(build(BASE, components), key=key)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl (with its kustomize) is not installed")
def test_the_example_overlay_renders_valid_objects_with_its_changes() -> None:
    assert KUBECTL is not None
    result = subprocess.run(
        [KUBECTL, "kustomize", str(REPO / "deploy" / "example-overlay")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    objects = list(yaml.safe_load_all(result.stdout))
    for obj in objects:
        if obj["kind"] == "ServiceMonitor":
            jsonschema.validate(obj, SERVICE_MONITOR)
        else:
            kubernetes_validate.validate(obj, VERSIONS[-1], strict=True)
    assert {o["metadata"]["namespace"] for o in objects} == {"shop"}
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    images = {c["name"]: c["image"] for c in pod_spec(objects)["containers"]}
    assert images == {
        "switchback": "registry.example.com/switchback:0.1.0",
        "blue": "registry.example.com/shop-api:1.4",
        "green": "registry.example.com/shop-api:1.5",
    }
