"""Container posture checks and container chunking, on inspect-shaped data (no engine)."""

from __future__ import annotations

import random
from typing import Any

from tests.unit.scan.credgen import AN, rnd
from vaultside.scan.base import Severity
from vaultside.scan.posture import check_container
from vaultside.scan.scanner import Scanner
from vaultside.scan.sources.container import argv_lines, container_chunks


def inspect(**host: Any) -> dict[str, Any]:
    base_host = {
        "Memory": 256 * 1024 * 1024,
        "PidsLimit": 100,
        "NanoCpus": 500_000_000,
        "ReadonlyRootfs": True,
    }
    base_host.update(host)
    return {
        "Id": "abc123def4567890",
        "Name": "/web",
        "Path": "/bin/app",
        "Args": [],
        "Config": {"User": "1000:1000", "Env": ["PATH=/bin"], "Labels": {}},
        "HostConfig": base_host,
        "Mounts": [],
    }


def rules_of(attrs: dict[str, Any]) -> dict[str, str | None]:
    return {f.rule_id: f.practice for f in check_container(attrs)}


def test_hardened_container_is_clean() -> None:
    assert check_container(inspect()) == []


def test_each_practice_is_flagged_with_its_cis_id() -> None:
    bad = inspect(
        Privileged=True,
        Memory=0,
        PidsLimit=None,
        NanoCpus=0,
        ReadonlyRootfs=False,
        CapAdd=["NET_ADMIN", "SYS_ADMIN"],
        SecurityOpt=["seccomp=unconfined", "apparmor:unconfined"],
        NetworkMode="host",
        PidMode="host",
        IpcMode="host",
        Binds=["/var/run/docker.sock:/var/run/docker.sock"],
    )
    bad["Config"]["User"] = ""
    bad["Config"]["Env"] = ["DB_PASSWORD=" + rnd(random.Random(1), AN, 16), "PATH=/bin"]
    got = rules_of(bad)
    assert got == {
        "posture-root-user": "CIS Docker 4.1",
        "posture-privileged": "CIS Docker 5.5",
        "posture-docker-socket": "CIS Docker 5.32",
        "posture-no-memory-limit": "CIS Docker 5.11",
        "posture-no-pids-limit": "CIS Docker 5.29",
        "posture-no-cpu-limit": "CIS Docker 5.12",
        "posture-writable-rootfs": "CIS Docker 5.13",
        "posture-added-capabilities": "CIS Docker 5.4",
        "posture-seccomp-unconfined": "CIS Docker 5.22",
        "posture-apparmor-unconfined": "CIS Docker 5.2",
        "posture-host-network": "CIS Docker 5.10",
        "posture-host-pid": "CIS Docker 5.16",
        "posture-host-ipc": "CIS Docker 5.17",
        "posture-secret-in-env": "vaultside",
    }
    caps = next(f for f in check_container(bad) if f.rule_id == "posture-added-capabilities")
    assert caps.severity == Severity.HIGH


def test_secret_in_env_names_vars_but_never_values() -> None:
    value = rnd(random.Random(2), AN, 20)
    attrs = inspect()
    attrs["Config"]["Env"] = [f"API_TOKEN={value}", "DB_PASSWORD_FILE=/run/secrets/db", "X=1"]
    [f] = check_container(attrs)
    assert f.rule_id == "posture-secret-in-env" and "API_TOKEN" in f.description
    assert value not in f.description and "file" in (f.advice or "")
    attrs["Config"]["Env"] = ["API_TOKEN=${API_TOKEN}"]
    assert check_container(attrs) == []


def test_container_env_args_and_labels_are_scanned() -> None:
    rng = random.Random(3)
    env_tok, arg_pw, label_tok = (
        "glpat-" + rnd(rng, AN, 20),
        rnd(rng, AN, 18),
        "npm_" + rnd(rng, AN, 36),
    )
    attrs = inspect()
    attrs["Config"]["Env"] = ["PATH=/bin", f"GITLAB_TOKEN={env_tok}"]
    attrs["Args"] = ["--db-password", arg_pw, "-v"]
    attrs["Config"]["Labels"] = {"org.example.npm": label_tok}
    findings = []
    scanner = Scanner()
    for ch in container_chunks(attrs):
        findings += scanner._chunk_findings(ch)
    got = {(f.location.path, f.location.line, f.secret.reveal()) for f in findings if f.secret}
    assert got == {
        ("container/Env", 2, env_tok),
        ("container/Cmd", 2, arg_pw),
        ("container/Labels", 1, label_tok),
    }
    assert all(f.location.target == "web" for f in findings)


def test_argv_lines_joins_flag_values() -> None:
    assert argv_lines(["app", "--password", "x", "-v", "--a=b", "--last"]) == [
        "app",
        "--password=x",
        "-v",
        "--a=b",
        "--last",
    ]
