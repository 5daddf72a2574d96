"""Container security practices, checked on ``docker inspect`` output (pure, no I/O).

Each finding names the practice it breaks with its CIS Docker Benchmark (v1.6.0) id where
one exists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from vaultside.scan.base import Finding, Location, Severity

_SECRET_NAME = re.compile(
    r"(?i)(?:passw(?:or)?d|pwd|secret|token|api_?key|access_?key|private_?key|credential)"
)
_REFERENCE = re.compile(r"^(?:\$|\{\{|/run/secrets/|/.*_FILE$)")
_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock")


def _finding(
    target: str, rule: str, desc: str, sev: Severity, practice: str | None, advice: str
) -> Finding:
    return Finding(
        rule_id=rule,
        description=desc,
        severity=sev,
        location=Location(kind="container", target=target, path="container/HostConfig"),
        practice=practice or "vaultside",
        advice=advice,
    ).with_fingerprint()


def check_container(attrs: Mapping[str, Any]) -> list[Finding]:
    """Posture findings for one container's inspect data."""
    name = str(attrs.get("Name", "")).lstrip("/") or str(attrs.get("Id", ""))[:12]
    cfg: Mapping[str, Any] = attrs.get("Config") or {}
    host: Mapping[str, Any] = attrs.get("HostConfig") or {}
    out: list[Finding] = []

    def add(rule: str, desc: str, sev: Severity, practice: str | None, advice: str) -> None:
        out.append(_finding(name, rule, desc, sev, practice, advice))

    user = str(cfg.get("User") or "")
    if user in ("", "root", "0") or user.startswith(("root:", "0:")):
        add(
            "posture-root-user",
            "runs as root",
            Severity.MEDIUM,
            "CIS Docker 4.1",
            "set USER in the image or --user to an unprivileged uid",
        )
    if host.get("Privileged"):
        add(
            "posture-privileged",
            "privileged container",
            Severity.CRITICAL,
            "CIS Docker 5.5",
            "drop --privileged; add only the capabilities needed",
        )
    mounts = [str(b).split(":", 1)[0] for b in host.get("Binds") or []]
    mounts += [str(m.get("Source", "")) for m in attrs.get("Mounts") or [] if isinstance(m, dict)]
    if any(m in _SOCKETS for m in mounts):
        add(
            "posture-docker-socket",
            "Docker socket mounted",
            Severity.CRITICAL,
            "CIS Docker 5.32",
            "never mount the engine socket; it is root on the host",
        )
    if not host.get("Memory"):
        add(
            "posture-no-memory-limit",
            "no memory limit",
            Severity.LOW,
            "CIS Docker 5.11",
            "set --memory",
        )
    if not host.get("PidsLimit") or int(host.get("PidsLimit") or 0) <= 0:
        add(
            "posture-no-pids-limit",
            "no PIDs limit",
            Severity.LOW,
            "CIS Docker 5.29",
            "set --pids-limit",
        )
    if not (host.get("NanoCpus") or host.get("CpuQuota") or host.get("CpuShares")):
        add(
            "posture-no-cpu-limit",
            "no CPU limit or shares",
            Severity.LOW,
            "CIS Docker 5.12",
            "set --cpus or --cpu-shares",
        )
    if not host.get("ReadonlyRootfs"):
        add(
            "posture-writable-rootfs",
            "writable root filesystem",
            Severity.LOW,
            "CIS Docker 5.13",
            "run with --read-only and tmpfs for scratch paths",
        )
    caps = [str(c) for c in host.get("CapAdd") or []]
    if caps:
        add(
            "posture-added-capabilities",
            f"added capabilities: {', '.join(sorted(caps))}",
            Severity.HIGH
            if any(c in ("ALL", "SYS_ADMIN", "CAP_SYS_ADMIN") for c in caps)
            else Severity.MEDIUM,
            "CIS Docker 5.4",
            "drop capabilities the app does not need",
        )
    sec = [str(s) for s in host.get("SecurityOpt") or []]
    if any(s.replace("=", ":") == "seccomp:unconfined" for s in sec):
        add(
            "posture-seccomp-unconfined",
            "seccomp unconfined",
            Severity.HIGH,
            "CIS Docker 5.22",
            "keep the default seccomp profile",
        )
    if any(s.replace("=", ":") == "apparmor:unconfined" for s in sec):
        add(
            "posture-apparmor-unconfined",
            "AppArmor unconfined",
            Severity.HIGH,
            "CIS Docker 5.2",
            "keep an AppArmor profile",
        )
    for ns, rule, cis in (
        ("NetworkMode", "posture-host-network", "CIS Docker 5.10"),
        ("PidMode", "posture-host-pid", "CIS Docker 5.16"),
        ("IpcMode", "posture-host-ipc", "CIS Docker 5.17"),
    ):
        if host.get(ns) == "host":
            add(
                rule,
                f"shares the host's {ns[:-4].lower()} namespace",
                Severity.HIGH,
                cis,
                f"do not use --{ns[:-4].lower()}=host",
            )
    names = sorted(
        str(e).split("=", 1)[0]
        for e in cfg.get("Env") or []
        if "=" in str(e)
        and _SECRET_NAME.search(str(e).split("=", 1)[0])
        and str(e).split("=", 1)[1]
        and not _REFERENCE.match(str(e).split("=", 1)[1])
        and not str(e).split("=", 1)[0].endswith("_FILE")
    )
    if names:
        # SECURITY: names only, never the values.
        add(
            "posture-secret-in-env",
            f"secrets passed in env vars: {', '.join(names)}",
            Severity.MEDIUM,
            None,
            "deliver secrets as files (vaultside sidecar or volume plugin), not env vars",
        )
    return out
