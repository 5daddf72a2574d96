"""deploy/kubernetes/: structure and security fields of every manifest (no cluster here)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from .checks import DEPLOY, is_setting, parse_cli

K8S = DEPLOY / "kubernetes"
MONITORING = K8S / "monitoring" / "service-monitor.yaml"
METRICS_PORT = 9102


def load(name: str) -> list[dict[str, Any]]:
    """Every document of one manifest file."""
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def all_docs() -> list[dict[str, Any]]:
    """Every document of every manifest file."""
    return [d for path in sorted(K8S.glob("*.yaml")) for d in load(path.name)]


def pod_specs() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, pod metadata, pod spec) of every workload."""
    for doc in all_docs():
        if doc["kind"] == "Pod":
            yield doc["metadata"]["name"], doc["metadata"], doc["spec"]
        elif doc["kind"] in {"Deployment", "StatefulSet", "Job", "DaemonSet"}:
            tpl = doc["spec"]["template"]
            yield doc["metadata"]["name"], tpl["metadata"], tpl["spec"]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Init and app containers of a pod spec."""
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def one(kind: str, name: str) -> dict[str, Any]:
    """The one document of ``kind`` named ``name``."""
    found = [d for d in all_docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


def test_expected_objects_exist() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in all_docs()}
    assert {
        ("Deployment", "vaultside"),
        ("Service", "vaultside"),
        ("NetworkPolicy", "vaultside"),
        ("PodDisruptionBudget", "vaultside"),
        ("PersistentVolumeClaim", "vaultside-data"),
        ("Job", "vaultside-init"),
        ("Pod", "example-app"),
        ("NetworkPolicy", "example-app"),
    } <= kinds
    for doc in all_docs():
        assert doc["apiVersion"] and doc["metadata"]["name"]


def test_every_pod_is_non_root_with_runtime_default_seccomp() -> None:
    specs = list(pod_specs())
    assert len(specs) == 3
    for name, _meta, spec in specs:
        ctx = spec["securityContext"]
        assert ctx["runAsNonRoot"] is True, name
        assert ctx.get("runAsUser", 1) != 0, name
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC")


def test_every_container_is_locked_down_and_limited() -> None:
    seen = 0
    for pod, _meta, spec in pod_specs():
        for c in containers(spec):
            seen += 1
            where = f"{pod}/{c['name']}"
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc.get("privileged", False) is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert "add" not in sc["capabilities"], where
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
            limits = c["resources"]["limits"]
            assert {"cpu", "memory"} <= set(limits), where
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), where
            assert ":" in c["image"] and not c["image"].endswith(":latest"), where
    assert seen == 4


def test_vaultside_containers_run_real_commands_and_settings() -> None:
    for pod, _meta, spec in pod_specs():
        for c in containers(spec):
            if not c["image"].startswith("vaultside:"):
                continue
            assert "command" not in c  # the image's ENTRYPOINT is ``vaultside``
            parse_cli(c["args"])
            for env in c.get("env", []):
                assert is_setting(env["name"]), f"{pod}/{c['name']}: {env['name']}"


def test_example_app_has_a_native_sidecar_on_a_memory_emptydir() -> None:
    spec = one("Pod", "example-app")["spec"]
    (sidecar,) = spec["initContainers"]
    assert sidecar["restartPolicy"] == "Always"
    assert parse_cli(sidecar["args"]) == ["sidecar"]
    assert "--once" not in sidecar["args"]  # long-running: keeps the files fresh
    assert "startupProbe" in sidecar  # the app starts only once the files exist
    volumes = {v["name"]: v for v in spec["volumes"]}
    out_dir = next(a.split("=", 1)[1] for a in sidecar["args"] if a.startswith("--dir="))
    shared = [m["name"] for m in sidecar["volumeMounts"] if m["mountPath"] == out_dir]
    assert len(shared) == 1
    assert volumes[shared[0]]["emptyDir"]["medium"] == "Memory"
    (app,) = spec["containers"]
    app_mounts = {m["name"]: m for m in app["volumeMounts"]}
    assert app_mounts[shared[0]]["readOnly"] is True
    assert "vaultside-token" not in app_mounts  # only the sidecar holds the login token


def test_example_app_logs_in_with_a_projected_service_account_token() -> None:
    spec = one("Pod", "example-app")["spec"]
    (sidecar,) = spec["initContainers"]
    args = dict(a.removeprefix("--").split("=", 1) for a in sidecar["args"] if "=" in a)
    assert args["auth"] == "jwt" and args["role"] == "example-app"
    assert "token-file" not in args  # no static vaultside token anywhere
    assert not any("secret" in v for v in spec["volumes"])  # no Secret volume at all
    jwt_dir, _, jwt_name = args["jwt-file"].rpartition("/")
    (mount,) = [m for m in sidecar["volumeMounts"] if m["mountPath"] == jwt_dir]
    assert mount["readOnly"] is True
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    (source,) = volume["projected"]["sources"]
    token = source["serviceAccountToken"]
    assert token["audience"] == "vaultside" and token["path"] == jwt_name
    assert token["expirationSeconds"] <= 3600
    assert spec["automountServiceAccountToken"] is False


def test_server_verifies_service_account_tokens_by_oidc_discovery() -> None:
    pod = one("Deployment", "vaultside")["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    env = {e["name"]: e["value"] for e in server["env"]}
    assert env["VAULTSIDE_AUTH__JWT__DISCOVERY"] == "true"
    assert env["VAULTSIDE_AUTH__JWT__ISSUER"].startswith("https://")
    mounts = {m["mountPath"]: m["name"] for m in server["volumeMounts"]}
    for name in ("VAULTSIDE_AUTH__JWT__CA_FILE", "VAULTSIDE_AUTH__JWT__FETCH_TOKEN_FILE"):
        directory, _, file = env[name].rpartition("/")
        volume = next(v for v in pod["volumes"] if v["name"] == mounts[directory])
        paths = [
            s.get("serviceAccountToken", {}).get("path")
            or s.get("configMap", {}).get("items", [{}])[0].get("path")
            for s in volume["projected"]["sources"]
        ]
        assert file in paths, name


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_selectors_and_network_policies_line_up() -> None:
    server_labels = one("Deployment", "vaultside")["spec"]["template"]["metadata"]["labels"]
    assert _matches(one("Service", "vaultside")["spec"]["selector"], server_labels)
    pdb = one("PodDisruptionBudget", "vaultside")["spec"]
    assert _matches(pdb["selector"]["matchLabels"], server_labels)
    netpol = one("NetworkPolicy", "vaultside")["spec"]
    assert _matches(netpol["podSelector"]["matchLabels"], server_labels)
    assert set(netpol["policyTypes"]) == {"Ingress", "Egress"}
    ingress, monitoring = netpol["ingress"]
    (source,) = ingress["from"]
    app_labels = one("Pod", "example-app")["metadata"]["labels"]
    assert _matches(source["podSelector"]["matchLabels"], app_labels)
    assert [p["port"] for p in ingress["ports"]] == [8200]
    # The monitoring namespace reaches the metrics listener only, never the API.
    (scraper,) = monitoring["from"]
    assert scraper == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    }
    assert [p["port"] for p in monitoring["ports"]] == [METRICS_PORT]
    app_pol = one("NetworkPolicy", "example-app")["spec"]
    assert _matches(app_pol["podSelector"]["matchLabels"], app_labels)
    assert app_pol["ingress"] == []  # nothing may connect to the example app
    targets = [t for rule in app_pol["egress"] for t in rule["to"]]
    assert any(_matches(t["podSelector"]["matchLabels"], server_labels) for t in targets)
    openbao = {"app.kubernetes.io/name": "openbao"}
    assert not any(_matches(t["podSelector"]["matchLabels"], openbao) for t in targets)


def test_server_probes_use_real_endpoints() -> None:
    (server,) = one("Deployment", "vaultside")["spec"]["template"]["spec"]["containers"]
    assert server["readinessProbe"]["httpGet"]["path"] == "/v1/sys/health"
    assert server["livenessProbe"]["httpGet"]["path"] == "/v1/sys/seal-status"
    from vaultside.api.routes.sys import health, seal_status

    assert "/v1/sys/health" in (health.__doc__ or "")
    assert "/v1/sys/seal-status" in (seal_status.__doc__ or "")


@pytest.mark.parametrize("name", sorted(p.name for p in K8S.glob("*.yaml")))
def test_data_and_key_never_in_manifests(name: str) -> None:
    text = (K8S / name).read_text()
    for kind in (d["kind"] for d in load(name)):
        assert kind not in {"Secret", "ConfigMap"}  # secrets are created out of band
    assert "VAULTSIDE_TOKEN=" not in text and "VAULTSIDE_TOKEN\n" not in text


def test_metrics_listener_service_monitor_and_ports_line_up() -> None:
    (server,) = one("Deployment", "vaultside")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in server["env"]}
    host, _, port = env["VAULTSIDE_METRICS__LISTEN"].rpartition(":")
    assert (host, int(port)) == ("0.0.0.0", METRICS_PORT)
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert ports == {"http": 8200, "metrics": METRICS_PORT}
    service, monitor = (d for d in yaml.safe_load_all(MONITORING.read_text()) if d)
    assert (service["kind"], monitor["kind"]) == ("Service", "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    server_labels = one("Deployment", "vaultside")["spec"]["template"]["metadata"]["labels"]
    assert _matches(service["spec"]["selector"], server_labels)
    (svc_port,) = service["spec"]["ports"]
    assert (svc_port["port"], svc_port["targetPort"]) == (METRICS_PORT, "metrics")
    assert _matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == (svc_port["name"], "/metrics")
    # The API's Service does not expose the metrics port.
    assert [p["port"] for p in one("Service", "vaultside")["spec"]["ports"]] == [8200]
